/* test_store_resize.c - resizing a volume (store/store_resize.c): a grow
 * keeps the data and the dirty bits, the new range reads zero and is
 * clean, the data file stays thin without reserve and is allocated with
 * it, and everything survives a reopen; BDEV_RESIZE waits for a write
 * in flight and holds the write past the old end submitted after it;
 * a shrink drops the data and the dirty bits past the new end; bounds
 * (not a multiple of the block size, over STORE_MAX_SIZE, the dirty-map
 * budget, the reserve margin) are refused with nothing changed, and
 * store_vol_resize is -EBUSY with a request in flight; start-up after
 * an interrupted resize (a data file and a dirty map larger than the
 * metadata) loads the volume at the metadata's size and cuts both back,
 * while a smaller dirty map is still refused.  Both io engines.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "core/util.h"
#include "core/loop.h"
#include "store/store.h"
#include "store/store_internal.h"   /* dirty_budget, dirty_mem */
#include "lib/store_fixture.h"

#define MiB (UINT64_C (1) << 20)
#define R   STORE_DIRTY_REGION_MIN   /* store_dirty_region below 512 GiB */

static struct store *
reopen (struct fixture *f)
{
  struct store *s = store_fixture_open (f);
  store_set_reserve_margin (s, 0);
  return s;
}

static uint64_t
file_size (struct fixture *f, const char *name)
{
  struct stat st;
  assert_int_equal (fstatat (f->dirfd, name, &st, 0), 0);
  return st.st_size;
}

/* Requests through the bdev, each counted when done. */
struct req {
  struct fixture *f;
  struct bdev_io io;
  int err;
  bool done;
  int *order, *next;            /* completion order, when asked */
};

static void
req_done (struct bdev_io *io, int err)
{
  struct req *r = io->opaque;
  r->err = err;
  r->done = true;
  if (r->order)
    *r->order = (*r->next)++;
  loop_stop (r->f->loop);
}

static void
submit (struct fixture *f, struct store_vol *v, struct req *r,
        enum bdev_op op, uint32_t flags, uint64_t off, uint32_t len,
        void *buf)
{
  r->f = f;
  r->done = false;
  r->io = (struct bdev_io) {
    .op = op, .flags = flags, .offset = off, .len = len, .buf = buf,
    .done = req_done, .opaque = r,
  };
  bdev_submit (store_vol_bdev (v), &r->io);
}

static void
wait_for (struct fixture *f, struct req *r)
{
  while (!r->done)
    assert_int_equal (loop_run (f->loop), 0);
}

static int
run (struct fixture *f, struct store_vol *v, enum bdev_op op, uint32_t flags,
     uint64_t off, uint32_t len, void *buf)
{
  struct req r = { 0 };

  /* Not zeroes, so a read that fills nothing shows; defined, for
   * valgrind, which does not see the kernel fill it.
   */
  if (op == BDEV_READ)
    memset (buf, 0xee, len);
  submit (f, v, &r, op, flags, off, len, buf);
  wait_for (f, &r);
  return r.err;
}

static bool
all_bytes (const char *buf, size_t len, char c)
{
  for (size_t i = 0; i < len; i++)
    if (buf[i] != c)
      return false;
  return true;
}

/* Is region r dirty, as DIRTY_GET says? */
static bool
dirty_bit (struct fixture *f, struct store_vol *v, uint64_t r)
{
  size_t n = store_vol_dirty_get_size (v);
  uint8_t *buf = malloc (n);
  bool set;

  assert_non_null (buf);
  assert_int_equal (run (f, v, BDEV_DIRTY_GET, 0, 0, n, buf), 0);
  set = r < (n - STORE_DIRTY_HDR_SIZE) * 8 &&
        (buf[STORE_DIRTY_HDR_SIZE + r / 8] >> (r % 8)) & 1;
  free (buf);
  return set;
}

