/* test_engine_verify.c - the engine's online verify and repair, and its
 * reconcile after a crash, against in-memory replicas on a real event
 * loop: a planted difference is reported, repair copies the majority's
 * data (reconcile: the pinned replica's) over it, a verify region is
 * ordered against client writes, and while reconciling reads come from
 * the pinned replica only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "engine/engine.h"
#include "replica/proto.h"
#include "lib/fake_bdev.h"
#include "lib/fake_owner.h"

#define VR    ENGINE_VERIFY_REGION
#define VOL   (4ull * VR)             /* 4 verify regions */
#define WAIT  20000

/* What verify and reconcile report. */
struct outcome {
  char *lines[16];
  int nlines;
  int done;
  uint64_t differing, repaired;
  int err;
};

static void
on_line (void *opaque, const char *line)
{
  struct outcome *o = opaque;
  assert_true (o->nlines < (int) (sizeof o->lines / sizeof o->lines[0]));
  o->lines[o->nlines++] = strdup (line);
}

static void
on_verified (void *opaque, uint64_t differing, uint64_t repaired, int err)
{
  struct outcome *o = opaque;
  o->done++;
  o->differing = differing;
  o->repaired = repaired;
  o->err = err;
}

static void
on_reconciled (void *opaque, uint64_t repaired, int err)
{
  on_verified (opaque, 0, repaired, err);
}

static bool
finished (void *opaque)
{
  struct outcome *o = opaque;
  return o->done > 0;
}

static void
outcome_free (struct outcome *o)
{
  for (int k = 0; k < o->nlines; k++)
    free (o->lines[k]);
}

/* n in-sync replicas holding the same pattern. */
static void
open_equal (struct fake_vol *v, int n)
{
  fake_vol_open (v, n, VOL, NULL, NULL);
  fake_vol_fill (v, 11);
}

static void
run_verify (struct fake_vol *v, bool repair, struct outcome *o)
{
  memset (o, 0, sizeof *o);
  engine_verify (v->engine, repair, on_line, on_verified, o);
  assert_true (fake_run_until (v->loop, finished, o, WAIT));
  assert_int_equal (o->done, 1);
}

static void
test_verify_finds_planted_difference (void **state)
{
  struct fake_vol v;
  struct outcome o;
  uint8_t *good = malloc (VOL);
  char want[64];

  open_equal (&v, 3);
  memcpy (good, v.rep[0]->data, VOL);
  v.rep[2]->data[2 * VR + 100] ^= 0xff;

  run_verify (&v, false, &o);
  assert_int_equal (o.err, 0);
  assert_int_equal (o.differing, 1);
  assert_int_equal (o.repaired, 0);
  assert_int_equal (o.nlines, 1);
  snprintf (want, sizeof want, "region %llu+%u differs:",
            (unsigned long long) 2 * VR, VR);
  assert_true (strncmp (o.lines[0], want, strlen (want)) == 0);
  /* r2 is the odd one, starred; the others are not. */
  assert_non_null (strstr (o.lines[0], " r0="));
  const char *r2 = strstr (o.lines[0], " r2=");
  assert_non_null (r2);
  assert_int_equal (r2[4 + 8], '*');
  assert_int_equal (strchr (o.lines[0], '*'), r2 + 4 + 8);

  /* Nothing was written: the difference is still there. */
  for (int i = 0; i < 3; i++)
    assert_int_equal (v.rep[i]->nwrites, 0);
  assert_memory_equal (v.rep[0]->data, good, VOL);
  assert_memory_not_equal (v.rep[2]->data, good, VOL);
  outcome_free (&o);

  /* Equal replicas: nothing to report. */
  v.rep[2]->data[2 * VR + 100] ^= 0xff;
  run_verify (&v, false, &o);
  assert_int_equal (o.err, 0);
  assert_int_equal (o.differing, 0);
  assert_int_equal (o.nlines, 0);
  free (good);
  fake_vol_close (&v);
}

/* The odd replica is r0, so copying from "the first" would be wrong:
 * the majority (r1, r2) is the source.
 */
static void
test_verify_repairs_from_majority (void **state)
{
  struct fake_vol v;
  struct outcome o;
  uint8_t *good = malloc (VOL);
  char want[96];

  open_equal (&v, 3);
  memcpy (good, v.rep[1]->data, VOL);
  memset (v.rep[0]->data + 1 * VR + 4096, 0x5a, 512);

  run_verify (&v, true, &o);
  assert_int_equal (o.err, 0);
  assert_int_equal (o.differing, 1);
  assert_int_equal (o.repaired, 1);
  assert_int_equal (o.nlines, 2);
  snprintf (want, sizeof want, "region %llu+%u repaired from r1",
            (unsigned long long) VR, VR);
  assert_string_equal (o.lines[1], want);

  /* One write, of the whole verify region, to r0 only. */
  assert_int_equal (v.rep[0]->nwrites, 1);
  assert_int_equal (v.rep[0]->writes[0].offset, VR);
  assert_int_equal (v.rep[0]->writes[0].len, VR);
  assert_true (v.rep[0]->writes[0].flags & BDEV_FUA);
  assert_int_equal (v.rep[1]->nwrites, 0);
  assert_int_equal (v.rep[2]->nwrites, 0);
  for (int i = 0; i < 3; i++)
    assert_memory_equal (v.rep[i]->data, good, VOL);
  outcome_free (&o);

  run_verify (&v, false, &o);
  assert_int_equal (o.differing, 0);
  free (good);
  fake_vol_close (&v);
}

