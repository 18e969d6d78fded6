/* test_catalog.c - the snapshot catalog (snapshot/manifest.c, chunk.c,
 * gc.c), the checked boundary of the object store (objstore/objstore.c)
 * and the file:///DIR store (objstore/file.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/util.h"
#include "objstore/objstore.h"
#include "snapshot/catalog.h"

#define UUID "0d9c6f3e-1b2a-4c5d-8e9f-a0b1c2d3e4f5"
#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct fixture {
  char dir[64];
  char url[96];
  struct objstore *os;
};

static int
setup (void **state)
{
  struct fixture *f = calloc (1, sizeof *f);
  struct error err = { 0 };
  snprintf (f->dir, sizeof f->dir, "/tmp/test_catalog.XXXXXX");
  assert_non_null (mkdtemp (f->dir));
  /* A store directory that does not exist yet: open creates it. */
  snprintf (f->url, sizeof f->url, "file://%s/store/sub", f->dir);
  f->os = objstore_open (f->url, &err);
  if (f->os == NULL)
    fail_msg ("%s", error_msg (&err));
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  char cmd[160];
  objstore_close (f->os);
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  if (system (cmd) != 0)
    return -1;
  free (f);
  return 0;
}

/* ---- manifests ------------------------------------------------------- */

static void
make_manifest (struct manifest *m, const char *name, uint64_t size,
               uint32_t csize)
{
  memset (m, 0, sizeof *m);
  assert_int_equal (manifest_init (m, size, csize), 0);
  snprintf (m->name, sizeof m->name, "%s", name);
  snprintf (m->volume, sizeof m->volume, "vol1");
  snprintf (m->volume_uuid, sizeof m->volume_uuid, UUID);
  m->created = 1700000000;
  m->completed = 1700000042;
}

static void
test_manifest_round_trip (void **state)
{
  struct manifest m, back;
  struct error err = { 0 };

  /* 10 chunks of 64 KiB and a partial eleventh. */
  make_manifest (&m, "snap-1.a_b", 10 * 65536 + 4096, 65536);
  assert_int_equal (m.nchunks, 11);
  snprintf (m.parent, sizeof m.parent, "snap-0");
  m.data_bytes = 3 * 65536;
  m.uploaded_bytes = 12345;
  for (int i = 0; i < 11; i += 4) {
    m.present[i] = true;
    for (int j = 0; j < CHUNK_HASH_LEN; j++)
      m.hashes[i][j] = i * 31 + j;
  }
  char *json = manifest_to_json (&m);
  assert_non_null (json);
  assert_non_null (strstr (json, "\"format\":1"));
  assert_non_null (strstr (json, "\"created_iso\":\"2023-11-14T22:13:20Z\""));

  if (manifest_from_json (json, strlen (json), &back, &err) != 0)
    fail_msg ("%s", error_msg (&err));
  assert_string_equal (back.name, m.name);
  assert_string_equal (back.parent, "snap-0");
  assert_string_equal (back.volume, "vol1");
  assert_string_equal (back.volume_uuid, UUID);
  assert_int_equal (back.volume_size, m.volume_size);
  assert_int_equal (back.chunk_size, 65536);
  assert_int_equal (back.nchunks, 11);
  assert_int_equal (back.created, m.created);
  assert_int_equal (back.completed, m.completed);
  assert_int_equal (back.data_bytes, m.data_bytes);
  assert_int_equal (back.uploaded_bytes, 12345);
  for (int i = 0; i < 11; i++) {
    assert_int_equal (back.present[i], m.present[i]);
    if (m.present[i])
      assert_memory_equal (back.hashes[i], m.hashes[i], CHUNK_HASH_LEN);
  }
  free (json);
  manifest_free (&back);
  manifest_free (&m);
}

/* A valid document, field by field; each hostile case swaps one value
 * (or drops the field) and expects err to name it.
 */
static const char *const base_fields[][2] = {
  { "format", "1" },
  { "name", "\"s1\"" },
  { "parent", "\"\"" },
  { "volume", "\"vol1\"" },
  { "volume_uuid", "\"" UUID "\"" },
  { "volume_size", "1048576" },
  { "chunk_size", "262144" },
  { "created", "1700000000" },
  { "completed", "1700000100" },
  { "data_bytes", "524288" },
  { "uploaded_bytes", "1000" },
  { "chunks", "[[0,\"" HEX_A "\"],[3,\"" HEX_B "\"]]" },
};

static char *
build_doc (const char *field, const char *value)
{
  static char doc[8192];
  size_t n = snprintf (doc, sizeof doc, "{");
  bool first = true;
  for (size_t i = 0; i < ARRAY_SIZE (base_fields); i++) {
    const char *v = base_fields[i][1];
    if (field && strcmp (field, base_fields[i][0]) == 0) {
      if (value == NULL)
        continue;
      v = value;
    }
    n += snprintf (doc + n, sizeof doc - n, "%s\"%s\":%s", first ? "" : ",",
                   base_fields[i][0], v);
    first = false;
  }
  snprintf (doc + n, sizeof doc - n, "}");
  return doc;
}

