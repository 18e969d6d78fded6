/* etcd.c - the registry on etcd (v3 API through its JSON gateway; the
 * HTTP client is etcd_http.c, the request builders etcd_req.c).
 *
 * The location: etcd://HOST:PORT[,HOST:PORT...][/PREFIX], PREFIX
 * "/repvol" by default.  The keys:
 *
 *   PREFIX/volumes/NAME        one volume: the document of codec.c
 *   PREFIX/blobs/NAME/KIND     a blob (registry_blob_put), its bytes
 *   PREFIX/receipts/NAME/ID    an update's receipt, under a lease
 *   PREFIX/servers/NAME        a live server: its record (codec.c),
 *                              under the server's lease (its TTL); gone
 *                              when the server stops refreshing it
 *   PREFIX/servers/NAME/info   the same record without a lease, so a
 *                              server that went down is still known
 *
 * create is a transaction that puts the record only if the key has
 * version 0 (does not exist), and drops any blobs left under the name;
 * update reads the record and its mod_revision, calls the callback on
 * the copy and writes it back in a transaction comparing mod_revision
 * with the one read, so a write based on a stale read is refused; the
 * refusal brings the current record (the transaction's failure branch
 * is a range), and the callback runs again on it, up to
 * ETCD_UPDATE_TRIES times with a short jittered pause.  remove deletes
 * the record and every blob of the volume in one transaction.  list is
 * a keys-only range over PREFIX/volumes/.
 *
 * A write whose answer was lost (a timeout, a 5xx, the member died) may
 * have been applied all the same, and another writer may have changed
 * the record since, so the current value cannot tell.  Every update
 * transaction therefore also puts a receipt, PREFIX/receipts/RANDOM,
 * under a lease of this handle (ETCD_RECEIPT_TTL seconds, granted anew
 * when half of it has passed), in the same transaction (the receipts of
 * a volume are PREFIX/receipts/NAME/..., removed with it): after a lost
 * answer and a refused retry, the receipt's presence says whether the
 * write was applied, and the callback is never applied twice.  Receipts
 * go away with their lease.  (A create's lost answer is recognised by
 * its value: nobody else may write a record that does not exist yet.)
 *
 * Everything etcd answers is checked before use (etcd_http.c's
 * readers, then the record codec): a bad answer is -EBADMSG with the
 * reason, never a crash.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "registry/registry.h"
#include "registry/backends.h"
#include "registry/etcd_internal.h"

#define ETCD_UPDATE_TRIES 100
/* One blob is one value in one request: etcd refuses requests over
 * --max-request-bytes (1.5 MiB by default).  1 MiB of bitmap is a
 * change map of 8 TiB in 1 MiB chunks.
 */
#define ETCD_BLOB_MAX     (1u << 20)
#define ETCD_RECEIPT_TTL  3600          /* seconds */

/* ---- keys and requests ------------------------------------------------- */

static void
vol_key (struct etcd_registry *e, const char *name, char *buf)
{
  snprintf (buf, KEY_MAX, "%s/volumes/%s", e->prefix, name);
}

static void
blob_key (struct etcd_registry *e, const char *name, const char *kind,
          char *buf)
{
  snprintf (buf, KEY_MAX, "%s/blobs/%s/%s", e->prefix, name, kind ? kind : "");
}

/* A new receipt key for an update of volume name (see the top), or
 * (one false) the prefix of all of them.
 */
static void
receipt_key (struct etcd_registry *e, const char *name, bool one, char *buf)
{
  if (!one) {
    snprintf (buf, KEY_MAX, "%s/receipts/%s/", e->prefix, name);
    return;
  }
  snprintf (buf, KEY_MAX, "%s/receipts/%s/%016llx%016llx", e->prefix, name,
            (unsigned long long) etcd_rand (&e->c),
            (unsigned long long) etcd_rand (&e->c));
}

int
etcd_reg_nomem (struct etcd_registry *e, struct error *err)
{
  return error_set (err, ENOMEM, "registry %s: out of memory", e->loc);
}

/* POST req (consumed) to path; the reason prefixed with the location. */
int
etcd_reg_call (struct etcd_registry *e, const char *path, json_object *req,
      json_object **resp, bool *maybe_applied, struct error *err)
{
  if (req == NULL)
    return etcd_reg_nomem (e, err);
  int r = etcd_call (&e->c, path, req, resp, maybe_applied, err);
  json_object_put (req);
  if (r < 0)
    error_prefix (err, "registry %s: ", e->loc);
  return r;
}