static void
test_grow (void **state)
{
  struct fixture *f = *state;
  struct store *s = reopen (f);
  struct store_vol *v;
  char *buf = aligned_alloc (4096, 4096), *back = aligned_alloc (4096, 4096);
  struct req w = { 0 }, rs = { 0 }, w2 = { 0 };
  int order = 0, ow = -1, ors = -1, ow2 = -1;
  uint64_t mem;

  assert_int_equal (store_create (s, "vol", 8 * MiB, 4096, 0, 1, &v, NULL), 0);
  memset (buf, 0x5a, 4096);
  assert_int_equal (run (f, v, BDEV_WRITE, BDEV_DIRTY, 3 * R, 4096, buf), 0);
  mem = s->dirty_mem;

  /* A write in flight, the resize, and a write the resize must hold
   * until it is done: the first completes before the resize, all OK.
   * (A write past the old end is refused by the checked wrapper until
   * the resize has completed: bdev.h.)
   */
  w.order = &ow; w.next = &order;
  rs.order = &ors; rs.next = &order;
  w2.order = &ow2; w2.next = &order;
  submit (f, v, &w, BDEV_WRITE, BDEV_DIRTY, 5 * R, 4096, buf);
  submit (f, v, &rs, BDEV_RESIZE, 0, 16 * MiB, 0, NULL);
  submit (f, v, &w2, BDEV_WRITE, 0, 6 * MiB, 4096, buf);
  assert_int_equal (v->nheld, 1);
  wait_for (f, &rs);
  wait_for (f, &w2);
  wait_for (f, &w);
  assert_int_equal (w.err, 0);
  assert_int_equal (rs.err, 0);
  assert_int_equal (w2.err, 0);
  assert_true (ow < ors);
  assert_int_equal (v->nheld, 0);
  assert_int_equal (run (f, v, BDEV_WRITE, 0, 12 * MiB, 4096, buf), 0);
  assert_int_equal (store_vol_meta (v)->size, 16 * MiB);
  assert_int_equal (store_vol_bdev (v)->info.size, 16 * MiB);
  assert_true (s->dirty_mem >= mem);

  /* The old data, zeroes in the grown range, the new write. */
  assert_int_equal (run (f, v, BDEV_READ, 0, 3 * R, 4096, back), 0);
  assert_true (all_bytes (back, 4096, 0x5a));
  assert_int_equal (run (f, v, BDEV_READ, 0, 10 * MiB, 4096, back), 0);
  assert_true (all_bytes (back, 4096, 0));
  assert_int_equal (run (f, v, BDEV_READ, 0, 12 * MiB, 4096, back), 0);
  assert_true (all_bytes (back, 4096, 0x5a));

  /* The bits kept, the new regions clean; thin without reserve. */
  assert_int_equal (store_vol_dirty_count (v), 2);
  assert_true (dirty_bit (f, v, 3));
  assert_true (dirty_bit (f, v, 5));
  assert_false (dirty_bit (f, v, 12 * MiB / R));
  assert_int_equal (store_vol_dirty_get_size (v),
                    STORE_DIRTY_HDR_SIZE + store_dirty_bitmap_bytes (16 * MiB));
  assert_true (store_vol_allocated (v) < 1 * MiB);
  assert_int_equal (file_size (f, "vol.data"), 16 * MiB);
  assert_int_equal (file_size (f, "vol.dirty"),
                    STORE_DIRTY_FILE_HDR + store_dirty_bitmap_bytes (16 * MiB));

  /* The same size: nothing to do. */
  assert_int_equal (run (f, v, BDEV_RESIZE, 0, 16 * MiB, 0, NULL), 0);

  /* With reserve the grown range is allocated. */
  assert_int_equal (store_vol_resize (v, 24 * MiB, true, NULL), 0);
  assert_true (store_vol_allocated (v) >= 8 * MiB);
  store_close (s);

  /* Reopen: the size, the bits and the bytes persisted. */
  s = reopen (f);
  v = store_lookup (s, "vol");
  assert_non_null (v);
  assert_int_equal (store_vol_meta (v)->size, 24 * MiB);
  assert_int_equal (store_vol_dirty_count (v), 2);
  assert_true (dirty_bit (f, v, 5));
  assert_int_equal (run (f, v, BDEV_READ, 0, 12 * MiB, 4096, back), 0);
  assert_true (all_bytes (back, 4096, 0x5a));
  store_close (s);
  free (buf);
  free (back);
}

