/* test_cow.c - the snapshot layer's point in time and change tracking,
 * against a device that completes requests in random order.
 *
 * Writes keep flowing through the layer while a snapshot uploads to a
 * file:// store; afterwards every chunk in the manifest must hash to the
 * volume's contents at the point (none of the later writes), the device
 * must hold every write, and the next snapshot must read exactly the
 * chunks written since the point.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/loop.h"
#include "snapshot/catalog.h"
#include "snapshot/snapshot.h"

#define CHUNK  (64 * 1024)
#define NCHUNK 64
#define VOL    (CHUNK * NCHUNK)
#define WSIZE  4096
#define MAXP   256

/* ---- a device whose requests complete in random order, on the loop ---- */

struct rnd_dev {
  struct bdev bdev;
  struct loop *loop;
  struct loop_timer tick;
  unsigned char *data;
  struct bdev_io *pending[MAXP];
  int npending;
};

static void
rnd_tick (struct loop_timer *t)
{
  struct rnd_dev *d = t->opaque;

  /* Complete about half of what is pending, in random order. */
  for (int n = (d->npending + 1) / 2; n > 0 && d->npending > 0; n--) {
    int k = rand () % d->npending;
    struct bdev_io *io = d->pending[k];
    d->pending[k] = d->pending[--d->npending];
    if (io->op == BDEV_READ)
      memcpy (io->buf, d->data + io->offset, io->len);
    else if (io->op == BDEV_WRITE)
      memcpy (d->data + io->offset, io->buf, io->len);
    io->done (io, 0);
  }
  loop_timer_arm (d->loop, &d->tick, 1, rnd_tick, d);
}

static void
rnd_submit (struct bdev *b, struct bdev_io *io)
{
  struct rnd_dev *d = b->priv;
  assert_true (d->npending < MAXP);
  d->pending[d->npending++] = io;
}

static void
rnd_drain (struct bdev *b, void (*done) (void *), void *opaque)
{
  done (opaque);
}

static void rnd_close (struct bdev *b) { (void) b; }

static const struct bdev_ops rnd_ops = {
  .name = "random-order", .submit = rnd_submit, .drain = rnd_drain,
  .close = rnd_close,
};

/* ---- the test's writer ---------------------------------------------------- */

struct run {
  struct loop *loop;
  struct rnd_dev dev;
  struct bdev *cow;
  unsigned char *at_point;      /* the volume when the point was taken */
  unsigned char *expect;        /* what the device must end up holding */
  unsigned char *completed;     /* the writes acknowledged so far */
  struct loop_timer writer;
  struct bdev_io ios[8];
  unsigned char bufs[8][WSIZE];
  bool busy[8];
  bool point_seen, done, writing;
  int err;
  uint64_t chunks_total;
  bool written_after[NCHUNK];
  unsigned seq;
  int budget;                   /* writes left to issue */
};

static void
write_done (struct bdev_io *io, int err)
{
  struct run *r = io->opaque;
  assert_int_equal (err, 0);
  memcpy (r->completed + io->offset, io->buf, io->len);
  r->busy[io - r->ios] = false;
}

static void
writer (struct loop_timer *t)
{
  struct run *r = t->opaque;

  for (int k = 0; r->writing && (!r->point_seen || r->budget > 0) && k < 8; k++) {
    if (r->busy[k])
      continue;
    uint64_t block = rand () % (VOL / WSIZE);
    memset (r->bufs[k], 0x80 | (++r->seq & 0x7f), WSIZE);
    /* The expected image takes each write at submission: no two writes
     * to one block are in flight at once in this test (checked below).
     */
    for (int j = 0; j < 8; j++)
      if (r->busy[j] && r->ios[j].offset == block * WSIZE)
        goto next;
    memcpy (r->expect + block * WSIZE, r->bufs[k], WSIZE);
    if (r->point_seen)
      r->written_after[block * WSIZE / CHUNK] = true;
    r->busy[k] = true;
    r->budget -= r->point_seen;
    r->ios[k] = (struct bdev_io) {
      .op = BDEV_WRITE, .offset = block * WSIZE, .len = WSIZE,
      .buf = r->bufs[k], .done = write_done, .opaque = r,
    };
    bdev_submit (r->cow, &r->ios[k]);
  next:;
  }
  loop_timer_arm (r->loop, &r->writer, 1, writer, r);
}

static void
on_line (void *opaque, const char *line)
{
  struct run *r = opaque;
  unsigned long long total;
  char name[64], parent[64];

  if (strncmp (line, "point ", 6) == 0) {
    /* No write is in flight below at the point: the snapshot must hold
     * exactly the writes acknowledged before it (those held back by the
     * barrier come after it).
     */
    r->point_seen = true;
    for (int k = 0; k < r->dev.npending; k++)
      assert_int_not_equal (r->dev.pending[k]->op, BDEV_WRITE);
    memcpy (r->at_point, r->completed, VOL);
    /* What counts as changed from here: writes held by the barrier, and
     * every write submitted from now on.
     */
    memset (r->written_after, 0, sizeof r->written_after);
    for (int k = 0; k < 8; k++)
      if (r->busy[k])
        r->written_after[r->ios[k].offset / CHUNK] = true;
  }
  if (strncmp (line, "error", 5) == 0)
    print_message ("%s\n", line);
  if (sscanf (line, "ok %63s %63s %llu", name, parent, &total) == 3)
    r->chunks_total = total;
}

