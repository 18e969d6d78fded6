/* test_hydrate.c - the lazy-restore layer (snapshot/hydrate.c) over a
 * RAM disk, serving a snapshot written to a file:// store with the
 * catalog API: a read of a chunk not yet in place fetches it and
 * returns the snapshot's bytes, which then sit on the disk below; a
 * write into such a chunk lands on top of the snapshot's data, not
 * under it; background hydration fills the whole disk with exactly the
 * image, saving its map before it reports done; a chunk whose object
 * is gone fails only the I/O that touches it, with EIO.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/util.h"
#include "core/loop.h"
#include "snapshot/catalog.h"
#include "snapshot/snapshot.h"
#include "lib/mem_bdev.h"

#define CHUNK (64u << 10)
#define NCHUNKS 8
#define VSIZE (NCHUNKS * CHUNK)
#define ZERO_CHUNK 2            /* all zeroes: not stored */

static char dir[64], url[96];
static uint8_t image[VSIZE];

/* Chunk i of the image, encoded and put, as "repvol snapshot create"
 * would; all-zero chunks are left out of the manifest.
 */
static void
write_snapshot (const char *name)
{
  struct error err = { 0 };
  struct objstore *os = objstore_open (url, &err);
  struct manifest m = { 0 };

  assert_non_null (os);
  assert_int_equal (manifest_init (&m, VSIZE, CHUNK), 0);
  snprintf (m.name, sizeof m.name, "%s", name);
  snprintf (m.volume, sizeof m.volume, "vol");
  m.created = m.completed = 1700000000;
  for (uint64_t i = 0; i < NCHUNKS; i++) {
    const uint8_t *c = image + i * CHUNK;
    char key[OBJ_KEY_MAX];
    void *obj;
    size_t olen;

    if (mem_is_zero (c, CHUNK))
      continue;
    chunk_hash (c, CHUNK, m.hashes[i]);
    m.present[i] = true;
    m.data_bytes += CHUNK;
    chunk_key (m.hashes[i], key);
    assert_int_equal (chunk_encode (c, CHUNK, 3, &obj, &olen), 0);
    assert_int_equal (objstore_put (os, key, obj, olen, &err), 0);
    free (obj);
  }
  assert_int_equal (manifest_write (os, &m, &err), 0);
  manifest_free (&m);
  objstore_close (os);
}

static int
setup (void **state)
{
  uint32_t x = 0x9e3779b9;

  snprintf (dir, sizeof dir, "/tmp/test_hydrate.XXXXXX");
  if (!mkdtemp (dir))
    return -1;
  snprintf (url, sizeof url, "file://%s", dir);
  for (size_t i = 0; i < VSIZE; i++) {
    x = x * 1103515245 + 12345;
    image[i] = x >> 24;
  }
  memset (image + ZERO_CHUNK * CHUNK, 0, CHUNK);
  write_snapshot ("s");
  return 0;
}

static int
teardown (void **state)
{
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system (cmd) == 0 ? 0 : -1;
}

/* What the hooks saw. */
struct run {
  struct loop *loop;
  int saves, finished, finish_err;
  uint64_t saved_hydrated;
  int pending, last_err;
};

static int
on_save (void *opaque, const uint8_t *map, size_t len, uint64_t hydrated,
         uint64_t total)
{
  struct run *r = opaque;

  assert_int_equal (len, chunk_map_bytes (VSIZE, CHUNK));
  assert_int_equal (total, NCHUNKS - 1);   /* the zero chunk is no work */
  r->saves++;
  r->saved_hydrated = hydrated;
  return 0;
}

static void
on_finished (void *opaque, int err, const char *why)
{
  struct run *r = opaque;

  r->finished++;
  r->finish_err = err;
  loop_stop (r->loop);
}

static void
io_done (struct bdev_io *io, int err)
{
  struct run *r = io->opaque;

  r->last_err = err;
  if (--r->pending == 0)
    loop_stop (r->loop);
}

static void
bound (struct loop_timer *t)
{
  loop_stop (t->opaque);
}

/* Run the loop until cond holds (bounded: 10 s). */
#define RUN_UNTIL(r, cond)                                              \
  do {                                                                  \
    struct loop_timer t_ = { 0 };                                       \
    uint64_t deadline_ = now_ns () + 10000000000ull;                    \
    while (!(cond) && now_ns () < deadline_) {                          \
      loop_timer_arm ((r)->loop, &t_, 20, bound, (r)->loop);            \
      loop_run ((r)->loop);                                             \
    }                                                                   \
    loop_timer_cancel ((r)->loop, &t_);                                 \
    assert_true (cond);                                                 \
  } while (0)

/* One request through the hydrate layer, to completion; its error. */
static int
do_io (struct run *r, struct bdev *h, enum bdev_op op, uint64_t off,
       uint32_t len, void *buf)
{
  struct bdev_io io = { .done = io_done, .opaque = r };

  r->pending = 1;
  r->last_err = -1;
  if (op == BDEV_READ)
    bdev_read (h, &io, off, len, buf, 0);
  else
    bdev_write (h, &io, off, len, buf, 0);
  RUN_UNTIL (r, r->pending == 0);
  return r->last_err;
}