int
etcd_reg_bad_answer (struct etcd_registry *e, const char *key, const char *why,
            struct error *err)
{
  return error_set (err, EBADMSG, "registry %s: bad answer from etcd %s "
                    "for %s: %s", e->loc, e->c.ep[e->c.cur].hostport, key,
                    why);
}

/* The one kv of a range answer for key (0 entries: *n = 0). */
static int
range_one (struct etcd_registry *e, json_object *resp, const char *key,
           struct etcd_kv **kv, int *n, struct error *err)
{
  const char *why = NULL;
  int r = etcd_range_kvs (resp, kv, n, &why);
  if (r < 0)
    return etcd_reg_bad_answer (e, key, why, err);
  if (*n > 1 || (*n == 1 && strcmp ((*kv)[0].key, key) != 0)) {
    for (int i = 0; i < *n; i++)
      etcd_kv_free (&(*kv)[i]);
    free (*kv);
    *kv = NULL;
    return etcd_reg_bad_answer (e, key, "a range of one key answered another", err);
  }
  return 0;
}

void
etcd_kvs_free (struct etcd_kv *kv, int n)
{
  for (int i = 0; i < n; i++)
    etcd_kv_free (&kv[i]);
  free (kv);
}

/* Read key: *kv (free with kvs_free(kv, 1)) or -ENOENT (no message). */
static int
read_key (struct etcd_registry *e, const char *key, struct etcd_kv **kv,
          struct error *err)
{
  json_object *resp;
  int n, r = etcd_reg_call (e, "/v3/kv/range", etcd_key_req (key, false), &resp, NULL, err);
  if (r < 0)
    return r;
  r = range_one (e, resp, key, kv, &n, err);
  json_object_put (resp);
  if (r == 0 && n == 0)
    r = -ENOENT;
  return r;
}

/* The record in kv, checked: it must be a valid document of volume
 * name.
 */
static int
decode_record (struct etcd_registry *e, const char *name,
               const struct etcd_kv *kv, struct reg_volume *v,
               struct error *err)
{
  if (reg_volume_from_json (kv->value, kv->value_len, v, err) < 0) {
    error_prefix (err, "registry %s: corrupt value of %s: ", e->loc, kv->key);
    return -EBADMSG;
  }
  if (strcmp (v->name, name) != 0)
    return error_set (err, EBADMSG, "registry %s: corrupt value of %s: "
                      "holds volume \"%s\"", e->loc, kv->key, v->name);
  return 0;
}

/* A transaction's answer: whether it succeeded and, for a failure
 * branch that is a range, its kvs.
 */
static int
txn_result (struct etcd_registry *e, json_object *resp, const char *key,
            bool *succeeded, struct etcd_kv **kv, int *n, struct error *err)
{
  const char *why = NULL;
  json_object *rs, *r0, *rr;
  if (kv)
    *kv = NULL, *n = 0;
  if (etcd_get_bool (resp, "succeeded", succeeded, &why) < 0)
    return etcd_reg_bad_answer (e, key, why, err);
  if (*succeeded || kv == NULL)
    return 0;
  if (etcd_get_member (resp, "responses", json_type_array, &rs, &why) < 0)
    return etcd_reg_bad_answer (e, key, why, err);
  if (rs == NULL || json_object_array_length (rs) != 1 ||
      !json_object_is_type (r0 = json_object_array_get_idx (rs, 0),
                            json_type_object))
    return etcd_reg_bad_answer (e, key, "no answer to the failure branch's range",
                       err);
  if (etcd_get_member (r0, "response_range", json_type_object, &rr, &why) < 0)
    return etcd_reg_bad_answer (e, key, why, err);
  if (rr == NULL)
    return etcd_reg_bad_answer (e, key, "no response_range", err);
  return range_one (e, rr, key, kv, n, err);
}

static bool
same_value (const struct etcd_kv *kv, const char *text)
{
  return kv->value_len == strlen (text) &&
    memcmp (kv->value, text, kv->value_len) == 0;
}

/* ---- operations ------------------------------------------------------- */

static int
etcd_create (struct registry *r, const struct reg_volume *v,
             struct error *err)
{
  struct etcd_registry *e = etcd_of (r);
  char key[KEY_MAX], blobs[KEY_MAX];
  json_object *resp;
  struct etcd_kv *kv;
  bool ok, maybe;
  int n, ret;