static void
test_shrink (void **state)
{
  struct fixture *f = *state;
  struct store *s = reopen (f);
  struct store_vol *v;
  char *buf = aligned_alloc (4096, 4096), *back = aligned_alloc (4096, 4096);
  uint64_t mem;

  assert_int_equal (store_create (s, "vol", 16 * MiB, 4096, 0, 1, &v, NULL),
                    0);
  memset (buf, 0x77, 4096);
  assert_int_equal (run (f, v, BDEV_WRITE, BDEV_DIRTY, R, 4096, buf), 0);
  assert_int_equal (run (f, v, BDEV_WRITE, BDEV_DIRTY, 12 * MiB, 4096, buf),
                    0);
  assert_int_equal (store_vol_dirty_count (v), 2);
  mem = s->dirty_mem;
  assert_int_equal (store_vol_resize (v, 4 * MiB, false, NULL), 0);
  assert_int_equal (store_vol_meta (v)->size, 4 * MiB);
  assert_int_equal (store_vol_bdev (v)->info.size, 4 * MiB);
  assert_int_equal (store_vol_dirty_count (v), 1);
  assert_true (dirty_bit (f, v, 1));
  assert_true (s->dirty_mem <= mem);
  assert_int_equal (file_size (f, "vol.data"), 4 * MiB);
  assert_int_equal (file_size (f, "vol.dirty"),
                    STORE_DIRTY_FILE_HDR + store_dirty_bitmap_bytes (4 * MiB));
  /* Past the new end is out of range now. */
  assert_int_equal (run (f, v, BDEV_READ, 0, 12 * MiB, 4096, back), EINVAL);

  /* Grown again, the cut range reads zero (nothing old comes back). */
  assert_int_equal (run (f, v, BDEV_RESIZE, 0, 16 * MiB, 0, NULL), 0);
  assert_int_equal (run (f, v, BDEV_READ, 0, 12 * MiB, 4096, back), 0);
  assert_true (all_bytes (back, 4096, 0));
  assert_int_equal (store_vol_dirty_count (v), 1);
  assert_int_equal (store_vol_resize (v, 4 * MiB, false, NULL), 0);
  store_close (s);

  s = reopen (f);
  v = store_lookup (s, "vol");
  assert_non_null (v);
  assert_int_equal (store_vol_meta (v)->size, 4 * MiB);
  assert_int_equal (store_vol_dirty_count (v), 1);
  assert_int_equal (run (f, v, BDEV_READ, 0, R, 4096, back), 0);
  assert_true (all_bytes (back, 4096, 0x77));
  store_close (s);
  free (buf);
  free (back);
}

static void
test_bounds (void **state)
{
  struct fixture *f = *state;
  struct store *s = reopen (f);
  struct store_vol *v;
  struct error e = { 0 };
  char *buf = aligned_alloc (4096, 4096);
  struct req w = { 0 };
  uint64_t mem, budget;

  assert_int_equal (store_create (s, "vol", 8 * MiB, 4096, 0, 1, &v, NULL), 0);
  mem = s->dirty_mem;

#define UNCHANGED()                                                     \
  do {                                                                  \
    assert_int_equal (store_vol_meta (v)->size, 8 * MiB);               \
    assert_int_equal (store_vol_bdev (v)->info.size, 8 * MiB);          \
    assert_int_equal (file_size (f, "vol.data"), 8 * MiB);              \
    assert_int_equal (file_size (f, "vol.dirty"), STORE_DIRTY_FILE_HDR  \
                      + store_dirty_bitmap_bytes (8 * MiB));            \
    assert_int_equal (s->dirty_mem, mem);                               \
  } while (0)

  assert_int_equal (store_vol_resize (v, 8 * MiB + 512, false, &e), -EINVAL);
  assert_non_null (strstr (error_msg (&e), "multiple of the block size"));
  assert_int_equal (store_vol_resize (v, 0, false, NULL), -EINVAL);
  UNCHANGED ();
  assert_int_equal (store_vol_resize (v, STORE_MAX_SIZE + 4096, false, &e),
                    -EFBIG);
  assert_non_null (strstr (error_msg (&e), "maximum"));
  UNCHANGED ();

  /* The dirty-map budget counts only the change. */
  budget = s->dirty_budget;
  s->dirty_budget = s->dirty_mem;
  /* One map page covers 128 MiB (4 KiB regions): 256 MiB needs a second. */
  assert_int_equal (store_vol_resize (v, 256 * MiB, false, &e), -EFBIG);
  assert_non_null (strstr (error_msg (&e), "dirty-map memory left"));
  UNCHANGED ();
  assert_int_equal (store_vol_resize (v, 128 * MiB, false, NULL), 0);
  assert_int_equal (store_vol_resize (v, 8 * MiB, false, NULL), 0);
  UNCHANGED ();
  s->dirty_budget = budget;

  /* Reserving past the free space minus the margin. */
  store_set_reserve_margin (s, UINT64_C (1) << 62);
  assert_int_equal (store_vol_resize (v, 16 * MiB, true, &e), -ENOSPC);
  assert_non_null (strstr (error_msg (&e), "reserve margin"));
  UNCHANGED ();
  store_set_reserve_margin (s, 0);

  /* A request in flight: the direct call refuses, the bdev one waits. */
  memset (buf, 1, 4096);
  submit (f, v, &w, BDEV_WRITE, 0, 0, 4096, buf);
  assert_int_equal (store_vol_resize (v, 16 * MiB, false, NULL), -EBUSY);
  wait_for (f, &w);
  UNCHANGED ();
  /* Through the bdev: the checked wrapper refuses a bad size. */
  assert_int_equal (run (f, v, BDEV_RESIZE, 0, 8 * MiB + 512, 0, NULL),
                    EINVAL);
  UNCHANGED ();
#undef UNCHANGED
  store_close (s);
  free (buf);
}

