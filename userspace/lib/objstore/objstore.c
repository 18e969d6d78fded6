/* objstore.c - the checked boundary of the object store: pick the
 * backend for a URL, check every request before the backend sees it,
 * and the blocking forms of a request.
 *
 * The checks are the ones objstore.h promises and every backend would
 * otherwise repeat (and did, differently): the op is known, the key is
 * a valid key that fits obj_req.key, a PUT has a body, a listing's
 * prefix is a valid prefix.  A refused request completes with EINVAL
 * and a message naming it, returned by the next objstore_poll() like
 * any other completion, as bdev.c completes a refused bdev_io.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objstore/objstore_backend.h"

static const struct objstore_ops *const backends[] = {
  &file_objstore_ops,
  &s3_objstore_ops,
};

/* ---- settings ---------------------------------------------------------- */

/* While a store opens on another process's behalf: its settings. */
static __thread char *const *env_override;

const char *
objstore_getenv (const char *name)
{
  if (env_override == NULL)
    return getenv (name);
  size_t n = strlen (name);
  for (char *const *e = env_override; *e; e++)
    if (strncmp (*e, name, n) == 0 && (*e)[n] == '=')
      return *e + n + 1;
  return NULL;
}

static bool
is_store_setting (const char *kv)
{
  return strncmp (kv, "AWS_", 4) == 0 || strncmp (kv, "REPVOL_S3_", 10) == 0 ||
         strncmp (kv, "HOME=", 5) == 0;
}

char **
objstore_env_capture (void)
{
  extern char **environ;
  size_t n = 0, k = 0;

  for (char **e = environ; *e; e++)
    n += is_store_setting (*e);
  char **out = calloc (n + 1, sizeof *out);
  for (char **e = environ; out && *e; e++)
    if (is_store_setting (*e) && (out[k++] = strdup (*e)) == NULL) {
      objstore_env_free (out);
      return NULL;
    }
  return out;
}

void
objstore_env_free (char **env)
{
  for (char **e = env; e && *e; e++)
    free (*e);
  free (env);
}

/* ---- open, close ------------------------------------------------------- */

struct objstore *
objstore_open_env (const char *url, char *const *env, struct error *err)
{
  static char *const empty[] = { NULL };

  env_override = env ? env : empty;
  struct objstore *os = objstore_open (url, err);
  env_override = NULL;
  return os;
}

struct objstore *
objstore_open (const char *url, struct error *err)
{
  const char *sep = strstr (url, "://");
  size_t n = sep ? (size_t) (sep - url) : 0;

  for (size_t i = 0; sep && i < sizeof backends / sizeof backends[0]; i++) {
    const struct objstore_ops *ops = backends[i];
    if (strlen (ops->scheme) != n || strncmp (url, ops->scheme, n) != 0)
      continue;
    struct objstore *os = calloc (1, sizeof *os);
    if (os == NULL || (os->url = strdup (url)) == NULL) {
      free (os);
      error_set (err, ENOMEM, "%s: out of memory", url);
      return NULL;
    }
    os->ops = ops;
    if (ops->open (os, sep + 3, err) < 0) {
      free (os->url);
      free (os);
      return NULL;
    }
    return os;
  }
  error_set (err, EINVAL, "%s: not an object store URL (expected "
             "file:///DIR or s3://BUCKET/PREFIX)", url);
  return NULL;
}

void
objstore_close (struct objstore *os)
{
  if (os == NULL)
    return;
  os->ops->close (os);
  free (os->url);
  free (os);
}

const char *
objstore_url (const struct objstore *os)
{
  return os->url;
}

int
objstore_inflight (const struct objstore *os)
{
  return os->inflight;
}

/* ---- the checks -------------------------------------------------------- */

/* Every component a plain name of [A-Za-z0-9._-]: no "", "." or ".."
 * (so a file store's DIR/KEY stays under DIR, and curl does not fold
 * an S3 key's "a/./b" into "a/b" after it was signed).
 */
static bool
key_chars_ok (const char *k)
{
  if (k[0] == '/' || strstr (k, "..") != NULL || strstr (k, "//") != NULL)
    return false;
  for (const char *p = k; *p; p++) {
    char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '/' ||
          c == '-'))
      return false;
    if ((p == k || p[-1] == '/') && c == '.' && (p[1] == '/' || p[1] == '\0'))
      return false;
  }
  return true;
}

/* At most OBJ_KEY_MAX - 2 bytes: a listing builds a key with room for
 * one more '/' in obj_req.key's size.
 */
bool
objstore_key_valid (const char *k)
{
  size_t n = strlen (k);
  return n > 0 && n < OBJ_KEY_MAX - 1 && k[n - 1] != '/' && key_chars_ok (k);
}

bool
objstore_prefix_valid (const char *k)
{
  return strlen (k) < OBJ_KEY_MAX - 1 && key_chars_ok (k);
}