  if ((ret = reg_volume_check (v, err)) < 0) {
    error_prefix (err, "registry %s: refusing to write volume \"%.*s\": ",
                  e->loc, REG_NAME_MAX, v->name);
    return ret;
  }
  vol_key (e, v->name, key);
  blob_key (e, v->name, NULL, blobs);
  char *text = reg_volume_to_json (v);
  if (text == NULL)
    return etcd_reg_nomem (e, err);
  json_object *req =
    etcd_txn (etcd_compare (key, "VERSION", "EQUAL", 0),
         etcd_put (key, text, strlen (text)),
         etcd_op ("request_delete_range", etcd_key_req (blobs, true)),
         etcd_op ("request_range", etcd_key_req (key, false)));
  ret = etcd_reg_call (e, "/v3/kv/txn", req, &resp, &maybe, err);
  if (ret == 0) {
    ret = txn_result (e, resp, key, &ok, &kv, &n, err);
    json_object_put (resp);
    if (ret == 0 && !ok) {
      /* Taken, unless by this very call before its answer was lost. */
      if (!(maybe && n == 1 && same_value (&kv[0], text)))
        ret = error_set (err, EEXIST, "registry %s: volume '%s' exists",
                         e->loc, v->name);
      etcd_kvs_free (kv, n);
    }
  }
  free (text);
  return ret;
}

static int
etcd_get (struct registry *r, const char *name, struct reg_volume *v,
          struct error *err)
{
  struct etcd_registry *e = etcd_of (r);
  char key[KEY_MAX];
  struct etcd_kv *kv;

  vol_key (e, name, key);
  int ret = read_key (e, key, &kv, err);
  if (ret == -ENOENT)
    return error_set (err, ENOENT, "registry %s: no volume '%s'", e->loc,
                      name);
  if (ret < 0)
    return ret;
  ret = decode_record (e, name, kv, v, err);
  etcd_kvs_free (kv, 1);
  return ret;
}

/* Settings: PREFIX/settings/KEY, the value as text. */
static int
etcd_setting_get (struct registry *r, const char *key, char *value,
                  size_t len, struct error *err)
{
  struct etcd_registry *e = etcd_of (r);
  char k[KEY_MAX];
  struct etcd_kv *kv;

  snprintf (k, sizeof k, "%s/settings/%s", e->prefix, key);
  int ret = read_key (e, k, &kv, err);
  if (ret == -ENOENT)
    return error_set (err, ENOENT, "registry %s: setting %s is not set",
                      e->loc, key);
  if (ret < 0)
    return ret;
  snprintf (value, len, "%.*s", (int) kv->value_len,
            kv->value ? (const char *) kv->value : "");
  etcd_kvs_free (kv, 1);
  return 0;
}

static int
etcd_setting_put (struct registry *r, const char *key, const char *value,
                  struct error *err)
{
  struct etcd_registry *e = etcd_of (r);
  char k[KEY_MAX];
  json_object *resp;

  snprintf (k, sizeof k, "%s/settings/%s", e->prefix, key);
  int ret = etcd_reg_call (e, value ? "/v3/kv/put" : "/v3/kv/deleterange",
                           value ? etcd_kv_req (k, value, strlen (value), 0)
                           : etcd_key_req (k, false), &resp, NULL, err);
  if (ret == 0)
    json_object_put (resp);
  return ret;
}

/* The lease receipts are put under: granted on first use, in each
 * process (a child's parent may let its own expire), and again when
 * half of its time has passed, so a receipt outlives any check of it.
 */
int
etcd_reg_grant (struct etcd_registry *e, unsigned ttl, int64_t *id,
                struct error *err)
{
  json_object *resp, *req = json_object_new_object ();
  const char *why = NULL;
  int ret;

  if (req)
    json_object_object_add (req, "TTL", json_object_new_int ((int) ttl));
  if ((ret = etcd_reg_call (e, "/v3/lease/grant", req, &resp, NULL,
                            err)) < 0)
    return ret;
  ret = etcd_get_i64 (resp, "ID", id, &why);
  json_object_put (resp);
  if (ret < 0 || *id == 0)
    return etcd_reg_bad_answer (e, "a lease grant", why ? why : "no lease ID",
                                err);
  return 0;
}

