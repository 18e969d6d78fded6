/* test_engine_detach.c - the engine when everything goes wrong, and its
 * detach (drain, then close): every replica fails while writes wait
 * behind overlapping ones; each request completes exactly once with
 * EIO, none reaches a replica after the failure, the drain completes,
 * and close frees everything (the unit tests run under valgrind).  And
 * a detach in the middle of a catch-up waits for the copies in flight
 * and starts no more.
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

#define R     RV_DIRTY_REGION        /* a full copy goes in copies of 64 KiB */
#define VOL   (32ull * R)
#define WAIT  20000

static void
drained (void *opaque)
{
  (*(int *) opaque)++;
}

/* The requests: W0 and W4 start at once; W1 waits for W0, W2 for W1
 * (it overlaps W1, which waits), W3 for W0; a flush and a read are in
 * flight beside them.
 */
static const struct { uint64_t off; uint32_t len; } w[] = {
  { 0, 8192 }, { 4096, 8192 }, { 8192, 8192 }, { 0, 4096 },
  { 16 * R, 4096 },
};
#define NW ((int) (sizeof w / sizeof w[0]))

static void
test_all_replicas_fail_with_writes_queued_then_detach (void **state)
{
  struct fake_vol v;
  static struct fake_client_io c[NW], fl, rd;
  static uint8_t data[NW][8192], got[4096];
  uint8_t *before = malloc (VOL);
  int drains = 0;

  fake_vol_open (&v, 2, VOL, NULL, NULL);
  fake_vol_fill (&v, 71);
  memcpy (before, v.rep[0]->data, VOL);
  for (int i = 0; i < 2; i++)
    v.rep[i]->conn->hold_ops = FAKE_ALL_OPS;

  for (int k = 0; k < NW; k++) {
    fake_pattern (data[k], w[k].len, w[k].off, 80 + k);
    fake_client_submit (v.engine, &c[k], BDEV_WRITE, w[k].off, w[k].len,
                        data[k]);
  }
  fake_client_submit (v.engine, &fl, BDEV_FLUSH, 0, 0, NULL);
  fake_client_submit (v.engine, &rd, BDEV_READ, 4096, sizeof got, got);
  /* Only W0, W4 and the flush went out (and the read, to one). */
  for (int i = 0; i < 2; i++) {
    assert_int_equal (v.rep[i]->conn->count[BDEV_WRITE], 2);
    assert_int_equal (v.rep[i]->conn->count[BDEV_FLUSH], 1);
  }
  assert_int_equal (v.rep[0]->conn->count[BDEV_READ] +
                    v.rep[1]->conn->count[BDEV_READ], 1);

  /* The detach begins: the drain waits for all of them. */
  bdev_drain (v.engine, drained, &drains);
  fake_run_for (v.loop, 10);
  assert_int_equal (drains, 0);

  /* r0 is lost: recorded out of sync, the writes wait for the marks of
   * what it missed, which r1 holds; the read is retried on r1.
   */
  fake_bdev_kill (v.rep[0]->conn);
  assert_int_equal (v.owner.out_of_sync[0], 1);
  for (int k = 0; k < NW; k++)
    assert_int_equal (c[k].done, 0);
  assert_true (v.rep[1]->conn->count[BDEV_MARK_DIRTY] >= 1);
  assert_int_equal (drains, 0);

  /* Then r1: nothing is in sync any more. */
  fake_bdev_kill (v.rep[1]->conn);
  assert_int_equal (v.owner.out_of_sync[1], 1);
  for (int k = 0; k < NW; k++) {
    assert_int_equal (c[k].done, 1);
    assert_int_equal (c[k].err, EIO);
  }
  assert_int_equal (fl.done, 1);
  assert_int_equal (fl.err, EIO);
  assert_int_equal (rd.done, 1);
  assert_int_equal (rd.err, EIO);
  assert_int_equal (drains, 1);

  /* No write reached a replica, and the waiting ones were never sent. */
  for (int i = 0; i < 2; i++) {
    assert_int_equal (v.rep[i]->nwrites, 0);
    assert_memory_equal (v.rep[i]->data, before, VOL);
  }
  fake_run_for (v.loop, 10);    /* the failed replicas are closed */
  assert_int_equal (v.rep[0]->open, 0);
  assert_int_equal (v.rep[1]->open, 0);

  /* Whatever comes now fails at once. */
  assert_int_equal (fake_client_sync (&v, BDEV_WRITE, 0, 4096, data[0]), EIO);
  assert_int_equal (fake_client_sync (&v, BDEV_READ, 0, 4096, got), EIO);
  struct bdev_health h;
  bdev_health (v.engine, &h);
  assert_int_equal (h.up, 0);

  bdev_close (v.engine);
  v.engine = NULL;
  assert_int_equal (drains, 1);
  for (int k = 0; k < NW; k++)
    assert_int_equal (c[k].done, 1);
  free (before);
  fake_vol_close (&v);
}

