/* test_nbd_server.c - the "nbd" frontend on a unix socket: accept
 * through core/listener (counted, and uncounted once the client is
 * gone), the handshake of nbd_handshake.c (greeting, client flags,
 * STRUCTURED_REPLY, LIST, an unknown export, GO with its INFO replies,
 * ABORT), transmission with structured reads and simple replies, and
 * what start does with the path: a stale socket is replaced, a file or
 * a live server is not, and stop removes the socket; and a client that
 * did not negotiate block sizes (EXPORT_NAME) served unaligned, its
 * read-modify-writes ordered against overlapping writes (rule 6).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <endian.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <cmocka.h>

#include "core/bdev.h"
#include "lib/mem_bdev.h"
#include "lib/fake_bdev.h"
#include "core/loop.h"
#include "core/util.h"
#include "frontend/frontend.h"
#include "frontend/nbd_internal.h"
#include "frontend/nbd_proto.h"

#define SIZE (1u << 20)

/* A RAM disk that completes at once (set up in main). */
static char disk[SIZE];
static struct mem_bdev mem;

static struct loop *loop;
static struct loop_timer bound;
static char path[100];      /* fits sun_path */
static bool stopped;

static void
on_bound (struct loop_timer *t)
{
  loop_stop (t->opaque);
}

static void
on_stopped (void *opaque)
{
  stopped = true;
  loop_stop (opaque);
}

/* Run the loop for a moment: the server accepts, reads, answers. */
static void
spin (void)
{
  loop_timer_arm (loop, &bound, 10, on_bound, loop);
  loop_run (loop);
}

/* Exactly len bytes from fd, running the loop while they are not there. */
static void
recv_all (int fd, void *buf, size_t len)
{
  size_t got = 0;
  int rounds = 0;

  while (got < len) {
    ssize_t n = recv (fd, (char *) buf + got, len - got, MSG_DONTWAIT);
    if (n > 0)
      got += n;
    else {
      assert_true (n == -1);      /* not EOF */
      assert_true (++rounds < 500);
      spin ();
    }
  }
}

static void
send_all (int fd, const void *buf, size_t len)
{
  assert_int_equal (write (fd, buf, len), (ssize_t) len);
}

static uint16_t get16 (const char *p) { uint16_t v; memcpy (&v, p, 2); return be16toh (v); }
static uint32_t get32 (const char *p) { uint32_t v; memcpy (&v, p, 4); return be32toh (v); }
static uint64_t get64 (const char *p) { uint64_t v; memcpy (&v, p, 8); return be64toh (v); }
static void put16 (char *p, uint16_t v) { v = htobe16 (v); memcpy (p, &v, 2); }
static void put32 (char *p, uint32_t v) { v = htobe32 (v); memcpy (p, &v, 4); }
static void put64 (char *p, uint64_t v) { v = htobe64 (v); memcpy (p, &v, 8); }

static int
connect_to (const char *p)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  assert_true (fd >= 0);
  snprintf (sun.sun_path, sizeof sun.sun_path, "%s", p);
  assert_int_equal (connect (fd, (struct sockaddr *) &sun, sizeof sun), 0);
  return fd;
}

static void
send_option (int fd, uint32_t option, const void *data, uint32_t len)
{
  char hdr[NBD_OPTION_HDR_LEN];

  put64 (hdr, NBD_OPTS_MAGIC);
  put32 (hdr + 8, option);
  put32 (hdr + 12, len);
  send_all (fd, hdr, sizeof hdr);
  if (len)
    send_all (fd, data, len);
}

/* Read one option reply; its payload (up to cap bytes) into data. */
static uint32_t
read_option_reply (int fd, uint32_t option, void *data, size_t cap,
                   uint32_t *len)
{
  char rep[NBD_OPTION_REPLY_LEN];

  recv_all (fd, rep, sizeof rep);
  assert_true (get64 (rep) == NBD_REP_MAGIC);
  assert_int_equal (get32 (rep + 8), option);
  *len = get32 (rep + 16);
  assert_true (*len <= cap);
  recv_all (fd, data, *len);
  return get32 (rep + 12);
}

