/* test_engine.c - the engine's ack and ordering rules, against replicas
 * that complete requests in random order (as a real disk and network
 * may).  Checks docs/DESIGN.md rules 1 and 6: a write completes only when
 * every replica has it, and overlapping writes never reach a replica
 * concurrently, so replicas end byte-identical; and a fenced engine
 * (rule 3) fails every request with EIO and records nothing.
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

#define VOL   (64 * 1024)
#define BS    512

/* Replicas whose requests complete only when the test says so, in
 * any order (fake_bdev with every op held); the data is applied at
 * completion, like a disk would.
 */
static struct fake_replica *rep[3];
static struct fake_bdev *dev[3];

struct client_io {
  struct fake_client_io c;
  unsigned char buf[8 * BS];
};

static void
client_start (struct bdev *e, struct client_io *c, enum bdev_op op,
              uint64_t offset, uint32_t len)
{
  fake_client_submit (e, &c->c, op, offset, len, c->buf);
}

static int
total_pending (int n)
{
  int t = 0;
  for (int i = 0; i < n; i++)
    t += dev[i]->nheld;
  return t;
}

static void
free_replicas (int n)
{
  for (int i = 0; i < n; i++)
    fake_replica_free (rep[i]);
}

static struct bdev *
make_engine (int n, const struct engine_hooks *hooks)
{
  struct bdev *reps[3];
  const char *names[3] = { "a", "b", "c" };
  struct bdev_info info = { .size = VOL, .block_size = BS, .max_io = 8 * BS };

  for (int i = 0; i < n; i++) {
    rep[i] = fake_replica_new (VOL);
    dev[i] = fake_bdev_new (rep[i], NULL, &info);
    dev[i]->hold_ops = FAKE_ALL_OPS;
    reps[i] = &dev[i]->bdev;
  }
  return engine_new (NULL, reps, names, NULL, n, &info, hooks, NULL);
}

/* Many overlapping writes, completed in random order per replica. */
static void
test_overlapping_writes_keep_replicas_identical (void **state)
{
  static struct client_io c[200];
  struct bdev *e = make_engine (3, NULL);

  srand (42);
  for (int i = 0; i < 200; i++) {
    uint32_t blocks = 1 + rand () % 8;
    uint64_t offset = (uint64_t) (rand () % 16) * BS;
    memset (c[i].buf, i + 1, sizeof c[i].buf);
    client_start (e, &c[i], BDEV_WRITE, offset, blocks * BS);
    /* Complete a few at random, across replicas, as we go. */
    for (int k = 0; k < 3; k++) {
      struct fake_bdev *d = dev[rand () % 3];
      if (d->nheld)
        fake_bdev_complete (d, rand () % d->nheld);
    }
  }
  while (total_pending (3)) {
    struct fake_bdev *d = dev[rand () % 3];
    if (d->nheld)
      fake_bdev_complete (d, rand () % d->nheld);
  }
  for (int i = 0; i < 200; i++) {
    assert_int_equal (c[i].c.done, 1);
    assert_int_equal (c[i].c.err, 0);
  }
  for (int i = 0; i < 3; i++)
    assert_int_equal (dev[i]->overlap_seen, 0);
  assert_memory_equal (rep[0]->data, rep[1]->data, VOL);
  assert_memory_equal (rep[0]->data, rep[2]->data, VOL);
  /* The last write to block 0..15 region must be visible: non-zero. */
  bdev_close (e);
  free_replicas (3);
}

/* A write is not acknowledged until every replica holds it. */
static void
test_ack_waits_for_every_replica (void **state)
{
  static struct client_io c;
  struct bdev *e = make_engine (2, NULL);

  client_start (e, &c, BDEV_WRITE, 0, BS);
  assert_int_equal (dev[0]->nheld, 1);
  assert_int_equal (dev[1]->nheld, 1);
  fake_bdev_complete (dev[0], 0);
  assert_int_equal (c.c.done, 0);
  fake_bdev_complete (dev[1], 0);
  assert_int_equal (c.c.done, 1);
  assert_int_equal (c.c.err, 0);
  bdev_close (e);
  free_replicas (2);
}

/* One replica failing fails the write (no degraded mode yet). */
static void
test_replica_failure_fails_write (void **state)
{
  static struct client_io c;
  struct bdev *e = make_engine (2, NULL);

  client_start (e, &c, BDEV_WRITE, 0, BS);
  dev[1]->failing = true;
  fake_bdev_complete (dev[0], 0);
  fake_bdev_complete (dev[1], 0);
  assert_int_equal (c.c.done, 1);
  assert_int_equal (c.c.err, EIO);
  bdev_close (e);
  free_replicas (2);
}

/* A read that fails on one replica is retried on another. */
static void
test_read_retries_other_replica (void **state)
{
  static struct client_io c;
  struct bdev *e = make_engine (2, NULL);

  memset (rep[0]->data, 7, VOL);
  memset (rep[1]->data, 7, VOL);
  client_start (e, &c, BDEV_READ, BS, BS);
  struct fake_bdev *first = dev[0]->nheld ? dev[0] : dev[1];
  struct fake_bdev *second = first == dev[0] ? dev[1] : dev[0];
  first->failing = true;
  fake_bdev_complete (first, 0);
  assert_int_equal (c.c.done, 0);
  assert_int_equal (second->nheld, 1);
  fake_bdev_complete (second, 0);
  assert_int_equal (c.c.done, 1);
  assert_int_equal (c.c.err, 0);
  assert_int_equal (c.buf[0], 7);
  bdev_close (e);
  free_replicas (2);
}

