/* test_store_checksum.c - BDEV_CHECKSUM on a real store (store.c): the
 * crc32c of stored bytes equals crc32c of what was written, holes
 * counting as zeroes, over ranges spanning several 1 MiB chunks, a
 * short one at the very end, one inside a hole and one straddling data
 * and hole; bytes past the end of a data file shortened behind the
 * store's back count as zeroes too; len 0, ranges past the end, no
 * result buffer and BDEV_DIRTY are refused with EINVAL.  Both io
 * engines, both cache modes.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <cmocka.h>

#include "core/util.h"
#include "core/loop.h"
#include "store/store.h"

/* Valgrind cannot see io_uring fill a read buffer, so with that engine
 * every checksum looks computed from undefined bytes.  Tell it they are
 * defined (with libaio, which it understands, it still checks).
 */
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#else
#define VALGRIND_MAKE_MEM_DEFINED(p, n) ((void) (p), (void) (n))
#endif
static bool engine_is_uring;
static void
defined (void *p, size_t n)
{
  if (engine_is_uring)
    VALGRIND_MAKE_MEM_DEFINED (p, n);
}

#define MIB (1u << 20)
/* 3 MiB + 8 KiB: the last chunk of a whole-volume checksum is short. */
#define VSIZE ((uint64_t) 3 * MIB + 8192)

struct run {
  struct loop *loop;
  struct loop_timer guard;
  unsigned outstanding;
  int last_err;
  int errors;
};

static void
io_cb (struct bdev_io *io, int err)
{
  struct run *r = io->opaque;
  r->last_err = err;
  if (err)
    r->errors++;
  if (--r->outstanding == 0)
    loop_stop (r->loop);
}

static void
guard_cb (struct loop_timer *t)
{
  loop_stop (((struct run *) t->opaque)->loop);
}

static void
run_loop (struct run *r)
{
  loop_timer_arm (r->loop, &r->guard, 10000, guard_cb, r);
  loop_run (r->loop);
  loop_timer_cancel (r->loop, &r->guard);
  assert_int_equal (r->outstanding, 0);
}

/* getrandom() may return fewer bytes than asked past 256 (a signal,
 * a loaded machine): loop until the buffer is full.
 */
static void
fill_random (uint8_t *buf, size_t len)
{
  while (len > 0) {
    ssize_t n = getrandom (buf, len, 0);
    assert_true (n > 0 || (n == -1 && errno == EINTR));
    if (n > 0) {
      buf += n;
      len -= n;
    }
  }
}

/* One request, run to completion; returns its error. */
static int
do_io (struct run *r, struct store_vol *v, enum bdev_op op, uint32_t flags,
       uint64_t off, uint32_t len, void *buf)
{
  struct bdev_io io = { .op = op, .flags = flags, .offset = off, .len = len,
                        .buf = buf, .done = io_cb, .opaque = r };
  r->outstanding++;
  r->errors = 0;
  bdev_submit (store_vol_bdev (v), &io);
  run_loop (r);
  return r->last_err;
}

static uint32_t
store_crc (struct run *r, struct store_vol *v, uint64_t off, uint32_t len)
{
  uint32_t crc = 0x12345678;
  assert_int_equal (do_io (r, v, BDEV_CHECKSUM, 0, off, len, &crc), 0);
  defined (&crc, sizeof crc);
  return crc;
}

