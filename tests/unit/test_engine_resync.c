/* test_engine_resync.c - the engine's catch-up of a replica that comes
 * back (docs/DESIGN.md rules 2 and 5), against in-memory replicas on a real
 * event loop: the survivors' dirty map holds exactly the regions the
 * lost replica missed, only those regions are copied to it, and a
 * client write landing during the catch-up reaches both replicas in
 * order with the copies, so the images end byte-identical.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/types.h>
#include <cmocka.h>

#include "core/util.h"
#include "engine/engine.h"
#include "replica/proto.h"
#include "lib/fake_bdev.h"
#include "lib/fake_owner.h"

/* The replicas here keep 64 KiB regions, as servers from before issue
 * 15 did at every size: the engine (whose own region size for this
 * volume is 4 KiB) must take the survivor's region size from DIRTY_GET.
 */
#define R     RV_DIRTY_REGION
#define VOL   (32ull * R)             /* 2 MiB, 32 dirty-map regions */
#define WAIT  20000                   /* ms: only a failing test waits */

static uint8_t buf[4][R];

/* Two replicas whose dirty maps have R-byte regions. */
static void
open_old (struct fake_vol *v)
{
  fake_vol_open (v, 2, VOL, NULL, NULL);
  for (int i = 0; i < 2; i++) {
    v->rep[i]->region = R;
    v->rep[i]->nregions = VOL / R;
  }
}

/* Write len bytes of pattern seed at offset through the engine. */
static void
put (struct fake_vol *v, uint64_t offset, uint32_t len, unsigned seed,
     uint8_t *b)
{
  fake_pattern (b, len, offset, seed);
  assert_int_equal (fake_client_sync (v, BDEV_WRITE, offset, len, b), 0);
}