static void
test_manifest_base_valid (void **state)
{
  struct manifest m;
  struct error err = { 0 };
  char *doc = build_doc (NULL, NULL);
  if (manifest_from_json (doc, strlen (doc), &m, &err) != 0)
    fail_msg ("%s", error_msg (&err));
  assert_int_equal (m.nchunks, 4);
  assert_true (m.present[0] && !m.present[1] && !m.present[2] && m.present[3]);
  manifest_free (&m);

  /* Whitespace around the document is fine (files end in a newline). */
  char padded[8192];
  snprintf (padded, sizeof padded, " \n%s\n\n", doc);
  if (manifest_from_json (padded, strlen (padded), &m, &err) != 0)
    fail_msg ("%s", error_msg (&err));
  manifest_free (&m);
}

static void
test_manifest_hostile_fields (void **state)
{
  static const struct {
    const char *field, *value, *expect;
  } cases[] = {
    { "format", NULL, "'format' is missing" },
    { "format", "2", "'format'" },
    { "format", "\"1\"", "'format' is not an integer" },
    { "format", "1.0", "'format' is not an integer" },
    { "name", NULL, "'name' is missing" },
    { "name", "\"\"", "'name'" },
    { "name", "\".hidden\"", "'name'" },
    { "name", "\"a/b\"", "'name'" },
    { "name", "\"a b\"", "'name'" },
    { "name", "\"a\\u0000b\"", "'name'" },
    { "name", "42", "'name' is not a string" },
    { "name", "null", "'name'" },
    { "name", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", "'name'" },    /* 105 */
    { "name", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
      "'name'" },                                                   /* 192 */
    { "parent", NULL, "'parent' is missing" },
    { "parent", "\"../x\"", "'parent'" },
    { "parent", "[]", "'parent' is not a string" },
    { "volume", "\"\"", "'volume'" },
    { "volume", "\"bad volume\"", "'volume'" },
    { "volume_uuid", "\"not-a-uuid\"", "'volume_uuid'" },
    { "volume_uuid", "\"0d9c6f3e-1b2a-4c5d-8e9f-a0b1c2d3e4fz\"", "'volume_uuid'" },
    { "volume_size", "0", "'volume_size'" },
    { "volume_size", "-1", "'volume_size'" },
    { "volume_size", "18446744073709551615", "'volume_size'" },
    { "volume_size", "99999999999999999999999", "'volume_size'" },
    { "volume_size", "1e6", "'volume_size' is not an integer" },
    { "volume_size", "\"1048576\"", "'volume_size' is not an integer" },
    { "volume_size", "1125899906842624", "'volume_size'" },   /* 2^50: too many chunks */
    { "chunk_size", "0", "'chunk_size'" },
    { "chunk_size", "32768", "'chunk_size'" },
    { "chunk_size", "134217728", "'chunk_size'" },
    { "chunk_size", "200000", "'chunk_size'" },
    { "chunk_size", "true", "'chunk_size' is not an integer" },
    { "created", "-5", "'created'" },
    { "created", "99999999999999", "'created'" },
    { "completed", "1699999999", "'completed'" },               /* before created */
    { "completed", NULL, "'completed' is missing" },
    { "data_bytes", "-1", "'data_bytes'" },
    { "data_bytes", "1048577", "'data_bytes'" },                /* > volume_size */
    { "uploaded_bytes", "{}", "'uploaded_bytes' is not an integer" },
    { "chunks", NULL, "'chunks' is missing" },
    { "chunks", "{}", "'chunks' is not an array" },
    { "chunks", "[1]", "'chunks[0]'" },
    { "chunks", "[[0]]", "'chunks[0]'" },
    { "chunks", "[[0,\"" HEX_A "\",1]]", "'chunks[0]'" },
    { "chunks", "[[\"0\",\"" HEX_A "\"]]", "'chunks[0]'" },
    { "chunks", "[[0.5,\"" HEX_A "\"]]", "'chunks[0]'" },
    { "chunks", "[[4,\"" HEX_A "\"]]", "'chunks[0]': index 4" },   /* nchunks 4 */
    { "chunks", "[[-1,\"" HEX_A "\"]]", "'chunks[0]'" },
    { "chunks", "[[1,\"" HEX_A "\"],[1,\"" HEX_A "\"]]", "'chunks[1]'" },
    { "chunks", "[[2,\"" HEX_A "\"],[1,\"" HEX_A "\"]]", "'chunks[1]'" },
    { "chunks", "[[0,\"abc\"]]", "'chunks[0]': hash" },
    { "chunks", "[[0,\"" HEX_A "a\"]]", "'chunks[0]': hash" },
    { "chunks", "[[0,\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"]]",
      "'chunks[0]': hash" },
    { "chunks", "[[0,\"gaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]]",
      "'chunks[0]': hash" },
    { "chunks", "[[0,null]]", "'chunks[0]'" },
    { "chunks", "[[0,\"" HEX_A "\"],[1,\"" HEX_A "\"],[2,\"" HEX_A "\"],"
      "[3,\"" HEX_A "\"],[3,\"" HEX_A "\"]]", "'chunks' has 5 entries" },
  };

  for (size_t i = 0; i < ARRAY_SIZE (cases); i++) {
    struct manifest m;
    struct error err = { 0 };
    char *doc = build_doc (cases[i].field, cases[i].value);
    if (manifest_from_json (doc, strlen (doc), &m, &err) != -EINVAL)
      fail_msg ("case %zu (%s = %s) was accepted", i, cases[i].field,
                cases[i].value ? cases[i].value : "(missing)");
    if (strstr (error_msg (&err), cases[i].expect) == NULL)
      fail_msg ("case %zu (%s = %s): error '%s' does not say '%s'", i,
                cases[i].field, cases[i].value ? cases[i].value : "(missing)",
                err, cases[i].expect);
    /* Nothing left to free on failure. */
    assert_null (m.hashes);
    assert_null (m.present);
  }
}

