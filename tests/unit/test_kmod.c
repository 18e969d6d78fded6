/* test_kmod.c - the parts of the kmod frontend that need no module:
 * the spec ("queues=N,depth=N", within repvol.ko's limits), the ADD
 * parameters a device gets from the bdev (kmod.c), that kmod_probe says
 * why when it fails, and which registry descriptions a kmod start takes
 * over or a stale-device release handles.  The data path and recovery
 * run against the real module (tests/kernel/05*.sh, make check-kernel).
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
#include "frontend/kmod_internal.h"

static void
test_parse_spec (void **state)
{
  unsigned q, d;
  int64_t rec;

  assert_int_equal (kmod_parse_spec (NULL, &q, &d, &rec), 0);
  assert_int_equal (q, 1);
  assert_int_equal (d, 128);
  assert_true (rec == KMOD_RECOVER_ANY);
  assert_int_equal (kmod_parse_spec ("queues=32,depth=1024", &q, &d, &rec), 0);
  assert_int_equal (q, 32);
  assert_int_equal (d, 1024);
  assert_int_equal (kmod_parse_spec ("depth=1", &q, &d, &rec), 0);
  assert_int_equal (q, 1);
  assert_int_equal (d, 1);

  /* repvol.ko's limits, tighter than ublk's. */
  assert_int_equal (kmod_parse_spec ("queues=0", &q, &d, &rec), -EINVAL);
  assert_int_equal (kmod_parse_spec ("queues=33", &q, &d, &rec), -EINVAL);
  assert_int_equal (kmod_parse_spec ("depth=0", &q, &d, &rec), -EINVAL);
  assert_int_equal (kmod_parse_spec ("depth=1025", &q, &d, &rec), -EINVAL);
  assert_int_equal (kmod_parse_spec ("queue=2", &q, &d, &rec), -EINVAL);
  assert_int_equal (kmod_parse_spec ("queues=2,", &q, &d, &rec), 0);

  /* Which device the dead predecessor served, from attach. */
  assert_int_equal (kmod_parse_spec ("queues=1,recover=/dev/repvol7", &q, &d,
                                     &rec), 0);
  assert_true (rec == 7);
  assert_int_equal (kmod_parse_spec ("recover=none", &q, &d, &rec), 0);
  assert_true (rec == KMOD_RECOVER_NONE);
  assert_int_equal (kmod_parse_spec ("recover=/dev/repvol1024", &q, &d,
                                     &rec), -EINVAL);
  assert_int_equal (kmod_parse_spec ("recover=/dev/sda", &q, &d, &rec),
                    -EINVAL);
}

static int
geometry (uint64_t size, uint32_t bs, uint32_t max_io, struct kmod_dev *k)
{
  static struct bdev dev;

  memset (k, 0, sizeof *k);
  dev.info = (struct bdev_info) { .size = size, .block_size = bs,
                                  .max_io = max_io, .volatile_cache = 1 };
  k->dev = &dev;
  k->name = "t";
  return kmod_geometry (k, 2, 64);
}

static void
test_geometry (void **state)
{
  struct kmod_dev k;

  /* No block size: 512; no max_io: 1 MiB.  Always a volatile cache
   * with FUA, discard and write-zeroes: what ADD checks must hold.
   */
  assert_int_equal (geometry (64 << 20, 0, 0, &k), 0);
  assert_int_equal (k.p.logical_block_size, 512);
  assert_int_equal (k.p.physical_block_size, 4096);
  assert_true (k.p.size == 64 << 20);
  assert_int_equal (k.p.max_io_bytes, 1 << 20);
  assert_int_equal (k.p.nr_queues, 2);
  assert_int_equal (k.p.queue_depth, 64);
  assert_int_equal (k.p.features, REPVOL_F_WRITE_CACHE | REPVOL_F_FUA |
                    REPVOL_F_DISCARD | REPVOL_F_WRITE_ZEROES);
  assert_int_equal (k.p.features & ~REPVOL_F_ALL, 0);
  assert_int_equal (k.p.reserved[0] | k.p.state | k.p.arg | k.p.server_pid, 0);
  /* The owner: the volume's, never 0, another for another name. */
  assert_true (k.p.owner == kmod_owner (k.name) && k.p.owner != 0);
  assert_true (kmod_owner ("vol1") == kmod_owner ("vol1"));
  assert_true (kmod_owner ("vol1") != kmod_owner ("vol2"));
  assert_true (kmod_owner ("") != 0);

  /* A tail shorter than a block is left out: size a block multiple. */
  assert_int_equal (geometry ((1 << 20) + 1000, 4096, 0, &k), 0);
  assert_true (k.p.size == 1 << 20);
  assert_int_equal (k.p.physical_block_size, 4096);

  /* Reads and writes up to 1 MiB and a multiple of 4 KiB (the module's
   * minimum); discards split to the bdev's own limit.
   */
  assert_int_equal (geometry (64 << 20, 512, 4 << 20, &k), 0);
  assert_int_equal (k.p.max_io_bytes, 1 << 20);
  assert_int_equal (k.bdev_max_io, 4 << 20);
  assert_int_equal (geometry (64 << 20, 512, 3 * 4096 + 512, &k), 0);
  assert_int_equal (k.p.max_io_bytes, 3 * 4096);
  assert_int_equal (k.bdev_max_io, 3 * 4096 + 512);

  /* What a repvol.ko device cannot be. */
  assert_int_equal (geometry (64 << 20, 256, 0, &k), -EINVAL);
  assert_int_equal (geometry (64 << 20, 3072, 0, &k), -EINVAL);
  assert_int_equal (geometry (64 << 20, 8192, 0, &k), -EINVAL);
  assert_int_equal (geometry (4095, 4096, 0, &k), -EINVAL);
  assert_int_equal (geometry (64 << 20, 512, 2048, &k), -EINVAL);
}

