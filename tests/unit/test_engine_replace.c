/* test_engine_replace.c - "repvol replica replace" in the engine
 * (engine_replace): the new replica gets a full copy while the volume
 * serves, whatever order the replicas complete in; the old one is
 * closed and gets nothing more; a new replica not reachable yet is
 * reached later through the owner's reconnect hook; and the copy
 * survives its source failing in the middle.
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
#include "replica/proto.h"
#include "lib/fake_bdev.h"
#include "lib/fake_owner.h"

#define R      RV_DIRTY_REGION        /* a full copy goes in copies of 64 KiB */
#define NREG   32
#define VOL    ((uint64_t) NREG * R)
#define WAIT   20000

/* Replicas holding the same pattern, as in-sync replicas do. */
static void
open_equal (struct fake_vol *v, int n)
{
  fake_vol_open (v, n, VOL, NULL, NULL);
  fake_vol_fill (v, 31);
}

/* Every region of the volume was copied to r exactly once (copies is
 * how many whole-region writes it got, at most one per region).
 */
static void
assert_full_copy (const struct fake_replica *r, int times)
{
  int seen[NREG] = { 0 };

  for (size_t k = 0; k < r->nwrites; k++)
    if (r->writes[k].len == R && r->writes[k].offset % R == 0)
      seen[r->writes[k].offset / R]++;
  for (int k = 0; k < NREG; k++)
    assert_int_equal (seen[k], times);
}

struct copying {
  struct fake_vol *v;
  struct fake_bdev *nb;
  struct fake_client_io *c;
};

static bool
held_or_in_sync (void *opaque)
{
  struct copying *t = opaque;
  return t->nb->nheld > 0 || t->v->owner.in_sync[1] > 0;
}

static bool
writes_done (void *opaque)
{
  struct copying *t = opaque;
  for (int k = 0; k < 16; k++)
    if (!t->c[k].done)
      return false;
  return true;
}

static uint64_t
write_offset (int k)
{
  return (uint64_t) ((k * 7) % NREG) * R + (k % 4) * 8192;
}

static void
test_replace_copies_everything (void **state)
{
  struct fake_vol v;
  struct fake_replica *nr = fake_replica_new (VOL), *old;
  struct fake_bdev *nb;
  static struct fake_client_io c[16];
  static uint8_t data[16][8192];

  open_equal (&v, 2);
  old = v.rep[1];
  fake_replica_forget_log (old);
  nb = fake_bdev_new (nr, v.loop, NULL);
  /* Completions come back shuffled, from every replica. */
  v.rep[0]->conn->order = FAKE_SHUFFLE;
  nb->order = FAKE_SHUFFLE;
  nb->seed = 5;

  /* Client writes keep coming while it copies: the new replica's
   * writes (copies and client writes) are held and let go in batches,
   * and a client write is added at every batch.
   */
  nb->hold_ops = FAKE_OP (BDEV_WRITE);
  engine_replace (v.engine, 1, &nb->bdev, "new1");
  struct copying t = { &v, nb, c };
  int k = 0;
  for (; k < 16; k++) {
    assert_true (fake_run_until (v.loop, held_or_in_sync, &t, WAIT));
    if (v.owner.in_sync[1])
      break;
    fake_pattern (data[k], sizeof data[k], write_offset (k), 100 + k);
    fake_client_submit (v.engine, &c[k], BDEV_WRITE, write_offset (k),
                        sizeof data[k], data[k]);
    fake_bdev_release (nb);
  }
  assert_true (k >= 8);         /* at least 8 landed during the copy */
  nb->hold_ops = 0;
  fake_bdev_release (nb);
  for (; k < 16; k++) {
    fake_pattern (data[k], sizeof data[k], write_offset (k), 100 + k);
    fake_client_submit (v.engine, &c[k], BDEV_WRITE, write_offset (k),
                        sizeof data[k], data[k]);
  }
  assert_true (fake_run_until (v.loop, writes_done, &t, WAIT));
  assert_true (fake_vol_wait_in_sync (&v, 1, 1, WAIT));
  for (int k = 0; k < 16; k++)
    assert_int_equal (c[k].err, 0);

  assert_full_copy (nr, 1);
  assert_int_equal (nr->done[BDEV_FLUSH], 1);
  assert_int_equal (v.owner.in_sync[1], 1);
  assert_int_equal (v.owner.progress_done[1], VOL);
  assert_memory_equal (nr->data, v.rep[0]->data, VOL);
  for (int k = 0; k < 16; k++)
    assert_memory_equal (nr->data + write_offset (k), data[k],
                         sizeof data[k]);
  /* The maps are forgotten on both. */
  assert_int_equal (fake_replica_dirty_count (v.rep[0]), 0);
  assert_int_equal (fake_replica_dirty_count (nr), 0);
  assert_int_equal (nb->overlap_seen, 0);

  /* The old replica was closed and got nothing after the replace. */
  assert_int_equal (old->open, 0);
  assert_int_equal (old->nwrites, 0);
  fake_replica_forget_log (nr);
  fake_pattern (data[0], 4096, 4096, 200);
  assert_int_equal (fake_client_sync (&v, BDEV_WRITE, 4096, 4096, data[0]),
                    0);
  assert_int_equal (nr->nwrites, 1);
  assert_int_equal (old->nwrites, 0);
  assert_memory_equal (nr->data, v.rep[0]->data, VOL);

  v.rep[1] = nr;                /* fake_vol_close frees it */
  fake_vol_close (&v);
  fake_replica_free (old);
}