static void
on_done (void *opaque, int err, const char *name, const char *url)
{
  struct run *r = opaque;
  r->err = err;
  r->done = true;
  loop_stop (r->loop);
}

/* Run one snapshot while the writer runs; returns when it is done. */
static void
snapshot (struct run *r, const char *url, const char *name, const char *base)
{
  struct snap_params p = {
    .url = url, .name = name, .volume = "v", .volume_uuid = "0b7f6c1e-2f4e-4d0a-9a57-1c2d3e4f5a6b",
    .volume_size = VOL, .base_url = base[0] ? url : "", .base_name = base,
    .cbt_valid = true,
  };
  r->done = false;
  r->point_seen = false;
  assert_int_equal (cow_snapshot (r->cow, &p, on_line, on_done, r), 0);
  loop_run (r->loop);
  assert_true (r->done);
  assert_int_equal (r->err, 0);
  assert_true (r->point_seen);
}

static void
check_manifest (const char *url, const char *name, const unsigned char *image)
{
  struct error err = { 0 };
  struct objstore *os = objstore_open (url, &err);
  struct manifest m;

  assert_non_null (os);
  assert_int_equal (manifest_read (os, name, &m, &err), 0);
  assert_int_equal (m.nchunks, NCHUNK);
  for (int i = 0; i < NCHUNK; i++) {
    uint8_t h[CHUNK_HASH_LEN];
    chunk_hash (image + (size_t) i * CHUNK, CHUNK, h);
    if (mem_is_zero (image + (size_t) i * CHUNK, CHUNK))
      assert_false (m.present[i]);
    else {
      assert_true (m.present[i]);
      assert_memory_equal (m.hashes[i], h, CHUNK_HASH_LEN);
    }
  }
  manifest_free (&m);
  objstore_close (os);
}

static void
point_in_time_under_writes (void)
{
  /* Enough writes to race the whole first upload, few enough that the
   * second snapshot's change set is a strict subset of the volume.
   */
  struct run r = { .writing = true, .budget = 30 };
  char dir[] = "/tmp/test_cow.XXXXXX", url[64];
  uint8_t *cbt = malloc (NCHUNK / 8);

  assert_non_null (mkdtemp (dir));
  snprintf (url, sizeof url, "file://%s", dir);
  srand (7);
  r.loop = loop_new ();
  r.dev.data = malloc (VOL);
  r.expect = malloc (VOL);
  r.at_point = malloc (VOL);
  r.completed = malloc (VOL);
  /* Every chunk has data; chunk 5 is all zero (never stored). */
  for (int i = 0; i < VOL; i++)
    r.dev.data[i] = (uint8_t) (i / CHUNK + 1);
  memset (r.dev.data + 5 * CHUNK, 0, CHUNK);
  memcpy (r.expect, r.dev.data, VOL);
  memcpy (r.completed, r.dev.data, VOL);
  r.dev.bdev = (struct bdev) { .ops = &rnd_ops, .priv = &r.dev,
                               .info = { .size = VOL, .block_size = 512,
                                         .max_io = 1 << 20 } };
  r.dev.loop = r.loop;
  loop_timer_arm (r.loop, &r.dev.tick, 1, rnd_tick, &r.dev);
  memset (cbt, 0xff, NCHUNK / 8);        /* everything changed */
  r.cow = cow_new (r.loop, &r.dev.bdev, CHUNK, cbt);
  assert_non_null (r.cow);
  loop_timer_arm (r.loop, &r.writer, 1, writer, &r);

  /* 1: a full snapshot holds the volume at the point, not later writes. */
  snapshot (&r, url, "s1", "");
  check_manifest (url, "s1", r.at_point);
  assert_int_equal (r.chunks_total, NCHUNK);

  /* 2: the next one reads exactly the chunks written since point 1:
   * stop writing, so that set is known.
   */
  r.writing = false;            /* writes in flight finish before point 2 */
  /* Changed since point 1: the writes the barrier held, and those
   * submitted after it.  They are all done before point 2 (no more
   * writes now).
   */
  uint64_t written = 0;
  for (int i = 0; i < NCHUNK; i++)
    written += r.written_after[i];
  assert_true (written > 0 && written < NCHUNK);   /* else proves little */
  snapshot (&r, url, "s2", "s1");
  check_manifest (url, "s2", r.at_point);
  assert_int_equal (r.chunks_total, written);

  /* The device holds every write. */
  assert_memory_equal (r.dev.data, r.expect, VOL);

  loop_timer_cancel (r.loop, &r.dev.tick);
  loop_timer_cancel (r.loop, &r.writer);
  bdev_close (r.cow);
  loop_free (r.loop);
  free (r.dev.data);
  free (r.expect);
  free (r.at_point);
  free (r.completed);
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal (system (cmd), 0);
}