/* Write a dirty map for size with regions first..last set, in place. */
static void
put_dirty (struct fixture *f, const char *name, uint64_t size,
           uint64_t first, uint64_t last)
{
  size_t n = store_dirty_bitmap_bytes (size);
  uint8_t *bits = calloc (1, n);

  assert_non_null (bits);
  for (uint64_t r = first; r <= last; r++)
    bits[r / 8] |= 1u << (r % 8);
  assert_int_equal (store_dirty_write (f->dirfd, name, size, bits, NULL), 0);
  free (bits);
}

static void
test_interrupted (void **state)
{
  struct fixture *f = *state;
  struct store *s = reopen (f);
  struct store_vol *v;
  int fd;

  assert_int_equal (store_create (s, "vol", 8 * MiB, 4096, 0, 1, &v, NULL), 0);
  assert_int_equal (store_create (s, "small", 8 * MiB, 4096, 0, 1, &v, NULL),
                    0);
  store_close (s);

  /* A grow that crashed before its metadata: data file and map for
   * 16 MiB, regions on both sides of the old end dirty.
   */
  fd = openat (f->dirfd, "vol.data", O_WRONLY);
  assert_true (fd >= 0);
  assert_int_equal (ftruncate (fd, 16 * MiB), 0);
  close (fd);
  put_dirty (f, "vol", 16 * MiB, 8 * MiB / R - 3, 8 * MiB / R + 5);
  /* A map for a smaller size stays corrupt. */
  put_dirty (f, "small", 4 * MiB, 0, 0);

  s = reopen (f);
  v = store_lookup (s, "vol");
  assert_non_null (v);
  assert_int_equal (store_vol_meta (v)->size, 8 * MiB);
  assert_int_equal (store_vol_bdev (v)->info.size, 8 * MiB);
  assert_int_equal (store_vol_dirty_count (v), 3);
  assert_true (dirty_bit (f, v, 8 * MiB / R - 1));
  assert_int_equal (file_size (f, "vol.data"), 8 * MiB);
  assert_int_equal (file_size (f, "vol.dirty"),
                    STORE_DIRTY_FILE_HDR + store_dirty_bitmap_bytes (8 * MiB));
  assert_null (store_lookup (s, "small"));
  store_close (s);

  /* And it loads the same again, with nothing left to cut. */
  s = reopen (f);
  v = store_lookup (s, "vol");
  assert_non_null (v);
  assert_int_equal (store_vol_dirty_count (v), 3);
  store_close (s);
}

int
main (void)
{
  log_init ("test_store_resize");
#define BOTH(t)                                                          \
    { #t " (auto)", t, store_fixture_setup, store_fixture_teardown,          \
      (void *) "auto" },                                                 \
    { #t " (libaio)", t, store_fixture_setup, store_fixture_teardown,        \
      (void *) "libaio" }
  const struct CMUnitTest tests[] = {
    BOTH (test_grow),
    BOTH (test_shrink),
    BOTH (test_bounds),
    BOTH (test_interrupted),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
