/* test_manifest.c - the two JSON forms of a manifest from the one
 * builder (snapshot/manifest.c: manifest_json): the stored document of
 * man/repvol-snapshot.5, and the summary "repvol snapshot list --json"
 * prints for each snapshot.  Both keep their fields and their order;
 * the stored one reads back.  (The reader's checks are test_catalog's.)
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <json-c/json.h>

#include "snapshot/catalog.h"

#define UUID "0d9c6f3e-1b2a-4c5d-8e9f-a0b1c2d3e4f5"

/* 5 chunks of 64 KiB (the last one short), 0, 2 and 4 holding data. */
static void
make (struct manifest *m, const char *parent)
{
  memset (m, 0, sizeof *m);
  assert_int_equal (manifest_init (m, 4 * 65536 + 4096, 65536), 0);
  snprintf (m->name, sizeof m->name, "snap-1");
  snprintf (m->parent, sizeof m->parent, "%s", parent);
  snprintf (m->volume, sizeof m->volume, "vol1");
  snprintf (m->volume_uuid, sizeof m->volume_uuid, UUID);
  m->created = 1700000000;
  m->completed = 1700000060;
  m->data_bytes = 2 * 65536 + 4096;
  m->uploaded_bytes = 777;
  for (int i = 0; i < 5; i += 2) {
    memset (m->hashes[i], 0x11 * (i + 1), CHUNK_HASH_LEN);
    m->present[i] = true;
  }
}

/* The object's keys, in order, joined with ','. */
static void
keys_of (json_object *o, char *out, size_t outlen)
{
  size_t n = 0;
  out[0] = '\0';
  json_object_object_foreach (o, k, v) {
    (void) v;
    n += snprintf (out + n, outlen - n, "%s%s", n ? "," : "", k);
  }
}

static void
test_stored (void **state)
{
  struct manifest m, back;
  struct error err = { 0 };
  char keys[512];
  make (&m, "");

  json_object *o = manifest_json (&m, MANIFEST_STORED);
  assert_non_null (o);
  keys_of (o, keys, sizeof keys);
  assert_string_equal (keys, "format,name,parent,volume,volume_uuid,"
                       "volume_size,chunk_size,created,created_iso,completed,"
                       "completed_iso,data_bytes,uploaded_bytes,chunks");
  json_object *v;
  assert_true (json_object_object_get_ex (o, "parent", &v));
  assert_true (json_object_is_type (v, json_type_string));
  assert_string_equal (json_object_get_string (v), "");
  assert_true (json_object_object_get_ex (o, "completed_iso", &v));
  assert_string_equal (json_object_get_string (v), "2023-11-14T22:14:20Z");
  assert_true (json_object_object_get_ex (o, "chunks", &v));
  assert_int_equal (json_object_array_length (v), 3);
  json_object *pair = json_object_array_get_idx (v, 2);
  assert_int_equal (json_object_get_int64 (json_object_array_get_idx (pair, 0)),
                    4);
  assert_string_equal (json_object_get_string (json_object_array_get_idx (pair, 1)),
                       "5555555555555555555555555555555555555555555555555555555555555555");

  /* manifest_to_json is that object as a string, and it reads back. */
  char *s = manifest_to_json (&m);
  assert_string_equal (s, json_object_to_json_string_ext (o,
                                                          JSON_C_TO_STRING_PLAIN));
  json_object_put (o);
  if (manifest_from_json (s, strlen (s), &back, &err) != 0)
    fail_msg ("%s", error_msg (&err));
  assert_int_equal (back.nchunks, 5);
  assert_true (back.present[4] && !back.present[3]);
  assert_memory_equal (back.hashes[4], m.hashes[4], CHUNK_HASH_LEN);
  assert_int_equal (back.completed, m.completed);
  free (s);
  manifest_free (&back);
  manifest_free (&m);
}

static void
test_summary (void **state)
{
  struct manifest m;
  char keys[512];
  make (&m, "");

  json_object *o = manifest_json (&m, MANIFEST_SUMMARY);
  assert_non_null (o);
  keys_of (o, keys, sizeof keys);
  assert_string_equal (keys, "name,parent,volume,volume_uuid,volume_size,"
                       "chunk_size,created,created_iso,completed,chunks,"
                       "data_bytes,uploaded_bytes");
  json_object *v;
  /* A full snapshot's parent is null; chunks is a count. */
  assert_true (json_object_object_get_ex (o, "parent", &v));
  assert_null (v);
  assert_true (json_object_object_get_ex (o, "chunks", &v));
  assert_true (json_object_is_type (v, json_type_int));
  assert_int_equal (json_object_get_int64 (v), 3);
  assert_true (json_object_object_get_ex (o, "created_iso", &v));
  assert_string_equal (json_object_get_string (v), "2023-11-14T22:13:20Z");
  assert_true (json_object_object_get_ex (o, "uploaded_bytes", &v));
  assert_int_equal (json_object_get_int64 (v), 777);
  json_object_put (o);
  manifest_free (&m);

  /* An incremental one names its parent. */
  make (&m, "snap-0");
  o = manifest_json (&m, MANIFEST_SUMMARY);
  assert_true (json_object_object_get_ex (o, "parent", &v));
  assert_string_equal (json_object_get_string (v), "snap-0");
  json_object_put (o);
  manifest_free (&m);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_stored),
    cmocka_unit_test (test_summary),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
