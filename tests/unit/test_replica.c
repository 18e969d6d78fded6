/* test_replica.c - the replica layer end to end in one process: a
 * replica server (replica/server.c, server_io.c) on a loopback socket
 * over a real store in a temporary directory, its event loop on a
 * thread of its own, driven from the test's thread three ways:
 *   - raw frames on a blocking socket: HELLO / WELCOME, CREATE, WRITE,
 *     READ, FLUSH, CHECKSUM, pipelining, epoch fencing, the bound on an
 *     epoch jump, SET_EPOCH, and the frames a server must refuse (bad
 *     magic, a range past the end, a payload whose checksum is wrong);
 *   - the blocking admin client (replica/admin.c): create, stat, read,
 *     delete, and the errors it reports (0 or -errno, reason in a
 *     struct error);
 *   - the client bdev (replica/client.c) on the test thread's own loop:
 *     write, read back, flush, checksum, an epoch walked up in steps,
 *     and a fenced write.
 *     write, read back, flush, checksum, and a fenced write;
 *   - the idle timeout: silent connections closed, with HELLO or
 *     without; PINGs keep raw ones open, and the client bdev's own keep
 *     its connection through an idle spell.
 * Every read is checked against the bytes written.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <cmocka.h>

#include "core/bdev.h"
#include "core/fsutil.h"
#include "core/loop.h"
#include "core/mailbox.h"
#include "core/util.h"
#include "replica/admin.h"
#include "replica/client.h"
#include "replica/proto.h"
#include "replica/server.h"
#include "store/store.h"
#include "lib/replica_server_thread.h"

#define VSIZE   (1u << 20)
#define BS      4096u
#define TIMEOUT 5000

static int
setup (void **state)
{
  return test_server_setup (state, RS_IDLE_MS);
}

static int
teardown (void **state)
{
  return test_server_teardown (state);
}

/* ---- raw frames on a blocking socket ------------------------------- */