/* The replicas fail as their disks do, completing in reverse order,
 * with the drain asked for after the failure: it completes at once.
 */
static void
test_failing_disks_reverse_order_then_detach (void **state)
{
  struct fake_vol v;
  static struct fake_client_io c[NW];
  static uint8_t data[NW][8192];
  int drains = 0;

  fake_vol_open (&v, 3, VOL, NULL, NULL);
  for (int i = 0; i < 3; i++) {
    v.rep[i]->conn->hold_ops = FAKE_OP (BDEV_WRITE);
    v.rep[i]->conn->order = FAKE_REVERSE;
  }
  for (int k = 0; k < NW; k++) {
    fake_pattern (data[k], w[k].len, w[k].off, 90 + k);
    fake_client_submit (v.engine, &c[k], BDEV_WRITE, w[k].off, w[k].len,
                        data[k]);
  }
  for (int i = 0; i < 3; i++) {
    v.rep[i]->conn->failing = true;
    fake_bdev_release (v.rep[i]->conn);
  }
  fake_run_for (v.loop, 10);
  for (int k = 0; k < NW; k++) {
    assert_int_equal (c[k].done, 1);
    assert_int_equal (c[k].err, EIO);
  }
  for (int i = 0; i < 3; i++) {
    assert_int_equal (v.owner.out_of_sync[i], 1);
    assert_int_equal (v.rep[i]->nwrites, 0);
    assert_int_equal (v.rep[i]->open, 0);
  }
  bdev_drain (v.engine, drained, &drains);
  assert_int_equal (drains, 1);
  fake_vol_close (&v);
}

struct drain_seen {
  struct fake_replica *r;
  int drains;
  size_t writes;                /* r's writes when the drain completed */
};

static void
drained_resync (void *opaque)
{
  struct drain_seen *d = opaque;
  d->drains++;
  d->writes = d->r->nwrites;
}

static bool
drained_once (void *opaque)
{
  struct drain_seen *d = opaque;
  return d->drains > 0;
}

/* A detach while a replica is caught up: the drain waits for the
 * copies in flight and no new copy starts meanwhile; close frees the
 * catch-up half done.
 */
static void
test_detach_during_resync (void **state)
{
  struct fake_vol v;
  struct fake_bdev *back;
  static uint8_t data[R];      /* whole 64 KiB copies: 4 in flight */
  struct drain_seen d = { 0 };

  fake_vol_open (&v, 2, VOL, NULL, NULL);
  d.r = v.rep[1];
  fake_bdev_kill (v.rep[1]->conn);
  for (int k = 0; k < 8; k++) {                 /* 8 regions for r1 */
    fake_pattern (data, sizeof data, (uint64_t) k * 3 * R, 95 + k);
    assert_int_equal (fake_client_sync (&v, BDEV_WRITE, (uint64_t) k * 3 * R,
                                        sizeof data, data), 0);
  }
  assert_int_equal (fake_replica_dirty_count (v.rep[0]),
                    8 * (R / v.rep[0]->region));
  fake_replica_forget_log (v.rep[1]);
  back = fake_vol_connect (&v, 1);
  back->hold_ops = FAKE_OP (BDEV_WRITE);
  engine_replica_back (v.engine, 1, &back->bdev);
  assert_true (fake_run_until_held (v.loop, back, 4, WAIT));

  bdev_drain (v.engine, drained_resync, &d);
  fake_run_for (v.loop, 250);                   /* ticks come and go */
  assert_int_equal (d.drains, 0);               /* 4 copies in flight */
  assert_int_equal (back->nheld, 4);            /* and no other */
  back->hold_ops = 0;
  fake_bdev_release (back);
  assert_true (fake_run_until (v.loop, drained_once, &d, WAIT));
  assert_int_equal (d.drains, 1);
  assert_int_equal (d.writes, 4);
  assert_int_equal (v.owner.in_sync[1], 0);
  assert_int_equal (fake_replica_dirty_count (v.rep[0]),
                    8 * (R / v.rep[0]->region));
  for (size_t k = 0; k < v.rep[1]->nwrites; k++)
    assert_memory_equal (v.rep[1]->data + v.rep[1]->writes[k].offset,
                         v.rep[0]->data + v.rep[1]->writes[k].offset, R);
  fake_vol_close (&v);
}