static void
test_manifest_hostile_documents (void **state)
{
  static const struct {
    const char *doc;
    size_t len;                 /* 0: strlen */
    const char *expect;
  } cases[] = {
    { "", 0, "not JSON" },
    { "   ", 0, "not JSON" },
    { "null", 0, "not a JSON object" },
    { "[]", 0, "not a JSON object" },
    { "\"x\"", 0, "not a JSON object" },
    { "42", 0, "not a JSON object" },
    { "{", 0, "not JSON" },
    { "{\"format\":1,", 0, "not JSON" },
    { "{}", 0, "'format' is missing" },
    { "{} {}", 0, "not JSON" },
    { "{}x", 0, "not JSON" },
    { "{\"format\":1,/* c */}", 0, "not JSON" },
    { "{\"format\":1,}", 0, "not JSON" },
    { "{}\0{}", 5, "NUL" },
    { "{\"format\":1}\0", 13, "NUL" },
    { "{'format':1}", 0, "not JSON" },
    { "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
      "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
      0, "not JSON" },
    { "\xff\xfe{}", 0, "not JSON" },
  };
  for (size_t i = 0; i < ARRAY_SIZE (cases); i++) {
    struct manifest m;
    struct error err = { 0 };
    size_t len = cases[i].len ? cases[i].len : strlen (cases[i].doc);
    if (manifest_from_json (cases[i].doc, len, &m, &err) != -EINVAL)
      fail_msg ("document %zu was accepted", i);
    if (strstr (error_msg (&err), cases[i].expect) == NULL)
      fail_msg ("document %zu: error '%s' does not say '%s'", i, err,
                cases[i].expect);
  }

  /* A length that cuts a valid document short is caught too. */
  char *doc = build_doc (NULL, NULL);
  for (size_t len = 0; len < strlen (doc); len += 7) {
    struct manifest m;
    struct error err = { 0 };
    assert_int_equal (manifest_from_json (doc, len, &m, &err), -EINVAL);
  }
}

/* Random byte edits of a valid document: every result is either a
 * valid manifest or a clean error (valgrind watches the reads).
 */
static void
test_manifest_mutations (void **state)
{
  const char *base = build_doc (NULL, NULL);
  size_t len = strlen (base);
  char *doc = malloc (len);
  unsigned seed = 12345;
  static const char bytes[] = "{}[]\",:0123456789-.eE \\abcfnrtu\x01\x80\xff";
  for (int iter = 0; iter < 3000; iter++) {
    memcpy (doc, base, len);
    int edits = 1 + iter % 4;
    for (int k = 0; k < edits; k++) {
      seed = seed * 1103515245 + 12345;
      size_t pos = (seed >> 8) % len;
      seed = seed * 1103515245 + 12345;
      doc[pos] = bytes[(seed >> 8) % (sizeof bytes - 1)];
    }
    struct manifest m;
    struct error err = { 0 };
    if (manifest_from_json (doc, len, &m, &err) == 0) {
      assert_true (m.nchunks > 0);
      manifest_free (&m);
    }
    else
      assert_true (err.msg[0] != '\0');
  }
  free (doc);
}

static void
test_names_and_hex (void **state)
{
  uint8_t h[CHUNK_HASH_LEN];
  char hex[CHUNK_HEX_LEN + 1], key[OBJ_KEY_MAX];

  assert_true (snapshot_name_valid ("a"));
  assert_true (snapshot_name_valid ("vol1-20261127T184500"));
  assert_false (snapshot_name_valid (""));
  assert_false (snapshot_name_valid (".x"));
  assert_false (snapshot_name_valid ("a/b"));
  assert_false (snapshot_name_valid ("a\nb"));

  assert_int_equal (hex_to_hash (HEX_B, h), 0);
  assert_int_equal (h[0], 0x01);
  assert_int_equal (h[31], 0xef);
  hash_to_hex (h, hex);
  assert_string_equal (hex, HEX_B);
  chunk_key (h, key);
  assert_string_equal (key, "chunks/01/" HEX_B);
  assert_int_equal (hex_to_hash ("01", h), -EINVAL);
  assert_int_equal (hex_to_hash (HEX_B "0", h), -EINVAL);

  /* SHA-256 of "abc", the FIPS 180-2 test vector. */
  chunk_hash ("abc", 3, h);
  hash_to_hex (h, hex);
  assert_string_equal (hex, "ba7816bf8f01cfea414140de5dae2223"
                       "b00361a396177a9cb410ff61f20015ad");
}

/* ---- chunks ---------------------------------------------------------- */

