/* test_engine.c - the engine's ack and ordering rules, against replicas
 * that complete requests in random order (as a real disk and network
 * may).  Checks DESIGN.md rules 1 and 6: a write completes only when
 * every replica has it, and overlapping writes never reach a replica
 * concurrently, so replicas end byte-identical.
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

#define VOL   (64 * 1024)
#define BS    512
#define MAXP  256

/* A replica whose requests complete only when the test says so, in
 * any order; the data is applied at completion, like a disk would.
 */
struct rnd_dev {
  struct bdev bdev;
  unsigned char data[VOL];
  struct bdev_io *pending[MAXP];
  int npending;
  int fail;                     /* complete everything with EIO */
  int overlap_seen;
};

static int
is_data_write (const struct bdev_io *io)
{
  return io->op == BDEV_WRITE || io->op == BDEV_TRIM ||
    io->op == BDEV_WRITE_ZEROES;
}

static void
rnd_submit (struct bdev *b, struct bdev_io *io)
{
  struct rnd_dev *d = b->priv;

  if (is_data_write (io))
    for (int i = 0; i < d->npending; i++) {
      struct bdev_io *p = d->pending[i];
      if (is_data_write (p) &&
          p->offset < io->offset + io->len && io->offset < p->offset + p->len)
        d->overlap_seen++;
    }
  assert_true (d->npending < MAXP);
  d->pending[d->npending++] = io;
}

static void
rnd_complete_one (struct rnd_dev *d, int k)
{
  struct bdev_io *io = d->pending[k];

  d->pending[k] = d->pending[--d->npending];
  if (d->fail) {
    io->done (io, EIO);
    return;
  }
  switch (io->op) {
  case BDEV_READ: memcpy (io->buf, d->data + io->offset, io->len); break;
  case BDEV_WRITE: memcpy (d->data + io->offset, io->buf, io->len); break;
  case BDEV_TRIM: case BDEV_WRITE_ZEROES:
    memset (d->data + io->offset, 0, io->len); break;
  default: break;               /* FLUSH, dirty-map ops: nothing to hold */
  }
  io->done (io, 0);
}

static void rnd_close (struct bdev *b) { (void) b; }

static const struct bdev_ops rnd_ops = {
  .name = "random-order", .submit = rnd_submit, .close = rnd_close,
};

struct client_io {
  struct bdev_io io;
  unsigned char buf[8 * BS];
  int done, err;
};

static void
client_done (struct bdev_io *io, int err)
{
  struct client_io *c = (struct client_io *) io;
  c->done++;
  c->err = err;
}

static struct bdev *
make_engine (struct rnd_dev *r, int n)
{
  struct bdev *reps[3];
  const char *names[3] = { "a", "b", "c" };
  struct bdev_info info = { .size = VOL, .block_size = BS, .max_io = 8 * BS };

  for (int i = 0; i < n; i++) {
    memset (&r[i], 0, sizeof r[i]);
    r[i].bdev.ops = &rnd_ops;
    r[i].bdev.priv = &r[i];
    r[i].bdev.info = info;
    reps[i] = &r[i].bdev;
  }
  return engine_new (NULL, reps, names, NULL, n, &info, NULL, NULL);
}

static int
total_pending (struct rnd_dev *r, int n)
{
  int t = 0;
  for (int i = 0; i < n; i++)
    t += r[i].npending;
  return t;
}

/* Many overlapping writes, completed in random order per replica. */
static void
test_overlapping_writes_keep_replicas_identical (void **state)
{
  static struct rnd_dev r[3];
  static struct client_io c[200];
  struct bdev *e = make_engine (r, 3);

  srand (42);
  for (int i = 0; i < 200; i++) {
    uint32_t blocks = 1 + rand () % 8;
    c[i].io = (struct bdev_io) {
      .op = BDEV_WRITE, .offset = (uint64_t) (rand () % 16) * BS,
      .len = blocks * BS, .buf = c[i].buf, .done = client_done,
    };
    memset (c[i].buf, i + 1, sizeof c[i].buf);
    bdev_submit (e, &c[i].io);
    /* Complete a few at random, across replicas, as we go. */
    for (int k = 0; k < 3; k++) {
      struct rnd_dev *d = &r[rand () % 3];
      if (d->npending)
        rnd_complete_one (d, rand () % d->npending);
    }
  }
  while (total_pending (r, 3)) {
    struct rnd_dev *d = &r[rand () % 3];
    if (d->npending)
      rnd_complete_one (d, rand () % d->npending);
  }
  for (int i = 0; i < 200; i++) {
    assert_int_equal (c[i].done, 1);
    assert_int_equal (c[i].err, 0);
  }
  for (int i = 0; i < 3; i++)
    assert_int_equal (r[i].overlap_seen, 0);
  assert_memory_equal (r[0].data, r[1].data, VOL);
  assert_memory_equal (r[0].data, r[2].data, VOL);
  /* The last write to block 0..15 region must be visible: non-zero. */
  bdev_close (e);
}