static void
test_point_in_time_under_writes (void **state)
{
  point_in_time_under_writes ();
}

/* The same with every captured chunk going through the spill file. */
static void
test_point_in_time_spilled (void **state)
{
  setenv ("REPVOL_SNAPSHOT_MEM", "0", 1);
  point_in_time_under_writes ();
  unsetenv ("REPVOL_SNAPSHOT_MEM");
}


/* ---- the journal: a write into a fresh chunk waits for its bit -------- */

struct jrec {
  int calls;
  uint8_t *map;                 /* the last persist's, until answered */
  uint64_t gen;
};

static void
jpersist (void *opaque, uint8_t *map, size_t len, uint64_t gen)
{
  struct jrec *j = opaque;
  assert_null (j->map);         /* one at a time */
  assert_int_equal (len, NCHUNK / 8);
  j->calls++;
  j->map = map;
  j->gen = gen;
}

static void
jwrite_done (struct bdev_io *io, int err)
{
  *(int *) io->opaque = err ? -1 : 1;
}

static void
jwrite (struct bdev *cow, struct bdev_io *io, int *st, uint64_t chunk,
        void *buf)
{
  *st = 0;
  memset (io, 0, sizeof *io);
  io->done = jwrite_done;
  io->opaque = st;
  bdev_write (cow, io, chunk * CHUNK, WSIZE, buf, 0);
}

/* Complete what the device holds. */
static void
jflush_dev (struct rnd_dev *d)
{
  while (d->npending > 0) {
    struct bdev_io *io = d->pending[--d->npending];
    io->done (io, 0);
  }
}

static void
janswer (struct bdev *cow, struct jrec *j, int err)
{
  uint8_t *map = j->map;
  j->map = NULL;
  cow_journal_done (cow, map, j->gen, err);
}

static void
test_journal (void **state)
{
  struct loop *loop = loop_new ();
  struct rnd_dev dev = { .bdev = { .ops = &rnd_ops,
                                   .info = { .size = VOL, .block_size = 512,
                                             .max_io = 1 << 20 } } };
  static unsigned char buf[WSIZE];
  struct bdev_io io[6];
  int st[6];
  struct jrec j = { 0 };
  struct cow_journal cj = { .persist = jpersist, .opaque = &j };

  dev.bdev.priv = &dev;
  dev.loop = loop;
  struct bdev *cow = cow_new (loop, &dev.bdev, CHUNK, calloc (1, NCHUNK / 8));
  assert_non_null (cow);
  assert_int_equal (cow_journal_start (cow, &cj, NULL), 0);

  /* Chunk 3: held, one persist with its bit. */
  jwrite (cow, &io[0], &st[0], 3, buf);
  assert_int_equal (j.calls, 1);
  assert_int_equal (dev.npending, 0);
  assert_true (j.map[0] & (1 << 3));
  /* Chunk 5 meanwhile: held, no second persist while one is out. */
  jwrite (cow, &io[1], &st[1], 5, buf);
  assert_int_equal (j.calls, 1);
  assert_int_equal (dev.npending, 0);
  /* Chunk 3 durable: its write goes; chunk 5 needs the next persist. */
  janswer (cow, &j, 0);
  assert_int_equal (dev.npending, 1);
  assert_int_equal (j.calls, 2);
  assert_true ((j.map[0] & 0x28) == 0x28);
  janswer (cow, &j, 0);
  assert_int_equal (dev.npending, 2);
  /* Chunk 3 again: no wait, no persist. */
  jwrite (cow, &io[2], &st[2], 3, buf);
  assert_int_equal (dev.npending, 3);
  assert_int_equal (j.calls, 2);
  jflush_dev (&dev);
  assert_int_equal (st[0] + st[1] + st[2], 3);

  /* The base moves with a persist out: its answer is for the old base
   * and makes nothing durable for the new one.
   */
  jwrite (cow, &io[3], &st[3], 9, buf);
  assert_int_equal (j.calls, 3);
  assert_int_equal (cow_journal_start (cow, &cj, NULL), 0);
  jwrite (cow, &io[4], &st[4], 3, buf);        /* not durable for it */
  assert_int_equal (j.calls, 3);
  janswer (cow, &j, 0);                        /* stale: persists again */
  assert_int_equal (dev.npending, 0);
  assert_int_equal (j.calls, 4);
  assert_true ((j.map[0] & 0x08) && (j.map[1] & 0x02));
  janswer (cow, &j, 0);
  assert_int_equal (dev.npending, 2);
  jflush_dev (&dev);
  assert_int_equal (st[3] + st[4], 2);

  /* The journal gives up (a detach with the registry away): the held
   * write fails, none goes down.
   */
  jwrite (cow, &io[5], &st[5], 20, buf);
  assert_int_equal (j.calls, 5);
  janswer (cow, &j, EIO);
  assert_int_equal (st[5], -1);
  assert_int_equal (dev.npending, 0);

  bdev_close (cow);
  loop_free (loop);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_point_in_time_under_writes),
    cmocka_unit_test (test_point_in_time_spilled),
    cmocka_unit_test (test_journal),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
