/* objstore.c - pick the backend for a URL; blocking forms of a request. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objstore/objstore.h"

static const struct objstore_ops *const backends[] = {
  &file_objstore_ops,
  &s3_objstore_ops,
};

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

struct objstore *
objstore_open_env (const char *url, char *const *env, char *err, size_t errlen)
{
  static char *const empty[] = { NULL };

  env_override = env ? env : empty;
  struct objstore *os = objstore_open (url, err, errlen);
  env_override = NULL;
  return os;
}

struct objstore *
objstore_open (const char *url, char *err, size_t errlen)
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
      snprintf (err, errlen, "%s: out of memory", url);
      return NULL;
    }
    os->ops = ops;
    if (ops->open (os, sep + 3, err, errlen) == -1) {
      free (os->url);
      free (os);
      return NULL;
    }
    return os;
  }
  snprintf (err, errlen, "%s: not an object store URL (expected "
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

void
objstore_submit (struct objstore *os, struct obj_req *req)
{
  req->err = 0;
  req->errmsg[0] = '\0';
  req->out = NULL;
  req->out_len = 0;
  os->inflight++;
  os->ops->submit (os, req);
}

struct obj_req *
objstore_poll (struct objstore *os, int timeout_ms)
{
  struct obj_req *r = os->ops->poll (os, timeout_ms);
  if (r)
    os->inflight--;
  return r;
}

void
objstore_wakeup (struct objstore *os)
{
  os->ops->wakeup (os);
}

int
objstore_list (struct objstore *os, const char *prefix,
               int (*fn) (void *opaque, const struct obj_entry *e),
               void *opaque, char *err, size_t errlen)
{
  return os->ops->list (os, prefix, fn, opaque, err, errlen);
}

/* Submit one request and wait for it. */
static int
run_one (struct objstore *os, struct obj_req *r, char *err, size_t errlen)
{
  if (strlen (r->key) >= OBJ_KEY_MAX - 1) {
    snprintf (err, errlen, "%.64s...: object key too long", r->key);
    return ENAMETOOLONG;
  }
  objstore_submit (os, r);
  while (objstore_poll (os, 1000) != r)
    ;
  if (r->err)
    snprintf (err, errlen, "%s", r->errmsg);
  return r->err;
}

#define REQ(o, k) \
  struct obj_req r = { .op = (o) }; \
  snprintf (r.key, sizeof r.key, "%s", (k))

int
objstore_put (struct objstore *os, const char *key, const void *data,
              size_t len, char *err, size_t errlen)
{
  REQ (OBJ_PUT, key);
  r.data = data;
  r.len = len;
  return run_one (os, &r, err, errlen);
}

int
objstore_get (struct objstore *os, const char *key, void **data,
              size_t *len, char *err, size_t errlen)
{
  REQ (OBJ_GET, key);
  int e = run_one (os, &r, err, errlen);
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
               char *err, size_t errlen)
{
  REQ (OBJ_HEAD, key);
  int e = run_one (os, &r, err, errlen);
  if (e == 0 && len)
    *len = r.out_len;
  return e;
}

int
objstore_delete (struct objstore *os, const char *key, char *err,
                 size_t errlen)
{
  REQ (OBJ_DELETE, key);
  return run_one (os, &r, err, errlen);
}