const char *
objstore_op_name (enum obj_op op)
{
  static const char *const names[] = {
    [OBJ_PUT] = "PUT", [OBJ_GET] = "GET", [OBJ_HEAD] = "HEAD",
    [OBJ_DELETE] = "DELETE",
  };
  return op >= OBJ_PUT && op <= OBJ_DELETE ? names[op] : "?";
}

/* NULL when req may go to the backend, else why not. */
static const char *
check (const struct obj_req *req)
{
  if (req->op < OBJ_PUT || req->op > OBJ_DELETE)
    return "unknown operation";
  if (memchr (req->key, '\0', sizeof req->key) == NULL)
    return "object key not terminated";
  if (!objstore_key_valid (req->key))
    return "invalid object key";
  if (req->op == OBJ_PUT && req->data == NULL && req->len > 0)
    return "no body";
  return NULL;
}

void
objstore_submit (struct objstore *os, struct obj_req *req)
{
  req->err = (struct error) { 0 };
  req->out = NULL;
  req->out_len = 0;
  os->inflight++;
  const char *why = check (req);
  if (why == NULL) {
    os->ops->submit (os, req);
    return;
  }
  /* The key as far as it goes, which may be all of key[]. */
  int klen = (int) sizeof req->key;
  if (req->op < OBJ_PUT || req->op > OBJ_DELETE)
    error_set (&req->err, EINVAL, "%.*s: %s %d", klen, req->key, why,
               (int) req->op);
  else
    error_set (&req->err, EINVAL, "%s %.*s: %s", objstore_op_name (req->op),
               klen, req->key, why);
  req->backend_priv = NULL;
  if (os->refused_tail)
    os->refused_tail->backend_priv = req;
  else
    os->refused = req;
  os->refused_tail = req;
}

struct obj_req *
objstore_poll (struct objstore *os, int timeout_ms)
{
  struct obj_req *r = os->refused;
  if (r) {
    if ((os->refused = r->backend_priv) == NULL)
      os->refused_tail = NULL;
    r->backend_priv = NULL;
  }
  else
    r = os->ops->poll (os, timeout_ms);
  if (r)
    os->inflight--;
  return r;
}

void
objstore_wakeup (struct objstore *os)
{
  os->ops->wakeup (os);
}

/* What objstore_list promises its callers, checked here once: a store
 * (an S3 server is a peer) may answer keys outside the prefix asked
 * for, and callers skip the prefix's length into every key.
 */
struct list_filter {
  const char *prefix;
  size_t prefix_len;
  int (*fn) (void *opaque, const struct obj_entry *e);
  void *opaque;
};

static int
list_filter_entry (void *opaque, const struct obj_entry *e)
{
  struct list_filter *lf = opaque;
  if (strncmp (e->key, lf->prefix, lf->prefix_len) != 0)
    return 0;
  return lf->fn (lf->opaque, e);
}

int
objstore_list (struct objstore *os, const char *prefix,
               int (*fn) (void *opaque, const struct obj_entry *e),
               void *opaque, struct error *err)
{
  if (!objstore_prefix_valid (prefix))
    return error_set (err, EINVAL, "list %.300s: invalid key prefix", prefix);
  struct list_filter lf = { .prefix = prefix, .prefix_len = strlen (prefix),
                            .fn = fn, .opaque = opaque };
  return os->ops->list (os, prefix, list_filter_entry, &lf, err);
}

/* ---- blocking forms ---------------------------------------------------- */

/* Submit one request for key and wait for it. */
static int
run_one (struct objstore *os, struct obj_req *r, const char *key,
         struct error *err)
{
  if (strlen (key) >= OBJ_KEY_MAX - 1)
    return error_set (err, ENAMETOOLONG, "%.64s...: object key too long",
                      key);
  memcpy (r->key, key, strlen (key) + 1);
  objstore_submit (os, r);
  while (objstore_poll (os, 1000) != r)
    ;
  if (r->err.code == 0)
    return 0;
  if (err)
    *err = r->err;
  return -r->err.code;
}

int
objstore_put (struct objstore *os, const char *key, const void *data,
              size_t len, struct error *err)
{
  struct obj_req r = { .op = OBJ_PUT, .data = data, .len = len };
  return run_one (os, &r, key, err);
}

int
objstore_get (struct objstore *os, const char *key, void **data,
              size_t *len, struct error *err)
{
  struct obj_req r = { .op = OBJ_GET };
  int e = run_one (os, &r, key, err);
  if (e == 0) {
    *data = r.out;
    *len = r.out_len;
  }
  else
    free (r.out);
  return e;
}

int
objstore_head (struct objstore *os, const char *key, size_t *len,
               struct error *err)
{
  struct obj_req r = { .op = OBJ_HEAD };
  int e = run_one (os, &r, key, err);
  if (e == 0 && len)
    *len = r.out_len;
  return e;
}

int
objstore_delete (struct objstore *os, const char *key, struct error *err)
{
  struct obj_req r = { .op = OBJ_DELETE };
  return run_one (os, &r, key, err);
}
