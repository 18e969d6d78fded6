/* test_store_lifecycle.c - a data directory's life (store/store.c):
 * create writes .data, .dirty and .meta; a reopen finds the volume with
 * its metadata and its bytes; the epoch only rises and survives a
 * reopen; delete removes every file and a second delete is -ENOENT;
 * the temp files of an interrupted replace (.NAME.meta.tmp,
 * .NAME.dirty.tmp) are removed at open while the volume itself loads;
 * a .data without .meta is ignored and may be created over; a .meta
 * refused at start-up still guards its name; bad arguments are -EINVAL;
 * a missing data directory or an unknown engine fails the open with the
 * reason in the caller's struct error; creates past the bounds of
 * docs/DESIGN.md 3.7 (STORE_MAX_SIZE, the dirty-map budget, the reserve
 * margin) fail with the reason and leave no file, one at the maximum
 * works; files are mode 0600.  Both io engines.
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
#include "store/store_internal.h"   /* dirty_budget, to test it small */
#include "lib/store_fixture.h"

#define VSIZE (8u << 20)


static bool
exists (struct fixture *f, const char *name)
{
  return faccessat (f->dirfd, name, F_OK, 0) == 0;
}

static void
put_file (struct fixture *f, const char *name, const char *text)
{
  int fd = openat (f->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (write (fd, text, strlen (text)), (ssize_t) strlen (text));
  close (fd);
}

/* One request through the bdev, run to completion. */
struct one {
  struct loop *loop;
  int err;
  bool done;
};

static void
one_done (struct bdev_io *io, int err)
{
  struct one *o = io->opaque;
  o->err = err;
  o->done = true;
  loop_stop (o->loop);
}

static int
rw (struct fixture *f, struct store_vol *v, bool write, uint64_t off,
    void *buf, uint32_t len)
{
  struct one o = { .loop = f->loop };
  struct bdev_io io = { .done = one_done, .opaque = &o };

  if (write)
    bdev_write (store_vol_bdev (v), &io, off, len, buf, 0);
  else
    bdev_read (store_vol_bdev (v), &io, off, len, buf, 0);
  while (!o.done)
    assert_int_equal (loop_run (f->loop), 0);
  return o.err;
}

static void
test_create_reopen_delete (void **state)
{
  struct fixture *f = *state;
  struct store_vol *v;
  struct store *s = store_fixture_open (f);
  char *buf = aligned_alloc (4096, 4096), *back = aligned_alloc (4096, 4096);
  struct store_meta m;

  assert_int_equal (store_volume_count (s), 0);
  assert_int_equal (store_create (s, "vol", VSIZE, 4096, 0, 7, &v, NULL), 0);
  assert_non_null (v);
  assert_ptr_equal (store_lookup (s, "vol"), v);
  assert_int_equal (store_volume_count (s), 1);
  assert_true (exists (f, "vol.data"));
  assert_true (exists (f, "vol.meta"));
  assert_true (exists (f, "vol.dirty"));
  m = *store_vol_meta (v);
  assert_string_equal (m.name, "vol");
  assert_int_equal (m.size, VSIZE);
  assert_int_equal (m.block_size, 4096);
  assert_int_equal (m.epoch, 7);
  assert_int_equal (m.flags, 0);
  assert_true (m.created > 0);

  /* A taken name, and bad arguments. */
  assert_int_equal (store_create (s, "vol", VSIZE, 4096, 0, 1, &v, NULL), -EEXIST);
  assert_int_equal (store_create (s, "bad/name", VSIZE, 4096, 0, 1, &v, NULL),
                    -EINVAL);
  assert_int_equal (store_create (s, ".hidden", VSIZE, 4096, 0, 1, &v, NULL),
                    -EINVAL);
  assert_int_equal (store_create (s, "odd", VSIZE + 512, 4096, 0, 1, &v, NULL),
                    -EINVAL);
  assert_int_equal (store_create (s, "bs", VSIZE, 3000, 0, 1, &v, NULL), -EINVAL);
  assert_int_equal (store_create (s, "zero", 0, 4096, 0, 1, &v, NULL), -EINVAL);
  assert_int_equal (store_create (s, "flags", VSIZE, 4096, 1u << 7, 1, &v, NULL),
                    -EINVAL);
  assert_false (exists (f, "odd.data"));
  assert_false (exists (f, "bs.meta"));
  assert_int_equal (store_volume_count (s), 1);

  /* Bytes written reach the data file at their offset. */
  v = store_lookup (s, "vol");
  memset (buf, 0xa5, 4096);
  assert_int_equal (rw (f, v, true, 65536, buf, 4096), 0);

  /* The epoch only rises. */
  assert_int_equal (store_vol_set_epoch (v, 9), 0);
  assert_int_equal (store_vol_set_epoch (v, 3), 0);
  assert_int_equal (store_vol_meta (v)->epoch, 9);
  store_close (s);

  /* Reopen: the same volume, the same bytes, the new epoch. */
  s = store_fixture_open (f);
  assert_int_equal (store_volume_count (s), 1);
  v = store_lookup (s, "vol");
  assert_non_null (v);
  assert_memory_equal (store_vol_meta (v)->uuid, m.uuid, 16);
  assert_int_equal (store_vol_meta (v)->epoch, 9);
  assert_int_equal (store_vol_meta (v)->size, VSIZE);
  memset (back, 0, 4096);
  assert_int_equal (rw (f, v, false, 65536, back, 4096), 0);
  assert_memory_equal (back, buf, 4096);
  assert_int_equal (rw (f, v, false, 0, back, 4096), 0);
  for (int i = 0; i < 4096; i++)
    assert_int_equal (back[i], 0);

  /* Delete: every file goes, the name leaves the store at once; a
   * reference taken before stays valid and says it is deleted.
   */
  store_vol_get (v);
  assert_int_equal (store_delete (s, v), 0);
  assert_true (store_vol_deleted (v));
  assert_int_equal (store_vol_set_epoch (v, 20), -ENOENT);
  assert_int_equal (store_delete (s, v), -ENOENT);
  store_vol_put (v);
  assert_null (store_lookup (s, "vol"));
  assert_int_equal (store_volume_count (s), 0);
  assert_false (exists (f, "vol.meta"));
  assert_false (exists (f, "vol.data"));
  assert_false (exists (f, "vol.dirty"));
  store_close (s);

  /* And it stays gone; the name can be created again. */
  s = store_fixture_open (f);
  assert_int_equal (store_volume_count (s), 0);
  assert_int_equal (store_create (s, "vol", VSIZE, 512, 0, 1, &v, NULL), 0);
  assert_int_equal (store_vol_meta (v)->block_size, 512);
  store_close (s);
  free (buf);
  free (back);
}

static void
test_stale_temp_files (void **state)
{
  struct fixture *f = *state;
  struct store_vol *v;
  struct store *s = store_fixture_open (f);

  assert_int_equal (store_create (s, "vol", VSIZE, 4096, 0, 5, &v, NULL), 0);
  store_close (s);

  /* A crash in the middle of replacing the metadata and the dirty map
   * leaves their temp files; the old files are still the valid ones.
   */
  put_file (f, ".vol.meta.tmp", "half a record");
  put_file (f, ".vol.dirty.tmp", "half a map");
  put_file (f, ".gone.meta.tmp", "of a volume that never was");
  put_file (f, ".notes", "not ours: kept");

  s = store_fixture_open (f);
  assert_false (exists (f, ".vol.meta.tmp"));
  assert_false (exists (f, ".vol.dirty.tmp"));
  assert_false (exists (f, ".gone.meta.tmp"));
  assert_true (exists (f, ".notes"));
  v = store_lookup (s, "vol");
  assert_non_null (v);
  assert_int_equal (store_vol_meta (v)->epoch, 5);
  assert_int_equal (store_volume_count (s), 1);
  store_close (s);
}

static void
test_leftovers_and_refusals (void **state)
{
  struct fixture *f = *state;
  struct store_vol *v;
  struct store *s;
  int fd;

  /* A .data without .meta (a create interrupted before its metadata)
   * is no volume, and a create over it starts afresh.
   */
  put_file (f, "half.data", "leftover bytes");
  s = store_fixture_open (f);
  assert_null (store_lookup (s, "half"));
  assert_int_equal (store_volume_count (s), 0);
  assert_int_equal (store_create (s, "half", VSIZE, 4096, 0, 1, &v, NULL), 0);
  store_close (s);

  /* A volume whose data file no longer matches its metadata is refused
   * at open, and the others still load.
   */
  s = store_fixture_open (f);
  assert_int_equal (store_create (s, "other", VSIZE, 4096, 0, 1, &v, NULL), 0);
  store_close (s);
  fd = openat (f->dirfd, "half.data", O_WRONLY);
  assert_true (fd >= 0);
  assert_int_equal (ftruncate (fd, VSIZE / 2), 0);
  close (fd);
  s = store_fixture_open (f);
  assert_null (store_lookup (s, "half"));
  assert_non_null (store_lookup (s, "other"));

  /* Its metadata still guards the name: no create over it. */
  assert_int_equal (store_create (s, "half", VSIZE, 4096, 0, 1, &v, NULL), -EEXIST);
  assert_true (exists (f, "half.meta"));
  store_close (s);

  /* A corrupt .meta: refused the same way. */
  put_file (f, "other.meta", "not a metadata record");
  s = store_fixture_open (f);
  assert_null (store_lookup (s, "other"));
  assert_int_equal (store_volume_count (s), 0);
  store_close (s);
}

static void
test_open_errors (void **state)
{
  struct fixture *f = *state;
  struct error err = { 0 };
  char path[128];
  enum store_cache cache;

  snprintf (path, sizeof path, "%s/missing", f->dir);
  assert_null (store_open (f->loop, path, f->engine, STORE_CACHE_NONE, &err));
  assert_int_equal (err.code, ENOENT);
  assert_non_null (strstr (error_msg (&err), "data directory"));
  assert_non_null (strstr (error_msg (&err), path));

  err = (struct error) { 0 };
  assert_null (store_open (f->loop, f->dir, "floppy", STORE_CACHE_NONE, &err));
  assert_int_equal (err.code, EINVAL);
  assert_non_null (strstr (error_msg (&err), "floppy"));

  /* NULL err is allowed. */
  assert_null (store_open (f->loop, path, f->engine, STORE_CACHE_NONE, NULL));

  assert_int_equal (store_parse_cache ("none", &cache), 0);
  assert_int_equal (cache, STORE_CACHE_NONE);
  assert_int_equal (store_parse_cache ("writeback", &cache), 0);
  assert_int_equal (cache, STORE_CACHE_WRITEBACK);
  assert_int_equal (store_parse_cache ("unsafe", &cache), -EINVAL);
  assert_string_equal (store_cache_name (STORE_CACHE_NONE), "none");
  assert_string_equal (store_cache_name (STORE_CACHE_WRITEBACK), "writeback");
}

/* Is the data directory empty (temp files included)? */
static bool
dir_empty (struct fixture *f)
{
  char cmd[128];
  snprintf (cmd, sizeof cmd, "test -z \"$(ls -A %s)\"", f->dir);
  return system (cmd) == 0;
}

static void
test_create_bounds (void **state)
{
  struct fixture *f = *state;
  struct store *s = store_fixture_open (f);
  struct store_vol *v;
  struct error e = { 0 };
  struct stat st;

  assert_int_equal (store_create (s, "big", STORE_MAX_SIZE + 4096, 4096, 0, 1,
                                  &v, &e), -EFBIG);
  assert_string_equal (error_msg (&e), "volume size 8.0 TiB exceeds this "
                       "server's maximum of 8 TiB");
  assert_int_equal (store_create (s, "big", UINT64_C (1) << 60, 4096, 0, 1,
                                  &v, &e), -EFBIG);
  assert_true (dir_empty (f));

  /* Reserving more than the free space minus the margin. */
  store_set_reserve_margin (s, UINT64_C (1) << 62);
  memset (&e, 0, sizeof e);
  assert_int_equal (store_create (s, "fat", VSIZE, 4096, STORE_F_RESERVED, 1,
                                  &v, &e), -ENOSPC);
  assert_non_null (strstr (error_msg (&e), "reserve margin"));
  assert_true (dir_empty (f));
  store_set_reserve_margin (s, 0);

  /* The dirty-map budget: a map of VSIZE takes one page pair. */
  uint64_t budget = s->dirty_budget;
  s->dirty_budget = s->dirty_mem + 4096;
  memset (&e, 0, sizeof e);
  assert_int_equal (store_create (s, "vol", VSIZE, 4096, 0, 1, &v, &e), -EFBIG);
  assert_non_null (strstr (error_msg (&e), "dirty-map memory left"));
  assert_true (dir_empty (f));
  s->dirty_budget = budget;

  /* The maximum itself is allowed (sparse, quick), owner-only files;
   * deleting it gives the budget back.
   */
  uint64_t before = s->dirty_mem;
  assert_int_equal (store_create (s, "max", STORE_MAX_SIZE, 4096, 0, 1, &v,
                                  &e), 0);
  assert_true (s->dirty_mem > before);
  assert_int_equal (fstatat (f->dirfd, "max.data", &st, 0), 0);
  assert_int_equal (st.st_mode & 07777, 0600);
  assert_int_equal (fstatat (f->dirfd, "max.dirty", &st, 0), 0);
  assert_int_equal (st.st_mode & 07777, 0600);
  assert_int_equal (fstatat (f->dirfd, "max.meta", &st, 0), 0);
  assert_int_equal (st.st_mode & 07777, 0600);
  assert_int_equal (store_delete (s, v), 0);
  assert_int_equal (s->dirty_mem, before);
  store_close (s);
}

int
main (void)
{
  log_init ("test_store_lifecycle");
#define BOTH(t)                                                          \
    { #t " (auto)", t, store_fixture_setup, store_fixture_teardown,          \
      (void *) "auto" },                                                 \
    { #t " (libaio)", t, store_fixture_setup, store_fixture_teardown,        \
      (void *) "libaio" }
  const struct CMUnitTest tests[] = {
    BOTH (test_create_reopen_delete),
    BOTH (test_stale_temp_files),
    BOTH (test_leftovers_and_refusals),
    BOTH (test_open_errors),
    BOTH (test_create_bounds),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
