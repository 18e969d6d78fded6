/* test_dirty.c - the dirty map (store/dirty.c, store.c): the VOL.dirty
 * header codec and its refusals, region math at the volume's edges, the
 * sequence bookkeeping that decides who waits for which persist
 * (coalescing, already-durable marks costing nothing, clear), resizing
 * the map (dmap_resize), and the
 * whole thing through a real store: many marks -> few persists, bits
 * durable across a reopen, clear, a corrupt header refusing the volume,
 * a missing file being an empty map created on the first mark.
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
#include <dirent.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "core/util.h"
#include "core/wire.h"
#include "core/loop.h"
#include "store/store.h"
#include "store/dirty.h"

#define R STORE_DIRTY_REGION_MIN     /* store_dirty_region below 512 GiB */

/* ---- header codec ---- */

static void
test_hdr_roundtrip_and_refusals (void **state)
{
  const uint64_t size = 3ull * R + 4096;     /* 4 regions, the last short */
  uint8_t buf[STORE_DIRTY_FILE_HDR];
  struct error why = { 0 };

  assert_int_equal (store_dirty_nregions (size), 4);
  assert_int_equal (store_dirty_bitmap_bytes (size), 1);
  assert_int_equal (store_dirty_nregions (8ull * R), 8);
  assert_int_equal (store_dirty_bitmap_bytes (8ull * R), 1);
  assert_int_equal (store_dirty_bitmap_bytes (8ull * R + 512), 2);

  store_dirty_hdr_encode (R, 4, buf);
  assert_memory_equal (buf, "RVOLDIRT", 8);
  assert_int_equal (store_dirty_hdr_decode (buf, sizeof buf, size, &why), 0);

  /* Every bit of the header, padding included, matters. */
  for (size_t i = 0; i < sizeof buf; i++)
    for (int bit = 0; bit < 8; bit += (i < 64 ? 1 : 7)) {
      uint8_t copy[STORE_DIRTY_FILE_HDR];
      memcpy (copy, buf, sizeof copy);
      copy[i] ^= 1u << bit;
      why.msg[0] = '\0';
      if (store_dirty_hdr_decode (copy, sizeof copy, size, &why) != -EBADMSG)
        fail_msg ("flip byte %zu bit %d accepted", i, bit);
      assert_true (why.msg[0] != '\0');
    }
  assert_int_equal (store_dirty_hdr_decode (buf, 100, size, &why), -EBADMSG);
  /* A map for another size (the volume's is authoritative). */
  assert_int_equal (store_dirty_hdr_decode (buf, sizeof buf, 5ull * R, &why),
                    -EBADMSG);
  assert_non_null (strstr (why.msg, "region count"));
  /* Another region size, correctly sealed: refused, not reinterpreted. */
  store_dirty_hdr_encode (R * 2, 4, buf);
  assert_int_equal (store_dirty_hdr_decode (buf, sizeof buf, size, &why), -EBADMSG);
  assert_non_null (strstr (why.msg, "region size"));
  /* Newer version, resealed. */
  store_dirty_hdr_encode (R, 4, buf);
  putle32 (buf + 8, STORE_DIRTY_VERSION + 1);
  putle32 (buf + 60, crc32c (0, buf, 60));
  assert_int_equal (store_dirty_hdr_decode (buf, sizeof buf, size, &why), -EBADMSG);
  assert_non_null (strstr (why.msg, "version"));
}

/* ---- region math and bookkeeping ---- */

