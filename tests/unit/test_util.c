/* test_util.c - size, address and name parsing (util.c). */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "core/util.h"

static void
size_ok (const char *s, uint64_t want)
{
  uint64_t v = 12345;
  if (parse_size (s, &v) != 0)
    fail_msg ("parse_size (\"%s\") failed: %s", s, strerror (errno));
  if (v != want)
    fail_msg ("parse_size (\"%s\") = %llu, want %llu", s,
              (unsigned long long) v, (unsigned long long) want);
}

static void
size_bad (const char *s, int want_errno)
{
  uint64_t v = 12345;
  errno = 0;
  if (parse_size (s, &v) != -1)
    fail_msg ("parse_size (\"%s\") accepted as %llu", s, (unsigned long long) v);
  if (errno != want_errno)
    fail_msg ("parse_size (\"%s\"): errno %d, want %d", s, errno, want_errno);
  assert_int_equal (v, 12345);  /* untouched on failure */
}

static void
test_parse_size (void **state)
{
  size_ok ("4096", 4096);
  size_ok ("0", 0);             /* parseable; the CLI refuses a zero size */
  size_ok ("64M", 64ull << 20);
  size_ok ("64m", 64ull << 20);
  size_ok ("10G", 10ull << 30);
  size_ok ("1T", 1ull << 40);
  size_ok ("2P", 2ull << 50);
  size_ok ("512K", 512ull << 10);
  size_ok ("64MiB", 64ull << 20);
  size_ok ("10GB", 10ull << 30);
  size_ok ("4096B", 4096);
  size_ok ("16383P", 16383ull << 50);             /* largest that fits */
  size_ok ("18446744073709551615", UINT64_MAX);

  /* Fractions are refused rather than rounded: a volume size should be
   * exactly what was typed.
   */
  size_bad ("1.5G", EINVAL);
  size_bad ("", EINVAL);
  size_bad ("-1", EINVAL);
  size_bad ("+1", EINVAL);
  size_bad (" 64M", EINVAL);
  size_bad ("64M ", EINVAL);
  size_bad ("10X", EINVAL);
  size_bad ("G", EINVAL);
  size_bad ("64MM", EINVAL);
  size_bad ("0x100", EINVAL);
  size_bad ("18446744073709551616", ERANGE);      /* 2^64 */
  size_bad ("16384P", ERANGE);                    /* 2^64 bytes */
  size_bad ("17179869184G", ERANGE);              /* 2^64 bytes */
  size_bad (NULL, EINVAL);
}

static void
test_parse_uint (void **state)
{
  uint64_t v;
  assert_int_equal (parse_uint ("60", 1, 3600, &v), 0);
  assert_int_equal (v, 60);
  assert_int_equal (parse_uint ("0", 1, 3600, &v), -1);
  assert_int_equal (parse_uint ("3601", 1, 3600, &v), -1);
  assert_int_equal (parse_uint ("12s", 1, 3600, &v), -1);
  assert_int_equal (parse_uint ("", 1, 3600, &v), -1);
  assert_int_equal (parse_uint ("-5", 0, 3600, &v), -1);
}

static void
test_parse_duration (void **state)
{
  uint64_t v;
  assert_int_equal (parse_duration ("90", 0, 86400, &v), 0);
  assert_int_equal (v, 90);
  assert_int_equal (parse_duration ("30s", 0, 86400, &v), 0);
  assert_int_equal (v, 30);
  assert_int_equal (parse_duration ("5m", 0, 86400, &v), 0);
  assert_int_equal (v, 300);
  assert_int_equal (parse_duration ("2h", 0, 86400, &v), 0);
  assert_int_equal (v, 7200);
  assert_int_equal (parse_duration ("1d", 0, 86400, &v), 0);
  assert_int_equal (v, 86400);
  assert_int_equal (parse_duration ("0", 0, 86400, &v), 0);
  assert_int_equal (v, 0);
  assert_int_equal (parse_duration ("2d", 0, 86400, &v), -1);
  assert_int_equal (parse_duration ("5x", 0, 86400, &v), -1);
  assert_int_equal (parse_duration ("m", 0, 86400, &v), -1);
  assert_int_equal (parse_duration ("", 0, 86400, &v), -1);
  assert_int_equal (parse_duration ("-1s", 0, 86400, &v), -1);
  assert_int_equal (parse_duration ("99999999999999999999d", 0, UINT64_MAX, &v), -1);
  assert_int_equal (parse_duration (NULL, 0, 86400, &v), -1);
}

