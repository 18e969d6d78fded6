/* test_store_meta.c - the replica metadata file (store/meta.c): codec
 * round trip, refusal of corrupted, truncated, overlong and wrong-version
 * records, and the atomic file write/read pair.
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
#include <cmocka.h>

#include "core/util.h"
#include "store/store.h"

static struct store_meta
sample (void)
{
  struct store_meta m = { 0 };
  strcpy (m.name, "vol-1.a_b");
  for (int i = 0; i < 16; i++) m.uuid[i] = 0xa0 + i;
  m.size = 10ull << 30;
  m.block_size = 4096;
  m.flags = STORE_F_RESERVED;
  m.epoch = 0x123456789abcull;
  m.state = STORE_STATE_NONE;
  m.created = 1700000000;
  return m;
}

static void
expect_refused (const uint8_t *buf, size_t len, const char *what)
{
  struct store_meta m;
  struct error why = { 0 };
  if (store_meta_decode (buf, len, &m, &why) != -EBADMSG)
    fail_msg ("%s: accepted", what);
  assert_true (why.msg[0] != '\0');
}

/* Re-seal a record after editing it, so a test reaches the field check
 * rather than stopping at the checksum.
 */
static void
reseal (uint8_t *buf)
{
  uint32_t crc = crc32c (0, buf, STORE_META_SIZE - 4);
  buf[STORE_META_SIZE - 4] = crc;
  buf[STORE_META_SIZE - 3] = crc >> 8;
  buf[STORE_META_SIZE - 2] = crc >> 16;
  buf[STORE_META_SIZE - 1] = crc >> 24;
}

static void
test_roundtrip (void **state)
{
  struct store_meta in = sample (), out;
  uint8_t buf[STORE_META_SIZE];
  struct error why = { 0 };

  store_meta_encode (&in, buf);
  assert_int_equal (store_meta_decode (buf, sizeof buf, &out, &why), 0);
  assert_string_equal (out.name, in.name);
  assert_memory_equal (out.uuid, in.uuid, 16);
  assert_true (out.size == in.size);
  assert_int_equal (out.block_size, in.block_size);
  assert_int_equal (out.flags, in.flags);
  assert_true (out.epoch == in.epoch);
  assert_int_equal (out.state, in.state);
  assert_true (out.created == in.created);

  /* Longest valid name. */
  memset (in.name, 'x', STORE_NAME_MAX - 1);
  in.name[STORE_NAME_MAX - 1] = '\0';
  store_meta_encode (&in, buf);
  assert_int_equal (store_meta_decode (buf, sizeof buf, &out, &why), 0);
  assert_string_equal (out.name, in.name);
}

static void
test_every_bit_flip_refused (void **state)
{
  struct store_meta m = sample ();
  uint8_t buf[STORE_META_SIZE];

  store_meta_encode (&m, buf);
  for (size_t i = 0; i < STORE_META_SIZE; i++)
    for (int bit = 0; bit < 8; bit++) {
      uint8_t copy[STORE_META_SIZE];
      memcpy (copy, buf, sizeof copy);
      copy[i] ^= 1u << bit;
      char what[64];
      snprintf (what, sizeof what, "flip byte %zu bit %d", i, bit);
      expect_refused (copy, sizeof copy, what);
    }
}

static void
test_truncated_and_overlong (void **state)
{
  struct store_meta m = sample ();
  uint8_t buf[STORE_META_SIZE + 1];

  store_meta_encode (&m, buf);
  buf[STORE_META_SIZE] = 0;
  for (size_t len = 0; len < STORE_META_SIZE; len++)
    expect_refused (buf, len, "truncated");
  expect_refused (buf, STORE_META_SIZE + 1, "overlong");
}

static void
test_wrong_version (void **state)
{
  struct store_meta m = sample (), out;
  uint8_t buf[STORE_META_SIZE];
  struct error why = { 0 };

  store_meta_encode (&m, buf);
  buf[8] = STORE_META_VERSION + 1;
  reseal (buf);
  assert_int_equal (store_meta_decode (buf, sizeof buf, &out, &why), -EBADMSG);
  assert_non_null (strstr (why.msg, "version"));
  buf[8] = 0;
  reseal (buf);
  expect_refused (buf, sizeof buf, "version 0");
}

