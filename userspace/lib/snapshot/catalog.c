/* catalog.c - snapshots in object storage: manifests (JSON), chunks
 * (zstd frames named by the SHA-256 of their content), listing, and
 * deletion with mark-and-sweep collection of unreferenced chunks.
 * The layout and the rules are in catalog.h and man/repvol-snapshot.5.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>
#include <zstd.h>

#include "core/util.h"
#include "snapshot/catalog.h"

#define MANIFEST_FORMAT 1
#define MIN_CHUNK_SIZE (64u << 10)
#define MAX_CHUNK_SIZE (64u << 20)
/* No time past 9999-12-31: keeps gmtime and the ISO strings sane. */
#define MAX_TIME INT64_C(253402300799)
/* Chunk deletes kept in flight during collection. */
#define SWEEP_DEPTH 32

/* ---- names, hashes, keys --------------------------------------------- */

bool
snapshot_name_valid (const char *name)
{
  size_t n = strnlen (name, SNAP_NAME_MAX);
  if (n == 0 || n > 100 || name[0] == '.')
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return false;
  }
  return true;
}

void
hash_to_hex (const uint8_t hash[CHUNK_HASH_LEN], char hex[CHUNK_HEX_LEN + 1])
{
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < CHUNK_HASH_LEN; i++) {
    hex[2 * i] = digits[hash[i] >> 4];
    hex[2 * i + 1] = digits[hash[i] & 15];
  }
  hex[CHUNK_HEX_LEN] = '\0';
}

static int
hexval (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;                    /* upper case too: keys are case sensitive */
}