static int
by_offset (const void *a, const void *b)
{
  const struct fake_range *x = a, *y = b;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The data writes r received, sorted by offset. */
static struct fake_range *
sorted_writes (const struct fake_replica *r)
{
  struct fake_range *w = malloc ((r->nwrites + 1) * sizeof *w);
  assert_non_null (w);
  memcpy (w, r->writes, r->nwrites * sizeof *w);
  qsort (w, r->nwrites, sizeof *w, by_offset);
  return w;
}

/* Replica 1 loses its connection after a flush and one more write; the
 * writes after that land on replica 0 only.  Dirty: the unflushed write
 * (region 2) and every write replica 1 missed (regions 5, 9-10, 20);
 * not region 1, which both had stable before the failure.
 */
static const uint64_t dirty[] = { 2, 5, 9, 10, 20 };

static void
lose_replica_1 (struct fake_vol *v)
{
  put (v, 1 * R, 4096, 1, buf[0]);
  assert_int_equal (fake_client_sync (v, BDEV_FLUSH, 0, 0, NULL), 0);
  put (v, 2 * R + 8192, 4096, 2, buf[0]);
  fake_bdev_kill (v->rep[1]->conn);
  put (v, 5 * R, 4096, 3, buf[0]);
  put (v, 10 * R - 4096, 8192, 4, buf[0]);        /* regions 9 and 10 */
  put (v, 20 * R + 512, 1024, 5, buf[0]);

  assert_int_equal (v->owner.out_of_sync[1], 1);
  assert_int_equal (v->owner.out_of_sync[0], 0);
  assert_int_equal (fake_replica_dirty_count (v->rep[0]), ARRAY_SIZE (dirty));
  for (size_t k = 0; k < ARRAY_SIZE (dirty); k++)
    assert_true (fake_replica_dirty (v->rep[0], dirty[k]));
  /* The images differ exactly where replica 1 missed writes. */
  assert_memory_equal (v->rep[0]->data, v->rep[1]->data, 5 * R);
  assert_memory_not_equal (v->rep[0]->data + 5 * R, v->rep[1]->data + 5 * R,
                           4096);
  /* The lost connection was closed by the engine. */
  assert_int_equal (v->rep[1]->open, 0);
}

static void
test_replica_back_gets_exactly_the_dirty_regions (void **state)
{
  struct fake_vol v;

  open_old (&v);
  lose_replica_1 (&v);
  fake_replica_forget_log (v.rep[0]);
  fake_replica_forget_log (v.rep[1]);

  engine_replica_back (v.engine, 1, &fake_vol_connect (&v, 1)->bdev);
  assert_true (fake_vol_wait_in_sync (&v, 1, 1, WAIT));

  /* One copy per dirty region, whole regions, nothing else. */
  struct fake_range *w = sorted_writes (v.rep[1]);
  assert_int_equal (v.rep[1]->nwrites, ARRAY_SIZE (dirty));
  for (size_t k = 0; k < ARRAY_SIZE (dirty); k++) {
    assert_int_equal (w[k].op, BDEV_WRITE);
    assert_int_equal (w[k].offset, dirty[k] * R);
    assert_int_equal (w[k].len, R);
  }
  free (w);
  assert_int_equal (v.rep[1]->bytes_written, ARRAY_SIZE (dirty) * R);
  assert_int_equal (v.rep[1]->done[BDEV_FLUSH], 1);
  assert_int_equal (v.rep[0]->nwrites, 0);
  assert_int_equal (v.owner.progress_done[1], ARRAY_SIZE (dirty) * R);
  assert_int_equal (v.owner.progress_total[1], ARRAY_SIZE (dirty) * R);

  assert_memory_equal (v.rep[0]->data, v.rep[1]->data, VOL);
  /* In sync again: the maps are forgotten everywhere. */
  assert_int_equal (fake_replica_dirty_count (v.rep[0]), 0);
  assert_int_equal (fake_replica_dirty_count (v.rep[1]), 0);

  /* And it gets every write again, without BDEV_DIRTY. */
  fake_replica_forget_log (v.rep[1]);
  put (&v, 7 * R, 4096, 6, buf[0]);
  assert_int_equal (v.rep[1]->nwrites, 1);
  assert_int_equal (v.rep[0]->writes[v.rep[0]->nwrites - 1].flags &
                    BDEV_DIRTY, 0);
  assert_memory_equal (v.rep[0]->data, v.rep[1]->data, VOL);
  fake_vol_close (&v);
}

struct two_done {
  struct fake_vol *v;
  struct fake_client_io *a, *b;
};

static bool
caught_up_and_acked (void *opaque)
{
  struct two_done *t = opaque;
  return t->v->owner.in_sync[1] == 1 && t->a->done && t->b->done;
}

static ssize_t
find_write (const struct fake_replica *r, uint64_t offset, uint32_t len)
{
  for (size_t k = 0; k < r->nwrites; k++)
    if (r->writes[k].offset == offset && r->writes[k].len == len)
      return (ssize_t) k;
  return -1;
}

static void
test_write_during_resync_reaches_both (void **state)
{
  struct fake_vol v;
  struct fake_client_io into_copy, elsewhere;
  struct fake_bdev *back;

  open_old (&v);
  lose_replica_1 (&v);
  fake_replica_forget_log (v.rep[0]);
  fake_replica_forget_log (v.rep[1]);

  /* Back through the owner's reconnect hook this time, with its writes
   * held: the first copies (regions 2, 5, 9, 10) stall on it.
   */
  back = fake_vol_connect (&v, 1);
  back->hold_ops = FAKE_OP (BDEV_WRITE);
  v.owner.back[1] = &back->bdev;
  assert_true (fake_run_until_held (v.loop, back, 4, WAIT));
  assert_true (v.owner.reconnects[1] >= 1);
  assert_null (v.owner.back[1]);
  assert_int_equal (back->nheld, 4);

  /* A write into region 5, which is being copied, waits for the copy;
   * one to region 30, which is not dirty, goes to both at once.
   */
  fake_pattern (buf[1], 4096, 5 * R + 4096, 7);
  fake_client_submit (v.engine, &into_copy, BDEV_WRITE, 5 * R + 4096, 4096,
                      buf[1]);
  fake_pattern (buf[2], 8192, 30 * R, 8);
  fake_client_submit (v.engine, &elsewhere, BDEV_WRITE, 30 * R, 8192,
                      buf[2]);
  fake_run_for (v.loop, 20);
  assert_int_equal (into_copy.done, 0);
  assert_int_equal (elsewhere.done, 0);         /* held on replica 1 */
  assert_int_equal (back->nheld, 5);
  assert_int_equal (find_write (v.rep[0], 5 * R + 4096, 4096), -1);
  assert_true (find_write (v.rep[0], 30 * R, 8192) >= 0);

  back->hold_ops = 0;
  fake_bdev_release (back);
  struct two_done t = { &v, &into_copy, &elsewhere };
  assert_true (fake_run_until (v.loop, caught_up_and_acked, &t, WAIT));
  assert_int_equal (into_copy.err, 0);
  assert_int_equal (elsewhere.err, 0);

  /* On replica 1 the client write came after the copy of its region. */
  ssize_t copy = find_write (v.rep[1], 5 * R, R);
  ssize_t client = find_write (v.rep[1], 5 * R + 4096, 4096);
  assert_true (copy >= 0 && client > copy);
  assert_true (find_write (v.rep[1], 30 * R, 8192) >= 0);
  assert_int_equal (back->overlap_seen, 0);

  assert_memory_equal (v.rep[0]->data + 5 * R + 4096, buf[1], 4096);
  assert_memory_equal (v.rep[1]->data + 5 * R + 4096, buf[1], 4096);
  assert_memory_equal (v.rep[1]->data + 30 * R, buf[2], 8192);
  assert_memory_equal (v.rep[0]->data, v.rep[1]->data, VOL);
  fake_vol_close (&v);
}

/* A replica that fails again during its catch-up is out again, and the
 * next time back it is caught up all the same.
 */
static void
test_replica_failing_during_resync (void **state)
{
  struct fake_vol v;
  struct fake_bdev *back;

  open_old (&v);
  lose_replica_1 (&v);

  back = fake_vol_connect (&v, 1);
  back->fail_nth = 2;           /* its second request, a copy, fails */
  engine_replica_back (v.engine, 1, &back->bdev);
  fake_run_for (v.loop, 300);
  assert_int_equal (v.owner.in_sync[1], 0);
  assert_int_equal (v.rep[1]->open, 0);         /* the engine closed it */
  assert_int_equal (v.owner.out_of_sync[1], 1); /* already recorded */
  assert_int_equal (fake_replica_dirty_count (v.rep[0]), ARRAY_SIZE (dirty));

  fake_replica_forget_log (v.rep[1]);
  engine_replica_back (v.engine, 1, &fake_vol_connect (&v, 1)->bdev);
  assert_true (fake_vol_wait_in_sync (&v, 1, 1, WAIT));
  assert_int_equal (v.rep[1]->bytes_written, ARRAY_SIZE (dirty) * R);
  assert_memory_equal (v.rep[0]->data, v.rep[1]->data, VOL);
  fake_vol_close (&v);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_replica_back_gets_exactly_the_dirty_regions),
    cmocka_unit_test (test_write_during_resync_reaches_both),
    cmocka_unit_test (test_replica_failing_during_resync),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