/* The new replica does not answer yet: the engine keeps trying through
 * the owner and copies everything once it does.
 */
static void
test_replace_unreachable_then_back (void **state)
{
  struct fake_vol v;
  struct fake_replica *nr = fake_replica_new (VOL), *old;
  static uint8_t data[4096];

  open_equal (&v, 2);
  old = v.rep[1];
  engine_replace (v.engine, 1, NULL, "new1");
  fake_run_for (v.loop, 250);
  assert_true (v.owner.reconnects[1] >= 1);
  assert_int_equal (old->open, 0);
  /* Meanwhile writes go on, on r0 alone. */
  fake_pattern (data, sizeof data, 3 * R, 41);
  assert_int_equal (fake_client_sync (&v, BDEV_WRITE, 3 * R, sizeof data,
                                      data), 0);

  v.rep[1] = nr;
  v.owner.back[1] = &fake_vol_connect (&v, 1)->bdev;
  assert_true (fake_vol_wait_in_sync (&v, 1, 1, WAIT));
  assert_full_copy (nr, 1);
  assert_memory_equal (nr->data, v.rep[0]->data, VOL);
  assert_memory_equal (nr->data + 3 * R, data, sizeof data);
  fake_vol_close (&v);
  fake_replica_free (old);
}

/* n replicas; slot is replaced by a new, empty replica, and the copy
 * to it reads from replica 0, the fastest, whose reads are held: the
 * first four copies wait there.  The old replica is put in *old.
 */
static struct fake_bdev *
replace_with_reads_held (struct fake_vol *v, int n, int slot,
                         struct fake_replica **old)
{
  struct fake_bdev *src;

  open_equal (v, n);
  *old = v->rep[slot];
  src = v->rep[0]->conn;
  src->hold_ops = FAKE_OP (BDEV_READ);
  for (int i = 1; i < n; i++)           /* the others answer slower */
    v->rep[i]->conn->latency_ns = 1000000;
  v->rep[slot] = fake_replica_new (VOL);
  engine_replace (v->engine, slot, &fake_vol_connect (v, slot)->bdev,
                  slot == 1 ? "new1" : "new2");
  assert_true (fake_run_until_held (v->loop, src, 4, WAIT));
  assert_int_equal (src->nheld, 4);
  return src;
}

/* The only source fails one read in the middle of the copy, while
 * other copies are in flight: the catch-up starts over and ends with
 * every region copied.
 */
static void
test_replace_source_read_fails_mid_copy (void **state)
{
  struct fake_vol v;
  struct fake_replica *nr, *old;
  struct fake_bdev *src;
  static uint8_t data[4096];

  src = replace_with_reads_held (&v, 2, 1, &old);
  nr = v.rep[1];

  src->failing = true;          /* one of the four copies' reads fails */
  fake_bdev_complete (src, 0);
  src->failing = false;
  src->hold_ops = 0;
  fake_bdev_release (src);
  assert_true (fake_vol_wait_in_sync (&v, 1, 1, WAIT));

  /* Three regions were copied twice (before and after the restart),
   * the rest once; none is missing.
   */
  assert_int_equal (nr->nwrites, NREG + 3);
  assert_memory_equal (nr->data, v.rep[0]->data, VOL);
  assert_int_equal (v.owner.out_of_sync[0], 0);

  /* Both still serve every write. */
  fake_pattern (data, sizeof data, 9 * R, 51);
  assert_int_equal (fake_client_sync (&v, BDEV_WRITE, 9 * R, sizeof data,
                                      data), 0);
  assert_memory_equal (nr->data + 9 * R, data, sizeof data);
  assert_memory_equal (nr->data, v.rep[0]->data, VOL);
  fake_vol_close (&v);
  fake_replica_free (old);
}

/* Three replicas: the source dies in the middle of the copy to the new
 * one; the copy goes on from the other survivor, and the dead one is
 * recorded out of sync at the next write.
 */
static void
test_replace_source_dies_mid_copy (void **state)
{
  struct fake_vol v;
  struct fake_replica *nr, *old;
  struct fake_bdev *src;
  static uint8_t data[4096];

  src = replace_with_reads_held (&v, 3, 2, &old);
  nr = v.rep[2];
  assert_int_equal (nr->nwrites, 0);

  fake_bdev_kill (src);
  assert_true (fake_vol_wait_in_sync (&v, 2, 1, WAIT));
  assert_full_copy (nr, 1);
  assert_int_equal (nr->nwrites, NREG);
  assert_int_equal (v.rep[1]->done[BDEV_READ], NREG);
  assert_memory_equal (nr->data, v.rep[1]->data, VOL);

  fake_pattern (data, sizeof data, 17 * R, 61);
  assert_int_equal (fake_client_sync (&v, BDEV_WRITE, 17 * R, sizeof data,
                                      data), 0);
  assert_int_equal (v.owner.out_of_sync[0], 1);
  assert_memory_equal (nr->data + 17 * R, data, sizeof data);
  assert_memory_equal (nr->data, v.rep[1]->data, VOL);
  fake_vol_close (&v);
  fake_replica_free (old);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_replace_copies_everything),
    cmocka_unit_test (test_replace_unreachable_then_back),
    cmocka_unit_test (test_replace_source_read_fails_mid_copy),
    cmocka_unit_test (test_replace_source_dies_mid_copy),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