static int
receipt_lease (struct etcd_registry *e, struct error *err)
{
  time_t now = time (NULL);
  int64_t id;
  int ret;

  if (e->lease && e->lease_pid == getpid () &&
      now - e->lease_at < ETCD_RECEIPT_TTL / 2)
    return 0;
  if ((ret = etcd_reg_grant (e, ETCD_RECEIPT_TTL, &id, err)) < 0)
    return ret;
  e->lease = id;
  e->lease_at = now;
  e->lease_pid = getpid ();
  return 0;
}

/* Does the receipt exist: 1, 0, or a negative errno. */
static int
receipt_exists (struct etcd_registry *e, const char *key, struct error *err)
{
  struct etcd_kv *kv;
  int ret = read_key (e, key, &kv, err);

  if (ret == -ENOENT)
    return 0;
  if (ret < 0)
    return ret;
  etcd_kvs_free (kv, 1);
  return 1;
}

static void
pause_ms (int ms)
{
  struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000 };
  nanosleep (&ts, NULL);
}

static int
etcd_update (struct registry *r, const char *name,
             int (*fn) (struct reg_volume *v, void *arg), void *arg,
             struct error *err)
{
  struct etcd_registry *e = etcd_of (r);
  char key[KEY_MAX];
  struct etcd_kv *kv = NULL;
  struct reg_volume v;
  int n = 1, ret;

  vol_key (e, name, key);
  ret = read_key (e, key, &kv, err);
  if (ret == -ENOENT)
    return error_set (err, ENOENT, "registry %s: no volume '%s'", e->loc,
                      name);
  if (ret < 0)
    return ret;
  for (int attempt = 0; ; attempt++) {
    /* kv: the current record, read or brought by a refused write. */
    if ((ret = decode_record (e, name, kv, &v, err)) < 0)
      break;
    int fe = fn (&v, arg);
    if (fe != 0) {
      ret = error_set (err, fe, "%s", strerror (fe));
      break;
    }
    /* The name is the key: a callback may not rename a volume. */
    snprintf (v.name, sizeof v.name, "%s", name);
    if ((ret = reg_volume_check (&v, err)) < 0) {
      error_prefix (err, "registry %s: refusing to write volume \"%s\": ",
                    e->loc, name);
      break;
    }
    char *text = reg_volume_to_json (&v);
    if (text == NULL) {
      ret = etcd_reg_nomem (e, err);
      break;
    }
    if (same_value (kv, text)) {        /* nothing changed */
      free (text);
      break;
    }
    json_object *resp;
    bool ok, maybe;
    char receipt[KEY_MAX];
    if ((ret = receipt_lease (e, err)) < 0) {
      free (text);
      break;
    }
    receipt_key (e, name, true, receipt);
    json_object *req = etcd_txn (etcd_compare (key, "MOD", "EQUAL", kv->mod_revision),
                            etcd_put (key, text, strlen (text)),
                            etcd_put_lease (receipt, "1", 1, e->lease),
                            etcd_op ("request_range", etcd_key_req (key, false)));
    etcd_kvs_free (kv, n);
    kv = NULL;
    n = 0;
    ret = etcd_reg_call (e, "/v3/kv/txn", req, &resp, &maybe, err);
    if (ret == 0) {
      ret = txn_result (e, resp, key, &ok, &kv, &n, err);
      json_object_put (resp);
    }
    if (ret < 0 || ok) {
      free (text);
      break;
    }
    if (n == 0) {
      free (text);
      ret = error_set (err, ENOENT, "registry %s: no volume '%s' (removed "
                       "during the update)", e->loc, name);
      break;
    }
    /* Refused: someone wrote since the read, or this call did before
     * its answer was lost, which only the receipt can tell.
     */
    free (text);
    if (maybe) {
      int mine = receipt_exists (e, receipt, err);
      if (mine < 0) {
        ret = mine;
        break;
      }
      if (mine)
        break;
    }
    if (attempt + 1 == ETCD_UPDATE_TRIES) {
      ret = error_set (err, EAGAIN, "registry %s: update of volume '%s' "
                       "lost to %d concurrent writes in a row", e->loc, name,
                       ETCD_UPDATE_TRIES);
      break;
    }
    /* The refusal brought the current record: try again on it at once.
     * Lost again: others are busy; pause a jittered, growing moment
     * (up to 32 ms) so one of them gets through, then read afresh,
     * since what the refusal brought is older than the pause.
     */
    if (attempt >= 1) {
      int cap = attempt >= 6 ? 32 : 1 << (attempt - 1);
      pause_ms ((int) (etcd_rand (&e->c) % (cap + 1)));
      etcd_kvs_free (kv, n);
      kv = NULL;
      n = 0;
      ret = read_key (e, key, &kv, err);
      if (ret < 0) {
        if (ret == -ENOENT)
          ret = error_set (err, ENOENT, "registry %s: no volume '%s' "
                           "(removed during the update)", e->loc, name);
        break;
      }
      n = 1;
    }
  }
  etcd_kvs_free (kv, n);
  return ret;
}