static struct bdev *
open_hydrate (struct run *r, struct mem_bdev *mem, uint8_t *disk,
              bool background)
{
  struct hydrate_hooks hooks = { .save = on_save, .finished = on_finished,
                                 .opaque = r };
  struct error why = { 0 };
  struct bdev *h;

  memset (disk, 0, VSIZE);
  mem_bdev_init (mem, disk, VSIZE);
  r->loop = loop_new ();
  assert_non_null (r->loop);
  h = hydrate_new (r->loop, &mem->bdev, url, "s", NULL, background, &hooks,
                   &why);
  if (h == NULL)
    fail_msg ("hydrate_new: %s", error_msg (&why));
  return h;
}

static void
close_hydrate (struct run *r, struct bdev *h)
{
  bdev_close (h);
  loop_free (r->loop);
}

static void
test_on_demand (void **state)
{
  static uint8_t disk[VSIZE], buf[VSIZE], want[CHUNK];
  struct mem_bdev mem;
  struct run r = { 0 };
  struct bdev *h = open_hydrate (&r, &mem, disk, false);
  uint64_t done, total, bytes;

  /* A read inside chunk 5: the snapshot's bytes, and the whole chunk
   * is now on the disk below; chunk 6 is not.
   */
  assert_int_equal (do_io (&r, h, BDEV_READ, 5 * CHUNK + 4096, 8192, buf), 0);
  assert_memory_equal (buf, image + 5 * CHUNK + 4096, 8192);
  assert_memory_equal (disk + 5 * CHUNK, image + 5 * CHUNK, CHUNK);
  memset (want, 0, sizeof want);
  assert_memory_equal (disk + 6 * CHUNK, want, CHUNK);
  hydrate_progress (h, &done, &total, &bytes);
  assert_int_equal (total, NCHUNKS - 1);
  assert_true (done >= 1 && done < total);

  /* A write into chunk 7, not yet fetched: it lands on top of the
   * snapshot's data (the rest of the chunk is the snapshot's).
   */
  memset (buf, 0x5a, 4096);
  assert_int_equal (do_io (&r, h, BDEV_WRITE, 7 * CHUNK + 8192, 4096, buf), 0);
  memcpy (want, image + 7 * CHUNK, CHUNK);
  memset (want + 8192, 0x5a, 4096);
  assert_int_equal (do_io (&r, h, BDEV_READ, 7 * CHUNK, CHUNK, buf), 0);
  assert_memory_equal (buf, want, CHUNK);
  assert_memory_equal (disk + 7 * CHUNK, want, CHUNK);
  assert_true (r.saves >= 1);           /* recorded before the write */

  /* The all-zero chunk reads zeroes without any object. */
  memset (want, 0, sizeof want);
  assert_int_equal (do_io (&r, h, BDEV_READ, ZERO_CHUNK * CHUNK, CHUNK, buf),
                    0);
  assert_memory_equal (buf, want, CHUNK);
  close_hydrate (&r, h);
}

static void
test_background (void **state)
{
  static uint8_t disk[VSIZE], buf[VSIZE];
  struct mem_bdev mem;
  struct run r = { 0 };
  struct bdev *h = open_hydrate (&r, &mem, disk, true);
  uint64_t done, total, bytes;

  RUN_UNTIL (&r, r.finished == 1);
  assert_int_equal (r.finish_err, 0);
  assert_memory_equal (disk, image, VSIZE);
  hydrate_progress (h, &done, &total, &bytes);
  assert_int_equal (done, total);
  assert_int_equal (r.saved_hydrated, total);    /* recorded complete */
  assert_int_equal (do_io (&r, h, BDEV_READ, 0, CHUNK, buf), 0);
  assert_memory_equal (buf, image, CHUNK);
  close_hydrate (&r, h);
}

static void
test_missing_chunk (void **state)
{
  static uint8_t disk[VSIZE], buf[VSIZE];
  struct error err = { 0 };
  char key[OBJ_KEY_MAX];
  uint8_t hash[CHUNK_HASH_LEN];
  struct objstore *os = objstore_open (url, &err);
  struct mem_bdev mem;
  struct run r = { 0 };
  struct bdev *h;

  /* Chunk 4's object disappears from the store. */
  assert_non_null (os);
  chunk_hash (image + 4 * CHUNK, CHUNK, hash);
  chunk_key (hash, key);
  assert_int_equal (objstore_delete (os, key, &err), 0);
  objstore_close (os);

  h = open_hydrate (&r, &mem, disk, false);
  assert_int_equal (do_io (&r, h, BDEV_READ, 4 * CHUNK, 4096, buf), EIO);
  /* ...and only that I/O: its neighbours are served. */
  assert_int_equal (do_io (&r, h, BDEV_READ, 3 * CHUNK, CHUNK, buf), 0);
  assert_memory_equal (buf, image + 3 * CHUNK, CHUNK);
  assert_int_equal (do_io (&r, h, BDEV_READ, 5 * CHUNK, CHUNK, buf), 0);
  assert_memory_equal (buf, image + 5 * CHUNK, CHUNK);
  assert_int_equal (do_io (&r, h, BDEV_READ, 3 * CHUNK + CHUNK / 2, CHUNK,
                           buf), EIO);                  /* spans 3 and 4 */
  close_hydrate (&r, h);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_on_demand),
    cmocka_unit_test (test_background),
    cmocka_unit_test (test_missing_chunk),     /* last: it breaks the store */
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