/* Case i of the field checks: edit m, return what it tests (NULL: done). */
static const char *
bad_field (int i, struct store_meta *m)
{
  switch (i) {
  case 0: m->name[0] = '\0'; return "empty name";
  case 1: strcpy (m->name, ".hidden"); return "name starting with a dot";
  case 2: strcpy (m->name, "a/b"); return "slash in name";
  case 3: m->block_size = 0; return "block size 0";
  case 4: m->block_size = 3000; return "block size 3000";
  case 5: m->block_size = 256; return "block size 256";
  case 6: m->block_size = 131072; return "block size 128K";
  case 7: m->size = 0; return "size 0";
  case 8: m->size = 4096 * 3 + 512; return "size not a block multiple";
  case 9: m->flags |= 1u << 7; return "unknown flag";
  case 10: m->state = 99; return "unknown state";
  default: return NULL;
  }
}

static void
test_bad_fields (void **state)
{
  const char *what;
  struct store_meta m = sample ();

  for (int i = 0; (what = bad_field (i, &m)) != NULL; i++, m = sample ()) {
    uint8_t buf[STORE_META_SIZE];
    struct error why = { 0 };
    if (store_meta_check (&m, &why) != -EINVAL)
      fail_msg ("store_meta_check accepted: %s", what);
    store_meta_encode (&m, buf);
    expect_refused (buf, sizeof buf, what);
  }
}

static void
test_reserved_must_be_zero (void **state)
{
  struct store_meta m = sample ();
  uint8_t buf[STORE_META_SIZE];

  store_meta_encode (&m, buf);
  buf[200] = 1;
  reseal (buf);
  expect_refused (buf, sizeof buf, "reserved byte");
  store_meta_encode (&m, buf);
  buf[16 + STORE_NAME_MAX - 1] = 'x';       /* name without its NUL */
  memset (buf + 16, 'x', STORE_NAME_MAX);
  reseal (buf);
  expect_refused (buf, sizeof buf, "unterminated name");
}

static void
test_file_write_read (void **state)
{
  char dir[] = "/tmp/test_store_meta.XXXXXX";
  struct store_meta m = sample (), out;
  struct error why = { 0 };
  int dirfd, fd;

  assert_non_null (mkdtemp (dir));
  dirfd = open (dir, O_RDONLY | O_DIRECTORY);
  assert_true (dirfd >= 0);

  assert_int_equal (store_meta_write (dirfd, &m), 0);
  assert_int_equal (store_meta_read (dirfd, m.name, &out, &why), 0);
  assert_true (out.epoch == m.epoch);

  /* Replace: the new epoch is read back, no temp file is left behind. */
  m.epoch++;
  assert_int_equal (store_meta_write (dirfd, &m), 0);
  assert_int_equal (store_meta_read (dirfd, m.name, &out, &why), 0);
  assert_true (out.epoch == m.epoch);
  assert_int_equal (faccessat (dirfd, ".vol-1.a_b.meta.tmp", F_OK, 0), -1);

  /* A torn (short) file is refused with a reason. */
  fd = openat (dirfd, "vol-1.a_b.meta", O_WRONLY);
  assert_true (fd >= 0);
  assert_int_equal (ftruncate (fd, 100), 0);
  close (fd);
  assert_int_equal (store_meta_read (dirfd, m.name, &out, &why), -EBADMSG);
  assert_true (why.msg[0] != '\0');

  /* A valid record under another volume's name is refused. */
  assert_int_equal (store_meta_write (dirfd, &m), 0);
  assert_int_equal (renameat (dirfd, "vol-1.a_b.meta", dirfd, "other.meta"),
                    0);
  assert_int_equal (store_meta_read (dirfd, "other", &out, &why), -EBADMSG);
  assert_int_equal (store_meta_read (dirfd, "vol-1.a_b", &out, &why), -ENOENT);

  unlinkat (dirfd, "other.meta", 0);
  close (dirfd);
  rmdir (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_roundtrip),
    cmocka_unit_test (test_every_bit_flip_refused),
    cmocka_unit_test (test_truncated_and_overlong),
    cmocka_unit_test (test_wrong_version),
    cmocka_unit_test (test_bad_fields),
    cmocka_unit_test (test_reserved_must_be_zero),
    cmocka_unit_test (test_file_write_read),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