static void
fill (char *buf, size_t len, unsigned seed)
{
  /* Half text-like, half noise: compressible but not trivially. */
  for (size_t i = 0; i < len; i++)
    buf[i] = i % 512 < 256 ? "snapshot"[i % 8] : (char) ((seed = seed * 1103515245 + 12345) >> 16);
}

static void
test_chunk_round_trip (void **state)
{
  size_t len = 256 << 10;
  char *data = malloc (len), *back = malloc (len);
  uint8_t h[CHUNK_HASH_LEN];
  struct error err = { 0 };
  char key[OBJ_KEY_MAX];
  void *obj;
  size_t olen;

  fill (data, len, 1);
  chunk_hash (data, len, h);
  chunk_key (h, key);
  assert_int_equal (chunk_encode (data, len, 3, &obj, &olen), 0);
  assert_true (olen < len);
  if (chunk_decode (obj, olen, h, back, len, &err) != 0)
    fail_msg ("%s", error_msg (&err));
  assert_memory_equal (data, back, len);

  /* Wrong expected size. */
  assert_int_equal (chunk_decode (obj, olen, h, back, len - 1, &err), -EILSEQ);
  assert_non_null (strstr (error_msg (&err), key));

  /* A flipped byte in the compressed body: zstd's checksum or the
   * decoder catches it, and err names the key.
   */
  ((unsigned char *) obj)[olen / 2] ^= 0x40;
  assert_int_equal (chunk_decode (obj, olen, h, back, len, &err),
                    -EILSEQ);
  assert_non_null (strstr (error_msg (&err), key));
  assert_non_null (strstr (error_msg (&err), "corrupt"));
  ((unsigned char *) obj)[olen / 2] ^= 0x40;

  /* Not zstd at all. */
  assert_int_equal (chunk_decode ("hello world", 11, h, back, len, &err),
                    -EILSEQ);
  assert_non_null (strstr (error_msg (&err), key));
  assert_non_null (strstr (error_msg (&err), "not a zstd frame"));

  /* Truncated, and with trailing garbage. */
  assert_int_equal (chunk_decode (obj, olen - 3, h, back, len, &err), -EILSEQ);
  assert_non_null (strstr (error_msg (&err), key));
  void *longer = malloc (olen + 4);
  memcpy (longer, obj, olen);
  memcpy ((char *) longer + olen, "junk", 4);
  assert_int_equal (chunk_decode (longer, olen + 4, h, back, len, &err),
                    -EILSEQ);
  assert_non_null (strstr (error_msg (&err), key));
  free (longer);
  free (obj);

  /* A valid frame whose content hashes differently: stored under the
   * wrong name (or the name was tampered with).
   */
  fill (data, len, 2);
  assert_int_equal (chunk_encode (data, len, 1, &obj, &olen), 0);
  assert_int_equal (chunk_decode (obj, olen, h, back, len, &err),
                    -EILSEQ);
  char want[sizeof err.msg];
  snprintf (want, sizeof want,
            "chunk %s: content does not match its hash (corrupt)", key);
  assert_string_equal (error_msg (&err), want);
  free (obj);

  /* An empty and an all-zero chunk still round-trip. */
  memset (data, 0, len);
  chunk_hash (data, len, h);
  assert_int_equal (chunk_encode (data, len, 3, &obj, &olen), 0);
  assert_int_equal (chunk_decode (obj, olen, h, back, len, &err), 0);
  free (obj);
  free (data);
  free (back);
}

/* ---- the file backend ------------------------------------------------ */

struct seen {
  char keys[32][OBJ_KEY_MAX];
  uint64_t sizes[32];
  int n;
};

static int
collect (void *opaque, const struct obj_entry *e)
{
  struct seen *s = opaque;
  assert_true (s->n < 32);
  snprintf (s->keys[s->n], OBJ_KEY_MAX, "%s", e->key);
  s->sizes[s->n] = e->size;
  s->n++;
  return 0;
}

static int
cmp_key (const void *a, const void *b)
{
  return strcmp (a, b);
}

static void
list_sorted (struct objstore *os, const char *prefix, struct seen *s)
{
  struct error err = { 0 };
  memset (s, 0, sizeof *s);
  if (objstore_list (os, prefix, collect, s, &err) != 0)
    fail_msg ("%s", error_msg (&err));
  qsort (s->keys, s->n, OBJ_KEY_MAX, cmp_key);
}