/* A second verify while one runs is refused; a verify region waits for
 * a client write in flight over it, and a client write waits for it.
 */
static void
test_verify_is_ordered_with_writes (void **state)
{
  struct fake_vol v;
  struct outcome o = { 0 }, busy = { 0 };
  struct fake_client_io w;
  static uint8_t data[8192];

  open_equal (&v, 2);
  v.rep[0]->conn->hold_ops = FAKE_OP (BDEV_CHECKSUM);
  engine_verify (v.engine, true, on_line, on_verified, &o);
  fake_run_for (v.loop, 10);
  assert_int_equal (v.rep[0]->conn->nheld, 1);  /* region 0's checksum */

  engine_verify (v.engine, false, on_line, on_verified, &busy);
  assert_int_equal (busy.done, 1);
  assert_int_equal (busy.err, EBUSY);

  fake_pattern (data, sizeof data, 4096, 12);
  fake_client_submit (v.engine, &w, BDEV_WRITE, 4096, sizeof data, data);
  fake_run_for (v.loop, 20);
  assert_int_equal (w.done, 0);
  assert_int_equal (v.rep[0]->nwrites + v.rep[1]->nwrites, 0);

  v.rep[0]->conn->hold_ops = 0;
  fake_bdev_release (v.rep[0]->conn);
  assert_true (fake_run_until (v.loop, finished, &o, WAIT));
  assert_int_equal (w.done, 1);
  assert_int_equal (w.err, 0);
  assert_int_equal (o.err, 0);
  assert_int_equal (o.differing, 0);            /* the write came after */
  assert_memory_equal (v.rep[0]->data + 4096, data, sizeof data);
  assert_memory_equal (v.rep[0]->data, v.rep[1]->data, VOL);
  outcome_free (&o);
  fake_vol_close (&v);
}

/* A verify that meets a failing replica stops with the error. */
static void
test_verify_stops_on_error (void **state)
{
  struct fake_vol v;
  struct outcome o;

  open_equal (&v, 2);
  v.rep[1]->conn->fail_ops = FAKE_OP (BDEV_CHECKSUM);
  v.rep[1]->conn->fail_err = ENODATA;
  run_verify (&v, true, &o);
  assert_int_equal (o.err, ENODATA);
  assert_int_equal (o.repaired, 0);
  for (int i = 0; i < 2; i++)
    assert_int_equal (v.rep[i]->nwrites, 0);
  fake_vol_close (&v);
}

/* After a crash with writes in flight the replicas differ where some got
 * a write and others not; reconcile makes all equal to the first in-sync
 * replica (even where it is alone), and reads meanwhile come from it.
 */
static void
test_reconcile_after_crash (void **state)
{
  struct fake_vol v;
  struct outcome o = { 0 };
  struct fake_client_io rd;
  static uint8_t got[4096];
  uint8_t *want = malloc (VOL);

  open_equal (&v, 3);
  /* The write that reached only r0, and one that reached only r2. */
  fake_pattern (v.rep[0]->data + 1 * VR, 65536, VR, 21);
  fake_pattern (v.rep[2]->data + 3 * VR + 8192, 4096, 3 * VR + 8192, 22);
  memcpy (want, v.rep[0]->data, VOL);
  /* r1 answers fastest: normally every read would go to it. */
  v.rep[0]->conn->latency_ns = 1000000;
  v.rep[1]->conn->latency_ns = 1;
  v.rep[2]->conn->latency_ns = 1000000;

  v.rep[0]->conn->hold_ops = FAKE_OP (BDEV_CHECKSUM);
  engine_reconcile (v.engine, on_reconciled, &o);
  fake_run_for (v.loop, 10);
  assert_int_equal (o.done, 0);
  for (int k = 0; k < 4; k++) {
    fake_client_submit (v.engine, &rd, BDEV_READ, 1 * VR + 4096 * k, 4096,
                        got);
    assert_true (fake_client_wait (&v, &rd, WAIT));
    assert_int_equal (rd.err, 0);
    assert_memory_equal (got, want + 1 * VR + 4096 * k, 4096);
  }
  assert_int_equal (v.rep[0]->done[BDEV_READ], 4);
  assert_int_equal (v.rep[1]->done[BDEV_READ], 0);
  assert_int_equal (v.rep[2]->done[BDEV_READ], 0);

  v.rep[0]->conn->hold_ops = 0;
  fake_bdev_release (v.rep[0]->conn);
  assert_true (fake_run_until (v.loop, finished, &o, WAIT));
  assert_int_equal (o.err, 0);
  assert_int_equal (o.repaired, 2);
  for (int i = 0; i < 3; i++)
    assert_memory_equal (v.rep[i]->data, want, VOL);
  assert_int_equal (v.rep[0]->nwrites, 0);      /* the source of truth */
  assert_int_equal (v.rep[1]->nwrites, 1);      /* region 1 */
  assert_int_equal (v.rep[2]->nwrites, 2);      /* regions 1 and 3 */

  /* Done: reads go to the fastest replica again. */
  fake_client_submit (v.engine, &rd, BDEV_READ, 0, 4096, got);
  assert_true (fake_client_wait (&v, &rd, WAIT));
  assert_int_equal (v.rep[1]->done[BDEV_READ], 1);
  free (want);
  fake_vol_close (&v);
}