static int
raw_connect (const struct server *s)
{
  struct timeval tv = { .tv_sec = TIMEOUT / 1000 };
  int fd = tcp_connect (s->addr, TIMEOUT);

  assert_true (fd >= 0);
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

static void
raw_send (int fd, const void *buf, size_t len)
{
  assert_int_equal (write_full (fd, buf, len), 0);
}

static void
raw_recv (int fd, void *buf, size_t len)
{
  assert_int_equal (read_full (fd, buf, len), 0);
}

/* Has the server closed fd (after anything it still had to say)? */
static bool
raw_closed (int fd)
{
  char b[RV_REP_SIZE];
  ssize_t r;

  while ((r = recv (fd, b, sizeof b, 0)) > 0)
    ;
  return r == 0 || (r == -1 && errno == ECONNRESET);
}

/* HELLO; the WELCOME into *w. */
static int
raw_hello (const struct server *s, const char *vol, uint64_t epoch,
           uint32_t flags, struct rv_welcome *w)
{
  struct rv_hello h = { .version = RV_PROTO_VERSION, .flags = flags,
                        .epoch = epoch };
  uint8_t hb[RV_HELLO_SIZE], wb[RV_WELCOME_SIZE];
  const char *why;
  int fd = raw_connect (s);

  snprintf (h.volume, sizeof h.volume, "%s", vol);
  rv_encode_hello (&h, hb);
  raw_send (fd, hb, sizeof hb);
  raw_recv (fd, wb, sizeof wb);
  assert_int_equal (rv_decode_welcome (wb, w, &why), 0);
  return fd;
}

static void
raw_req (int fd, uint16_t cmd, uint16_t flags, uint64_t id, uint64_t offset,
         uint32_t length, const void *payload)
{
  struct rv_req q = { .cmd = cmd, .flags = flags, .id = id, .offset = offset,
                      .length = length };
  uint8_t qb[RV_REQ_SIZE];

  if (payload)
    q.crc = crc32c (0, payload, length);
  rv_encode_req (&q, qb);
  raw_send (fd, qb, sizeof qb);
  if (payload)
    raw_send (fd, payload, length);
}

/* A reply header, and its payload (checked against its crc) into buf. */
static void
raw_rep (int fd, struct rv_rep *rep, void *buf, size_t buflen)
{
  uint8_t rb[RV_REP_SIZE];
  const char *why;

  raw_recv (fd, rb, sizeof rb);
  assert_int_equal (rv_decode_rep (rb, rep, &why), 0);
  assert_true (rep->length <= buflen);
  if (rep->length) {
    raw_recv (fd, buf, rep->length);
    assert_int_equal (crc32c (0, buf, rep->length), rep->crc);
  }
}

/* One request, its reply's status (the payload into buf). */
static uint32_t
raw_call (int fd, uint16_t cmd, uint16_t flags, uint64_t offset,
          uint32_t length, const void *payload, void *buf, size_t buflen)
{
  static uint64_t next_id = 100;
  uint64_t id = next_id++;
  struct rv_rep rep;

  raw_req (fd, cmd, flags, id, offset, length, payload);
  raw_rep (fd, &rep, buf, buflen);
  assert_true (rep.id == id);
  return rep.status;
}

static uint32_t
raw_create (int fd, uint64_t size, uint64_t epoch)
{
  struct rv_create c = { .size = size, .block_size = BS, .epoch = epoch };
  uint8_t cb[RV_CREATE_SIZE];

  rv_encode_create (&c, cb);
  return raw_call (fd, RV_CREATE, 0, 0, sizeof cb, cb, NULL, 0);
}

static uint8_t *
pattern (size_t len, unsigned seed)
{
  uint8_t *p = NULL;

  assert_int_equal (posix_memalign ((void **) &p, 4096, len), 0);
  for (size_t i = 0; i < len; i++)
    p[i] = (uint8_t) (i * 7 + seed);
  return p;
}

/* ---- tests: raw frames ---------------------------------------------- */

/* HELLO on a new volume, CREATE, then data that reads back as written. */
static void
test_data_path (void **state)
{
  struct server *s = *state;
  struct rv_welcome w;
  uint8_t *data = pattern (2 * BS, 1), *got = pattern (2 * BS, 0);
  uint8_t zero[BS] = { 0 }, crc[RV_CHECKSUM_SIZE];
  int fd = raw_hello (s, "vol", 1, 0, &w);

  assert_int_equal (w.status, RV_OK);
  assert_string_equal (w.server, "test-srv");
  assert_string_equal (w.zone, "zone-a");
  assert_int_equal (w.exists, 0);

  assert_int_equal (raw_create (fd, VSIZE, 1), RV_OK);
  assert_int_equal (raw_call (fd, RV_WRITE, 0, BS, 2 * BS, data, NULL, 0),
                    RV_OK);
  assert_int_equal (raw_call (fd, RV_FLUSH, 0, 0, 0, NULL, NULL, 0), RV_OK);
  assert_int_equal (raw_call (fd, RV_READ, 0, BS, 2 * BS, NULL, got, 2 * BS),
                    RV_OK);
  assert_memory_equal (got, data, 2 * BS);
  /* Never written: zeroes. */
  assert_int_equal (raw_call (fd, RV_READ, 0, 0, BS, NULL, got, BS), RV_OK);
  assert_memory_equal (got, zero, BS);
  /* The server's crc32c of the stored bytes, little-endian. */
  assert_int_equal (raw_call (fd, RV_CHECKSUM, 0, BS, 2 * BS, NULL, crc,
                              sizeof crc), RV_OK);
  assert_int_equal (crc[0] | crc[1] << 8 | crc[2] << 16 | (uint32_t) crc[3] << 24,
                    crc32c (0, data, 2 * BS));
  /* TRIM, then the range reads as zeroes. */
  assert_int_equal (raw_call (fd, RV_TRIM, 0, BS, BS, NULL, NULL, 0), RV_OK);
  assert_int_equal (raw_call (fd, RV_READ, 0, BS, BS, NULL, got, BS), RV_OK);
  assert_memory_equal (got, zero, BS);

  /* Pipelined: two writes then two reads, each reply matched by id. */
  uint8_t *a = pattern (BS, 11), *b = pattern (BS, 22);
  uint8_t *ra = pattern (BS, 0), *rb = pattern (BS, 0);
  struct rv_rep rep;
  raw_req (fd, RV_WRITE, 0, 1, 8 * BS, BS, a);
  raw_req (fd, RV_WRITE, RV_F_FUA, 2, 9 * BS, BS, b);
  for (int i = 0; i < 2; i++) {
    raw_rep (fd, &rep, NULL, 0);
    assert_int_equal (rep.status, RV_OK);
    assert_true (rep.id == 1 || rep.id == 2);
  }
  raw_req (fd, RV_READ, 0, 3, 8 * BS, BS, NULL);
  raw_req (fd, RV_READ, 0, 4, 9 * BS, BS, NULL);
  for (int i = 0; i < 2; i++) {
    uint8_t buf[BS];
    raw_rep (fd, &rep, buf, sizeof buf);
    assert_int_equal (rep.status, RV_OK);
    assert_true (rep.id == 3 || rep.id == 4);
    memcpy (rep.id == 3 ? ra : rb, buf, BS);
  }
  assert_memory_equal (ra, a, BS);
  assert_memory_equal (rb, b, BS);

  /* A new connection finds the volume as it was left. */
  close (fd);
  fd = raw_hello (s, "vol", 1, 0, &w);
  assert_int_equal (w.status, RV_OK);
  assert_int_equal (w.exists, 1);
  assert_true (w.size == VSIZE);
  assert_int_equal (w.block_size, BS);
  assert_int_equal (raw_call (fd, RV_READ, 0, 8 * BS, BS, NULL, got, BS),
                    RV_OK);
  assert_memory_equal (got, a, BS);
  close (fd);
  free (a); free (b); free (ra); free (rb);
  free (data);
  free (got);
}

/* What a server must refuse: each bad frame costs only its connection,
 * and a payload damaged on the wire is answered ECRC, not stored.
 */
static void
test_bad_frames (void **state)
{
  struct server *s = *state;
  struct rv_welcome w;
  uint8_t *data = pattern (BS, 3), *got = pattern (BS, 0);
  int fd = raw_hello (s, "bad", 1, 0, &w);

  assert_int_equal (raw_create (fd, VSIZE, 1), RV_OK);
  assert_int_equal (raw_call (fd, RV_WRITE, 0, 0, BS, data, NULL, 0), RV_OK);

  /* A payload that does not match its crc: refused, nothing written. */
  struct rv_req q = { .cmd = RV_WRITE, .id = 7, .offset = 0, .length = BS,
                      .crc = crc32c (0, data, BS) ^ 1 };
  uint8_t qb[RV_REQ_SIZE], *other = pattern (BS, 9);
  struct rv_rep rep;
  rv_encode_req (&q, qb);
  raw_send (fd, qb, sizeof qb);
  raw_send (fd, other, BS);
  raw_rep (fd, &rep, NULL, 0);
  assert_true (rep.id == 7);
  assert_int_equal (rep.status, RV_ECRC);
  /* The connection goes on; the old data is still there. */
  assert_int_equal (raw_call (fd, RV_READ, 0, 0, BS, NULL, got, BS), RV_OK);
  assert_memory_equal (got, data, BS);

  /* A header with a bad magic closes the connection. */
  memset (qb, 0x5a, sizeof qb);
  raw_send (fd, qb, sizeof qb);
  assert_true (raw_closed (fd));
  close (fd);

  /* A read past the end of the volume closes it too. */
  fd = raw_hello (s, "bad", 1, 0, &w);
  raw_req (fd, RV_READ, 0, 1, VSIZE, BS, NULL);
  assert_true (raw_closed (fd));
  close (fd);

  /* A misaligned one as well. */
  fd = raw_hello (s, "bad", 1, 0, &w);
  raw_req (fd, RV_READ, 0, 1, 512, BS, NULL);
  assert_true (raw_closed (fd));
  close (fd);

  /* A data request before the volume exists. */
  fd = raw_hello (s, "none", 1, 0, &w);
  assert_int_equal (w.exists, 0);
  raw_req (fd, RV_READ, 0, 1, 0, BS, NULL);
  assert_true (raw_closed (fd));
  close (fd);

  /* A HELLO of another protocol version is answered, then closed. */
  struct rv_hello h = { .version = RV_PROTO_VERSION + 1 };
  uint8_t hb[RV_HELLO_SIZE], wb[RV_WELCOME_SIZE];
  const char *why;
  snprintf (h.volume, sizeof h.volume, "bad");
  rv_encode_hello (&h, hb);
  fd = raw_connect (s);
  raw_send (fd, hb, sizeof hb);
  raw_recv (fd, wb, sizeof wb);
  assert_int_equal (rv_decode_welcome (wb, &w, &why), 0);
  assert_int_equal (w.status, RV_EINVAL);
  assert_true (raw_closed (fd));
  close (fd);

  /* The server is none the worse: a fresh connection reads the data. */
  fd = raw_hello (s, "bad", 1, 0, &w);
  assert_int_equal (w.status, RV_OK);
  assert_int_equal (raw_call (fd, RV_READ, 0, 0, BS, NULL, got, BS), RV_OK);
  assert_memory_equal (got, data, BS);
  close (fd);
  free (other);
  free (data);
  free (got);
}

/* Epochs: a newer HELLO fences the older connection's writes; an older
 * HELLO is refused at the door; the epoch is persisted.
 */
static void
test_fencing (void **state)
{
  struct server *s = *state;
  struct rv_welcome w;
  uint8_t *data = pattern (BS, 5), *got = pattern (BS, 0);
  int old, new, late;

  old = raw_hello (s, "fence", 5, 0, &w);
  assert_int_equal (raw_create (old, VSIZE, 1), RV_OK);
  close (old);

  /* CREATE on a data connection takes the connection's epoch. */
  old = raw_hello (s, "fence", 5, 0, &w);
  assert_int_equal (w.status, RV_OK);
  assert_true (w.epoch == 5);
  assert_int_equal (raw_call (old, RV_WRITE, 0, 0, BS, data, NULL, 0), RV_OK);

  late = raw_hello (s, "fence", 3, 0, &w);
  assert_int_equal (w.status, RV_EPERM);
  assert_true (raw_closed (late));
  close (late);

  new = raw_hello (s, "fence", 7, 0, &w);
  assert_int_equal (w.status, RV_OK);
  assert_true (w.epoch == 7);
  /* The old engine can no longer write, nor read. */
  assert_int_equal (raw_call (old, RV_WRITE, 0, 0, BS, got, NULL, 0),
                    RV_EPERM);
  assert_int_equal (raw_call (old, RV_READ, 0, 0, BS, NULL, got, BS),
                    RV_EPERM);
  assert_int_equal (raw_call (new, RV_READ, 0, 0, BS, NULL, got, BS), RV_OK);
  assert_memory_equal (got, data, BS);

  /* The epoch is on disk: STAT says so. */
  struct rv_volinfo vi;
  struct error err = { 0 };
  assert_int_equal (replica_admin_stat_once (s->addr, "fence", TIMEOUT, NULL,
                                             &vi, &err), 0);
  assert_int_equal (vi.exists, 1);
  assert_true (vi.epoch == 7);
  close (old);
  close (new);
  free (data);
  free (got);
}

static uint64_t
stored_epoch (const struct server *s, const char *vol)
{
  struct rv_volinfo vi;
  struct error err = { 0 };

  assert_int_equal (replica_admin_stat_once (s->addr, vol, TIMEOUT, NULL, &vi,
                                             &err), 0);
  assert_int_equal (vi.exists, 1);
  return vi.epoch;
}

/* docs/DESIGN.md rule 8: a HELLO may move the epoch forward by at most
 * RV_EPOCH_JUMP_MAX; a larger jump is refused (ERANGE, closed) and
 * leaves the epoch, and the connection that holds it, as they were.
 */
static void
test_epoch_bound (void **state)
{
  struct server *s = *state;
  static const uint64_t jumps[] = { RV_EPOCH_JUMP_MAX + 1, 1000, UINT64_MAX };
  struct rv_welcome w;
  uint8_t *data = pattern (BS, 9), *got = pattern (BS, 0);
  int live, bad;

  live = raw_hello (s, "jump", 10, 0, &w);
  assert_int_equal (raw_create (live, VSIZE, 10), RV_OK);
  assert_int_equal (raw_call (live, RV_WRITE, 0, 0, BS, data, NULL, 0), RV_OK);

  for (size_t i = 0; i < sizeof jumps / sizeof *jumps; i++) {
    uint64_t e = jumps[i] == UINT64_MAX ? UINT64_MAX : 10 + jumps[i];
    bad = raw_hello (s, "jump", e, 0, &w);
    assert_int_equal (w.status, RV_ERANGE);
    assert_true (w.epoch == 10);            /* what it holds, untouched */
    assert_true (raw_closed (bad));
    close (bad);
    assert_true (stored_epoch (s, "jump") == 10);
  }
  /* The live connection was not fenced: it still writes and reads. */
  assert_int_equal (raw_call (live, RV_WRITE, 0, BS, BS, data, NULL, 0),
                    RV_OK);
  assert_int_equal (raw_call (live, RV_READ, 0, BS, BS, NULL, got, BS), RV_OK);
  assert_memory_equal (got, data, BS);

  /* The largest allowed jump is accepted, persisted, and fences. */
  bad = raw_hello (s, "jump", 10 + RV_EPOCH_JUMP_MAX, 0, &w);
  assert_int_equal (w.status, RV_OK);
  assert_true (stored_epoch (s, "jump") == 10 + RV_EPOCH_JUMP_MAX);
  assert_int_equal (raw_call (live, RV_WRITE, 0, 0, BS, data, NULL, 0),
                    RV_EPERM);
  close (bad);
  close (live);
  free (data);
  free (got);
}

/* SET_EPOCH: admin connections only, not while an attach has the
 * volume open, any epoch but 0, up or down.
 */
static void
test_set_epoch (void **state)
{
  struct server *s = *state;
  struct replica_admin ra;
  struct rv_welcome w;
  struct error err = { 0 };
  uint8_t pl[RV_SET_EPOCH_SIZE];
  int data, r;

  assert_int_equal (replica_admin_open (&ra, s->addr, "setep", TIMEOUT, &err),
                    0);
  assert_int_equal (replica_admin_set_epoch (&ra, 5, &err), -ENOENT);
  data = raw_hello (s, "setep", 300, 0, &w);
  assert_int_equal (raw_create (data, VSIZE, 300), RV_OK);

  /* Not on a data connection; not while one is open. */
  rv_encode_set_epoch (5, pl);
  assert_int_equal (raw_call (data, RV_SET_EPOCH, 0, 0, sizeof pl, pl, NULL,
                              0), RV_EPERM);
  assert_int_equal (replica_admin_set_epoch (&ra, 5, &err), -EBUSY);
  assert_string_equal (error_msg (&err),
                       "the volume is in use by an attach on this server");
  assert_true (stored_epoch (s, "setep") == 300);
  close (data);
  for (int i = 0; i < 500; i++) {
    if ((r = replica_admin_set_epoch (&ra, 5, &err)) != -EBUSY)
      break;
    usleep (10000);
  }
  assert_int_equal (r, 0);
  assert_true (stored_epoch (s, "setep") == 5);   /* down */

  /* Epoch 0 is never valid: refused, the connection stays. */
  rv_encode_set_epoch (0, pl);
  int afd = raw_hello (s, "setep", 0, RV_HELLO_ADMIN, &w);
  assert_int_equal (raw_call (afd, RV_SET_EPOCH, 0, 0, sizeof pl, pl, NULL, 0),
                    RV_EINVAL);
  close (afd);
  assert_int_equal (replica_admin_set_epoch (&ra, 6, &err), 0);   /* up */
  assert_true (stored_epoch (s, "setep") == 6);

  /* An attach at the reset epoch + 1 is welcome again. */
  data = raw_hello (s, "setep", 7, 0, &w);
  assert_int_equal (w.status, RV_OK);
  close (data);
  replica_admin_close (&ra);
}

/* ---- tests: the admin client ---------------------------------------- */

static void
test_admin (void **state)
{
  struct server *s = *state;
  struct replica_admin ra;
  struct rv_create cr = { .size = VSIZE, .block_size = BS, .epoch = 1,
                          .flags = 0 };
  struct rv_volinfo vi;
  struct rv_welcome w;
  struct error err = { 0 };
  uint8_t *data = pattern (2 * BS, 8), *got = pattern (2 * BS, 0);
  int fd;

  assert_int_equal (replica_admin_open (&ra, s->addr, "adm", TIMEOUT, &err), 0);
  assert_int_equal (ra.welcome.exists, 0);
  assert_string_equal (ra.welcome.server, "test-srv");
  assert_int_equal (replica_admin_create (&ra, &cr, &err), 0);
  assert_int_equal (replica_admin_create (&ra, &cr, &err), -EEXIST);
  assert_int_equal (err.code, EEXIST);
  assert_string_equal (error_msg (&err), "volume already exists on this server");
  assert_int_equal (replica_admin_stat (&ra, &vi, &err), 0);
  assert_int_equal (vi.exists, 1);
  assert_true (vi.size == VSIZE);
  assert_int_equal (vi.block_size, BS);
  assert_true (vi.epoch == 1);

  /* Data written by an engine, read back through the admin client. */
  fd = raw_hello (s, "adm", 1, 0, &w);
  assert_int_equal (raw_call (fd, RV_WRITE, 0, 4 * BS, 2 * BS, data, NULL, 0),
                    RV_OK);
  /* Not while the engine's data connection is open (admin connections
   * never read an attached volume), then once it has gone.
   */
  assert_int_equal (replica_admin_read (&ra, 4 * BS, got, 2 * BS, &err),
                    -EBUSY);
  close (fd);
  int rd, tries = 0;
  while ((rd = replica_admin_read (&ra, 4 * BS, got, 2 * BS, &err)) == -EBUSY
         && tries++ < 500)
    usleep (10000);             /* the server has yet to see the close */
  assert_int_equal (rd, 0);
  assert_memory_equal (got, data, 2 * BS);

  /* Admin connections are read-only. */
  int afd = raw_hello (s, "adm", 0, RV_HELLO_ADMIN, &w);
  assert_int_equal (raw_call (afd, RV_WRITE, 0, 0, BS, data, NULL, 0),
                    RV_EPERM);
  assert_int_equal (raw_call (afd, RV_FLUSH, 0, 0, 0, NULL, NULL, 0), RV_EPERM);
  close (afd);

  /* Not deleted while an engine has it open. */
  fd = raw_hello (s, "adm", 1, 0, &w);
  assert_int_equal (replica_admin_delete (&ra, &err), -EBUSY);
  close (fd);
  /* The server notices the close on its own time: retry a moment. */
  int r;
  for (int i = 0; i < 500; i++) {
    if ((r = replica_admin_delete (&ra, &err)) != -EBUSY)
      break;
    usleep (10000);
  }
  assert_int_equal (r, 0);
  assert_int_equal (replica_admin_delete (&ra, &err), -ENOENT);
  assert_string_equal (error_msg (&err), "no such volume on this server");
  replica_admin_close (&ra);

  assert_int_equal (replica_admin_stat_once (s->addr, "adm", TIMEOUT, &w, &vi,
                                             &err), 0);
  assert_int_equal (vi.exists, 0);
  assert_int_equal (w.exists, 0);

  /* Errors before the server: a bad name, nobody listening. */
  memset (&err, 0, sizeof err);
  assert_int_equal (replica_admin_open (&ra, s->addr, "../x", TIMEOUT, &err),
                    -EINVAL);
  assert_int_equal (ra.fd, -1);
  assert_string_equal (error_msg (&err), "invalid volume name \"../x\"");
  assert_int_equal (replica_admin_open (&ra, "127.0.0.1", "x", TIMEOUT, &err),
                    -EINVAL);
  assert_string_equal (error_msg (&err), "not a valid ADDR:PORT");

  char addr[64];
  int dead = test_loopback_socket (addr, sizeof addr);   /* bound, not listening */
  assert_int_equal (replica_admin_open (&ra, addr, "x", TIMEOUT, &err),
                    -ECONNREFUSED);
  assert_string_equal (error_msg (&err),
                       "connection refused (is repvold running there?)");
  close (dead);
  free (data);
  free (got);
}

/* ---- tests: the client bdev ----------------------------------------- */

static void
test_client_bdev (void **state)
{
  struct server *s = *state;
  struct loop *loop = loop_new ();
  struct waiter wt = { .loop = loop };
  struct slot_io ios[4];
  struct rv_welcome w;
  struct bdev *b;
  struct error err = { 0 };
  uint8_t *data = pattern (4 * BS, 4), *got = pattern (4 * BS, 0);
  uint32_t crc = 0;
  int fd;

  assert_non_null (loop);
  for (int i = 0; i < 4; i++)
    ios[i] = (struct slot_io) { .io = { .done = slot_done }, .w = &wt,
                                .slot = i };

  /* No such volume: refused with a reason. */
  assert_null (replica_client_open (loop, s->addr, "cli", 2, TIMEOUT, &w,
                                    &err));
  assert_int_equal (err.code, ENOENT);
  assert_string_equal (error_msg (&err), "volume does not exist on this server");

  fd = raw_hello (s, "cli", 2, 0, &w);
  assert_int_equal (raw_create (fd, VSIZE, 2), RV_OK);
  close (fd);

  b = replica_client_open (loop, s->addr, "cli", 2, TIMEOUT, &w, &err);
  assert_non_null (b);
  assert_true (w.size == VSIZE);
  assert_true (b->info.size == VSIZE);
  assert_int_equal (b->info.block_size, BS);

  /* Two writes in flight at once, then a flush. */
  wt.pending = 2;
  bdev_write (b, &ios[0].io, 0, 2 * BS, data, 0);
  bdev_write (b, &ios[1].io, 2 * BS, 2 * BS, data + 2 * BS, BDEV_FUA);
  wait_all (&wt);
  assert_int_equal (wt.err[0], 0);
  assert_int_equal (wt.err[1], 0);
  wt.pending = 1;
  bdev_flush (b, &ios[0].io);
  wait_all (&wt);
  assert_int_equal (wt.err[0], 0);

  /* Read back, and the server's checksum of the same bytes. */
  wt.pending = 2;
  bdev_read (b, &ios[0].io, 0, 4 * BS, got, 0);
  ios[1].io.op = BDEV_CHECKSUM;
  ios[1].io.flags = 0;
  ios[1].io.offset = 0;
  ios[1].io.len = 4 * BS;
  ios[1].io.buf = &crc;
  bdev_submit (b, &ios[1].io);
  wait_all (&wt);
  assert_int_equal (wt.err[0], 0);
  assert_int_equal (wt.err[1], 0);
  assert_memory_equal (got, data, 4 * BS);
  assert_int_equal (crc, crc32c (0, data, 4 * BS));

  /* The admin client may not read it while this data connection is
   * open (docs/DESIGN.md, "Trust").
   */
  struct replica_admin ra;
  struct error e = { 0 };
  assert_int_equal (replica_admin_open (&ra, s->addr, "cli", TIMEOUT, &e), 0);
  assert_int_equal (replica_admin_read (&ra, BS, got, 2 * BS, &e), -EBUSY);
  assert_non_null (strstr (e.msg, "in use"));
  replica_admin_close (&ra);

  /* An attach far ahead of the replica (it missed many epochs) walks
   * it up in steps the server accepts (docs/DESIGN.md rule 8).
   */
  uint64_t far = 2 + 5 * RV_EPOCH_JUMP_MAX + 3;
  struct bdev *b2 = replica_client_open (loop, s->addr, "cli", far, TIMEOUT,
                                         &w, &err);
  assert_non_null (b2);
  assert_true (w.epoch == far);
  bdev_close (b2);
  assert_true (stored_epoch (s, "cli") == far);
  /* The old engine is fenced now; a new one at far + 1 is not. */
  wt.pending = 1;
  bdev_write (b, &ios[0].io, 0, BS, got, 0);
  wait_all (&wt);
  assert_int_equal (wt.err[0], EPERM);
  bdev_close (b);
  b = replica_client_open (loop, s->addr, "cli", far + 1, TIMEOUT, &w, &err);
  assert_non_null (b);
  /* Older: refused at the door, naming the epoch it holds. */
  assert_null (replica_client_open (loop, s->addr, "cli", far, TIMEOUT, &w,
                                    &err));
  assert_int_equal (err.code, EPERM);
  assert_non_null (strstr (error_msg (&err), "holds a newer one"));

  /* A newer engine's HELLO fences this one: its writes fail EPERM. */
  fd = raw_hello (s, "cli", far + 2, 0, &w);
  assert_int_equal (w.status, RV_OK);
  wt.pending = 1;
  bdev_write (b, &ios[0].io, 0, BS, got, 0);
  wait_all (&wt);
  assert_int_equal (wt.err[0], EPERM);
  struct bdev_health h;
  bdev_health (b, &h);
  assert_true (h.up);
  close (fd);

  bdev_close (b);
  loop_free (loop);
  free (data);
  free (got);
}

/* ---- tests: the idle timeout and PING ---------------------------- */

#define IDLE_MS 500

static int
setup_idle (void **state)
{
  return test_server_setup (state, IDLE_MS);
}

/* Closed by the server, and not before most of the idle timeout. */
static void
assert_closed_when_idle (int fd)
{
  uint64_t t0 = now_ns ();

  assert_true (raw_closed (fd));
  assert_true (now_ns () - t0 >= IDLE_MS * 1000000ull * 3 / 4);
  close (fd);
}

static void
test_idle_and_ping (void **state)
{
  struct server *s = *state;
  struct waiter wt = { .loop = loop_new () };
  struct slot_io io = { .io = { .done = slot_done }, .w = &wt };
  struct rv_welcome w;
  struct bdev_health h;
  uint8_t *data = pattern (BS, 9), *got = pattern (BS, 0);
  struct timespec gap = { 0, IDLE_MS / 3 * 1000000L };
  int fd = raw_hello (s, "idle", 1, 0, &w), admin_fd;

  /* WELCOME says the server understands PING, and its timeout. */
  assert_true (w.status == RV_OK && (w.features & RV_FEAT_PING));
  assert_int_equal (w.idle_timeout_ms, IDLE_MS);
  assert_int_equal (raw_create (fd, VSIZE, 1), RV_OK);
  assert_closed_when_idle (fd);                 /* silent after HELLO */
  assert_closed_when_idle (raw_connect (s));    /* silent before it */

  /* PINGs keep data and admin connections open past the timeout. */
  fd = raw_hello (s, "idle", 1, 0, &w);
  admin_fd = raw_hello (s, "idle", 0, RV_HELLO_ADMIN, &w);
  for (int i = 0; i < 9; i++, nanosleep (&gap, NULL)) {
    assert_int_equal (raw_call (fd, RV_PING, 0, 0, 0, NULL, NULL, 0), RV_OK);
    assert_int_equal (raw_call (admin_fd, RV_PING, 0, 0, 0, NULL, NULL, 0),
                      RV_OK);
  }
  assert_int_equal (raw_call (fd, RV_READ, 0, 0, BS, NULL, got, BS), RV_OK);
  close (admin_fd);
  close (fd);

  /* The client bdev pings by itself: after several timeouts of nothing
   * its connection is up and reads back what it wrote.
   */
  struct bdev *b = replica_client_open (wt.loop, s->addr, "idle", 2, TIMEOUT,
                                        &w, NULL);
  assert_non_null (b);
  wt.pending = 1;
  bdev_write (b, &io.io, 0, BS, data, 0);
  wait_all (&wt);
  assert_int_equal (wt.err[0], 0);
  loop_timer_arm (wt.loop, &wt.timer, IDLE_MS * 4, wait_timeout, &wt);
  loop_run (wt.loop);                           /* idle */
  wt.timed_out = false;
  bdev_health (b, &h);
  assert_true (h.up);
  wt.pending = 1;
  bdev_read (b, &io.io, 0, BS, got, 0);
  wait_all (&wt);
  assert_int_equal (wt.err[0], 0);
  assert_memory_equal (got, data, BS);

  bdev_close (b);
  loop_free (wt.loop);
  free (data);
  free (got);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_data_path, setup, teardown),
    cmocka_unit_test_setup_teardown (test_bad_frames, setup, teardown),
    cmocka_unit_test_setup_teardown (test_fencing, setup, teardown),
    cmocka_unit_test_setup_teardown (test_epoch_bound, setup, teardown),
    cmocka_unit_test_setup_teardown (test_set_epoch, setup, teardown),
    cmocka_unit_test_setup_teardown (test_admin, setup, teardown),
    cmocka_unit_test_setup_teardown (test_client_bdev, setup, teardown),
    cmocka_unit_test_setup_teardown (test_idle_and_ping, setup_idle, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