static void
test_file_store (void **state)
{
  struct fixture *f = *state;
  struct objstore *os = f->os;
  struct error err = { 0 };
  char path[256];
  void *data;
  size_t len;
  struct stat st;

  assert_int_equal (objstore_put (os, "top", "1", 1, &err), 0);
  assert_int_equal (objstore_put (os, "a/b/c/deep.x", "hello", 5, &err), 0);
  assert_int_equal (objstore_put (os, "a/b2", "", 0, &err), 0);
  snprintf (path, sizeof path, "%s/store/sub/a/b/c/deep.x", f->dir);
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (st.st_size, 5);

  /* Replace. */
  assert_int_equal (objstore_put (os, "top", "22", 2, &err), 0);
  assert_int_equal (objstore_get (os, "top", &data, &len, &err), 0);
  assert_int_equal (len, 2);
  assert_memory_equal (data, "22", 2);
  free (data);
  assert_int_equal (objstore_get (os, "a/b2", &data, &len, &err), 0);
  assert_int_equal (len, 0);
  free (data);

  assert_int_equal (objstore_head (os, "a/b/c/deep.x", &len, &err),
                    0);
  assert_int_equal (len, 5);
  /* Missing objects, and a directory, which is a prefix, not an object. */
  assert_int_equal (objstore_get (os, "nope", &data, &len, &err),
                    -ENOENT);
  assert_non_null (strstr (error_msg (&err), "nope"));
  assert_int_equal (objstore_head (os, "a/b", &len, &err), -ENOENT);
  assert_int_equal (objstore_head (os, "top/x", &len, &err), -ENOENT);
  assert_int_equal (objstore_delete (os, "nope/nope", &err), 0);

  /* A stray temp file (a crashed PUT) is never listed. */
  snprintf (path, sizeof path, "%s/store/sub/a/.tmp-abcdef", f->dir);
  FILE *fp = fopen (path, "w");
  assert_non_null (fp);
  fclose (fp);

  struct seen s;
  list_sorted (os, "", &s);
  assert_int_equal (s.n, 3);
  assert_string_equal (s.keys[0], "a/b/c/deep.x");
  assert_string_equal (s.keys[1], "a/b2");
  assert_string_equal (s.keys[2], "top");
  list_sorted (os, "a/", &s);
  assert_int_equal (s.n, 2);
  list_sorted (os, "a/b", &s);       /* a prefix, not a directory */
  assert_int_equal (s.n, 2);
  list_sorted (os, "a/b/", &s);
  assert_int_equal (s.n, 1);
  assert_int_equal (s.sizes[0], 5);
  list_sorted (os, "t", &s);
  assert_int_equal (s.n, 1);
  list_sorted (os, "zzz/", &s);
  assert_int_equal (s.n, 0);

  assert_int_equal (objstore_delete (os, "a/b/c/deep.x", &err), 0);
  assert_int_equal (objstore_head (os, "a/b/c/deep.x", &len, &err),
                    -ENOENT);

  /* Keys that could escape the directory or are not ours. */
  static const char *const bad[] = {
    "", "/abs", "../up", "a/../../up", "a/..", "..", "a//b", "a/", "./a",
    "a/./b", "sp ace", "new\nline", "q?", "star*", "a/.tmp-x", "\xc3\xa9",
  };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
    int e = objstore_put (os, bad[i], "x", 1, &err);
    if (e != -EINVAL)
      fail_msg ("key '%s' was not refused (%d)", bad[i], e);
    assert_non_null (strstr (error_msg (&err), "invalid object key"));
    assert_int_equal (objstore_get (os, bad[i], &data, &len, &err),
                      -EINVAL);
    assert_int_equal (objstore_delete (os, bad[i], &err), -EINVAL);
  }
  assert_int_equal (objstore_list (os, "../", collect, &s, &err),
                    -EINVAL);
  snprintf (path, sizeof path, "%s/up", f->dir);
  assert_int_equal (stat (path, &st), -1);
}

static void
test_file_async (void **state)
{
  struct fixture *f = *state;
  struct objstore *os = f->os;
  struct obj_req r[8];

  memset (r, 0, sizeof r);
  for (int i = 0; i < 8; i++) {
    r[i].op = OBJ_PUT;
    snprintf (r[i].key, sizeof r[i].key, "many/%d", i);
    r[i].data = "data";
    r[i].len = 4;
    r[i].opaque = &r[i];
    objstore_submit (os, &r[i]);
  }
  assert_int_equal (objstore_inflight (os), 8);
  /* Completions come back in order, once each. */
  for (int i = 0; i < 8; i++) {
    struct obj_req *d = objstore_poll (os, 1000);
    assert_ptr_equal (d, &r[i]);
    assert_int_equal (d->err.code, 0);
  }
  assert_int_equal (objstore_inflight (os), 0);
  /* Nothing queued: a wakeup makes poll return NULL early. */
  objstore_wakeup (os);
  assert_null (objstore_poll (os, 60000));
  assert_null (objstore_poll (os, 0));
}

/* What the boundary refuses comes back through poll, EINVAL and named,
 * before anything the backend completes; the backend never sees it.
 */