static void
send_request (int fd, uint16_t flags, uint16_t type, uint64_t cookie,
              uint64_t off, uint32_t len)
{
  char r[NBD_REQUEST_LEN];

  put32 (r, NBD_REQUEST_MAGIC);
  put16 (r + 4, flags);
  put16 (r + 6, type);
  put64 (r + 8, cookie);
  put64 (r + 16, off);
  put32 (r + 24, len);
  send_all (fd, r, sizeof r);
}

/* Greeting and client flags: the server then waits for options. */
static void
greet (int fd)
{
  char g[NBD_GREETING_LEN], flags[4];

  recv_all (fd, g, sizeof g);
  assert_memory_equal (g, "NBDMAGICIHAVEOPT", 16);
  assert_int_equal (get16 (g + 16),
                    NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
  put32 (flags, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  send_all (fd, flags, sizeof flags);
}

static struct nbd_server *
server_of (struct frontend *fe)
{
  return fe->priv;
}

static struct frontend *
start (void)
{
  char spec[160];

  snprintf (spec, sizeof spec, "unix:%s", path);
  return frontend_start ("nbd", loop, &mem.bdev, "vol", spec, NULL);
}

static void
stop (struct frontend *fe)
{
  stopped = false;
  frontend_stop (fe, on_stopped, loop);
  loop_timer_arm (loop, &bound, 5000, on_bound, loop);
  loop_run (loop);
  loop_timer_cancel (loop, &bound);
  assert_true (stopped);
  frontend_free (fe);
}

static int
setup (void **state)
{
  snprintf (path, sizeof path, "/tmp/test_nbd_server.%d.sock", (int) getpid ());
  unlink (path);
  loop = loop_new ();
  return loop ? 0 : -1;
}

static int
teardown (void **state)
{
  unlink (path);
  loop_free (loop);
  return 0;
}

static void
test_handshake_and_io (void **state)
{
  struct frontend *fe = start ();
  struct nbd_server *s;
  char buf[256], out[4096], in[4096], go[16], chunk[NBD_CHUNK_HDR_LEN + 8];
  uint32_t len, rep;
  bool export_seen = false, block_seen = false;
  struct stat st;
  int fd;

  assert_non_null (fe);
  s = server_of (fe);
  assert_int_equal (stat (path, &st), 0);
  assert_true (S_ISSOCK (st.st_mode));

  fd = connect_to (path);
  greet (fd);
  assert_int_equal (s->listener.nconns, 1);
  assert_int_equal (s->nclients, 1);

  send_option (fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
  assert_int_equal (read_option_reply (fd, NBD_OPT_STRUCTURED_REPLY, buf,
                                       sizeof buf, &len), NBD_REP_ACK);
  assert_int_equal (len, 0);

  /* LIST names the one export, then ACKs. */
  send_option (fd, NBD_OPT_LIST, NULL, 0);
  assert_int_equal (read_option_reply (fd, NBD_OPT_LIST, buf, sizeof buf,
                                       &len), NBD_REP_SERVER);
  assert_int_equal (len, 4 + 3);
  assert_int_equal (get32 (buf), 3);
  assert_memory_equal (buf + 4, "vol", 3);
  assert_int_equal (read_option_reply (fd, NBD_OPT_LIST, buf, sizeof buf,
                                       &len), NBD_REP_ACK);

  /* GO for another export: an error, and the handshake goes on. */
  put32 (go, 4);
  memcpy (go + 4, "nope", 4);
  put16 (go + 8, 0);
  send_option (fd, NBD_OPT_GO, go, 10);
  assert_int_equal (read_option_reply (fd, NBD_OPT_GO, buf, sizeof buf, &len),
                    NBD_REP_ERR_UNKNOWN);

  /* GO for the default export: INFO export and block size, then ACK. */
  put32 (go, 0);
  put16 (go + 4, 0);
  send_option (fd, NBD_OPT_GO, go, 6);
  for (;;) {
    rep = read_option_reply (fd, NBD_OPT_GO, buf, sizeof buf, &len);
    if (rep == NBD_REP_ACK)
      break;
    assert_int_equal (rep, NBD_REP_INFO);
    if (get16 (buf) == NBD_INFO_EXPORT) {
      assert_int_equal (len, 12);
      assert_true (get64 (buf + 2) == SIZE);
      assert_true (get16 (buf + 10) & NBD_FLAG_CAN_MULTI_CONN);
      export_seen = true;
    }
    else if (get16 (buf) == NBD_INFO_BLOCK_SIZE) {
      assert_int_equal (len, 14);
      assert_int_equal (get32 (buf + 2), 512);
      assert_int_equal (get32 (buf + 6), 4096);
      assert_int_equal (get32 (buf + 10), 65536);
      block_seen = true;
    }
  }
  assert_true (export_seen && block_seen);

  /* Transmission: a write (simple reply), a structured read. */
  memset (out, 0x5a, sizeof out);
  send_request (fd, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 1, 8192, sizeof out);
  send_all (fd, out, sizeof out);
  recv_all (fd, buf, NBD_SIMPLE_REPLY_LEN);
  assert_int_equal (get32 (buf), NBD_SIMPLE_REPLY_MAGIC);
  assert_int_equal (get32 (buf + 4), 0);
  assert_true (get64 (buf + 8) == 1);

  send_request (fd, 0, NBD_CMD_READ, 2, 8192, sizeof in);
  recv_all (fd, chunk, sizeof chunk);
  assert_int_equal (get32 (chunk), NBD_STRUCTURED_REPLY_MAGIC);
  assert_int_equal (get16 (chunk + 4), NBD_REPLY_FLAG_DONE);
  assert_int_equal (get16 (chunk + 6), NBD_REPLY_TYPE_OFFSET_DATA);
  assert_true (get64 (chunk + 8) == 2);
  assert_int_equal (get32 (chunk + 16), 8 + sizeof in);
  assert_true (get64 (chunk + 20) == 8192);
  recv_all (fd, in, sizeof in);
  assert_memory_equal (in, out, sizeof in);

  /* A write-zeroes larger than max_io goes down in pieces. */
  send_request (fd, 0, NBD_CMD_WRITE_ZEROES, 3, 0, 3 * 65536);
  recv_all (fd, buf, NBD_SIMPLE_REPLY_LEN);
  assert_int_equal (get32 (buf + 4), 0);
  send_request (fd, 0, NBD_CMD_READ, 4, 8192, 512);
  recv_all (fd, chunk, sizeof chunk);
  recv_all (fd, in, 512);
  assert_int_equal (in[0], 0);
  assert_int_equal (in[511], 0);

  /* DISC: the server closes, and the listener stops counting it. */
  send_request (fd, 0, NBD_CMD_DISC, 5, 0, 0);
  for (int i = 0; i < 500 && s->nclients > 0; i++)
    spin ();
  assert_int_equal (s->nclients, 0);
  assert_int_equal (s->listener.nconns, 0);
  assert_int_equal (recv (fd, buf, 1, MSG_DONTWAIT), 0);     /* EOF */
  close (fd);

  stop (fe);
  assert_int_equal (stat (path, &st), -1);      /* stop removed it */
}

/* Simple reply for cookie: its error; a READ's len data into data. */
static uint32_t
simple_reply (int fd, uint64_t cookie, void *data, uint32_t len)
{
  char rep[NBD_SIMPLE_REPLY_LEN];

  recv_all (fd, rep, sizeof rep);
  assert_int_equal (get32 (rep), NBD_SIMPLE_REPLY_MAGIC);
  assert_true (get64 (rep + 8) == cookie);
  if (get32 (rep + 4) == 0 && len)
    recv_all (fd, data, len);
  return get32 (rep + 4);
}

/* NBD_OPT_EXPORT_NAME (no block sizes agreed) on the 512-byte-block
 * RAM disk, whose requests go up to 64 KiB: unaligned writes are read-
 * modify-writes that keep the bytes around them, unaligned reads return
 * the slice, a 200 KiB read goes in pieces, write-zeroes inside a block
 * zeroes only its bytes, and past the end is still refused.  The RAM
 * disk completes inside each submit (the slow path's reentrance).
 */
static void
test_unaligned_export_name (void **state)
{
  struct frontend *fe = start ();
  static char want[SIZE], got[200 * 1024], out[3000];
  char name[3] = "vol", part[NBD_EXPORT_NAME_REPLY_LEN];
  int fd;

  assert_non_null (fe);
  for (size_t k = 0; k < SIZE; k++)
    disk[k] = (char) (k * 7 + 3);
  memcpy (want, disk, SIZE);
  fd = connect_to (path);
  greet (fd);
  send_option (fd, NBD_OPT_EXPORT_NAME, name, sizeof name);
  recv_all (fd, part, sizeof part);
  assert_true (get64 (part) == SIZE);

  for (int k = 0; k < (int) sizeof out; k++)
    out[k] = (char) (0xa0 + k);
  static const struct { uint64_t off; uint32_t len; } w[] = {
    { 1000, 100 }, { 511, 2 }, { 4096 + 17, 3000 }, { 70000, 1 },
  };
  for (int i = 0; i < 4; i++) {
    send_request (fd, 0, NBD_CMD_WRITE, 10 + i, w[i].off, w[i].len);
    send_all (fd, out, w[i].len);
    memcpy (want + w[i].off, out, w[i].len);
  }
  for (int i = 0; i < 4; i++)
    assert_int_equal (simple_reply (fd, 10 + i, NULL, 0), 0);
  assert_memory_equal (disk, want, SIZE);

  send_request (fd, 0, NBD_CMD_READ, 20, 900, 300);
  assert_int_equal (simple_reply (fd, 20, got, 300), 0);
  assert_memory_equal (got, want + 900, 300);
  send_request (fd, 0, NBD_CMD_READ, 21, 333, sizeof got);
  assert_int_equal (simple_reply (fd, 21, got, sizeof got), 0);
  assert_memory_equal (got, want + 333, sizeof got);

  send_request (fd, 0, NBD_CMD_WRITE_ZEROES, 22, 8192 + 10, 20);
  assert_int_equal (simple_reply (fd, 22, NULL, 0), 0);
  memset (want + 8192 + 10, 0, 20);
  assert_memory_equal (disk, want, SIZE);

  send_request (fd, 0, NBD_CMD_READ, 23, SIZE - 10, 20);
  assert_int_equal (simple_reply (fd, 23, NULL, 0), NBD_EINVAL);
  send_request (fd, 0, NBD_CMD_WRITE, 24, SIZE - 10, 20);
  send_all (fd, out, 20);
  assert_int_equal (simple_reply (fd, 24, NULL, 0), NBD_ENOSPC);
  assert_memory_equal (disk, want, SIZE);

  close (fd);                   /* between requests, without DISC */
  for (int i = 0; i < 500 && server_of (fe)->nclients > 0; i++)
    spin ();
  assert_int_equal (server_of (fe)->nclients, 0);
  stop (fe);
}

/* Rule 6 at the NBD server: a read-modify-write holds its blocks from
 * its read to its write.  Client A (EXPORT_NAME) writes 100 bytes into
 * block 0, whose read the disk holds; client B (block sizes agreed)
 * then writes all of block 0.  B's write must not reach the disk before
 * A's read-modify-write is written, so block 0 ends as B wrote it (the
 * arrival order); had B's write slipped in, A's read would have seen it
 * and A's write put B's block back with A's bytes in it.
 */
static void
test_rmw_ordered_against_overlapping_write (void **state)
{
  struct bdev_info info = { .size = SIZE, .block_size = 4096,
                            .max_io = 65536, .volatile_cache = 1 };
  struct fake_replica *rep = fake_replica_new (SIZE);
  struct fake_bdev *dev = fake_bdev_new (rep, loop, &info);
  char spec[160], part[NBD_EXPORT_NAME_REPLY_LEN], go[16], buf[64];
  static char da[100], db[4096];
  uint32_t len;
  int a, b;

  snprintf (spec, sizeof spec, "unix:%s", path);
  struct frontend *fe = frontend_start ("nbd", loop, &dev->bdev, "vol", spec,
                                        NULL);
  assert_non_null (fe);
  memset (da, 0xaa, sizeof da);
  memset (db, 0xbb, sizeof db);

  a = connect_to (path);
  greet (a);
  send_option (a, NBD_OPT_EXPORT_NAME, "vol", 3);
  recv_all (a, part, sizeof part);

  b = connect_to (path);
  greet (b);
  put32 (go, 0);
  put16 (go + 4, 1);
  put16 (go + 6, NBD_INFO_BLOCK_SIZE);
  send_option (b, NBD_OPT_GO, go, 8);
  while (read_option_reply (b, NBD_OPT_GO, buf, sizeof buf, &len) != NBD_REP_ACK)
    ;

  dev->hold_ops = FAKE_OP (BDEV_READ);
  send_request (a, 0, NBD_CMD_WRITE, 1, 1000, sizeof da);
  send_all (a, da, sizeof da);
  assert_true (fake_run_until_held (loop, dev, 1, 5000));   /* A's read */
  send_request (b, 0, NBD_CMD_WRITE, 2, 0, sizeof db);
  send_all (b, db, sizeof db);
  for (int i = 0; i < 20; i++)
    spin ();
  assert_int_equal (dev->count[BDEV_WRITE], 0);   /* B waits for A */
  dev->hold_ops = 0;
  fake_bdev_release (dev);
  assert_int_equal (simple_reply (a, 1, NULL, 0), 0);
  assert_int_equal (simple_reply (b, 2, NULL, 0), 0);
  assert_int_equal (rep->nwrites, 2);
  assert_true (rep->writes[0].offset == 0 && rep->writes[0].len == 4096);
  assert_memory_equal (rep->data, db, sizeof db);   /* B last, whole */

  close (a);
  close (b);
  for (int i = 0; i < 500 && server_of (fe)->nclients > 0; i++)
    spin ();
  stop (fe);
  bdev_close (&dev->bdev);
  fake_replica_free (rep);
}

static void
test_abort_and_stop_in_handshake (void **state)
{
  struct frontend *fe = start ();
  struct nbd_server *s;
  char buf[64];
  uint32_t len;
  int a, b;

  assert_non_null (fe);
  s = server_of (fe);

  /* ABORT is acknowledged, then the connection closes. */
  a = connect_to (path);
  greet (a);
  send_option (a, NBD_OPT_ABORT, NULL, 0);
  assert_int_equal (read_option_reply (a, NBD_OPT_ABORT, buf, sizeof buf,
                                       &len), NBD_REP_ACK);
  for (int i = 0; i < 500 && s->nclients > 0; i++)
    spin ();
  assert_int_equal (s->listener.nconns, 0);
  close (a);

  /* Stop closes a client still in its handshake. */
  b = connect_to (path);
  greet (b);
  spin ();
  assert_int_equal (s->listener.nconns, 1);
  stop (fe);
  assert_int_equal (recv (b, buf, 1, MSG_DONTWAIT), 0);     /* EOF */
  close (b);
}

static void
test_socket_path (void **state)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  struct frontend *fe, *second;
  int fd;

  /* A socket nobody listens on (a server that died) is replaced. */
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  snprintf (sun.sun_path, sizeof sun.sun_path, "%s", path);
  assert_int_equal (bind (fd, (struct sockaddr *) &sun, sizeof sun), 0);
  close (fd);
  fe = start ();
  assert_non_null (fe);

  /* A live server's socket is not. */
  second = start ();
  assert_null (second);
  stop (fe);

  /* Nor is something that is not a socket. */
  fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  assert_true (fd >= 0);
  close (fd);
  assert_null (start ());
  unlink (path);

  /* A spec that is no address. */
  assert_null (frontend_start ("nbd", loop, &mem.bdev, "vol", "nowhere", NULL));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_handshake_and_io, setup, teardown),
    cmocka_unit_test_setup_teardown (test_abort_and_stop_in_handshake, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_socket_path, setup, teardown),
    cmocka_unit_test_setup_teardown (test_unaligned_export_name, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_rmw_ordered_against_overlapping_write,
                                     setup, teardown),
  };
  log_init ("test_nbd_server");
  mem_bdev_init (&mem, disk, SIZE);
  return cmocka_run_group_tests (tests, NULL, NULL);
}