static void
test_range_edges (void **state)
{
  struct dmap dm;
  uint64_t f, l;
  const uint64_t size = 3ull * R + 4096;

  assert_int_equal (dmap_init (&dm, size, R, NULL), 0);
  assert_int_equal (dm.nregions, 4);
  dmap_range (&dm, 0, 512, R, &f, &l);
  assert_true (f == 0 && l == 0);
  dmap_range (&dm, R - 512, 1024, R, &f, &l);         /* straddles */
  assert_true (f == 0 && l == 1);
  dmap_range (&dm, R, R, R, &f, &l);                  /* exactly one */
  assert_true (f == 1 && l == 1);
  dmap_range (&dm, size - 4096, 4096, R, &f, &l);     /* the short last */
  assert_true (f == 3 && l == 3);
  dmap_range (&dm, 0, size, R, &f, &l);               /* everything */
  assert_true (f == 0 && l == 3);

  /* Marks set exactly those bits, LSB first, none past the end. */
  dmap_mark (&dm, 3, 3);
  assert_int_equal (dm.mem[0], 0x08);
  dmap_mark (&dm, 0, 1);
  assert_int_equal (dm.mem[0], 0x0b);
  assert_int_equal (dm.count, 3);
  assert_false (dmap_test (&dm, 2));
  assert_false (dmap_test (&dm, 4));
  dmap_free (&dm);

  /* Many regions: a mark across byte and page boundaries. */
  assert_int_equal (dmap_init (&dm, 100000ull * R, R, NULL), 0);
  assert_int_equal (dm.npages, 4);
  dmap_mark (&dm, 32760, 32780);                    /* pages 0 and 1 */
  assert_int_equal (dm.count, 21);
  assert_int_equal (dm.npending, 2);
  for (uint64_t r = 32755; r < 32790; r++)
    assert_int_equal (dmap_test (&dm, r), r >= 32760 && r <= 32780);
  dmap_mark (&dm, 99999, 99999);
  assert_true (dmap_test (&dm, 99999));
  assert_int_equal (dm.npending, 3);
  dmap_free (&dm);
}

static void
test_seq_coalescing (void **state)
{
  struct dmap dm;
  struct dmap_op op, op2;

  assert_int_equal (dmap_init (&dm, 1000ull * R, R, NULL), 0);
  /* Many marks before the persist starts: all ride on op 1. */
  for (uint64_t r = 0; r < 500; r++)
    assert_int_equal (dmap_mark (&dm, r, r), 1);
  assert_int_equal (dmap_begin (&dm, &op), 1);
  assert_int_equal (op.seq, 1);
  assert_int_equal (op.npages, 1);
  assert_false (op.clear);
  assert_int_equal (dmap_begin (&dm, &op2), 0);       /* one at a time */

  /* In flight: a bit in its copy waits for it; a new bit for the next. */
  assert_int_equal (dmap_mark (&dm, 10, 10), 1);
  assert_int_equal (dmap_mark (&dm, 600, 600), 2);
  /* Same page changed again: the old bit now waits for the next too. */
  assert_int_equal (dmap_mark (&dm, 10, 10), 2);
  dmap_end (&dm, &op, 0);
  assert_int_equal (dm.durable_seq, 1);
  assert_int_equal (dm.persists, 1);
  /* Durable bits cost nothing; not-yet-durable 600 still waits. */
  assert_int_equal (dmap_mark (&dm, 0, 499), 0);
  assert_int_equal (dmap_mark (&dm, 600, 600), 2);
  assert_int_equal (dmap_begin (&dm, &op), 1);
  assert_int_equal (op.seq, 2);
  dmap_end (&dm, &op, 0);
  assert_int_equal (dmap_mark (&dm, 0, 600), 2 + 1);  /* 500..599 new */
  assert_int_equal (dmap_begin (&dm, &op), 1);
  dmap_end (&dm, &op, 0);
  assert_int_equal (dmap_mark (&dm, 0, 600), 0);
  assert_int_equal (dm.count, 601);

  /* A failed persist puts its pages back. */
  assert_int_equal (dmap_mark (&dm, 900, 900), 4);
  assert_int_equal (dmap_begin (&dm, &op), 1);
  dmap_end (&dm, &op, EIO);
  assert_int_equal (dm.durable_seq, 3);
  assert_int_equal (dm.npending, 1);
  assert_int_equal (dmap_mark (&dm, 900, 900), 5);
  assert_int_equal (dmap_begin (&dm, &op), 1);
  assert_int_equal (op.seq, 5);
  dmap_end (&dm, &op, 0);
  assert_int_equal (dmap_mark (&dm, 900, 900), 0);
  dmap_free (&dm);
}

/* dmap_resize: bits kept, new regions clean, those past a smaller size
 * dropped (the last byte masked), pending pages and numbers carried;
 * the source untouched.
 */
