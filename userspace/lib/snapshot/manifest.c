/* manifest.c - the manifest of a snapshot: its in-memory form, its JSON
 * (one json-c builder for the stored document and for the summary
 * "repvol snapshot list --json" prints), the strict reader, and reading
 * and writing snapshots/NAME.json.  The format is in catalog.h and
 * man/repvol-snapshot.5.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "core/util.h"
#include "snapshot/catalog.h"

#define MANIFEST_FORMAT 1
#define MIN_CHUNK_SIZE (64u << 10)
#define MAX_CHUNK_SIZE (64u << 20)
/* No time past 9999-12-31: keeps gmtime and the ISO strings sane. */
#define MAX_TIME INT64_C(253402300799)

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

int
snapshot_name_check (const char *name, struct error *err)
{
  if (snapshot_name_valid (name))
    return 0;
  return error_set (err, EINVAL, "'%.200s' is not a valid snapshot name",
                    name);
}

void
manifest_key (const char *name, char key[OBJ_KEY_MAX])
{
  snprintf (key, OBJ_KEY_MAX, "snapshots/%s.json", name);
}

int
manifest_init (struct manifest *m, uint64_t volume_size, uint32_t chunk_size)
{
  m->hashes = NULL;
  m->present = NULL;
  if (chunk_size == 0 || volume_size == 0)
    return -EINVAL;
  uint64_t n = volume_size / chunk_size + (volume_size % chunk_size != 0);
  if (n > MANIFEST_MAX_CHUNKS)
    return -EFBIG;
  m->volume_size = volume_size;
  m->chunk_size = chunk_size;
  m->nchunks = n;
  m->hashes = calloc (n, sizeof *m->hashes);
  m->present = calloc (n, sizeof *m->present);
  if (m->hashes == NULL || m->present == NULL) {
    manifest_free (m);
    return -ENOMEM;
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

/* ---- writing --------------------------------------------------------- */

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

/* Add field to o; false when it (or o) could not be made. */
static bool
add (json_object *o, const char *field, json_object *v)
{
  if (v == NULL || json_object_object_add (o, field, v) != 0) {
    json_object_put (v);
    return false;
  }
  return true;
}

/* Stored: [[INDEX, "HASH"], ...] of the chunks that hold data. */
static json_object *
chunk_list (const struct manifest *m)
{
  json_object *chunks = json_object_new_array ();
  for (uint64_t i = 0; chunks && i < m->nchunks; i++) {
    if (!m->present[i])
      continue;
    char hex[CHUNK_HEX_LEN + 1];
    hash_to_hex (m->hashes[i], hex);
    json_object *pair = json_object_new_array_ext (2);
    if (pair == NULL ||
        json_object_array_add (pair, json_object_new_int64 (i)) != 0 ||
        json_object_array_add (pair, json_object_new_string (hex)) != 0 ||
        json_object_array_add (chunks, pair) != 0) {
      json_object_put (pair);
      json_object_put (chunks);
      return NULL;
    }
  }
  return chunks;
}

uint64_t
manifest_chunks (const struct manifest *m)
{
  uint64_t n = 0;
  for (uint64_t i = 0; i < m->nchunks; i++)
    n += m->present[i];
  return n;
}

/* Both forms, field by field in the order of the format (catalog.h). */
struct json_object *
manifest_json (const struct manifest *m, enum manifest_form form)
{
  bool stored = form == MANIFEST_STORED;
  json_object *o = json_object_new_object ();
  bool ok = o != NULL;

  if (ok && stored)
    ok = add (o, "format", json_object_new_int (MANIFEST_FORMAT));
  ok = ok && add (o, "name", json_object_new_string (m->name));
  if (ok && (stored || m->parent[0]))
    ok = add (o, "parent", json_object_new_string (m->parent));
  else if (ok)
    ok = json_object_object_add (o, "parent", NULL) == 0;
  ok = ok && add (o, "volume", json_object_new_string (m->volume)) &&
    add (o, "volume_uuid", json_object_new_string (m->volume_uuid)) &&
    add (o, "volume_size", json_object_new_int64 (m->volume_size)) &&
    add (o, "chunk_size", json_object_new_int64 (m->chunk_size)) &&
    add (o, "created", json_object_new_int64 (m->created)) &&
    add (o, "created_iso", iso_time (m->created)) &&
    add (o, "completed", json_object_new_int64 (m->completed));
  if (ok && stored)
    ok = add (o, "completed_iso", iso_time (m->completed));
  else if (ok)
    ok = add (o, "chunks", json_object_new_int64 (manifest_chunks (m)));
  ok = ok && add (o, "data_bytes", json_object_new_int64 (m->data_bytes)) &&
    add (o, "uploaded_bytes", json_object_new_int64 (m->uploaded_bytes));
  if (ok && stored)
    ok = add (o, "chunks", chunk_list (m));
  if (!ok) {
    json_object_put (o);
    return NULL;
  }
  return o;
}

char *
manifest_to_json (const struct manifest *m)
{
  json_object *o = manifest_json (m, MANIFEST_STORED);
  if (o == NULL)
    return NULL;
  /* Plain (one chunk per line would be nicer to read, but manifests of
   * big volumes are megabytes and nobody edits them by hand).
   */
  const char *s = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN);
  char *ret = s ? strdup (s) : NULL;
  json_object_put (o);
  return ret;
}

/* ---- reading --------------------------------------------------------- */

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
 * and returns -EINVAL when the field is missing or not what it must be.
 */
static int
get_string (json_object *o, const char *field, char *out, size_t outlen,
            struct error *err)
{
  json_object *v;
  if (!json_object_object_get_ex (o, field, &v) || v == NULL)
    return error_set (err, EINVAL, "field '%s' is missing", field);
  if (!json_object_is_type (v, json_type_string))
    return error_set (err, EINVAL, "field '%s' is not a string", field);
  const char *s = json_object_get_string (v);
  size_t n = json_object_get_string_len (v);
  if (n >= outlen || strlen (s) != n)
    return error_set (err, EINVAL, "field '%s' is too long or holds a NUL",
                      field);
  memcpy (out, s, n + 1);
  return 0;
}

static int
get_int (json_object *o, const char *field, int64_t min, int64_t max,
         int64_t *out, struct error *err)
{
  json_object *v;
  if (!json_object_object_get_ex (o, field, &v) || v == NULL)
    return error_set (err, EINVAL, "field '%s' is missing", field);
  if (!json_object_is_type (v, json_type_int))
    return error_set (err, EINVAL, "field '%s' is not an integer", field);
  /* json-c clamps what does not fit in int64; the range check below
   * (max < INT64_MAX everywhere) turns that into an error.
   */
  errno = 0;
  int64_t x = json_object_get_int64 (v);
  if (errno != 0 || x < min || x > max)
    return error_set (err, EINVAL, "field '%s' is out of range [%" PRId64 ", %"
                      PRId64 "]", field, min, max);
  *out = x;
  return 0;
}

static int
parse_chunks (json_object *arr, struct manifest *m, struct error *err)
{
  if (!json_object_is_type (arr, json_type_array))
    return error_set (err, EINVAL, "field 'chunks' is not an array");
  size_t n = json_object_array_length (arr);
  if (n > m->nchunks)
    return error_set (err, EINVAL, "field 'chunks' has %zu entries for a "
                      "volume of %" PRIu64 " chunks", n, m->nchunks);
  int64_t prev = -1;
  for (size_t i = 0; i < n; i++) {
    json_object *pair = json_object_array_get_idx (arr, i);
    json_object *ix, *hx;
    if (pair == NULL || !json_object_is_type (pair, json_type_array) ||
        json_object_array_length (pair) != 2 ||
        (ix = json_object_array_get_idx (pair, 0)) == NULL ||
        (hx = json_object_array_get_idx (pair, 1)) == NULL ||
        !json_object_is_type (ix, json_type_int) ||
        !json_object_is_type (hx, json_type_string))
      return error_set (err, EINVAL, "field 'chunks[%zu]' is not an "
                        "[index, \"hash\"] pair", i);
    int64_t idx = json_object_get_int64 (ix);
    if (idx < 0 || (uint64_t) idx >= m->nchunks)
      return error_set (err, EINVAL, "field 'chunks[%zu]': index %" PRId64
                        " is outside the volume's %" PRIu64 " chunks", i, idx,
                        m->nchunks);
    if (idx <= prev)
      return error_set (err, EINVAL, "field 'chunks[%zu]': index %" PRId64
                        " does not follow %" PRId64 " (must be strictly "
                        "increasing)", i, idx, prev);
    const char *hex = json_object_get_string (hx);
    if (json_object_get_string_len (hx) != CHUNK_HEX_LEN ||
        hex_to_hash (hex, m->hashes[idx]) < 0)
      return error_set (err, EINVAL, "field 'chunks[%zu]': hash is not %d "
                        "lower case hex digits", i, CHUNK_HEX_LEN);
    m->present[idx] = true;
    prev = idx;
  }
  return 0;
}

int
manifest_from_json (const char *json, size_t len, struct manifest *m,
                    struct error *err)
{
  memset (m, 0, sizeof *m);
  /* json-c would stop at a NUL and call the rest trailing garbage; say
   * what it is.
   */
  if (memchr (json, '\0', len) != NULL)
    return error_set (err, EINVAL, "manifest holds a NUL byte");
  /* json-c takes 'single quoted' strings even when strict; no value of
   * ours can hold a quote, so refuse any.
   */
  if (memchr (json, '\'', len) != NULL)
    return error_set (err, EINVAL, "not JSON: single quote");
  json_tokener *tok = json_tokener_new_ex (16);
  if (tok == NULL)
    return error_set (err, ENOMEM, "out of memory");
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
    error_set (err, EINVAL, "not JSON: %s",
               je == json_tokener_continue ? "document ends early"
               : json_tokener_error_desc (je));
    json_object_put (o);
    return -EINVAL;
  }
  for (; end < len; end++)
    if (json[end] != ' ' && json[end] != '\n' && json[end] != '\t' &&
        json[end] != '\r') {
      error_set (err, EINVAL, "not JSON: data after the document");
      json_object_put (o);
      return -EINVAL;
    }

  int64_t format, size, csize, created, completed, data, uploaded;
  json_object *chunks;
  struct manifest t = { 0 };
  int ret = -EINVAL;
  if (o == NULL || !json_object_is_type (o, json_type_object)) {
    error_set (err, EINVAL, "manifest is not a JSON object");
    goto out;
  }
  /* Field by field, in the order of the format, so err names the first
   * bad one.
   */
  if (get_int (o, "format", 0, INT32_MAX, &format, err) < 0)
    goto out;
  if (format != MANIFEST_FORMAT) {
    error_set (err, EINVAL, "field 'format': version %" PRId64 " is not "
               "supported (expected %d)", format, MANIFEST_FORMAT);
    goto out;
  }
  if (get_string (o, "name", t.name, sizeof t.name, err) < 0)
    goto out;
  if (!snapshot_name_valid (t.name)) {
    error_set (err, EINVAL, "field 'name' is not a valid snapshot name");
    goto out;
  }
  if (get_string (o, "parent", t.parent, sizeof t.parent, err) < 0)
    goto out;
  if (t.parent[0] && !snapshot_name_valid (t.parent)) {
    error_set (err, EINVAL, "field 'parent' is not a valid snapshot name");
    goto out;
  }
  if (get_string (o, "volume", t.volume, sizeof t.volume, err) < 0)
    goto out;
  if (!valid_name (t.volume)) {
    error_set (err, EINVAL, "field 'volume' is not a valid volume name");
    goto out;
  }
  if (get_string (o, "volume_uuid", t.volume_uuid, sizeof t.volume_uuid,
                  err) < 0)
    goto out;
  if (!uuid_valid (t.volume_uuid)) {
    error_set (err, EINVAL, "field 'volume_uuid' is not a UUID");
    goto out;
  }
  if (get_int (o, "volume_size", 1, INT64_MAX - 1, &size, err) < 0 ||
      get_int (o, "chunk_size", MIN_CHUNK_SIZE, MAX_CHUNK_SIZE, &csize,
               err) < 0)
    goto out;
  if ((csize & (csize - 1)) != 0) {
    error_set (err, EINVAL, "field 'chunk_size': %" PRId64 " is not a power "
               "of two", csize);
    goto out;
  }
  if (get_int (o, "created", 0, MAX_TIME, &created, err) < 0 ||
      get_int (o, "completed", created, MAX_TIME, &completed, err) < 0 ||
      get_int (o, "data_bytes", 0, size, &data, err) < 0 ||
      get_int (o, "uploaded_bytes", 0, INT64_MAX - 1, &uploaded, err) < 0)
    goto out;
  if (!json_object_object_get_ex (o, "chunks", &chunks) || chunks == NULL) {
    error_set (err, EINVAL, "field 'chunks' is missing");
    goto out;
  }
  int e = manifest_init (&t, size, csize);
  if (e == -EFBIG)
    error_set (err, EINVAL, "field 'volume_size': more than %d chunks of "
               "%" PRId64 " bytes", MANIFEST_MAX_CHUNKS, csize);
  else if (e < 0) {
    error_set (err, -e, "out of memory");
    ret = e;
  }
  if (e < 0)
    goto out;
  t.created = created;
  t.completed = completed;
  t.data_bytes = data;
  t.uploaded_bytes = uploaded;
  if (parse_chunks (chunks, &t, err) < 0) {
    manifest_free (&t);
    goto out;
  }
  *m = t;
  ret = 0;
 out:
  json_object_put (o);
  return ret;
}

