/* test_nbd_connected.c - nbd.c serving a connection it did not accept
 * (nbd_serve_connected_fd, what the kernel NBD frontend uses): requests
 * from the first byte, simple replies, only the advertised commands,
 * NBD_CMD_DISC as the kernel sends it on disconnect, and stop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <endian.h>
#include <unistd.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "core/bdev.h"
#include "lib/mem_bdev.h"
#include "core/loop.h"
#include "core/util.h"
#include "frontend/frontend.h"
#include "frontend/nbd.h"
#include "frontend/nbd_proto.h"

#define SIZE (1u << 20)

/* A RAM disk that completes at once. */
static char disk[SIZE];

static struct loop_timer bound;
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

static void
send_request (int fd, uint16_t type, uint64_t cookie, uint64_t off,
              uint32_t len)
{
  char r[NBD_REQUEST_LEN];
  uint32_t m = htobe32 (NBD_REQUEST_MAGIC), l = htobe32 (len);
  uint16_t f = 0, t = htobe16 (type);
  uint64_t c = htobe64 (cookie), o = htobe64 (off);

  memcpy (r, &m, 4); memcpy (r + 4, &f, 2); memcpy (r + 6, &t, 2);
  memcpy (r + 8, &c, 8); memcpy (r + 16, &o, 8); memcpy (r + 24, &l, 4);
  assert_int_equal (write (fd, r, sizeof r), sizeof r);
}

/* Run the loop until a simple reply (plus len bytes) is readable. */
static void
read_reply (struct loop *loop, int fd, uint64_t cookie, uint32_t err,
            void *data, size_t len)
{
  char rep[NBD_SIMPLE_REPLY_LEN];
  uint32_t v;
  uint64_t c;
  size_t got = 0;

  while (got < sizeof rep) {
    ssize_t n = recv (fd, rep + got, sizeof rep - got, MSG_DONTWAIT);
    if (n > 0)
      got += n;
    else {
      loop_timer_arm (loop, &bound, 10, on_bound, loop);
      loop_run (loop);
    }
  }
  memcpy (&v, rep, 4);
  assert_int_equal (be32toh (v), NBD_SIMPLE_REPLY_MAGIC);
  memcpy (&v, rep + 4, 4);
  assert_int_equal (be32toh (v), err);
  memcpy (&c, rep + 8, 8);
  assert_int_equal (be64toh (c), cookie);
  for (got = 0; got < len; ) {
    ssize_t n = recv (fd, (char *) data + got, len - got, MSG_DONTWAIT);
    if (n > 0)
      got += n;
    else {
      loop_timer_arm (loop, &bound, 10, on_bound, loop);
      loop_run (loop);
    }
  }
}

static void
test_connected_fd (void **state)
{
  struct mem_bdev mem;
  struct loop *loop = loop_new ();
  struct frontend f = { .loop = loop, .dev = &mem.bdev, .export_name = "t" };
  char out[4096], in[4096];
  struct nbd_server *s;
  int sv[2];

  mem_bdev_init (&mem, disk, SIZE);
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  s = nbd_serve_connected_fd (&f, sv[1], NBD_FLAG_HAS_FLAGS |
                              NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA);
  assert_non_null (s);

  /* No greeting: the first bytes are requests, answered simply. */
  memset (out, 0xa5, sizeof out);
  send_request (sv[0], NBD_CMD_WRITE, 1, 8192, sizeof out);
  assert_int_equal (write (sv[0], out, sizeof out), sizeof out);
  read_reply (loop, sv[0], 1, 0, NULL, 0);
  send_request (sv[0], NBD_CMD_READ, 2, 8192, sizeof in);
  read_reply (loop, sv[0], 2, 0, in, sizeof in);
  assert_memory_equal (in, out, sizeof in);
  send_request (sv[0], NBD_CMD_FLUSH, 3, 0, 0);
  read_reply (loop, sv[0], 3, 0, NULL, 0);
  assert_int_equal (mem.flushes, 1);

  /* TRIM was not advertised here. */
  send_request (sv[0], NBD_CMD_TRIM, 4, 0, 4096);
  read_reply (loop, sv[0], 4, NBD_EINVAL, NULL, 0);

  /* The kernel's disconnect: DISC, then stop.  stopped comes once the
   * connection is closed.
   */
  send_request (sv[0], NBD_CMD_DISC, 5, 0, 0);
  nbd_server_stop (s, on_stopped, loop);
  loop_timer_arm (loop, &bound, 5000, on_bound, loop);
  loop_run (loop);
  loop_timer_cancel (loop, &bound);
  assert_true (stopped);
  assert_int_equal (recv (sv[0], in, 1, MSG_DONTWAIT), 0);     /* EOF */
  nbd_server_free (s);
  close (sv[0]);
  loop_free (loop);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_connected_fd),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