static void
test_resize (void **state)
{
  struct dmap dm, big, small;

  assert_int_equal (dmap_init (&dm, 10ull * R, R, NULL), 0);
  assert_true (dmap_mark (&dm, 1, 1) > 0);
  assert_true (dmap_mark (&dm, 9, 9) > 0);
  assert_int_equal (dm.count, 2);

  assert_int_equal (dmap_resize (&dm, &big, 3ull * DMAP_PAGE * 8 * R, R), 0);
  assert_int_equal (big.nregions, 3ull * DMAP_PAGE * 8);
  assert_int_equal (big.npages, 3);
  assert_int_equal (big.count, 2);
  assert_true (dmap_test (&big, 1) && dmap_test (&big, 9));
  assert_false (dmap_test (&big, 10) || dmap_test (&big, big.nregions - 1));
  assert_int_equal (big.npending, 1);           /* page 0, not yet written */
  assert_int_equal (big.next_seq, dm.next_seq);
  /* Marks past the old end work in the grown map. */
  assert_true (dmap_mark (&big, big.nregions - 1, big.nregions - 1) > 0);
  assert_int_equal (big.npending, 2);

  /* Across a size boundary the region doubles: bits widen, none lost. */
  {
    struct dmap coarse;
    assert_int_equal (dmap_resize (&dm, &coarse, 20ull * R, 2 * R), 0);
    assert_int_equal (coarse.region, 2 * R);
    assert_int_equal (coarse.nregions, 10);
    assert_int_equal (coarse.count, 2);
    assert_true (dmap_test (&coarse, 0) && dmap_test (&coarse, 4));
    assert_false (dmap_test (&coarse, 1) || dmap_test (&coarse, 5));
    dmap_free (&coarse);
  }

  assert_int_equal (dmap_resize (&big, &small, 5ull * R - 512, R), 0);
  assert_int_equal (small.nregions, 5);
  assert_int_equal (small.count, 1);            /* 9 and the last dropped */
  assert_true (dmap_test (&small, 1));
  assert_int_equal (small.mem[0], 1u << 1);     /* nothing past region 4 */
  assert_int_equal (small.npending, 1);
  dmap_all_durable (&small);
  assert_int_equal (small.npending, 0);
  assert_int_equal (small.durable[0], small.mem[0]);
  /* Durable now: marking it again costs nothing. */
  assert_int_equal (dmap_mark (&small, 1, 1), 0);

  assert_int_equal (dm.count, 2);               /* the source untouched */
  dmap_free (&dm);
  dmap_free (&big);
  dmap_free (&small);
}

static void
test_seq_clear (void **state)
{
  struct dmap dm;
  struct dmap_op op;
  uint64_t c;

  assert_int_equal (dmap_init (&dm, 100ull * R, R, NULL), 0);
  assert_int_equal (dmap_mark (&dm, 1, 5), 1);
  assert_int_equal (dmap_begin (&dm, &op), 1);
  /* Clear while that persist is in flight. */
  c = dmap_clear (&dm);
  assert_int_equal (c, 2);
  assert_int_equal (dm.count, 0);
  /* A mark after the clear rides on the op after it. */
  assert_int_equal (dmap_mark (&dm, 7, 7), 3);
  dmap_end (&dm, &op, 0);
  /* What that persist wrote is wiped: not counted durable. */
  assert_false (dm.durable[0] & 0x3e);
  assert_int_equal (dmap_begin (&dm, &op), 1);
  assert_true (op.clear);
  assert_int_equal (op.seq, 2);
  dmap_end (&dm, &op, 0);
  assert_int_equal (dm.clears, 1);
  assert_int_equal (dmap_begin (&dm, &op), 1);
  assert_int_equal (op.seq, 3);
  dmap_end (&dm, &op, 0);
  assert_int_equal (dm.count, 1);
  assert_true (dmap_test (&dm, 7));
  assert_int_equal (dmap_mark (&dm, 7, 7), 0);
  /* Two clears before either starts: one op, the later number. */
  dmap_clear (&dm);
  c = dmap_clear (&dm);
  assert_int_equal (dmap_begin (&dm, &op), 1);
  assert_int_equal (op.seq, c);
  dmap_end (&dm, &op, 0);
  assert_int_equal (dmap_begin (&dm, &op), 0);
  assert_true (dm.durable_seq == c);
  dmap_free (&dm);
}

/* ---- through a real store ---- */

struct run {
  struct loop *loop;
  struct loop_timer guard;
  unsigned outstanding;
  int errors;
};

static void
io_cb (struct bdev_io *io, int err)
{
  struct run *r = io->opaque;
  if (err) {
    r->errors++;
  }
  if (--r->outstanding == 0)
    loop_stop (r->loop);
}

static void
guard_cb (struct loop_timer *t)
{
  loop_stop (((struct run *) t->opaque)->loop);
}