static void
test_refused_async (void **state)
{
  struct fixture *f = *state;
  struct objstore *os = f->os;
  struct obj_req ok = { .op = OBJ_PUT, .data = "x", .len = 1 };
  struct obj_req badkey = { .op = OBJ_GET };
  struct obj_req badop = { .op = 42 };
  struct obj_req nobody = { .op = OBJ_PUT, .data = NULL, .len = 5 };
  struct obj_req unterminated = { .op = OBJ_HEAD };
  char path[256];
  struct stat st;

  snprintf (ok.key, sizeof ok.key, "fine/key");
  snprintf (badkey.key, sizeof badkey.key, "../escape");
  snprintf (badop.key, sizeof badop.key, "fine/op");
  snprintf (nobody.key, sizeof nobody.key, "fine/nobody");
  memset (unterminated.key, 'a', sizeof unterminated.key);
  objstore_submit (os, &ok);
  objstore_submit (os, &badkey);
  objstore_submit (os, &badop);
  objstore_submit (os, &nobody);
  objstore_submit (os, &unterminated);
  assert_int_equal (objstore_inflight (os), 5);

  struct obj_req *want[] = { &badkey, &badop, &nobody, &unterminated };
  for (size_t i = 0; i < ARRAY_SIZE (want); i++) {
    struct obj_req *d = objstore_poll (os, 1000);
    assert_ptr_equal (d, want[i]);
    assert_int_equal (d->err.code, EINVAL);
    assert_null (d->backend_priv);
  }
  assert_non_null (strstr (error_msg (&badkey.err),
                           "GET ../escape: invalid object key"));
  assert_non_null (strstr (error_msg (&badop.err),
                           "fine/op: unknown operation 42"));
  assert_non_null (strstr (error_msg (&nobody.err),
                           "PUT fine/nobody: no body"));
  assert_non_null (strstr (error_msg (&unterminated.err), "not terminated"));
  assert_ptr_equal (objstore_poll (os, 1000), &ok);
  assert_int_equal (ok.err.code, 0);
  assert_int_equal (objstore_inflight (os), 0);
  snprintf (path, sizeof path, "%s/store/sub/fine/nobody", f->dir);
  assert_int_equal (stat (path, &st), -1);

  /* The longest key is OBJ_KEY_MAX - 2 bytes; the blocking forms say a
   * longer one is too long, the checks that it is invalid.
   */
  struct error err = { 0 };
  char key[OBJ_KEY_MAX + 8];
  memset (key, 'k', OBJ_KEY_MAX - 2);
  key[OBJ_KEY_MAX - 2] = '\0';
  assert_true (objstore_key_valid (key));
  assert_int_equal (objstore_put (os, key, "x", 1, &err), 0);
  struct seen s;
  list_sorted (os, "k", &s);
  assert_int_equal (s.n, 1);
  strcat (key, "k");
  assert_false (objstore_key_valid (key));
  assert_int_equal (objstore_put (os, key, "x", 1, &err),
                    -ENAMETOOLONG);
  assert_non_null (strstr (error_msg (&err), "too long"));
}

static void
test_file_open_errors (void **state)
{
  struct fixture *f = *state;
  struct error err = { 0 };
  char url[160], path[128];

  assert_null (objstore_open ("file://relative/dir", &err));
  assert_non_null (strstr (error_msg (&err), "absolute"));
  assert_null (objstore_open ("ftp://x", &err));
  assert_null (objstore_open ("no-scheme", &err));

  /* DIR under a regular file cannot be created. */
  snprintf (path, sizeof path, "%s/plainfile", f->dir);
  FILE *fp = fopen (path, "w");
  assert_non_null (fp);
  fclose (fp);
  snprintf (url, sizeof url, "file://%s", path);
  assert_null (objstore_open (url, &err));
  assert_non_null (strstr (error_msg (&err), "not a directory"));
  snprintf (url, sizeof url, "file://%s/below", path);
  assert_null (objstore_open (url, &err));
  assert_non_null (strstr (error_msg (&err), "below: Not a directory"));
}

/* ---- snapshots: write, list, delete ---------------------------------- */

#define CS 65536

/* Store a snapshot whose chunk i holds content seeds[i] (0: absent). */
static void
store_snapshot (struct objstore *os, const char *name, const unsigned *seeds,
                int n)
{
  struct manifest m;
  struct error err = { 0 };
  char key[OBJ_KEY_MAX];
  char *buf = malloc (CS);
  make_manifest (&m, name, (uint64_t) n * CS, CS);
  for (int i = 0; i < n; i++) {
    if (seeds[i] == 0)
      continue;
    fill (buf, CS, seeds[i]);
    chunk_hash (buf, CS, m.hashes[i]);
    m.present[i] = true;
    m.data_bytes += CS;
    void *obj;
    size_t olen;
    assert_int_equal (chunk_encode (buf, CS, 1, &obj, &olen), 0);
    chunk_key (m.hashes[i], key);
    assert_int_equal (objstore_put (os, key, obj, olen, &err), 0);
    m.uploaded_bytes += olen;
    free (obj);
  }
  if (manifest_write (os, &m, &err) != 0)
    fail_msg ("%s", error_msg (&err));
  manifest_free (&m);
  free (buf);
}

static bool
chunk_exists (struct objstore *os, unsigned seed)
{
  struct error err = { 0 };
  char *buf = malloc (CS), key[OBJ_KEY_MAX];
  uint8_t h[CHUNK_HASH_LEN];
  fill (buf, CS, seed);
  chunk_hash (buf, CS, h);
  free (buf);
  chunk_key (h, key);
  int e = objstore_head (os, key, NULL, &err);
  assert_true (e == 0 || e == -ENOENT);
  return e == 0;
}

struct names_seen {
  char names[8][SNAP_NAME_MAX];
  int n;
};

static int
list_cb (void *opaque, const struct manifest *m)
{
  struct names_seen *s = opaque;
  assert_true (s->n < 8);
  snprintf (s->names[s->n++], SNAP_NAME_MAX, "%s", m->name);
  return 0;
}