static void
test_parse_hostport (void **state)
{
  struct sockaddr_storage ss;
  socklen_t len;

  assert_int_equal (parse_hostport ("127.0.0.1:7001", &ss, &len), 0);
  assert_int_equal (ss.ss_family, AF_INET);
  struct sockaddr_in *sin = (struct sockaddr_in *) &ss;
  assert_int_equal (ntohs (sin->sin_port), 7001);
  assert_int_equal (ntohl (sin->sin_addr.s_addr), 0x7f000001);
  assert_int_equal (len, sizeof *sin);

  assert_int_equal (parse_hostport ("[::1]:65535", &ss, &len), 0);
  assert_int_equal (ss.ss_family, AF_INET6);
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;
  assert_int_equal (ntohs (sin6->sin6_port), 65535);
  assert_true (IN6_IS_ADDR_LOOPBACK (&sin6->sin6_addr));

  static const char *bad[] = {
    "", "127.0.0.1", "127.0.0.1:", ":7001", "127.0.0.1:0", "127.0.0.1:65536",
    "127.0.0.1:70x", "127.0.0.1:-1", "[::1]7001", "[::1", "::1:7001x",
  };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
    errno = 0;
    if (parse_hostport (bad[i], &ss, &len) != -1)
      fail_msg ("parse_hostport (\"%s\") accepted", bad[i]);
    assert_int_equal (errno, EINVAL);
  }
  assert_int_equal (parse_hostport (NULL, &ss, &len), -1);
}

static void
test_valid_name (void **state)
{
  char longest[64], too_long[65];
  memset (longest, 'a', 63);
  longest[63] = '\0';
  memset (too_long, 'a', 64);
  too_long[64] = '\0';

  static const char *good[] = {
    "v", "vol1", "my-vol_2.data", "A", "0", "a.", "a..b",
  };
  for (size_t i = 0; i < ARRAY_SIZE (good); i++)
    if (!valid_name (good[i]))
      fail_msg ("valid_name (\"%s\") refused", good[i]);
  assert_true (valid_name (longest));

  static const char *bad[] = {
    "", ".", "..", ".hidden", "-opt", "a/b", "../x", "a b", "a\tb", "vol\n",
    "é", "a:b", "a*",
  };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    if (valid_name (bad[i]))
      fail_msg ("valid_name (\"%s\") accepted", bad[i]);
  assert_false (valid_name (too_long));
  assert_false (valid_name (NULL));
}

static void
test_format_size (void **state)
{
  char buf[32];
  assert_string_equal (format_size (64ull << 20, buf, sizeof buf), "64 MiB");
  assert_string_equal (format_size (4096, buf, sizeof buf), "4 KiB");
  assert_string_equal (format_size (100, buf, sizeof buf), "100 B");
  assert_string_equal (format_size (3ull << 29, buf, sizeof buf), "1.5 GiB");
}

static void
test_mem_is_zero (void **state)
{
  size_t len = 1 << 20;
  char *buf = calloc (1, len);
  assert_true (mem_is_zero (buf, 0));
  assert_true (mem_is_zero (buf, 1));
  assert_true (mem_is_zero (buf, len));
  buf[len - 1] = 1;
  assert_false (mem_is_zero (buf, len));
  buf[len - 1] = 0;
  buf[0] = 1;
  assert_false (mem_is_zero (buf, len));
  assert_false (mem_is_zero (buf, 1));
  memset (buf, 7, len);         /* all equal but not zero */
  assert_false (mem_is_zero (buf, len));
  free (buf);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_size),
    cmocka_unit_test (test_parse_uint),
    cmocka_unit_test (test_parse_duration),
    cmocka_unit_test (test_parse_hostport),
    cmocka_unit_test (test_valid_name),
    cmocka_unit_test (test_format_size),
    cmocka_unit_test (test_mem_is_zero),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