static void
run_expect_errors (struct run *r, int errors)
{
  loop_timer_arm (r->loop, &r->guard, 10000, guard_cb, r);
  loop_run (r->loop);
  loop_timer_cancel (r->loop, &r->guard);
  assert_int_equal (r->outstanding, 0);
  assert_int_equal (r->errors, errors);
  r->errors = 0;
}

static void
run_until_done (struct run *r)
{
  run_expect_errors (r, 0);
}

static void
submit (struct run *r, struct store_vol *v, struct bdev_io *io,
        enum bdev_op op, uint32_t flags, uint64_t off, uint32_t len,
        void *buf)
{
  *io = (struct bdev_io) { .op = op, .flags = flags, .offset = off,
                           .len = len, .buf = buf, .done = io_cb,
                           .opaque = r };
  r->outstanding++;
  bdev_submit (store_vol_bdev (v), io);
}

/* DIRTY_GET into a fresh buffer; caller frees. */
static uint8_t *
get_map (struct run *r, struct store_vol *v)
{
  struct bdev_io io;
  size_t n = store_vol_dirty_get_size (v);
  uint8_t *buf = malloc (n);
  submit (r, v, &io, BDEV_DIRTY_GET, 0, 0, n, buf);
  run_until_done (r);
  assert_int_equal (getle32 (buf), R);
  assert_int_equal (getle32 (buf + 4), 0);
  return buf;
}

static bool
bit (const uint8_t *map, uint64_t reg)
{
  return (map[STORE_DIRTY_HDR_SIZE + reg / 8] >> (reg % 8)) & 1;
}

#define NREG 300
#define VSIZE ((uint64_t) (NREG - 1) * R + R / 2)  /* last region short */