/* Both replica servers died while idle: their connections are dead but
 * the engine has not heard (nothing was in flight).  The next write
 * fans out to both; the first child fails inside its submit, degrading
 * r0 sends MARK_DIRTY to r1, which fails inside its submit too and
 * takes r1 out of its slot, all before the fan-out reaches slot 1.  The
 * write must fail with EIO, not go to slot 1's missing bdev; then a
 * flush, a read and the detach (drain, close) are clean.
 */
static void
test_both_dead_unnoticed_then_write_and_detach (void **state)
{
  struct fake_vol v;
  static uint8_t data[8192], got[4096];
  int drains = 0;

  fake_vol_open (&v, 2, VOL, NULL, NULL);
  for (int i = 0; i < 2; i++)
    v.rep[i]->conn->dead = true;        /* lost, unnoticed */
  fake_pattern (data, sizeof data, 0, 7);
  assert_int_equal (fake_client_sync (&v, BDEV_WRITE, 0, sizeof data, data),
                    EIO);
  assert_int_equal (v.owner.out_of_sync[0], 1);
  assert_int_equal (v.owner.out_of_sync[1], 1);
  assert_int_equal (fake_client_sync (&v, BDEV_WRITE, 4096, 4096, data), EIO);
  assert_int_equal (fake_client_sync (&v, BDEV_FLUSH, 0, 0, NULL), EIO);
  assert_int_equal (fake_client_sync (&v, BDEV_READ, 0, 4096, got), EIO);
  bdev_drain (v.engine, drained, &drains);
  assert_int_equal (drains, 1);
  for (int i = 0; i < 2; i++)
    assert_int_equal (v.rep[i]->nwrites, 0);
  fake_vol_close (&v);
}

/* The same with three replicas and writes waiting behind an overlapping
 * one: r0 dies noticed (its held writes fail), r1 and r2 unnoticed.
 * Degrading r0 fails r1 and r2 inside their submits; the waiting writes
 * then start and fail at once; none reaches a slot without a bdev.
 */
static void
test_waiters_start_into_dead_replicas (void **state)
{
  struct fake_vol v;
  static struct fake_client_io c[NW];
  static uint8_t data[NW][8192];
  int drains = 0;

  fake_vol_open (&v, 3, VOL, NULL, NULL);
  for (int i = 0; i < 3; i++)
    v.rep[i]->conn->hold_ops = FAKE_ALL_OPS;
  for (int k = 0; k < NW; k++) {
    fake_pattern (data[k], w[k].len, w[k].off, 60 + k);
    fake_client_submit (v.engine, &c[k], BDEV_WRITE, w[k].off, w[k].len,
                        data[k]);
  }
  v.rep[1]->conn->dead = true;
  v.rep[2]->conn->dead = true;
  fake_bdev_kill (v.rep[0]->conn);
  /* Degrading r0 sent marks to r1 and r2, which failed at once: both
   * are out too, and closing them failed W0 and W4, which they held.
   */
  fake_run_for (v.loop, 10);
  for (int k = 0; k < NW; k++) {
    assert_int_equal (c[k].done, 1);
    assert_int_equal (c[k].err, EIO);
  }
  for (int i = 0; i < 3; i++) {
    assert_int_equal (v.owner.out_of_sync[i], 1);
    assert_int_equal (v.rep[i]->nwrites, 0);
  }
  bdev_drain (v.engine, drained, &drains);
  assert_int_equal (drains, 1);
  fake_vol_close (&v);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_all_replicas_fail_with_writes_queued_then_detach),
    cmocka_unit_test (test_failing_disks_reverse_order_then_detach),
    cmocka_unit_test (test_detach_during_resync),
    cmocka_unit_test (test_both_dead_unnoticed_then_write_and_detach),
    cmocka_unit_test (test_waiters_start_into_dead_replicas),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