static void
test_checksum (void **state)
{
  const char **params = *state;
  const char *engine = params[0];
  enum store_cache cache;
  char dir[] = "/tmp/test_store_checksum.XXXXXX";
  struct run r = { 0 };
  struct store *s;
  struct store_vol *v;
  uint8_t *model, *data = NULL;
  int dirfd;

  assert_int_equal (store_parse_cache (params[1], &cache), 0);
  assert_non_null (mkdtemp (dir));
  dirfd = open (dir, O_RDONLY | O_DIRECTORY);
  assert_true (dirfd >= 0);
  r.loop = loop_new ();
  assert_non_null (r.loop);
  model = calloc (1, VSIZE);
  assert_non_null (model);
  assert_int_equal (posix_memalign ((void **) &data, 4096, 2 * MIB), 0);

  s = store_open (r.loop, dir, engine, cache, NULL);
  assert_non_null (s);
  engine_is_uring = !strcmp (store_engine_name (s), "io_uring");
  assert_int_equal (store_create (s, "vol", VSIZE, 4096, 0, 1, &v, NULL), 0);

  /* A fresh, sparse volume: all zeroes. */
  assert_int_equal (store_crc (&r, v, 0, VSIZE), crc32c (0, model, VSIZE));
  assert_int_equal (store_crc (&r, v, 4096, 4096), crc32c (0, model, 4096));

  /* Data at [0, 1 MiB + 4 KiB) and [2 MiB, end); a hole between. */
  fill_random (data, 2 * MIB);
  memcpy (model, data, MIB + 4096);
  assert_int_equal (do_io (&r, v, BDEV_WRITE, 0, 0, MIB + 4096, data), 0);
  fill_random (data, 2 * MIB);
  memcpy (model + 2 * MIB, data, VSIZE - 2 * MIB);
  assert_int_equal (do_io (&r, v, BDEV_WRITE, 0, 2 * MIB, VSIZE - 2 * MIB,
                           data), 0);

  static const struct { uint64_t off, len; } ranges[] = {
    { 0, VSIZE },                       /* everything, 4 chunks */
    { 0, 4096 },
    { MIB - 4096, 8192 },               /* across the first chunk edge */
    { MIB + 4096, MIB - 4096 },         /* exactly the hole */
    { MIB + 8192, 4096 },               /* inside the hole */
    { MIB, 2 * MIB },                   /* data, hole, data */
    { VSIZE - 4096, 4096 },             /* the last block */
    { 4096, VSIZE - 4096 },             /* unaligned to the chunks */
  };
  for (size_t i = 0; i < sizeof ranges / sizeof *ranges; i++) {
    uint32_t want = crc32c (0, model + ranges[i].off, ranges[i].len);
    uint32_t got = store_crc (&r, v, ranges[i].off, ranges[i].len);
    if (got != want)
      fail_msg ("range %zu (%" PRIu64 "+%" PRIu64 "): crc %08x, want %08x",
                i, ranges[i].off, ranges[i].len, got, want);
  }
  /* Unlike a plain crc of the data alone: the hole counts. */
  assert_int_not_equal (store_crc (&r, v, MIB, 2 * MIB),
                        crc32c (0, model + 2 * MIB, MIB));

  /* Many at once, as a verify would issue them. */
  {
    static struct bdev_io ios[48];
    static uint32_t crcs[48];
    for (size_t i = 0; i < 48; i++) {
      ios[i] = (struct bdev_io) { .op = BDEV_CHECKSUM, .offset = i * 65536,
                                  .len = 65536, .buf = &crcs[i],
                                  .done = io_cb, .opaque = &r };
      r.outstanding++;
      bdev_submit (store_vol_bdev (v), &ios[i]);
    }
    r.errors = 0;
    run_loop (&r);
    assert_int_equal (r.errors, 0);
    defined (crcs, sizeof crcs);
    for (size_t i = 0; i < 48; i++)
      assert_int_equal (crcs[i], crc32c (0, model + i * 65536, 65536));
  }

  /* Refusals. */
  {
    uint32_t crc;
    assert_int_equal (do_io (&r, v, BDEV_CHECKSUM, 0, 0, 0, &crc), EINVAL);
    assert_int_equal (do_io (&r, v, BDEV_CHECKSUM, 0, VSIZE, 4096, &crc),
                      EINVAL);
    assert_int_equal (do_io (&r, v, BDEV_CHECKSUM, 0, VSIZE - 4096, 8192,
                             &crc), EINVAL);
    assert_int_equal (do_io (&r, v, BDEV_CHECKSUM, 0, UINT64_MAX - 4095,
                             8192, &crc), EINVAL);
    assert_int_equal (do_io (&r, v, BDEV_CHECKSUM, 0, 0, 4096, NULL),
                      EINVAL);
    assert_int_equal (do_io (&r, v, BDEV_CHECKSUM, BDEV_DIRTY, 0, 4096,
                             &crc), EINVAL);
  }

  /* A data file shortened behind the store's back (as a crash of a
   * filesystem might leave it): what is missing reads as zeroes.
   */
  {
    int fd = openat (dirfd, "vol.data", O_WRONLY);
    assert_true (fd >= 0);
    assert_int_equal (ftruncate (fd, 2 * MIB + 4096), 0);
    memset (model + 2 * MIB + 4096, 0, VSIZE - 2 * MIB - 4096);
    assert_int_equal (store_crc (&r, v, 0, VSIZE), crc32c (0, model, VSIZE));
    assert_int_equal (store_crc (&r, v, 2 * MIB, MIB),
                      crc32c (0, model + 2 * MIB, MIB));
    assert_int_equal (ftruncate (fd, VSIZE), 0);
    close (fd);
  }

  assert_int_equal (store_delete (s, v), 0);
  store_close (s);
  free (model);
  free (data);
  loop_free (r.loop);
  close (dirfd);
  assert_int_equal (rmdir (dir), 0);
}

static const char *auto_none[] = { "auto", "none" };
static const char *auto_wb[] = { "auto", "writeback" };
static const char *aio_none[] = { "libaio", "none" };
static const char *aio_wb[] = { "libaio", "writeback" };

int
main (void)
{
  const struct CMUnitTest tests[] = {
    /* libaio first: valgrind reports an error site only once. */
    cmocka_unit_test_prestate (test_checksum, aio_none),
    cmocka_unit_test_prestate (test_checksum, aio_wb),
    cmocka_unit_test_prestate (test_checksum, auto_none),
    cmocka_unit_test_prestate (test_checksum, auto_wb),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