static void
test_store_end_to_end (void **state)
{
  const char *engine = *state;
  char dir[] = "/tmp/test_dirty.XXXXXX";
  struct run r = { 0 };
  struct store *s;
  struct store_vol *v;
  struct store_dirty_stats st;
  static struct bdev_io ios[400];
  void *data = NULL;
  uint8_t *map;
  int dirfd, fd;

  assert_non_null (mkdtemp (dir));
  dirfd = open (dir, O_RDONLY | O_DIRECTORY);
  r.loop = loop_new ();
  assert_non_null (r.loop);
  assert_int_equal (posix_memalign (&data, 4096, 8192), 0);
  memset (data, 0x5a, 8192);

  s = store_open (r.loop, dir, engine, STORE_CACHE_WRITEBACK, NULL);
  assert_non_null (s);
  /* Block size 512: a write can then cover part of a 4 KiB region. */
  assert_int_equal (store_create (s, "vol", VSIZE, 512, 0, 1, &v, NULL), 0);
  assert_int_equal (faccessat (dirfd, "vol.dirty", F_OK, 0), 0);
  assert_int_equal (store_vol_dirty_get_size (v),
                    STORE_DIRTY_HDR_SIZE + (NREG + 7) / 8);

  /* 200 marks and 50 dirty writes in one go: one persist. */
  for (int i = 0; i < 200; i++)
    submit (&r, v, &ios[i], BDEV_MARK_DIRTY, 0, (uint64_t) i * R + R / 4,
            R / 4, NULL);
  for (int i = 0; i < 50; i++)
    submit (&r, v, &ios[200 + i], BDEV_WRITE, BDEV_DIRTY,
            (uint64_t) (240 + i) * R, R / 2, data);
  /* The short last region, by a write-zeroes to the very end. */
  submit (&r, v, &ios[250], BDEV_WRITE_ZEROES, BDEV_DIRTY, VSIZE - R / 4,
          R / 4, NULL);
  run_until_done (&r);
  store_vol_dirty_stats (v, &st);
  assert_int_equal (st.persists, 1);
  assert_int_equal (store_vol_dirty_count (v), 251);

  /* Marking again what is durable costs nothing (no persist). */
  for (int i = 0; i < 100; i++)
    submit (&r, v, &ios[i], BDEV_MARK_DIRTY, 0, (uint64_t) i * R, R, NULL);
  run_until_done (&r);
  store_vol_dirty_stats (v, &st);
  assert_int_equal (st.persists, 1);

  /* Wrong DIRTY_GET length, DIRTY on a read, mark past the end: EINVAL. */
  {
    uint8_t small[4];
    submit (&r, v, &ios[0], BDEV_DIRTY_GET, 0, 0, sizeof small, small);
    submit (&r, v, &ios[1], BDEV_READ, BDEV_DIRTY, 0, 4096, data);
    submit (&r, v, &ios[2], BDEV_MARK_DIRTY, 0, VSIZE, 4096, NULL);
    submit (&r, v, &ios[3], BDEV_MARK_DIRTY, 0, 0, 0, NULL);
    run_expect_errors (&r, 4);
  }

  map = get_map (&r, v);
  for (uint64_t reg = 0; reg < NREG; reg++)
    assert_int_equal (bit (map, reg), reg < 200 || (reg >= 240 && reg < 290)
                      || reg == NREG - 1);
  free (map);

  /* Reopen: the map is durable. */
  store_close (s);
  s = store_open (r.loop, dir, engine, STORE_CACHE_WRITEBACK, NULL);
  assert_non_null (s);
  v = store_lookup (s, "vol");
  assert_non_null (v);
  assert_int_equal (store_vol_dirty_count (v), 251);
  map = get_map (&r, v);
  assert_true (bit (map, 0) && bit (map, 199) && !bit (map, 200) &&
               bit (map, 289) && !bit (map, 290) && bit (map, NREG - 1));
  free (map);

  /* Clear: empty now and after a reopen. */
  submit (&r, v, &ios[0], BDEV_DIRTY_CLEAR, 0, 0, 0, NULL);
  run_until_done (&r);
  assert_int_equal (store_vol_dirty_count (v), 0);
  store_vol_dirty_stats (v, &st);
  assert_int_equal (st.clears, 1);
  assert_int_equal (faccessat (dirfd, ".vol.dirty.tmp", F_OK, 0), -1);
  submit (&r, v, &ios[0], BDEV_MARK_DIRTY, 0, 5 * R, 4096, NULL);
  run_until_done (&r);
  store_close (s);
  s = store_open (r.loop, dir, engine, STORE_CACHE_WRITEBACK, NULL);
  v = store_lookup (s, "vol");
  assert_non_null (v);
  assert_int_equal (store_vol_dirty_count (v), 1);
  map = get_map (&r, v);
  assert_true (bit (map, 5));
  free (map);
  store_close (s);

  /* A missing file: an empty map, made by the first mark. */
  assert_int_equal (unlinkat (dirfd, "vol.dirty", 0), 0);
  s = store_open (r.loop, dir, engine, STORE_CACHE_WRITEBACK, NULL);
  v = store_lookup (s, "vol");
  assert_non_null (v);
  assert_int_equal (store_vol_dirty_count (v), 0);
  submit (&r, v, &ios[0], BDEV_MARK_DIRTY, 0, 7 * R, 4096, NULL);
  run_until_done (&r);
  assert_int_equal (faccessat (dirfd, "vol.dirty", F_OK, 0), 0);
  store_close (s);
  s = store_open (r.loop, dir, engine, STORE_CACHE_WRITEBACK, NULL);
  v = store_lookup (s, "vol");
  assert_non_null (v);
  assert_int_equal (store_vol_dirty_count (v), 1);
  store_close (s);

  /* A corrupt header refuses the volume (the others would load). */
  fd = openat (dirfd, "vol.dirty", O_WRONLY);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, "X", 1, 17), 1);
  close (fd);
  s = store_open (r.loop, dir, engine, STORE_CACHE_WRITEBACK, NULL);
  assert_non_null (s);
  assert_null (store_lookup (s, "vol"));
  store_close (s);

  /* A stray bit past the last region is refused too. */
  {
    uint8_t hdr[STORE_DIRTY_FILE_HDR], last = 0x80;
    store_dirty_hdr_encode (R, NREG, hdr);
    fd = openat (dirfd, "vol.dirty", O_WRONLY);
    assert_int_equal (pwrite (fd, hdr, sizeof hdr, 0), (ssize_t) sizeof hdr);
    assert_int_equal (pwrite (fd, &last, 1,
                              STORE_DIRTY_FILE_HDR + (NREG + 7) / 8 - 1), 1);
    close (fd);
    s = store_open (r.loop, dir, engine, STORE_CACHE_WRITEBACK, NULL);
    assert_null (store_lookup (s, "vol"));
    store_close (s);
  }

  /* Delete removes it. */
  assert_int_equal (unlinkat (dirfd, "vol.dirty", 0), 0);
  s = store_open (r.loop, dir, engine, STORE_CACHE_WRITEBACK, NULL);
  v = store_lookup (s, "vol");
  assert_non_null (v);
  submit (&r, v, &ios[0], BDEV_MARK_DIRTY, 0, 0, 4096, NULL);
  run_until_done (&r);
  assert_int_equal (store_delete (s, v), 0);
  assert_int_equal (faccessat (dirfd, "vol.dirty", F_OK, 0), -1);
  store_close (s);

  free (data);
  loop_free (r.loop);
  close (dirfd);
  assert_int_equal (rmdir (dir), 0);
}