/* With no in-sync replica there is nothing to reconcile from. */
static void
test_reconcile_without_in_sync_replica (void **state)
{
  struct fake_vol v;
  struct outcome o = { 0 };
  enum engine_rep_state st[2] = { ENGINE_OUT, ENGINE_OUT };

  fake_vol_open (&v, 2, VOL, st, NULL);
  engine_reconcile (v.engine, on_reconciled, &o);
  assert_int_equal (o.done, 1);
  assert_int_equal (o.err, EIO);
  fake_vol_close (&v);
}

/* Replicas fail while a repair reads its source.  The one to repair
 * (r0) fails: its slot has no bdev now, and the repair must not write
 * to it (it is caught up from the dirty map instead).  Another (r2)
 * fails: the repair write to r0 is one r2 misses, so it carries
 * BDEV_DIRTY (rule 2).
 */
static void
test_verify_replica_fails_before_repair (void **state)
{
  for (int lost = 0; lost <= 2; lost += 2) {
    struct fake_vol v;
    struct outcome o;

    open_equal (&v, 3);
    memset (v.rep[0]->data + 1 * VR + 4096, 0x5a, 512);
    struct fake_bdev *src = v.rep[1]->conn;
    src->hold_ops = FAKE_OP (BDEV_READ);
    memset (&o, 0, sizeof o);
    engine_verify (v.engine, true, on_line, on_verified, &o);
    assert_true (fake_run_until_held (v.loop, src, 1, WAIT));
    /* A client write elsewhere is in flight on the one lost, so the
     * engine hears of the loss at once.
     */
    static uint8_t data[4096];
    struct fake_client_io c;
    v.rep[lost]->conn->hold_ops = FAKE_OP (BDEV_WRITE);
    fake_client_submit (v.engine, &c, BDEV_WRITE, 3 * VR, sizeof data, data);
    assert_true (fake_run_until_held (v.loop, v.rep[lost]->conn, 1, WAIT));
    fake_bdev_kill (v.rep[lost]->conn);
    assert_true (fake_client_wait (&v, &c, WAIT));
    assert_int_equal (c.err, 0);
    fake_run_for (v.loop, 10);          /* its bdev leaves the slot */
    assert_int_equal (v.owner.out_of_sync[lost], 1);
    src->hold_ops = 0;
    fake_bdev_release (src);
    assert_true (fake_run_until (v.loop, finished, &o, WAIT));
    assert_int_equal (o.err, 0);
    assert_int_equal (o.differing, 1);
    /* r0 got the client write (unless lost), and the repair? */
    for (size_t k = 0; k < v.rep[0]->nwrites; k++)
      assert_true (v.rep[0]->writes[k].offset == 3 * VR || lost == 2);
    if (lost == 0) {
      assert_int_equal (o.repaired, 0);
      assert_int_equal (v.rep[0]->nwrites, 0);
    }
    else {
      assert_int_equal (o.repaired, 1);
      assert_int_equal (v.rep[0]->nwrites, 2);
      assert_true (v.rep[0]->writes[1].offset == VR);
      assert_true (v.rep[0]->writes[1].flags & BDEV_DIRTY);
      assert_true (fake_replica_dirty (v.rep[0], VR / v.rep[0]->region));
      assert_memory_equal (v.rep[0]->data + VR, v.rep[1]->data + VR, VR);
    }
    outcome_free (&o);
    fake_vol_close (&v);
  }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_verify_finds_planted_difference),
    cmocka_unit_test (test_verify_repairs_from_majority),
    cmocka_unit_test (test_verify_is_ordered_with_writes),
    cmocka_unit_test (test_verify_stops_on_error),
    cmocka_unit_test (test_reconcile_after_crash),
    cmocka_unit_test (test_reconcile_without_in_sync_replica),
    cmocka_unit_test (test_verify_replica_fails_before_repair),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