/* ---- in the store ---------------------------------------------------- */

int
manifest_read (struct objstore *os, const char *name, struct manifest *m,
               struct error *err)
{
  char key[OBJ_KEY_MAX];
  memset (m, 0, sizeof *m);
  int e = snapshot_name_check (name, err);
  if (e < 0)
    return e;
  manifest_key (name, key);
  void *data;
  size_t len;
  if ((e = objstore_get (os, key, &data, &len, err)) < 0)
    return e;
  e = manifest_from_json (data, len, m, err);
  if (e < 0)
    error_prefix (err, "%s: ", key);
  else if (strcmp (m->name, name) != 0) {
    e = error_set (err, EINVAL, "%s: names snapshot '%s', not '%s'", key,
                   m->name, name);
    manifest_free (m);
  }
  free (data);
  return e;
}

int
manifest_write (struct objstore *os, const struct manifest *m,
                struct error *err)
{
  char key[OBJ_KEY_MAX];
  int e = snapshot_name_check (m->name, err);
  if (e < 0)
    return e;
  manifest_key (m->name, key);
  char *json = manifest_to_json (m);
  if (json == NULL)
    return error_set (err, ENOMEM, "%s: out of memory", key);
  /* Check our own output with the reader's rules, so a caller's bug
   * never stores a manifest that list and restore would refuse.
   */
  struct manifest back;
  if ((e = manifest_from_json (json, strlen (json), &back, err)) < 0) {
    error_prefix (err, "%s: refusing to write an invalid manifest: ", key);
    free (json);
    return e;
  }
  manifest_free (&back);
  e = objstore_put (os, key, json, strlen (json), err);
  free (json);
  return e;
}