/* The region size follows the volume size; a map from before it did
 * (64 KiB regions) loads, widened to the volume's regions, and is
 * rewritten in them.
 */
static void
test_region_rule_and_old_map (void **state)
{
  char dir[] = "/tmp/test_dirty.XXXXXX";
  struct run r = { 0 };
  uint8_t hdr[STORE_DIRTY_FILE_HDR], bits[2] = { 1u << 3, 1u << 7 }, *map;
  const uint64_t size = 1ull << 20;             /* 16 old regions */
  struct store *s;
  struct store_vol *v;
  int dirfd, fd;

  assert_int_equal (store_dirty_region (1ull << 30), 4096);
  assert_int_equal (store_dirty_region (512ull << 30), 4096);
  assert_int_equal (store_dirty_region ((512ull << 30) + 4096), 8192);
  assert_int_equal (store_dirty_region (STORE_MAX_SIZE), 65536);
  assert_true (store_dirty_bitmap_bytes (STORE_MAX_SIZE) <= (16u << 20));

  assert_non_null (mkdtemp (dir));
  dirfd = open (dir, O_RDONLY | O_DIRECTORY);
  r.loop = loop_new ();
  s = store_open (r.loop, dir, "auto", STORE_CACHE_WRITEBACK, NULL);
  assert_non_null (s);
  assert_int_equal (store_create (s, "vol", size, 4096, 0, 1, &v, NULL), 0);
  store_close (s);

  /* An old map: regions 3 and 15 of 64 KiB dirty. */
  store_dirty_hdr_encode (65536, 16, hdr);
  fd = openat (dirfd, "vol.dirty", O_WRONLY | O_TRUNC);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, hdr, sizeof hdr, 0), sizeof hdr);
  assert_int_equal (pwrite (fd, bits, 2, sizeof hdr), 2);
  close (fd);

  for (int pass = 0; pass < 2; pass++) {        /* converted, then as is */
    s = store_open (r.loop, dir, "auto", STORE_CACHE_WRITEBACK, NULL);
    v = store_lookup (s, "vol");
    assert_non_null (v);
    assert_int_equal (store_vol_dirty_count (v), 32);
    map = get_map (&r, v);
    for (uint64_t reg = 0; reg < 256; reg++)
      assert_int_equal (bit (map, reg), reg / 16 == 3 || reg / 16 == 15);
    free (map);
    store_close (s);
    fd = openat (dirfd, "vol.dirty", O_RDONLY);
    assert_int_equal (pread (fd, hdr, sizeof hdr, 0), sizeof hdr);
    close (fd);
    assert_int_equal (getle32 (hdr + 16), 4096);
  }

  /* A region size that is no power of two: refused. */
  store_dirty_hdr_encode (65536 + 4096, 16, hdr);
  fd = openat (dirfd, "vol.dirty", O_WRONLY | O_TRUNC);
  assert_int_equal (pwrite (fd, hdr, sizeof hdr, 0), sizeof hdr);
  assert_int_equal (pwrite (fd, bits, 2, sizeof hdr), 2);
  close (fd);
  s = store_open (r.loop, dir, "auto", STORE_CACHE_WRITEBACK, NULL);
  assert_null (store_lookup (s, "vol"));
  store_close (s);

  unlinkat (dirfd, "vol.meta", 0);
  unlinkat (dirfd, "vol.data", 0);
  unlinkat (dirfd, "vol.dirty", 0);
  loop_free (r.loop);
  close (dirfd);
  assert_int_equal (rmdir (dir), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_hdr_roundtrip_and_refusals),
    cmocka_unit_test (test_range_edges),
    cmocka_unit_test (test_seq_coalescing),
    cmocka_unit_test (test_seq_clear),
    cmocka_unit_test (test_resize),
    cmocka_unit_test (test_region_rule_and_old_map),
    cmocka_unit_test_prestate (test_store_end_to_end, (void *) "auto"),
    cmocka_unit_test_prestate (test_store_end_to_end, (void *) "libaio"),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