static void
test_snapshot_list (void **state)
{
  struct fixture *f = *state;
  struct error err = { 0 };
  static const unsigned a[] = { 1, 0, 2 };

  store_snapshot (f->os, "zeta", a, 3);
  store_snapshot (f->os, "alpha", a, 3);
  store_snapshot (f->os, "mid", a, 3);
  /* A damaged manifest is skipped (with a warning), the rest listed;
   * other objects under snapshots/ are not manifests.
   */
  assert_int_equal (objstore_put (f->os, "snapshots/bad.json", "{", 1, &err),
                    0);
  assert_int_equal (objstore_put (f->os, "snapshots/notes.txt", "x", 1, &err),
                    0);

  struct names_seen s = { 0 };
  assert_int_equal (snapshot_list (f->os, list_cb, &s, &err), 0);
  assert_int_equal (s.n, 3);
  assert_string_equal (s.names[0], "alpha");
  assert_string_equal (s.names[1], "mid");
  assert_string_equal (s.names[2], "zeta");

  struct manifest m;
  assert_int_equal (manifest_read (f->os, "nope", &m, &err), -ENOENT);
  assert_int_equal (manifest_read (f->os, "bad", &m, &err), -EINVAL);
  assert_non_null (strstr (error_msg (&err), "snapshots/bad.json"));
  /* A manifest stored under another name is refused. */
  void *data;
  size_t len;
  assert_int_equal (objstore_get (f->os, "snapshots/mid.json", &data, &len,
                                  &err), 0);
  assert_int_equal (objstore_put (f->os, "snapshots/copy.json", data, len,
                                  &err), 0);
  free (data);
  assert_int_equal (manifest_read (f->os, "copy", &m, &err), -EINVAL);
  assert_non_null (strstr (error_msg (&err), "names snapshot 'mid'"));
}

static void
test_snapshot_delete_refcount (void **state)
{
  struct fixture *f = *state;
  struct error err = { 0 };
  struct delete_stats st;

  /* Chunk contents by seed: 1 in all three, 2 in s1+s2, 3 only s1,
   * 4 in s2+s3, 5 only s2, 6 only s3.
   */
  static const unsigned s1[] = { 1, 2, 3, 0 };
  static const unsigned s2[] = { 1, 2, 4, 5 };
  static const unsigned s3[] = { 1, 0, 4, 6, 6 };
  store_snapshot (f->os, "s1", s1, 4);
  store_snapshot (f->os, "s2", s2, 4);
  store_snapshot (f->os, "s3", s3, 5);
  /* An object under chunks/ that is not a chunk is never touched. */
  assert_int_equal (objstore_put (f->os, "chunks/README", "x", 1, &err), 0);

  assert_int_equal (snapshot_delete (f->os, "nope", &st, &err),
                    -ENOENT);
  assert_non_null (strstr (error_msg (&err), "nope"));

  /* Deleting s2 frees only chunk 5. */
  assert_int_equal (snapshot_delete (f->os, "s2", &st, &err), 0);
  assert_false (st.collection_skipped);
  assert_int_equal (st.chunks_deleted, 1);
  assert_true (st.bytes_freed > 0);
  assert_int_equal (st.chunks_kept, 5);
  for (unsigned seed = 1; seed <= 6; seed++)
    assert_int_equal (chunk_exists (f->os, seed), seed != 5);
  struct manifest m;
  assert_int_equal (manifest_read (f->os, "s2", &m, &err), -ENOENT);

  /* Then s1: chunks 2 and 3 go, 1, 4 and 6 stay for s3. */
  assert_int_equal (snapshot_delete (f->os, "s1", &st, &err), 0);
  assert_int_equal (st.chunks_deleted, 2);
  assert_int_equal (st.chunks_kept, 3);
  for (unsigned seed = 1; seed <= 6; seed++)
    assert_int_equal (chunk_exists (f->os, seed),
                      seed == 1 || seed == 4 || seed == 6);

  /* The last one takes every chunk with it. */
  assert_int_equal (snapshot_delete (f->os, "s3", &st, &err), 0);
  assert_int_equal (st.chunks_deleted, 3);
  assert_int_equal (st.chunks_kept, 0);
  for (unsigned seed = 1; seed <= 6; seed++)
    assert_false (chunk_exists (f->os, seed));
  size_t len;
  assert_int_equal (objstore_head (f->os, "chunks/README", &len, &err), 0);
  /* The collection marker is gone. */
  struct seen s;
  list_sorted (f->os, "collecting/", &s);
  assert_int_equal (s.n, 0);
}

static void
test_snapshot_delete_skips_during_upload (void **state)
{
  struct fixture *f = *state;
  struct error err = { 0 };
  struct delete_stats st;
  static const unsigned s1[] = { 1, 2 };
  static const unsigned s2[] = { 1, 3 };

  store_snapshot (f->os, "s1", s1, 2);
  store_snapshot (f->os, "s2", s2, 2);
  if (snapshot_begin_upload (f->os, "s3", &err) != 0)
    fail_msg ("%s", error_msg (&err));

  /* The manifest goes, its chunks stay while the upload runs. */
  assert_int_equal (snapshot_delete (f->os, "s1", &st, &err), 0);
  assert_true (st.collection_skipped);
  assert_non_null (strstr (st.skip_reason, "inprogress/s3"));
  assert_int_equal (st.chunks_deleted, 0);
  assert_true (chunk_exists (f->os, 2));
  struct manifest m;
  assert_int_equal (manifest_read (f->os, "s1", &m, &err), -ENOENT);

  /* After the upload ends, the next delete collects s1's leftovers. */
  assert_int_equal (snapshot_end_upload (f->os, "s3", &err), 0);
  size_t len;
  assert_int_equal (objstore_head (f->os, "inprogress/s3", &len, &err),
                    -ENOENT);
  assert_int_equal (snapshot_delete (f->os, "s2", &st, &err), 0);
  assert_false (st.collection_skipped);
  assert_int_equal (st.chunks_deleted, 3);
  assert_false (chunk_exists (f->os, 1));
  assert_false (chunk_exists (f->os, 2));
  assert_false (chunk_exists (f->os, 3));
}