int
hex_to_hash (const char *hex, uint8_t hash[CHUNK_HASH_LEN])
{
  if (strnlen (hex, CHUNK_HEX_LEN + 1) != CHUNK_HEX_LEN)
    return -1;
  for (int i = 0; i < CHUNK_HASH_LEN; i++) {
    int hi = hexval (hex[2 * i]), lo = hexval (hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return -1;
    hash[i] = hi << 4 | lo;
  }
  return 0;
}

void
chunk_key (const uint8_t hash[CHUNK_HASH_LEN], char key[OBJ_KEY_MAX])
{
  char hex[CHUNK_HEX_LEN + 1];
  hash_to_hex (hash, hex);
  snprintf (key, OBJ_KEY_MAX, "chunks/%.2s/%s", hex, hex);
}

static void
manifest_key (const char *name, char key[OBJ_KEY_MAX])
{
  snprintf (key, OBJ_KEY_MAX, "snapshots/%s.json", name);
}

/* ---- the manifest ---------------------------------------------------- */

int
manifest_init (struct manifest *m, uint64_t volume_size, uint32_t chunk_size)
{
  m->hashes = NULL;
  m->present = NULL;
  if (chunk_size == 0 || volume_size == 0) {
    errno = EINVAL;
    return -1;
  }
  uint64_t n = volume_size / chunk_size + (volume_size % chunk_size != 0);
  if (n > MANIFEST_MAX_CHUNKS) {
    errno = EFBIG;
    return -1;
  }
  m->volume_size = volume_size;
  m->chunk_size = chunk_size;
  m->nchunks = n;
  m->hashes = calloc (n, sizeof *m->hashes);
  m->present = calloc (n, sizeof *m->present);
  if (m->hashes == NULL || m->present == NULL) {
    manifest_free (m);
    errno = ENOMEM;
    return -1;
  }
  return 0;
}

void
manifest_free (struct manifest *m)
{
  free (m->hashes);
  free (m->present);
  m->hashes = NULL;
  m->present = NULL;
  m->nchunks = 0;
}

static json_object *
iso_time (time_t t)
{
  struct tm tm;
  char buf[32];
  if (gmtime_r (&t, &tm) == NULL ||
      strftime (buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    buf[0] = '\0';
  return json_object_new_string (buf);
}

char *
manifest_to_json (const struct manifest *m)
{
  json_object *o = json_object_new_object ();
  json_object *chunks = json_object_new_array ();
  if (o == NULL || chunks == NULL) {
    json_object_put (o);
    json_object_put (chunks);
    return NULL;
  }
  json_object_object_add (o, "format", json_object_new_int (MANIFEST_FORMAT));
  json_object_object_add (o, "name", json_object_new_string (m->name));
  json_object_object_add (o, "parent", json_object_new_string (m->parent));
  json_object_object_add (o, "volume", json_object_new_string (m->volume));
  json_object_object_add (o, "volume_uuid",
                          json_object_new_string (m->volume_uuid));
  json_object_object_add (o, "volume_size",
                          json_object_new_int64 (m->volume_size));
  json_object_object_add (o, "chunk_size",
                          json_object_new_int64 (m->chunk_size));
  json_object_object_add (o, "created", json_object_new_int64 (m->created));
  json_object_object_add (o, "created_iso", iso_time (m->created));
  json_object_object_add (o, "completed",
                          json_object_new_int64 (m->completed));
  json_object_object_add (o, "completed_iso", iso_time (m->completed));
  json_object_object_add (o, "data_bytes",
                          json_object_new_int64 (m->data_bytes));
  json_object_object_add (o, "uploaded_bytes",
                          json_object_new_int64 (m->uploaded_bytes));
  for (uint64_t i = 0; i < m->nchunks; i++) {
    if (!m->present[i])
      continue;
    char hex[CHUNK_HEX_LEN + 1];
    hash_to_hex (m->hashes[i], hex);
    json_object *pair = json_object_new_array_ext (2);
    json_object_array_add (pair, json_object_new_int64 (i));
    json_object_array_add (pair, json_object_new_string (hex));
    json_object_array_add (chunks, pair);
  }
  json_object_object_add (o, "chunks", chunks);

  /* Plain (one chunk per line would be nicer to read, but manifests of
   * big volumes are megabytes and nobody edits them by hand).
   */
  const char *s = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN);
  char *ret = s ? strdup (s) : NULL;
  json_object_put (o);
  return ret;
}

static bool
uuid_valid (const char *s)
{
  size_t n = strlen (s);
  if (n == 0)
    return true;                /* volumes created before uuids */
  if (n != 36)
    return false;
  for (size_t i = 0; i < n; i++) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    char c = s[i];
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
      (c >= 'A' && c <= 'F');
    if (dash ? c != '-' : !hex)
      return false;
  }
  return true;
}

/* Field getters for manifest_from_json: each fills err naming the field
 * and returns -1 when the field is missing or not what it must be.
 */
static int
get_string (json_object *o, const char *field, char *out, size_t outlen,
            char *err, size_t errlen)
{
  json_object *v;
  if (!json_object_object_get_ex (o, field, &v) || v == NULL) {
    snprintf (err, errlen, "field '%s' is missing", field);
    return -1;
  }
  if (!json_object_is_type (v, json_type_string)) {
    snprintf (err, errlen, "field '%s' is not a string", field);
    return -1;
  }
  const char *s = json_object_get_string (v);
  size_t n = json_object_get_string_len (v);
  if (n >= outlen || strlen (s) != n) {
    snprintf (err, errlen, "field '%s' is too long or holds a NUL", field);
    return -1;
  }
  memcpy (out, s, n + 1);
  return 0;
}

static int
get_int (json_object *o, const char *field, int64_t min, int64_t max,
         int64_t *out, char *err, size_t errlen)
{
  json_object *v;
  if (!json_object_object_get_ex (o, field, &v) || v == NULL) {
    snprintf (err, errlen, "field '%s' is missing", field);
    return -1;
  }
  if (!json_object_is_type (v, json_type_int)) {
    snprintf (err, errlen, "field '%s' is not an integer", field);
    return -1;
  }
  /* json-c clamps what does not fit in int64; the range check below
   * (max < INT64_MAX everywhere) turns that into an error.
   */
  errno = 0;
  int64_t x = json_object_get_int64 (v);
  if (errno != 0 || x < min || x > max) {
    snprintf (err, errlen, "field '%s' is out of range [%" PRId64 ", %"
              PRId64 "]", field, min, max);
    return -1;
  }
  *out = x;
  return 0;
}

static int
parse_chunks (json_object *arr, struct manifest *m, char *err, size_t errlen)
{
  if (!json_object_is_type (arr, json_type_array)) {
    snprintf (err, errlen, "field 'chunks' is not an array");
    return -1;
  }
  size_t n = json_object_array_length (arr);
  if (n > m->nchunks) {
    snprintf (err, errlen, "field 'chunks' has %zu entries for a volume "
              "of %" PRIu64 " chunks", n, m->nchunks);
    return -1;
  }
  int64_t prev = -1;
  for (size_t i = 0; i < n; i++) {
    json_object *pair = json_object_array_get_idx (arr, i);
    json_object *ix, *hx;
    if (pair == NULL || !json_object_is_type (pair, json_type_array) ||
        json_object_array_length (pair) != 2 ||
        (ix = json_object_array_get_idx (pair, 0)) == NULL ||
        (hx = json_object_array_get_idx (pair, 1)) == NULL ||
        !json_object_is_type (ix, json_type_int) ||
        !json_object_is_type (hx, json_type_string)) {
      snprintf (err, errlen, "field 'chunks[%zu]' is not an [index, \"hash\"] "
                "pair", i);
      return -1;
    }
    int64_t idx = json_object_get_int64 (ix);
    if (idx < 0 || (uint64_t) idx >= m->nchunks) {
      snprintf (err, errlen, "field 'chunks[%zu]': index %" PRId64 " is "
                "outside the volume's %" PRIu64 " chunks", i, idx, m->nchunks);
      return -1;
    }
    if (idx <= prev) {
      snprintf (err, errlen, "field 'chunks[%zu]': index %" PRId64 " does not "
                "follow %" PRId64 " (must be strictly increasing)", i, idx,
                prev);
      return -1;
    }
    const char *hex = json_object_get_string (hx);
    if (json_object_get_string_len (hx) != CHUNK_HEX_LEN ||
        hex_to_hash (hex, m->hashes[idx]) == -1) {
      snprintf (err, errlen, "field 'chunks[%zu]': hash is not %d lower case "
                "hex digits", i, CHUNK_HEX_LEN);
      return -1;
    }
    m->present[idx] = true;
    prev = idx;
  }
  return 0;
}

int
manifest_from_json (const char *json, size_t len, struct manifest *m,
                    char *err, size_t errlen)
{
  memset (m, 0, sizeof *m);
  /* json-c would stop at a NUL and call the rest trailing garbage; say
   * what it is.
   */
  if (memchr (json, '\0', len) != NULL) {
    snprintf (err, errlen, "manifest holds a NUL byte");
    return -1;
  }
  /* json-c takes 'single quoted' strings even when strict; no value of
   * ours can hold a quote, so refuse any.
   */
  if (memchr (json, '\'', len) != NULL) {
    snprintf (err, errlen, "not JSON: single quote");
    return -1;
  }
  json_tokener *tok = json_tokener_new_ex (16);
  if (tok == NULL) {
    snprintf (err, errlen, "out of memory");
    return -1;
  }
  /* Strict: no single quotes, no comments, valid UTF-8 only. */
  json_tokener_set_flags (tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
  json_object *o = json_tokener_parse_ex (tok, json, len);
  enum json_tokener_error je = json_tokener_get_error (tok);
  size_t end = json_tokener_get_parse_end (tok);
  if (o == NULL && je == json_tokener_continue) {
    /* A bare scalar ("null", "42") is complete only at the end of the
     * input: say so with the NUL that json-c takes as the end.
     */
    o = json_tokener_parse_ex (tok, "", 1);
    je = json_tokener_get_error (tok);
    end = len;
  }
  json_tokener_free (tok);
  if (je != json_tokener_success) {
    snprintf (err, errlen, "not JSON: %s",
              je == json_tokener_continue ? "document ends early"
              : json_tokener_error_desc (je));
    json_object_put (o);
    return -1;
  }
  for (; end < len; end++)
    if (json[end] != ' ' && json[end] != '\n' && json[end] != '\t' &&
        json[end] != '\r') {
      snprintf (err, errlen, "not JSON: data after the document");
      json_object_put (o);
      return -1;
    }

  int64_t format, size, csize, created, completed, data, uploaded;
  json_object *chunks;
  struct manifest t = { 0 };
  int ret = -1;
  if (o == NULL || !json_object_is_type (o, json_type_object)) {
    snprintf (err, errlen, "manifest is not a JSON object");
    goto out;
  }
  /* Field by field, in the order of the format, so err names the first
   * bad one.
   */
  if (get_int (o, "format", 0, INT32_MAX, &format, err, errlen) == -1)
    goto out;
  if (format != MANIFEST_FORMAT) {
    snprintf (err, errlen, "field 'format': version %" PRId64 " is not "
              "supported (expected %d)", format, MANIFEST_FORMAT);
    goto out;
  }
  if (get_string (o, "name", t.name, sizeof t.name, err, errlen) == -1)
    goto out;
  if (!snapshot_name_valid (t.name)) {
    snprintf (err, errlen, "field 'name' is not a valid snapshot name");
    goto out;
  }
  if (get_string (o, "parent", t.parent, sizeof t.parent, err, errlen) == -1)
    goto out;
  if (t.parent[0] && !snapshot_name_valid (t.parent)) {
    snprintf (err, errlen, "field 'parent' is not a valid snapshot name");
    goto out;
  }
  if (get_string (o, "volume", t.volume, sizeof t.volume, err, errlen) == -1)
    goto out;
  if (!valid_name (t.volume)) {
    snprintf (err, errlen, "field 'volume' is not a valid volume name");
    goto out;
  }
  if (get_string (o, "volume_uuid", t.volume_uuid, sizeof t.volume_uuid,
                  err, errlen) == -1)
    goto out;
  if (!uuid_valid (t.volume_uuid)) {
    snprintf (err, errlen, "field 'volume_uuid' is not a UUID");
    goto out;
  }
  if (get_int (o, "volume_size", 1, INT64_MAX - 1, &size, err, errlen) == -1 ||
      get_int (o, "chunk_size", MIN_CHUNK_SIZE, MAX_CHUNK_SIZE, &csize,
               err, errlen) == -1)
    goto out;
  if ((csize & (csize - 1)) != 0) {
    snprintf (err, errlen, "field 'chunk_size': %" PRId64 " is not a power "
              "of two", csize);
    goto out;
  }
  if (get_int (o, "created", 0, MAX_TIME, &created, err, errlen) == -1 ||
      get_int (o, "completed", created, MAX_TIME, &completed, err,
               errlen) == -1 ||
      get_int (o, "data_bytes", 0, size, &data, err, errlen) == -1 ||
      get_int (o, "uploaded_bytes", 0, INT64_MAX - 1, &uploaded, err,
               errlen) == -1)
    goto out;
  if (!json_object_object_get_ex (o, "chunks", &chunks) || chunks == NULL) {
    snprintf (err, errlen, "field 'chunks' is missing");
    goto out;
  }
  if (manifest_init (&t, size, csize) == -1) {
    if (errno == EFBIG)
      snprintf (err, errlen, "field 'volume_size': more than %d chunks of "
                "%" PRId64 " bytes", MANIFEST_MAX_CHUNKS, csize);
    else
      snprintf (err, errlen, "out of memory");
    goto out;
  }
  t.created = created;
  t.completed = completed;
  t.data_bytes = data;
  t.uploaded_bytes = uploaded;
  if (parse_chunks (chunks, &t, err, errlen) == -1) {
    manifest_free (&t);
    goto out;
  }
  *m = t;
  ret = 0;
 out:
  json_object_put (o);
  return ret;
}

int
manifest_read (struct objstore *os, const char *name, struct manifest *m,
               char *err, size_t errlen)
{
  char key[OBJ_KEY_MAX];
  memset (m, 0, sizeof *m);
  if (!snapshot_name_valid (name)) {
    snprintf (err, errlen, "'%.200s' is not a valid snapshot name", name);
    return EINVAL;
  }
  manifest_key (name, key);
  void *data;
  size_t len;
  int e = objstore_get (os, key, &data, &len, err, errlen);
  if (e)
    return e;
  char why[OBJ_ERR_MAX];
  e = 0;
  if (manifest_from_json (data, len, m, why, sizeof why) == -1) {
    snprintf (err, errlen, "%s: %s", key, why);
    e = EINVAL;
  }
  else if (strcmp (m->name, name) != 0) {
    snprintf (err, errlen, "%s: names snapshot '%s', not '%s'", key, m->name,
              name);
    manifest_free (m);
    e = EINVAL;
  }
  free (data);
  return e;
}

int
manifest_write (struct objstore *os, const struct manifest *m,
                char *err, size_t errlen)
{
  char key[OBJ_KEY_MAX];
  if (!snapshot_name_valid (m->name)) {
    snprintf (err, errlen, "'%.200s' is not a valid snapshot name", m->name);
    return EINVAL;
  }
  manifest_key (m->name, key);
  char *json = manifest_to_json (m);
  if (json == NULL) {
    snprintf (err, errlen, "%s: out of memory", key);
    return ENOMEM;
  }
  /* Check our own output with the reader's rules, so a caller's bug
   * never stores a manifest that list and restore would refuse.
   */
  struct manifest back;
  char why[OBJ_ERR_MAX];
  if (manifest_from_json (json, strlen (json), &back, why, sizeof why) == -1) {
    snprintf (err, errlen, "%s: refusing to write an invalid manifest: %s",
              key, why);
    free (json);
    return EINVAL;
  }
  manifest_free (&back);
  int e = objstore_put (os, key, json, strlen (json), err, errlen);
  free (json);
  return e;
}

/* ---- chunks ---------------------------------------------------------- */

void
chunk_hash (const void *data, size_t len, uint8_t hash[CHUNK_HASH_LEN])
{
  unsigned int n = CHUNK_HASH_LEN;
  if (EVP_Digest (data, len, hash, &n, EVP_sha256 (), NULL) != 1) {
    /* Only on a broken libcrypto; a hash nothing matches fails safe. */
    memset (hash, 0xff, CHUNK_HASH_LEN);
  }
}

bool
chunk_is_zero (const void *data, size_t len)
{
  const unsigned char *p = data;
  /* All bytes equal the first, and the first is zero: memcmp of the
   * buffer against itself shifted by one runs at memcmp speed.
   */
  return len == 0 || (p[0] == 0 && memcmp (p, p + 1, len - 1) == 0);
}

int
chunk_encode (const void *data, size_t len, int level, void **out,
              size_t *out_len)
{
  ZSTD_CCtx *cx = ZSTD_createCCtx ();
  size_t cap = ZSTD_compressBound (len);
  void *buf = malloc (cap);
  if (cx == NULL || buf == NULL)
    goto fail;
  if (ZSTD_isError (ZSTD_CCtx_setParameter (cx, ZSTD_c_compressionLevel,
                                            level)) ||
      ZSTD_isError (ZSTD_CCtx_setParameter (cx, ZSTD_c_checksumFlag, 1)))
    goto fail;
  /* compress2 knows len up front, so the frame records the content
   * size that chunk_decode checks.
   */
  size_t n = ZSTD_compress2 (cx, buf, cap, data, len);
  if (ZSTD_isError (n))
    goto fail;
  ZSTD_freeCCtx (cx);
  *out = buf;
  *out_len = n;
  return 0;
 fail:
  ZSTD_freeCCtx (cx);
  free (buf);
  errno = ENOMEM;
  return -1;
}

int
chunk_decode (const void *obj, size_t obj_len,
              const uint8_t hash[CHUNK_HASH_LEN], void *out,
              size_t out_len, char *err, size_t errlen)
{
  char key[OBJ_KEY_MAX];
  chunk_key (hash, key);

  unsigned long long csize = ZSTD_getFrameContentSize (obj, obj_len);
  if (csize == ZSTD_CONTENTSIZE_ERROR) {
    snprintf (err, errlen, "chunk %s: not a zstd frame (corrupt)", key);
    return -1;
  }
  if (csize != out_len) {
    if (csize == ZSTD_CONTENTSIZE_UNKNOWN)
      snprintf (err, errlen, "chunk %s: zstd frame without its content size",
                key);
    else
      snprintf (err, errlen, "chunk %s: holds %llu bytes, expected %zu",
                key, csize, out_len);
    return -1;
  }
  /* Exactly one frame: trailing bytes mean the object is not what we
   * wrote.
   */
  size_t flen = ZSTD_findFrameCompressedSize (obj, obj_len);
  if (ZSTD_isError (flen) || flen != obj_len) {
    snprintf (err, errlen, "chunk %s: %s (corrupt)", key,
              ZSTD_isError (flen) ? ZSTD_getErrorName (flen)
              : "data after the zstd frame");
    return -1;
  }
  size_t n = ZSTD_decompress (out, out_len, obj, obj_len);
  if (ZSTD_isError (n)) {
    snprintf (err, errlen, "chunk %s: %s (corrupt)", key,
              ZSTD_getErrorName (n));
    return -1;
  }
  if (n != out_len) {
    snprintf (err, errlen, "chunk %s: decompressed to %zu bytes, expected %zu",
              key, n, out_len);
    return -1;
  }
  uint8_t h[CHUNK_HASH_LEN];
  chunk_hash (out, out_len, h);
  if (memcmp (h, hash, CHUNK_HASH_LEN) != 0) {
    snprintf (err, errlen, "chunk %s: content does not match its hash "
              "(corrupt)", key);
    return -1;
  }
  return 0;
}

/* ---- listing --------------------------------------------------------- */

struct names {
  char **v;
  size_t n, cap;
};

static int
names_add (struct names *ns, const char *s, size_t len)
{
  if (ns->n == ns->cap) {
    size_t cap = ns->cap ? 2 * ns->cap : 64;
    char **v = realloc (ns->v, cap * sizeof *v);
    if (v == NULL)
      return -1;
    ns->v = v;
    ns->cap = cap;
  }
  if ((ns->v[ns->n] = strndup (s, len)) == NULL)
    return -1;
  ns->n++;
  return 0;
}

static void
names_free (struct names *ns)
{
  for (size_t i = 0; i < ns->n; i++)
    free (ns->v[i]);
  free (ns->v);
  ns->v = NULL;
  ns->n = ns->cap = 0;
}

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* snapshots/NAME.json -> NAME; other keys under snapshots/ are not
 * manifests and are left alone.
 */
static int
add_manifest_name (void *opaque, const struct obj_entry *e)
{
  const char *k = e->key + strlen ("snapshots/");
  size_t n = strlen (k);
  if (n <= 5 || strcmp (k + n - 5, ".json") != 0)
    return 0;
  char name[SNAP_NAME_MAX];
  if (n - 5 >= sizeof name)
    return 0;
  memcpy (name, k, n - 5);
  name[n - 5] = '\0';
  if (!snapshot_name_valid (name))
    return 0;
  return names_add (opaque, name, n - 5) == -1 ? ENOMEM : 0;
}

/* Every manifest's name, sorted. */
static int
list_manifests (struct objstore *os, struct names *ns, char *err,
                size_t errlen)
{
  int r = objstore_list (os, "snapshots/", add_manifest_name, ns, err, errlen);
  if (r == ENOMEM)
    snprintf (err, errlen, "listing snapshots/: out of memory");
  if (r != 0) {
    names_free (ns);
    return -1;
  }
  if (ns->n)
    qsort (ns->v, ns->n, sizeof *ns->v, cmp_str);
  return 0;
}

int
snapshot_list (struct objstore *os,
               int (*fn) (void *opaque, const struct manifest *m),
               void *opaque, char *err, size_t errlen)
{
  struct names ns = { 0 };
  if (list_manifests (os, &ns, err, errlen) == -1)
    return -1;
  int ret = 0;
  for (size_t i = 0; i < ns.n && ret == 0; i++) {
    struct manifest m;
    char why[OBJ_ERR_MAX];
    int e = manifest_read (os, ns.v[i], &m, why, sizeof why);
    if (e == ENOENT)
      continue;                 /* deleted since the listing */
    if (e == EINVAL) {
      /* One bad manifest must not hide the others. */
      log_warn ("skipping snapshot '%s': %s", ns.v[i], why);
      continue;
    }
    if (e) {
      snprintf (err, errlen, "%s", why);
      ret = -1;
      break;
    }
    ret = fn (opaque, &m);
    manifest_free (&m);
  }
  names_free (&ns);
  return ret;
}

/* ---- upload markers -------------------------------------------------- */

/* An upload or a collection that has not touched its marker for this
 * long is taken to have died with its process.
 */
#define UPLOAD_STALE_SECS (24 * 3600)
#define COLLECT_STALE_SECS 3600
/* How long snapshot_begin_upload waits for running collections. */
#define COLLECT_WAIT_SECS 600

struct young {
  time_t now, max_age;
  char key[OBJ_KEY_MAX];        /* the first young marker found */
};

static int
find_young (void *opaque, const struct obj_entry *e)
{
  struct young *y = opaque;
  if (y->now - e->mtime < y->max_age) {
    snprintf (y->key, sizeof y->key, "%s", e->key);
    return 1;
  }
  return 0;
}

/* 1 and the key in y->key if a marker under prefix is younger than
 * max_age, 0 if none, -1 on error.
 */
static int
young_marker (struct objstore *os, const char *prefix, time_t max_age,
              struct young *y, char *err, size_t errlen)
{
  y->now = time (NULL);
  y->max_age = max_age;
  y->key[0] = '\0';
  int r = objstore_list (os, prefix, find_young, y, err, errlen);
  return r < 0 ? -1 : r > 0;
}

static int
put_marker (struct objstore *os, const char *key, char *err, size_t errlen)
{
  char host[256] = "";
  if (gethostname (host, sizeof host - 1) == -1)
    snprintf (host, sizeof host, "unknown");
  json_object *o = json_object_new_object ();
  if (o == NULL) {
    snprintf (err, errlen, "%s: out of memory", key);
    return ENOMEM;
  }
  json_object_object_add (o, "host", json_object_new_string (host));
  json_object_object_add (o, "pid", json_object_new_int64 (getpid ()));
  json_object_object_add (o, "started", json_object_new_int64 (time (NULL)));
  const char *s = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN);
  int e = objstore_put (os, key, s, strlen (s), err, errlen);
  json_object_put (o);
  return e;
}

/* Uploads and collections each write their marker first and look for
 * the other kind second.  The store is read-after-write and
 * list-after-write consistent (a local directory; S3 since 2020), so of
 * an upload and a collection running at once at least one sees the
 * other's marker: either the collection skips, or the upload waits here
 * until the collection is over before it trusts (deduplicates against)
 * any existing chunk.
 */
int
snapshot_begin_upload (struct objstore *os, const char *name,
                       char *err, size_t errlen)
{
  char key[OBJ_KEY_MAX];
  if (!snapshot_name_valid (name)) {
    snprintf (err, errlen, "'%.200s' is not a valid snapshot name", name);
    return EINVAL;
  }
  snprintf (key, sizeof key, "inprogress/%s", name);
  int e = put_marker (os, key, err, errlen);
  if (e)
    return e;
  struct young y;
  time_t deadline = time (NULL) + COLLECT_WAIT_SECS;
  bool said = false;
  int r;
  while ((r = young_marker (os, "collecting/", COLLECT_STALE_SECS, &y,
                            err, errlen)) == 1) {
    if (time (NULL) >= deadline) {
      snprintf (err, errlen, "%s: a snapshot delete is still collecting "
                "chunks after %d s; try again later", y.key,
                COLLECT_WAIT_SECS);
      char e2[OBJ_ERR_MAX];
      objstore_delete (os, key, e2, sizeof e2);
      return EBUSY;
    }
    if (!said)
      log_info ("waiting for a snapshot delete to finish collecting chunks "
                "(%s)", y.key);
    said = true;
    sleep (1);
  }
  if (r == -1) {
    char e2[OBJ_ERR_MAX];
    objstore_delete (os, key, e2, sizeof e2);
    return EIO;
  }
  return 0;
}

int
snapshot_end_upload (struct objstore *os, const char *name,
                     char *err, size_t errlen)
{
  char key[OBJ_KEY_MAX];
  if (!snapshot_name_valid (name)) {
    snprintf (err, errlen, "'%.200s' is not a valid snapshot name", name);
    return EINVAL;
  }
  snprintf (key, sizeof key, "inprogress/%s", name);
  return objstore_delete (os, key, err, errlen);
}

/* ---- delete and collection ------------------------------------------- */

static int
cmp_hash (const void *a, const void *b)
{
  return memcmp (a, b, CHUNK_HASH_LEN);
}

struct marks {
  uint8_t (*h)[CHUNK_HASH_LEN];
  size_t n, cap;
};

static int
mark_manifest (struct marks *mk, const struct manifest *m)
{
  for (uint64_t i = 0; i < m->nchunks; i++) {
    if (!m->present[i])
      continue;
    if (mk->n == mk->cap) {
      size_t cap = mk->cap ? 2 * mk->cap : 1024;
      void *h = realloc (mk->h, cap * sizeof *mk->h);
      if (h == NULL)
        return -1;
      mk->h = h;
      mk->cap = cap;
    }
    memcpy (mk->h[mk->n++], m->hashes[i], CHUNK_HASH_LEN);
  }
  return 0;
}

struct sweep {
  const struct marks *mk;
  struct names dead;            /* keys to delete */
  uint64_t *dead_size;
  size_t dead_cap;
  uint64_t kept;
  bool nomem;
};

/* chunks/HH/HEX with HH the first two digits of HEX; anything else
 * under chunks/ is not ours to delete.
 */
static int
sweep_entry (void *opaque, const struct obj_entry *e)
{
  struct sweep *sw = opaque;
  const char *k = e->key + strlen ("chunks/");
  uint8_t h[CHUNK_HASH_LEN];
  if (strlen (k) != 3 + CHUNK_HEX_LEN || k[2] != '/' ||
      strncmp (k, k + 3, 2) != 0 || hex_to_hash (k + 3, h) == -1)
    return 0;
  if (sw->mk->n && bsearch (h, sw->mk->h, sw->mk->n, CHUNK_HASH_LEN,
                            cmp_hash) != NULL) {
    sw->kept++;
    return 0;
  }
  if (sw->dead.n == sw->dead_cap) {
    size_t cap = sw->dead_cap ? 2 * sw->dead_cap : 64;
    uint64_t *s = realloc (sw->dead_size, cap * sizeof *s);
    if (s == NULL)
      goto nomem;
    sw->dead_size = s;
    sw->dead_cap = cap;
  }
  sw->dead_size[sw->dead.n] = e->size;
  if (names_add (&sw->dead, e->key, strlen (e->key)) == -1)
    goto nomem;
  return 0;
 nomem:
  sw->nomem = true;
  return ENOMEM;
}

/* Delete every key in sw->dead, SWEEP_DEPTH at a time.  0, or the
 * first error (err filled) after trying them all.
 */
static int
delete_keys (struct objstore *os, struct sweep *sw, struct delete_stats *st,
             char *err, size_t errlen)
{
  struct obj_req *reqs = calloc (SWEEP_DEPTH, sizeof *reqs);
  if (reqs == NULL) {
    snprintf (err, errlen, "out of memory");
    return ENOMEM;
  }
  struct obj_req *idle[SWEEP_DEPTH];
  int nidle = SWEEP_DEPTH, inflight = 0, first = 0;
  for (int i = 0; i < SWEEP_DEPTH; i++)
    idle[i] = &reqs[SWEEP_DEPTH - 1 - i];
  size_t next = 0;

  while (next < sw->dead.n || inflight > 0) {
    while (next < sw->dead.n && nidle > 0) {
      struct obj_req *r = idle[--nidle];
      memset (r, 0, sizeof *r);
      r->op = OBJ_DELETE;
      snprintf (r->key, sizeof r->key, "%s", sw->dead.v[next]);
      r->opaque = (void *) (uintptr_t) next;
      objstore_submit (os, r);
      inflight++;
      next++;
    }
    struct obj_req *r = objstore_poll (os, 1000);
    if (r == NULL)
      continue;
    inflight--;
    if (r->err == 0) {
      st->chunks_deleted++;
      st->bytes_freed += sw->dead_size[(uintptr_t) r->opaque];
    }
    else if (first == 0) {
      first = r->err;
      snprintf (err, errlen, "%s", r->errmsg);
    }
    idle[nidle++] = r;
  }
  free (reqs);
  return first;
}

/* Why concurrent deletes are safe: a delete removes its own manifest
 * before it marks, and marks from a listing of the manifests taken after
 * that.  A manifest that survives every concurrent delete is never
 * removed, so it is in every delete's listing and every delete marks its
 * chunks; a delete only sweeps chunks that no manifest in its listing
 * references.  The chunks that only the deleted snapshots reference can
 * be swept by either delete, or by both (a DELETE of a missing object is
 * not an error).  A manifest that cannot be read is never assumed to
 * reference nothing: collection stops instead.  New manifests are the
 * uploads' business: see the markers above.
 */
int
snapshot_delete (struct objstore *os, const char *name,
                 struct delete_stats *st, char *err, size_t errlen)
{
  char key[OBJ_KEY_MAX], mkey[OBJ_KEY_MAX];
  memset (st, 0, sizeof *st);
  if (!snapshot_name_valid (name)) {
    snprintf (err, errlen, "'%.200s' is not a valid snapshot name", name);
    return EINVAL;
  }
  manifest_key (name, key);
  /* Only existence matters: a manifest too damaged to parse must still
   * be deletable.
   */
  int e = objstore_head (os, key, NULL, err, errlen);
  if (e == ENOENT)
    snprintf (err, errlen, "no snapshot '%s' in %s", name, os->url);
  if (e)
    return e;
  if ((e = objstore_delete (os, key, err, errlen)) != 0)
    return e;

  snprintf (mkey, sizeof mkey, "collecting/%s", name);
  if ((e = put_marker (os, mkey, err, errlen)) != 0)
    return e;

  struct young y;
  struct names ns = { 0 };
  struct marks mk = { 0 };
  struct sweep sw = { .mk = &mk };
  int r = young_marker (os, "inprogress/", UPLOAD_STALE_SECS, &y, err,
                        errlen);
  if (r == -1) {
    e = EIO;
    goto out;
  }
  if (r == 1) {
    st->collection_skipped = true;
    snprintf (st->skip_reason, sizeof st->skip_reason,
              "an upload is in progress (%s)", y.key);
    goto out;
  }

  /* Mark. */
  if (list_manifests (os, &ns, err, errlen) == -1) {
    e = EIO;
    goto out;
  }
  for (size_t i = 0; i < ns.n; i++) {
    struct manifest m;
    char why[OBJ_ERR_MAX];
    int me = manifest_read (os, ns.v[i], &m, why, sizeof why);
    if (me == ENOENT)
      continue;                 /* deleted meanwhile: its chunks are fair game */
    if (me) {
      st->collection_skipped = true;
      snprintf (st->skip_reason, sizeof st->skip_reason,
                "cannot read a remaining manifest: %.200s", why);
      log_warn ("not collecting chunks: %s", why);
      goto out;
    }
    int mr = mark_manifest (&mk, &m);
    manifest_free (&m);
    if (mr == -1) {
      snprintf (err, errlen, "out of memory");
      e = ENOMEM;
      goto out;
    }
  }
  if (mk.n)
    qsort (mk.h, mk.n, CHUNK_HASH_LEN, cmp_hash);

  /* Sweep. */
  r = objstore_list (os, "chunks/", sweep_entry, &sw, err, errlen);
  if (r != 0) {
    if (sw.nomem)
      snprintf (err, errlen, "out of memory");
    e = sw.nomem ? ENOMEM : EIO;
    goto out;
  }
  st->chunks_kept = sw.kept;
  e = delete_keys (os, &sw, st, err, errlen);

 out:
  {
    char e2[OBJ_ERR_MAX];
    /* Best effort: a marker left behind only delays uploads until it
     * goes stale.
     */
    if (objstore_delete (os, mkey, e2, sizeof e2) != 0)
      log_warn ("%s", e2);
  }
  names_free (&ns);
  names_free (&sw.dead);
  free (sw.dead_size);
  free (mk.h);
  return e;
}