static void
test_probe (void **state)
{
  struct error err = { 0 };
  int r = kmod_probe (&err);

  if (r < 0) {
    assert_true (err.code == -r);
    assert_true (err.msg[0] != '\0');
    if (r == -ENOENT)
      assert_non_null (strstr (err.msg, "repvol.ko is not loaded"));
  }
  else
    assert_int_equal (r, 0);
}

static void
test_recover_release (void **state)
{
  char where[64];
  struct error err = { 0 };

  const char *sp = "queues=1,depth=128";
  assert_true (frontend_may_recover ("kmod", sp, "kmod /dev/repvol3"));
  assert_false (frontend_may_recover ("ublk", sp, "kmod /dev/repvol3"));
  assert_false (frontend_may_recover ("kmod", sp, "ublk /dev/ublkb0"));
  assert_false (frontend_may_recover ("kmod", sp, "nbd-kernel /dev/nbd0"));
  assert_false (frontend_may_recover ("kmod", sp, "kmod queues=1,depth=128"));
  assert_false (frontend_may_recover ("kmod", sp, ""));
  assert_false (frontend_may_recover ("nbd-kernel", "auto", "kmod /dev/repvol0"));

  /* attach tells kmod which device its dead predecessor served. */
  char buf[128];
  assert_string_equal (frontend_start_spec ("kmod", "queues=1,depth=8",
                                            "kmod /dev/repvol3", buf,
                                            sizeof buf),
                       "queues=1,depth=8,recover=/dev/repvol3");
  assert_string_equal (frontend_start_spec ("kmod", "queues=1", NULL, buf,
                                            sizeof buf),
                       "queues=1,recover=none");
  /* Died before it recorded its device: its spec, not a device. */
  assert_string_equal (frontend_start_spec ("kmod", "queues=1",
                                            "kmod queues=1,depth=128", buf,
                                            sizeof buf),
                       "queues=1,recover=none");
  assert_string_equal (frontend_start_spec ("kmod", "queues=1",
                                            "ublk /dev/ublkb0", buf,
                                            sizeof buf),
                       "queues=1,recover=none");
  assert_string_equal (frontend_start_spec ("ublk", "queues=1",
                                            "kmod /dev/repvol3", buf,
                                            sizeof buf), "queues=1");

  /* A live pid's device is never stale; a bad name is refused; one that
   * died before it had a device has nothing to free.
   */
  assert_int_equal (frontend_release_stale ("kmod queues=1,depth=128", "v",
                                            1 << 30, where, sizeof where,
                                            &err), 0);
  assert_int_equal (frontend_release_stale ("kmod /dev/repvol0", "v", getpid (),
                                            where, sizeof where, &err), 0);
  assert_string_equal (where, "/dev/repvol0");
  assert_int_equal (frontend_release_stale ("kmod /dev/sda", "v", 1 << 30, where,
                                            sizeof where, &err), -EINVAL);
  assert_int_equal (frontend_release_stale ("kmod /dev/repvol99999", "v",
                                            1 << 30, where, sizeof where,
                                            &err), -EINVAL);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_spec),
    cmocka_unit_test (test_geometry),
    cmocka_unit_test (test_probe),
    cmocka_unit_test (test_recover_release),
  };
  log_init ("test_kmod");
  return cmocka_run_group_tests (tests, NULL, NULL);
}
