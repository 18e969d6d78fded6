/* test_engine_resize.c - growing the volume online (engine/resize.c,
 * docs/DESIGN.md 3.10): the resize waits for the writes before it and
 * holds the ones after; every replica grows before the volume does; a
 * replica that refuses fails the resize and leaves the volume as it
 * was, with nobody recorded out of sync; one that fails otherwise is
 * lost as on a failed write and the volume grows on the others; space
 * a replica held past the volume's end is zeroed before the volume
 * grows into it; shrinking online is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "engine/engine.h"
#include "lib/fake_bdev.h"
#include "lib/fake_owner.h"

#define OLD (1u << 20)
#define NEW (3u << 20)

static int
resize (struct fake_vol *v, uint64_t size)
{
  struct fake_client_io c = { 0 };

  fake_client_submit (v->engine, &c, BDEV_RESIZE, size, 0, NULL);
  assert_true (fake_client_wait (v, &c, 5000));
  return c.err;
}

static void
test_grow_orders_around_writes (void **state)
{
  struct fake_vol v;
  static uint8_t before[4096], after[4096], back[4096];
  struct fake_client_io w1 = { 0 }, rz = { 0 }, w2 = { 0 };

  fake_vol_open (&v, 2, OLD, NULL, NULL);
  memset (before, 0xaa, sizeof before);
  memset (after, 0xbb, sizeof after);
  for (int i = 0; i < 2; i++)
    v.rep[i]->conn->hold_ops = FAKE_OP (BDEV_WRITE);
  fake_client_submit (v.engine, &w1, BDEV_WRITE, 0, 4096, before);
  fake_client_submit (v.engine, &rz, BDEV_RESIZE, NEW, 0, NULL);
  fake_client_submit (v.engine, &w2, BDEV_WRITE, 8192, 4096, after);
  fake_run_for (v.loop, 20);
  /* The resize waits for w1; w2 waits for the resize. */
  for (int i = 0; i < 2; i++) {
    assert_int_equal (v.rep[i]->conn->count[BDEV_RESIZE], 0);
    assert_int_equal (v.rep[i]->conn->count[BDEV_WRITE], 1);
  }
  assert_int_equal (v.engine->info.size, OLD);
  for (int i = 0; i < 2; i++) {
    v.rep[i]->conn->hold_ops = 0;
    fake_bdev_release (v.rep[i]->conn);
  }
  assert_true (fake_client_wait (&v, &rz, 5000));
  assert_true (fake_client_wait (&v, &w2, 5000));
  assert_int_equal (w1.err, 0);
  assert_int_equal (rz.err, 0);
  assert_int_equal (w2.err, 0);
  assert_int_equal (v.engine->info.size, NEW);
  for (int i = 0; i < 2; i++) {
    assert_int_equal (v.rep[i]->size, NEW);
    assert_int_equal (v.rep[i]->conn->count[BDEV_RESIZE], 1);
  }
  /* The new space takes writes, on every replica. */
  assert_int_equal (fake_client_sync (&v, BDEV_WRITE, NEW - 4096, 4096, after), 0);
  for (int i = 0; i < 2; i++)
    assert_memory_equal (v.rep[i]->data + NEW - 4096, after, 4096);
  assert_int_equal (fake_client_sync (&v, BDEV_READ, 0, 4096, back), 0);
  assert_memory_equal (back, before, 4096);
  /* Same size: done; smaller: refused. */
  assert_int_equal (resize (&v, NEW), 0);
  assert_int_equal (resize (&v, OLD), EINVAL);
  assert_int_equal (v.engine->info.size, NEW);
  assert_int_equal (v.owner.out_of_sync[0] + v.owner.out_of_sync[1], 0);
  fake_vol_close (&v);
}

static void
test_refusal_keeps_the_size (void **state)
{
  struct fake_vol v;

  fake_vol_open (&v, 2, OLD, NULL, NULL);
  v.rep[1]->conn->fail_ops = FAKE_OP (BDEV_RESIZE);
  v.rep[1]->conn->fail_err = ENOSPC;
  assert_int_equal (resize (&v, NEW), ENOSPC);
  assert_int_equal (v.engine->info.size, OLD);
  assert_int_equal (v.owner.out_of_sync[1], 0);
  assert_int_equal (engine_replica_state (v.engine, 1), ENGINE_IN_SYNC);
  /* Writes past the old end are still refused; the volume is whole. */
  static uint8_t buf[4096];
  assert_int_equal (fake_client_sync (&v, BDEV_WRITE, OLD, 4096, buf), EINVAL);
  assert_int_equal (fake_client_sync (&v, BDEV_WRITE, 0, 4096, buf), 0);
  /* Again once the server has room: the replica that grew already is
   * not asked twice.
   */
  v.rep[1]->conn->fail_ops = 0;
  assert_int_equal (resize (&v, NEW), 0);
  assert_int_equal (v.rep[0]->conn->count[BDEV_RESIZE], 1);
  assert_int_equal (v.rep[1]->conn->count[BDEV_RESIZE], 2);
  assert_int_equal (v.engine->info.size, NEW);
  fake_vol_close (&v);
}

static void
test_lost_replica_degrades (void **state)
{
  struct fake_vol v;

  fake_vol_open (&v, 2, OLD, NULL, NULL);
  v.rep[1]->conn->fail_ops = FAKE_OP (BDEV_RESIZE);
  v.rep[1]->conn->fail_err = EIO;
  assert_int_equal (resize (&v, NEW), 0);
  assert_int_equal (v.engine->info.size, NEW);
  assert_int_equal (v.owner.out_of_sync[1], 1);
  assert_int_equal (engine_replica_state (v.engine, 0), ENGINE_IN_SYNC);
  assert_int_equal (v.rep[0]->size, NEW);
  fake_vol_close (&v);
}

static void
test_stale_tail_zeroed (void **state)
{
  struct fake_vol v;

  /* Replica b kept 2 MiB of old bytes past the volume's end (an offline
   * shrink that did not reach it).
   */
  fake_vol_open (&v, 2, OLD, NULL, NULL);
  uint8_t *img = realloc (v.rep[1]->data, 2 * OLD);
  assert_non_null (img);
  memset (img + OLD, 0x5a, OLD);
  v.rep[1]->data = img;
  v.rep[1]->size = 2 * OLD;
  v.rep[1]->conn->bdev.info.size = 2 * OLD;
  assert_int_equal (resize (&v, NEW), 0);
  for (int i = 0; i < 2; i++) {
    assert_int_equal (v.rep[i]->size, NEW);
    for (uint64_t k = OLD; k < NEW; k++)
      if (v.rep[i]->data[k]) {
        print_error ("replica %d: byte %llu is %#x, not zero\n", i,
                     (unsigned long long) k, v.rep[i]->data[k]);
        fail ();
      }
  }
  assert_true (v.rep[1]->conn->count[BDEV_TRIM] >= 1);
  assert_int_equal (v.rep[0]->conn->count[BDEV_TRIM], 0);
  fake_vol_close (&v);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_grow_orders_around_writes),
    cmocka_unit_test (test_refusal_keeps_the_size),
    cmocka_unit_test (test_lost_replica_degrades),
    cmocka_unit_test (test_stale_tail_zeroed),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
