/* test_ublk.c - the parts of the ublk frontend that need no kernel:
 * the spec ("queues=N,depth=N") and the geometry a device gets from
 * the bdev (block size, sectors, request limits) in ublk_queue.c, and
 * that ublk_probe says why when it fails.  The data path itself runs
 * under real kernels (tests/kernel/01*.sh, make check-kernel).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <cmocka.h>

#include "core/util.h"
#include "frontend/frontend.h"
#include "frontend/ublk_internal.h"

static void
test_parse_spec (void **state)
{
  unsigned q, d;

  assert_int_equal (ublk_parse_spec (NULL, &q, &d), 0);
  assert_int_equal (q, 1);
  assert_int_equal (d, 128);
  assert_int_equal (ublk_parse_spec ("", &q, &d), 0);
  assert_int_equal (q, 1);
  assert_int_equal (d, 128);
  assert_int_equal (ublk_parse_spec ("queues=4,depth=64", &q, &d), 0);
  assert_int_equal (q, 4);
  assert_int_equal (d, 64);
  assert_int_equal (ublk_parse_spec ("depth=1", &q, &d), 0);
  assert_int_equal (q, 1);
  assert_int_equal (d, 1);
  assert_int_equal (ublk_parse_spec ("queues=64", &q, &d), 0);
  assert_int_equal (q, 64);

  assert_int_equal (ublk_parse_spec ("queues=0", &q, &d), -EINVAL);
  assert_int_equal (ublk_parse_spec ("queues=65", &q, &d), -EINVAL);
  assert_int_equal (ublk_parse_spec ("depth=0", &q, &d), -EINVAL);
  assert_int_equal (ublk_parse_spec ("depth=5000", &q, &d), -EINVAL);
  assert_int_equal (ublk_parse_spec ("queues=2,color=red", &q, &d), -EINVAL);
  assert_int_equal (ublk_parse_spec ("queues=two", &q, &d), -EINVAL);
}

static int
geometry (uint64_t size, uint32_t bs, uint32_t max_io, struct ublk_dev *u)
{
  static struct bdev dev;

  memset (u, 0, sizeof *u);
  dev.info = (struct bdev_info) { .size = size, .block_size = bs,
                                  .max_io = max_io, .volatile_cache = 1 };
  u->dev = &dev;
  u->name = "t";
  return ublk_geometry (u);
}

static void
test_geometry (void **state)
{
  long page = sysconf (_SC_PAGESIZE);
  struct ublk_dev u;

  /* No block size: 512.  No max_io: the 1 MiB tag buffer. */
  assert_int_equal (geometry (64 << 20, 0, 0, &u), 0);
  assert_int_equal (u.block_size, 512);
  assert_true (u.dev_sectors == (64 << 20) >> 9);
  assert_int_equal (u.max_io, 1 << 20);
  assert_int_equal (u.bdev_max_io, 1 << 20);
  assert_true (u.volatile_cache);

  /* A tail shorter than a block is left out. */
  assert_int_equal (geometry ((1 << 20) + 1000, 4096, 0, &u), 0);
  assert_int_equal (u.block_size, 4096);
  assert_true (u.dev_sectors == (1 << 20) >> 9);

  /* Reads and writes fit the tag buffer (and pages); discards and
   * write-zeroes are split to the bdev's own limit.
   */
  assert_int_equal (geometry (64 << 20, 512, 4 << 20, &u), 0);
  assert_int_equal (u.max_io, 1 << 20);
  assert_int_equal (u.bdev_max_io, 4 << 20);
  assert_int_equal (geometry (64 << 20, 512, 3 * page + 512, &u), 0);
  assert_int_equal (u.max_io, 3 * page);
  assert_int_equal (u.bdev_max_io, 3 * page + 512);

  /* What a ublk device cannot be. */
  assert_int_equal (geometry (64 << 20, 256, 0, &u), -EINVAL);
  assert_int_equal (geometry (64 << 20, 3072, 0, &u), -EINVAL);
  assert_int_equal (geometry (64 << 20, 2 * page, 0, &u), -EINVAL);
  assert_int_equal (geometry (4095, 4096, 0, &u), -EINVAL);
  assert_int_equal (geometry (64 << 20, 512, 256, &u), -EINVAL);
}

static void
test_probe (void **state)
{
  struct error err = { 0 };
  int r = ublk_probe (&err);

  /* Wherever it runs: either usable, or a negative errno and why. */
  if (r < 0) {
    assert_true (err.code == -r);
    assert_true (err.msg[0] != '\0');
  }
  else
    assert_int_equal (r, 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_spec),
    cmocka_unit_test (test_geometry),
    cmocka_unit_test (test_probe),
  };
  log_init ("test_ublk");
  return cmocka_run_group_tests (tests, NULL, NULL);
}