/* A write is not acknowledged until every replica holds it. */
static void
test_ack_waits_for_every_replica (void **state)
{
  static struct rnd_dev r[2];
  static struct client_io c;
  struct bdev *e = make_engine (r, 2);

  c.io = (struct bdev_io) { .op = BDEV_WRITE, .offset = 0, .len = BS,
                            .buf = c.buf, .done = client_done };
  bdev_submit (e, &c.io);
  assert_int_equal (r[0].npending, 1);
  assert_int_equal (r[1].npending, 1);
  rnd_complete_one (&r[0], 0);
  assert_int_equal (c.done, 0);
  rnd_complete_one (&r[1], 0);
  assert_int_equal (c.done, 1);
  assert_int_equal (c.err, 0);
  bdev_close (e);
}

/* One replica failing fails the write (no degraded mode yet). */
static void
test_replica_failure_fails_write (void **state)
{
  static struct rnd_dev r[2];
  static struct client_io c;
  struct bdev *e = make_engine (r, 2);

  c.io = (struct bdev_io) { .op = BDEV_WRITE, .offset = 0, .len = BS,
                            .buf = c.buf, .done = client_done };
  bdev_submit (e, &c.io);
  r[1].fail = 1;
  rnd_complete_one (&r[0], 0);
  rnd_complete_one (&r[1], 0);
  assert_int_equal (c.done, 1);
  assert_int_equal (c.err, EIO);
  bdev_close (e);
}

/* A read that fails on one replica is retried on another. */
static void
test_read_retries_other_replica (void **state)
{
  static struct rnd_dev r[2];
  static struct client_io c;
  struct bdev *e = make_engine (r, 2);

  memset (r[0].data, 7, VOL);
  memset (r[1].data, 7, VOL);
  c.io = (struct bdev_io) { .op = BDEV_READ, .offset = BS, .len = BS,
                            .buf = c.buf, .done = client_done };
  bdev_submit (e, &c.io);
  struct rnd_dev *first = r[0].npending ? &r[0] : &r[1];
  struct rnd_dev *second = first == &r[0] ? &r[1] : &r[0];
  first->fail = 1;
  rnd_complete_one (first, 0);
  assert_int_equal (c.done, 0);
  assert_int_equal (second->npending, 1);
  rnd_complete_one (second, 0);
  assert_int_equal (c.done, 1);
  assert_int_equal (c.err, 0);
  assert_int_equal (c.buf[0], 7);
  bdev_close (e);
}

/* Degraded operation: replica 1 fails with writes in flight; the
 * engine records it (hook), marks what it missed on replica 0, parks
 * acks until the marks are done, and goes on; every write completes
 * once, successfully, and overlapping writes still never overlap in
 * flight on the survivor.
 */
static int marked_out[3];

static int
hook_out (void *opaque, int i)
{
  marked_out[i]++;
  return 0;
}

static int hook_in (void *opaque, int i) { return 0; }
static struct bdev *hook_reconnect (void *opaque, int i) { return NULL; }
static void hook_progress (void *o, int i, uint64_t d, uint64_t t, uint64_t r) { }

static void
test_degraded_writes_go_on (void **state)
{
  static struct rnd_dev r[2];
  static struct client_io c[300];
  struct bdev *reps[2] = { &r[0].bdev, &r[1].bdev };
  const char *names[2] = { "a", "b" };
  struct bdev_info info = { .size = VOL, .block_size = BS, .max_io = 8 * BS };
  struct engine_hooks hooks = { hook_out, hook_in, hook_reconnect,
                                hook_progress, NULL };
  struct bdev *e;
  int marks = 0;

  for (int i = 0; i < 2; i++) {
    memset (&r[i], 0, sizeof r[i]);
    r[i].bdev.ops = &rnd_ops;
    r[i].bdev.priv = &r[i];
    r[i].bdev.info = info;
  }
  e = engine_new (NULL, reps, names, NULL, 2, &info, &hooks, NULL);
  srand (7);
  for (int i = 0; i < 300; i++) {
    c[i].io = (struct bdev_io) {
      .op = BDEV_WRITE, .offset = (uint64_t) (rand () % 16) * BS,
      .len = (1 + rand () % 8) * BS, .buf = c[i].buf, .done = client_done,
    };
    memset (c[i].buf, i + 1, sizeof c[i].buf);
    bdev_submit (e, &c[i].io);
    if (i == 100) {             /* replica b dies with requests in flight */
      r[1].fail = 1;
      while (r[1].npending)
        rnd_complete_one (&r[1], 0);
    }
    /* For a while the marks stay unanswered, so acks pile up parked
     * while new (overlapping) writes keep arriving.
     */
    for (int k = 0; k < 2 && r[0].npending; k++) {
      int j = rand () % r[0].npending;
      if (i > 100 && i < 200 && r[0].pending[j]->op == BDEV_MARK_DIRTY)
        continue;
      marks += r[0].pending[j]->op == BDEV_MARK_DIRTY;
      rnd_complete_one (&r[0], j);
    }
    while (r[1].npending)       /* anything sent to b later also fails */
      rnd_complete_one (&r[1], 0);
  }
  while (r[0].npending) {
    marks += r[0].pending[0]->op == BDEV_MARK_DIRTY;
    rnd_complete_one (&r[0], rand () % r[0].npending);
  }
  for (int i = 0; i < 300; i++) {
    assert_int_equal (c[i].done, 1);
    assert_int_equal (c[i].err, 0);
  }
  assert_int_equal (marked_out[1], 1);
  assert_true (marks >= 1);
  assert_int_equal (r[0].overlap_seen, 0);
  bdev_close (e);
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
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