static int
etcd_remove (struct registry *r, const char *name, struct error *err)
{
  struct etcd_registry *e = etcd_of (r);
  char key[KEY_MAX], blobs[KEY_MAX], receipts[KEY_MAX];
  json_object *resp;
  bool ok, maybe;

  vol_key (e, name, key);
  blob_key (e, name, NULL, blobs);
  receipt_key (e, name, false, receipts);
  json_object *req = etcd_txn3 (etcd_compare (key, "VERSION", "GREATER", 0),
                           etcd_op ("request_delete_range", etcd_key_req (key, false)),
                           etcd_op ("request_delete_range", etcd_key_req (blobs, true)),
                           etcd_op ("request_delete_range",
                               etcd_key_req (receipts, true)),
                           NULL);
  int ret = etcd_reg_call (e, "/v3/kv/txn", req, &resp, &maybe, err);
  if (ret < 0)
    return ret;
  ret = txn_result (e, resp, key, &ok, NULL, NULL, err);
  json_object_put (resp);
  /* Not there: none, unless this call removed it before its answer was
   * lost.
   */
  if (ret == 0 && !ok && !maybe)
    ret = error_set (err, ENOENT, "registry %s: no volume '%s'", e->loc,
                     name);
  return ret;
}

int
etcd_reg_range (struct etcd_registry *e, json_object *req, const char *what,
                struct etcd_kv **kvs, int *n, struct error *err)
{
  json_object *resp;
  const char *why = NULL;
  int ret = etcd_reg_call (e, "/v3/kv/range", req, &resp, NULL, err);

  if (ret < 0)
    return ret;
  ret = etcd_range_kvs (resp, kvs, n, &why);
  json_object_put (resp);
  return ret < 0 ? etcd_reg_bad_answer (e, what, why, err) : 0;
}