/* Degraded operation: replica 1 fails with writes in flight; the
 * engine records it (hook), marks what it missed on replica 0, parks
 * acks until the marks are done, and goes on; every write completes
 * once, successfully, and overlapping writes still never overlap in
 * flight on the survivor.
 */
static void
test_degraded_writes_go_on (void **state)
{
  static struct client_io c[300];
  static struct fake_owner owner;
  struct bdev *e;
  int marks = 0;

  fake_owner_init (&owner);
  e = make_engine (2, &owner.hooks);
  srand (7);
  for (int i = 0; i < 300; i++) {
    uint64_t offset = (uint64_t) (rand () % 16) * BS;
    uint32_t len = (1 + rand () % 8) * BS;
    memset (c[i].buf, i + 1, sizeof c[i].buf);
    client_start (e, &c[i], BDEV_WRITE, offset, len);
    if (i == 100) {             /* replica b dies with requests in flight */
      dev[1]->failing = true;
      while (dev[1]->nheld)
        fake_bdev_complete (dev[1], 0);
    }
    /* For a while the marks stay unanswered, so acks pile up parked
     * while new (overlapping) writes keep arriving.
     */
    for (int k = 0; k < 2 && dev[0]->nheld; k++) {
      int j = rand () % dev[0]->nheld;
      if (i > 100 && i < 200 &&
          fake_bdev_held (dev[0], j)->op == BDEV_MARK_DIRTY)
        continue;
      marks += fake_bdev_held (dev[0], j)->op == BDEV_MARK_DIRTY;
      fake_bdev_complete (dev[0], j);
    }
    while (dev[1]->nheld)       /* anything sent to b later also fails */
      fake_bdev_complete (dev[1], 0);
  }
  while (dev[0]->nheld) {
    marks += fake_bdev_held (dev[0], 0)->op == BDEV_MARK_DIRTY;
    fake_bdev_complete (dev[0], rand () % dev[0]->nheld);
  }
  for (int i = 0; i < 300; i++) {
    assert_int_equal (c[i].c.done, 1);
    assert_int_equal (c[i].c.err, 0);
  }
  assert_int_equal (owner.out_of_sync[1], 1);
  assert_true (marks >= 1);
  assert_int_equal (dev[0]->overlap_seen, 0);
  bdev_close (e);
  free_replicas (2);
}

/* Fenced (a replica answers EPERM: a newer attachment holds the
 * volume): the owner hears it once; every request in flight fails with
 * EIO even where its replicas answered, later ones fail at once, reads
 * too; nothing is recorded out of sync.
 */
static void
test_fenced (void **state)
{
  static struct client_io w1, w2, r1, w3, r2;
  static struct fake_owner owner;
  struct bdev *e;

  fake_owner_init (&owner);
  e = make_engine (2, &owner.hooks);
  memset (rep[0]->data, 7, VOL);
  memset (rep[1]->data, 7, VOL);
  client_start (e, &w1, BDEV_WRITE, 0, BS);
  client_start (e, &r1, BDEV_READ, 8 * BS, BS);
  dev[1]->fail_ops = FAKE_ALL_OPS;      /* from now on b refuses our epoch */
  dev[1]->fail_err = EPERM;
  client_start (e, &w2, BDEV_WRITE, 4 * BS, BS);
  for (int k = 0; k < dev[1]->nheld; k++)
    if (fake_bdev_held (dev[1], k)->offset == 4 * BS) {
      fake_bdev_complete (dev[1], k);
      break;
    }
  assert_int_equal (owner.fenced[1], 1);
  assert_int_equal (w2.c.done, 0);      /* a's part still in flight */
  while (total_pending (2)) {
    struct fake_bdev *d = dev[0]->nheld ? dev[0] : dev[1];
    fake_bdev_complete (d, 0);
  }
  assert_int_equal (w1.c.done, 1);
  assert_int_equal (w1.c.err, EIO);     /* answered OK by both, yet EIO */
  assert_int_equal (w2.c.done, 1);
  assert_int_equal (w2.c.err, EIO);
  assert_int_equal (r1.c.done, 1);
  assert_int_equal (r1.c.err, EIO);
  /* After the fence: at once, without reaching a replica. */
  uint64_t sent = dev[0]->submitted + dev[1]->submitted;
  client_start (e, &w3, BDEV_WRITE, 0, BS);
  client_start (e, &r2, BDEV_READ, 0, BS);
  assert_int_equal (w3.c.done, 1);
  assert_int_equal (w3.c.err, EIO);
  assert_int_equal (r2.c.done, 1);
  assert_int_equal (r2.c.err, EIO);
  assert_true (dev[0]->submitted + dev[1]->submitted == sent);
  assert_int_equal (owner.fenced[0] + owner.fenced[1], 1);
  assert_int_equal (owner.out_of_sync[0] + owner.out_of_sync[1], 0);
  bdev_close (e);
  free_replicas (2);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_overlapping_writes_keep_replicas_identical),
    cmocka_unit_test (test_ack_waits_for_every_replica),
    cmocka_unit_test (test_replica_failure_fails_write),
    cmocka_unit_test (test_read_retries_other_replica),
    cmocka_unit_test (test_degraded_writes_go_on),
    cmocka_unit_test (test_fenced),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