static void
test_snapshot_delete_unreadable_manifest (void **state)
{
  struct fixture *f = *state;
  struct error err = { 0 };
  struct delete_stats st;
  static const unsigned s1[] = { 1 };

  store_snapshot (f->os, "s1", s1, 1);
  store_snapshot (f->os, "s2", s1, 1);
  /* A remaining manifest that cannot be parsed might reference any
   * chunk: collection stops rather than guess.
   */
  assert_int_equal (objstore_put (f->os, "snapshots/broken.json", "[", 1,
                                  &err), 0);
  assert_int_equal (snapshot_delete (f->os, "s1", &st, &err), 0);
  assert_true (st.collection_skipped);
  assert_non_null (strstr (st.skip_reason, "broken"));
  assert_true (chunk_exists (f->os, 1));
  /* The damaged one itself can be deleted. */
  assert_int_equal (snapshot_delete (f->os, "broken", &st, &err), 0);
  assert_false (st.collection_skipped);
  assert_true (chunk_exists (f->os, 1));        /* s2 still uses it */
}

/* Two deletes in two processes at once, several rounds: whatever the
 * interleaving, the survivors keep every chunk, and a chunk only one
 * deleted snapshot used is gone.  (A chunk both deleted snapshots used
 * may survive: each delete can see the other's manifest.)
 */
static void
test_snapshot_delete_concurrent (void **state)
{
  struct fixture *f = *state;
  static const unsigned s1[] = { 1, 2, 10, 0 };
  static const unsigned s2[] = { 1, 3, 10, 11 };
  static const unsigned s3[] = { 1, 4 };
  static const unsigned s4[] = { 2, 3, 5 };

  for (int round = 0; round < 4; round++) {
    store_snapshot (f->os, "s1", s1, 4);
    store_snapshot (f->os, "s2", s2, 4);
    store_snapshot (f->os, "s3", s3, 2);
    store_snapshot (f->os, "s4", s4, 3);
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
      pids[i] = fork ();
      assert_true (pids[i] != -1);
      if (pids[i] == 0) {
        struct error err = { 0 };
        struct delete_stats st;
        /* A store of its own: the parent's is not shared across fork. */
        struct objstore *os = objstore_open (f->url, &err);
        int e = os ? snapshot_delete (os, i ? "s2" : "s1", &st, &err) : -1;
        if (e)
          fprintf (stderr, "child %d: %s\n", i, error_msg (&err));
        objstore_close (os);
        _exit (e ? 1 : 0);
      }
    }
    for (int i = 0; i < 2; i++) {
      int status;
      assert_int_equal (waitpid (pids[i], &status, 0), pids[i]);
      assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    }
    for (unsigned seed = 1; seed <= 5; seed++)
      assert_true (chunk_exists (f->os, seed));
    assert_false (chunk_exists (f->os, 11));

    /* Start the next round clean. */
    struct error err = { 0 };
    struct delete_stats st;
    assert_int_equal (snapshot_delete (f->os, "s3", &st, &err), 0);
    assert_int_equal (snapshot_delete (f->os, "s4", &st, &err), 0);
    for (unsigned seed = 1; seed <= 11; seed++)
      assert_false (chunk_exists (f->os, seed));
  }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_manifest_round_trip),
    cmocka_unit_test (test_manifest_base_valid),
    cmocka_unit_test (test_manifest_hostile_fields),
    cmocka_unit_test (test_manifest_hostile_documents),
    cmocka_unit_test (test_manifest_mutations),
    cmocka_unit_test (test_names_and_hex),
    cmocka_unit_test (test_chunk_round_trip),
    cmocka_unit_test_setup_teardown (test_file_store, setup, teardown),
    cmocka_unit_test_setup_teardown (test_file_async, setup, teardown),
    cmocka_unit_test_setup_teardown (test_refused_async, setup, teardown),
    cmocka_unit_test_setup_teardown (test_file_open_errors, setup, teardown),
    cmocka_unit_test_setup_teardown (test_snapshot_list, setup, teardown),
    cmocka_unit_test_setup_teardown (test_snapshot_delete_refcount, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_snapshot_delete_skips_during_upload,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_snapshot_delete_unreadable_manifest,
                                     setup, teardown),
    cmocka_unit_test_setup_teardown (test_snapshot_delete_concurrent, setup,
                                     teardown),
  };
  log_init ("test_catalog");
  return cmocka_run_group_tests (tests, NULL, NULL);
}