static int
cmp_names (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static int
etcd_list (struct registry *r, char ***names_out, int *n_out,
           struct error *err)
{
  struct etcd_registry *e = etcd_of (r);
  char dir[KEY_MAX];
  struct etcd_kv *kv;
  int n, ret;

  snprintf (dir, sizeof dir, "%s/volumes/", e->prefix);
  json_object *req = etcd_key_req (dir, true);
  if (req)
    json_object_object_add (req, "keys_only", json_object_new_boolean (1));
  if ((ret = etcd_reg_range (e, req, dir, &kv, &n, err)) < 0)
    return ret;
  char **names = n ? calloc (n, sizeof *names) : NULL;
  int count = 0;
  if (n && names == NULL) {
    etcd_kvs_free (kv, n);
    return etcd_reg_nomem (e, err);
  }
  size_t dl = strlen (dir);
  for (int i = 0; i < n; i++) {
    const char *k = kv[i].key;
    /* Only names a volume can have; anything else is a stray. */
    if (strncmp (k, dir, dl) != 0 || !valid_name (k + dl))
      continue;
    if ((names[count] = strdup (k + dl)) == NULL) {
      etcd_kvs_free (kv, n);
      registry_free_names (names, count);
      return etcd_reg_nomem (e, err);
    }
    count++;
  }
  etcd_kvs_free (kv, n);
  if (count > 1)
    qsort (names, count, sizeof *names, cmp_names);
  if (count == 0) {
    free (names);
    names = NULL;
  }
  *names_out = names;
  *n_out = count;
  return 0;
}

/* ---- blobs -------------------------------------------------------------- */

static int
etcd_blob_put (struct registry *r, const char *name, const char *kind,
               const void *data, size_t len, struct error *err)
{
  struct etcd_registry *e = etcd_of (r);
  char key[KEY_MAX];
  json_object *resp;

  if (len > ETCD_BLOB_MAX)
    return error_set (err, EFBIG, "registry %s: the %s blob of %s is %zu "
                      "bytes, more than the %u one etcd value may hold here "
                      "(etcd's request limit is 1.5 MiB); a larger snapshot "
                      "chunk size makes it smaller", e->loc, kind, name, len,
                      ETCD_BLOB_MAX);
  blob_key (e, name, kind, key);
  json_object *req = etcd_kv_req (key, data ? data : "", len, 0);
  int ret = etcd_reg_call (e, "/v3/kv/put", req, &resp, NULL, err);
  if (ret == 0)
    json_object_put (resp);
  return ret;
}

static int
etcd_blob_get (struct registry *r, const char *name, const char *kind,
               void **data, size_t *len, struct error *err)
{
  struct etcd_registry *e = etcd_of (r);
  char key[KEY_MAX];
  struct etcd_kv *kv;

  blob_key (e, name, kind, key);
  int ret = read_key (e, key, &kv, err);
  if (ret == -ENOENT)
    return error_set (err, ENOENT, "registry %s: no %s blob for '%s'",
                      e->loc, kind, name);
  if (ret < 0)
    return ret;
  *data = kv->value;
  *len = kv->value_len;
  kv->value = NULL;
  etcd_kvs_free (kv, 1);
  return 0;
}

static int
etcd_blob_remove (struct registry *r, const char *name, const char *kind,
                  struct error *err)
{
  struct etcd_registry *e = etcd_of (r);
  char key[KEY_MAX];
  json_object *resp;

  blob_key (e, name, kind, key);
  int ret = etcd_reg_call (e, "/v3/kv/deleterange", etcd_key_req (key, false), &resp, NULL,
                  err);
  if (ret == 0)
    json_object_put (resp);
  return ret;
}

static void
etcd_close (struct registry *r)
{
  struct etcd_registry *e = etcd_of (r);
  etcd_client_fini (&e->c);
  free (e);
}

static const struct registry_ops etcd_ops = {
  .name = "etcd",
  .create = etcd_create,
  .get = etcd_get,
  .update = etcd_update,
  .remove = etcd_remove,
  .list = etcd_list,
  .blob_put = etcd_blob_put,
  .blob_get = etcd_blob_get,
  .blob_remove = etcd_blob_remove,
  .server_put = etcd_server_put,
  .server_down = etcd_server_down,
  .server_list = etcd_server_list,
  .server_drain = etcd_server_drain,
  .setting_get = etcd_setting_get,
  .setting_put = etcd_setting_put,
  .event_append = etcd_event_append,
  .event_list = etcd_event_list,
  .event_wait = etcd_event_wait,
  .close = etcd_close,
};

struct registry *
registry_etcd_open (const char *location, struct error *err)
{
  const char *rest = location + strlen ("etcd://");
  const char *slash = strchr (rest, '/');
  char hosts[ETCD_MAX_ENDPOINTS * 300];
  size_t hl = slash ? (size_t) (slash - rest) : strlen (rest);

  struct etcd_registry *e = calloc (1, sizeof *e);
  if (e == NULL) {
    error_set (err, ENOMEM, "registry %s: out of memory", location);
    return NULL;
  }
  snprintf (e->loc, sizeof e->loc, "%s", location);
  if (hl >= sizeof hosts) {
    error_set (err, EINVAL, "registry %s: too many endpoints", location);
    goto fail;
  }
  memcpy (hosts, rest, hl);
  hosts[hl] = '\0';

  /* The prefix: "/" and path segments of [A-Za-z0-9._-]. */
  const char *p = slash && slash[1] ? slash : "/repvol";
  size_t pl = strlen (p);
  while (pl > 1 && p[pl - 1] == '/')
    pl--;
  if (pl >= sizeof e->prefix) {
    error_set (err, EINVAL, "registry %s: prefix too long", location);
    goto fail;
  }
  for (size_t i = 0; i < pl; i++) {
    char ch = p[i];
    if (!(ch == '/' || ch == '.' || ch == '_' || ch == '-' ||
          (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
          (ch >= 'A' && ch <= 'Z')) || (ch == '/' && i && p[i - 1] == '/')) {
      error_set (err, EINVAL, "registry %s: bad prefix \"%.*s\" (path "
                 "segments of letters, digits, '.', '_', '-')", location,
                 (int) pl, p);
      goto fail;
    }
  }
  memcpy (e->prefix, p, pl);
  e->prefix[pl == 1 ? 0 : pl] = '\0';         /* "/" is the root */
  if (etcd_client_init (&e->c, hosts, err) < 0) {
    error_prefix (err, "registry %s: ", location);
    goto fail;
  }
  e->r.ops = &etcd_ops;
  e->r.priv = e;
  return &e->r;
 fail:
  free (e);
  return NULL;
}
