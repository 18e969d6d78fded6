/* test_nbd_kernel.c - the parts of the kernel NBD frontend that need no
 * kernel: its spec ("/dev/nbdN" or "auto", then ",dead-timeout=S"), which
 * dead attach's device a new attach may take over instead of releasing
 * (frontend_may_recover), and that a detach leaves alone a device that
 * is not there.  Connecting and recovering run under real kernels
 * (tests/kernel/02*.sh, make check-kernel).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "core/util.h"
#include "frontend/frontend.h"
#include "frontend/nbd_kernel_internal.h"

static void
test_parse_spec (void **state)
{
  unsigned dt = 30;
  int index;

  assert_int_equal (nk_parse_spec ("auto", &index, &dt), 0);
  assert_int_equal (index, -1);
  assert_int_equal (dt, 30);
  assert_int_equal (nk_parse_spec ("/dev/nbd7", &index, &dt), 0);
  assert_int_equal (index, 7);
  assert_int_equal (dt, 30);
  assert_int_equal (nk_parse_spec ("/dev/nbd12,dead-timeout=120", &index,
                                   &dt), 0);
  assert_int_equal (index, 12);
  assert_int_equal (dt, 120);
  assert_int_equal (nk_parse_spec ("auto,dead-timeout=0", &index, &dt), 0);
  assert_int_equal (index, -1);
  assert_int_equal (dt, 0);

  assert_int_equal (nk_parse_spec ("", &index, &dt), -EINVAL);
  assert_int_equal (nk_parse_spec ("autox", &index, &dt), -EINVAL);
  assert_int_equal (nk_parse_spec ("/dev/nbd", &index, &dt), -EINVAL);
  assert_int_equal (nk_parse_spec ("/dev/nbdx", &index, &dt), -EINVAL);
  assert_int_equal (nk_parse_spec ("/dev/nbd1x", &index, &dt), -EINVAL);
  assert_int_equal (nk_parse_spec ("/dev/sda", &index, &dt), -EINVAL);
  assert_int_equal (nk_parse_spec ("/dev/nbd1,", &index, &dt), -EINVAL);
  assert_int_equal (nk_parse_spec ("/dev/nbd1,timeout=3", &index, &dt),
                    -EINVAL);
  assert_int_equal (nk_parse_spec ("auto,dead-timeout=3601", &index, &dt),
                    -EINVAL);
  assert_int_equal (nk_parse_spec ("auto,dead-timeout=", &index, &dt),
                    -EINVAL);
}

static void
test_may_recover (void **state)
{
  /* auto: whatever device the dead attach had (the state file says). */
  assert_true (frontend_may_recover ("nbd-kernel", "auto",
                                     "nbd-kernel /dev/nbd0"));
  assert_true (frontend_may_recover ("nbd-kernel", "auto,dead-timeout=5",
                                     "nbd-kernel /dev/nbd3"));
  /* A device named: only the same one. */
  assert_true (frontend_may_recover ("nbd-kernel", "/dev/nbd1",
                                     "nbd-kernel /dev/nbd1"));
  assert_true (frontend_may_recover ("nbd-kernel", "/dev/nbd1,dead-timeout=9",
                                     "nbd-kernel /dev/nbd1,dead-timeout=5"));
  assert_false (frontend_may_recover ("nbd-kernel", "/dev/nbd1",
                                      "nbd-kernel /dev/nbd10"));
  assert_false (frontend_may_recover ("nbd-kernel", "/dev/nbd10",
                                      "nbd-kernel /dev/nbd1"));
  /* Other frontends, or a predecessor that was not kernel NBD. */
  assert_false (frontend_may_recover ("ublk", "queues=1,depth=128",
                                      "nbd-kernel /dev/nbd0"));
  assert_false (frontend_may_recover ("nbd-kernel", "auto",
                                      "ublk /dev/ublkb0"));
  assert_false (frontend_may_recover ("nbd-kernel", "auto", ""));
}

static void
test_release_stale (void **state)
{
  struct error err = { 0 };
  char where[64];

  setenv ("REPVOL_RUN_DIR", "/tmp", 1);
  /* Sockets go with their process. */
  assert_int_equal (frontend_release_stale ("nbd unix:/tmp/x.sock", "v",
                                            1, where, sizeof where, &err), 0);
  /* A device the kernel does not have (or shows as free): nothing. */
  assert_int_equal (frontend_release_stale ("nbd-kernel /dev/nbd999999",
                                            "v", 1, where, sizeof where,
                                            &err), 0);
  assert_string_equal (where, "/dev/nbd999999");
  assert_int_equal (frontend_release_stale
                    ("nbd-kernel /dev/nbd999999,dead-timeout=5", "v", 1,
                     where, sizeof where, &err), 0);
  assert_string_equal (where, "/dev/nbd999999");
  /* One that died before it was connected names no device. */
  assert_int_equal (frontend_release_stale ("nbd-kernel auto", "v", 1,
                                            where, sizeof where, &err),
                    -EINVAL);
  assert_int_equal (err.code, EINVAL);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_spec),
    cmocka_unit_test (test_may_recover),
    cmocka_unit_test (test_release_stale),
  };
  log_init ("test_nbd_kernel");
  return cmocka_run_group_tests (tests, NULL, NULL);
}
