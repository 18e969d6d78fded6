/* test_replica_resize.c - RESIZE through the replica layer in one
 * process: a replica server (replica/server.c, server_io.c) over a real
 * store on its own thread, as in test_replica.c, driven by
 *   - the client bdev (replica/client.c): BDEV_RESIZE grows the replica
 *     with writes in flight before it, info.size follows, a write past
 *     the old end reads back and the grown range reads zero; a shrink on
 *     the data connection is EINVAL and changes nothing;
 *   - the admin client (replica/admin.c): replica_admin_resize is ENOENT
 *     before the volume exists, EBUSY (with its reason) while an attach
 *     has it open, then shrinks it; a size not a multiple of the block
 *     size, one over the maximum, and a server whose WELCOME lacks
 *     RV_FEAT_RESIZE get their one-line reasons.
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

/* ---- the client bdev on the test thread's loop ---------------------- */

static uint8_t *
pattern (size_t len, unsigned seed)
{
  uint8_t *p = NULL;

  assert_int_equal (posix_memalign ((void **) &p, 4096, len), 0);
  for (size_t i = 0; i < len; i++)
    p[i] = (uint8_t) (i * 7 + seed);
  return p;
}

/* Create vol (VSIZE) over an admin connection. */
static void
create (struct server *s, const char *vol)
{
  struct replica_admin ra;
  struct rv_create cr = { .size = VSIZE, .block_size = BS, .epoch = 1 };
  struct error e = { 0 };

  assert_int_equal (replica_admin_open (&ra, s->addr, vol, TIMEOUT, &e), 0);
  assert_int_equal (replica_admin_create (&ra, &cr, &e), 0);
  replica_admin_close (&ra);
}

static uint64_t
stat_size (struct server *s, const char *vol)
{
  struct rv_volinfo vi;
  assert_int_equal (replica_admin_stat_once (s->addr, vol, TIMEOUT, NULL, &vi,
                                             NULL), 0);
  return vi.size;
}

static void
test_client_resize (void **state)
{
  struct server *s = *state;
  struct loop *loop = loop_new ();
  struct waiter wt = { .loop = loop };
  struct slot_io ios[4];
  struct rv_welcome w;
  struct error err = { 0 };
  uint8_t *data = pattern (2 * BS, 3), *got = pattern (2 * BS, 0);
  struct bdev *b;

  assert_non_null (loop);
  for (int i = 0; i < 4; i++)
    ios[i] = (struct slot_io) { .io = { .done = slot_done }, .w = &wt,
                                .slot = i };
  create (s, "grow");
  b = replica_client_open (loop, s->addr, "grow", 2, TIMEOUT, &w, &err);
  assert_non_null (b);
  assert_true (w.features & RV_FEAT_RESIZE);

  /* Writes in flight, then the resize: all done, the size is new. */
  wt.pending = 3;
  bdev_write (b, &ios[0].io, 0, 2 * BS, data, 0);
  bdev_write (b, &ios[1].io, VSIZE - BS, BS, data, BDEV_DIRTY);
  bdev_resize (b, &ios[2].io, 4 * VSIZE, 0);
  wait_all (&wt);
  for (int i = 0; i < 3; i++)
    assert_int_equal (wt.err[i], 0);
  assert_true (b->info.size == 4 * VSIZE);
  assert_true (stat_size (s, "grow") == 4 * VSIZE);

  /* Past the old end: written, read back; the rest of the grown range
   * reads zero; the old data is there.
   */
  wt.pending = 1;
  bdev_write (b, &ios[0].io, 3 * VSIZE, 2 * BS, data, BDEV_FUA);
  wait_all (&wt);
  assert_int_equal (wt.err[0], 0);
  wt.pending = 1;
  bdev_read (b, &ios[0].io, 3 * VSIZE, 2 * BS, got, 0);
  wait_all (&wt);
  assert_int_equal (wt.err[0], 0);
  assert_memory_equal (got, data, 2 * BS);
  wt.pending = 1;
  bdev_read (b, &ios[0].io, 2 * VSIZE, 2 * BS, got, 0);
  wait_all (&wt);
  for (size_t i = 0; i < 2 * BS; i++)
    assert_int_equal (got[i], 0);
  wt.pending = 1;
  bdev_read (b, &ios[0].io, 0, 2 * BS, got, 0);
  wait_all (&wt);
  assert_memory_equal (got, data, 2 * BS);

  /* A data connection does not shrink: EINVAL, nothing changes. */
  wt.pending = 1;
  bdev_resize (b, &ios[0].io, VSIZE, 0);
  wait_all (&wt);
  assert_int_equal (wt.err[0], EINVAL);
  assert_true (b->info.size == 4 * VSIZE);
  assert_true (stat_size (s, "grow") == 4 * VSIZE);

  bdev_close (b);
  loop_free (loop);
  free (data);
  free (got);
}

static void
test_admin_resize (void **state)
{
  struct server *s = *state;
  struct replica_admin ra;
  struct error err = { 0 };
  struct loop *loop = loop_new ();
  struct rv_welcome w;
  struct bdev *b;
  int r;

  assert_non_null (loop);
  assert_int_equal (replica_admin_open (&ra, s->addr, "adm", TIMEOUT, &err),
                    0);
  assert_int_equal (replica_admin_resize (&ra, 2 * VSIZE, 0, &err), -ENOENT);
  create (s, "adm");

  /* Not under an attach. */
  b = replica_client_open (loop, s->addr, "adm", 2, TIMEOUT, &w, &err);
  assert_non_null (b);
  assert_int_equal (replica_admin_resize (&ra, VSIZE / 2, 0, &err), -EBUSY);
  assert_non_null (strstr (error_msg (&err), "in use by an attach"));
  bdev_close (b);
  for (int i = 0; i < 500; i++) {
    if ((r = replica_admin_resize (&ra, VSIZE / 2, 0, &err)) != -EBUSY)
      break;
    usleep (10000);
  }
  assert_int_equal (r, 0);
  assert_true (stat_size (s, "adm") == VSIZE / 2);
  assert_int_equal (replica_admin_resize (&ra, 2 * VSIZE, RV_F_RESERVE, &err),
                    0);
  assert_true (stat_size (s, "adm") == 2 * VSIZE);

  /* The refusals, each with its line. */
  assert_int_equal (replica_admin_resize (&ra, 2 * VSIZE + 512, 0, &err),
                    -EINVAL);
  assert_non_null (strstr (error_msg (&err), "not a multiple"));
  assert_int_equal (replica_admin_resize (&ra, STORE_MAX_SIZE + BS, 0, &err),
                    -EFBIG);
  assert_non_null (strstr (error_msg (&err), "exceeds this server's maximum"));
  assert_true (stat_size (s, "adm") == 2 * VSIZE);

  /* A server that does not say it can: never asked. */
  ra.welcome.features &= ~RV_FEAT_RESIZE;
  assert_int_equal (replica_admin_resize (&ra, VSIZE, 0, &err), -ENOTSUP);
  assert_string_equal (error_msg (&err),
                       "server test-srv is too old to resize volumes");
  replica_admin_close (&ra);
  loop_free (loop);
}

int
main (void)
{
  log_init ("test_replica_resize");
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_client_resize, setup, teardown),
    cmocka_unit_test_setup_teardown (test_admin_resize, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
