/* s3.c - the s3://BUCKET/PREFIX object store: the S3 REST API over
 * libcurl.  This file holds the operations and the backend's table;
 * the pieces it stands on are in s3_internal.h (HTTP and the multi
 * driver in s3_http.c, signing in s3_sign.c, XML in s3_xml.c).
 *
 * A caller's request is an op, carried out by one or more transfers
 * (HTTP requests): GET, HEAD, DELETE and a PUT up to the part size are
 * one transfer; a larger object is a multipart upload: create, every
 * part in parallel, complete; abort when anything fails.  A listing is
 * ListObjectsV2, page by page, each page a transfer run to completion
 * while the store's other requests move on.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "objstore/s3_internal.h"

/* ---- operations -------------------------------------------------------- */

static void
op_finish (struct s3 *s3, struct op *op)
{
  struct obj_req *r = op->req;
  r->err = op->err;
  op->next = NULL;
  if (s3->done_tail)
    s3->done_tail->next = op;
  else
    s3->done_head = op;
  s3->done_tail = op;
}

/* Note op's error (err a positive errno) without finishing it. */
static void
op_error (struct op *op, int err, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

static void
op_error (struct op *op, int err, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  op->err.code = err;
  vsnprintf (op->err.msg, sizeof op->err.msg, fmt, ap);
  va_end (ap);
}

/* The first error of a transfer becomes its op's. */
static void
op_take_error (struct op *op, const struct xfer *x)
{
  op->err = x->err;
}

static void mp_abort (struct s3 *s3, struct op *op);

/* A multipart step ran out of memory: abort the upload. */
static void
mp_oom (struct s3 *s3, struct op *op)
{
  op_error (op, ENOMEM, "PUT %s: out of memory", op->req->key);
  mp_abort (s3, op);
}

/* A part that could not even be queued still counts as finished, so the
 * upload ends.
 */
static void
part_oom (struct s3 *s3, struct op *op, int part)
{
  struct xfer fake = { .s3 = s3, .op = op, .kind = X_MP_PART, .part = part };
  error_set (&fake.err, ENOMEM, "PUT %s: out of memory", op->req->key);
  s3_xfer_done (&fake);
}

static void
queue_new (struct s3 *s3, struct op *op, enum xkind kind, const char *method,
           const char *query, const void *body, size_t body_len,
           char *owned_body, const char *content_type, int part)
{
  struct obj_req *r = op->req;
  char *url = s3_object_url (s3, r->key, query);
  struct xfer *x = url ? s3_xfer_new (s3, op, kind, method, url, body,
                                      body_len, content_type) : NULL;
  free (url);
  if (x == NULL) {
    free (owned_body);
    if (kind == X_MP_PART)
      part_oom (s3, op, part);
    else {
      op_error (op, ENOMEM, "%s %s: out of memory", method, r->key);
      op_finish (s3, op);
    }
    return;
  }
  x->owned_body = owned_body;
  x->part = part;
  if (kind == X_MP_PART)
    snprintf (x->what, sizeof x->what, "PUT %s (part %d of %d)", r->key,
              part, op->nparts);
  else if (kind == X_MP_CREATE)
    snprintf (x->what, sizeof x->what, "PUT %s (starting a multipart upload)",
              r->key);
  else if (kind == X_MP_COMPLETE)
    snprintf (x->what, sizeof x->what, "PUT %s (completing a multipart upload)",
              r->key);
  else if (kind == X_MP_ABORT)
    snprintf (x->what, sizeof x->what, "PUT %s (aborting a multipart upload)",
              r->key);
  else
    snprintf (x->what, sizeof x->what, "%s %s", method, r->key);
  s3_xfer_queue (s3, x);
}

static void
mp_abort (struct s3 *s3, struct op *op)
{
  char *q = s3_upload_query (op->upload_id, 0);
  if (q == NULL) {
    op_finish (s3, op);
    return;
  }
  queue_new (s3, op, X_MP_ABORT, "DELETE", q, NULL, 0, NULL, NULL, 0);
  free (q);
}

static void
mp_parts (struct s3 *s3, struct op *op)
{
  const uint8_t *data = op->req->data;
  size_t len = op->req->len;

  for (int i = 0; i < op->nparts; i++) {
    size_t off = (size_t) i * op->part_size;
    size_t n = len - off < op->part_size ? len - off : op->part_size;
    char *q = s3_upload_query (op->upload_id, i + 1);
    if (q == NULL) {
      part_oom (s3, op, i + 1);
      continue;
    }
    queue_new (s3, op, X_MP_PART, "PUT", q, data + off, n, NULL, NULL, i + 1);
    free (q);
  }
}

static void
mp_complete (struct s3 *s3, struct op *op)
{
  size_t n;
  char *xml = s3_xml_complete_body ((const char (*)[ETAG_MAX]) op->etags,
                                    op->nparts, &n);
  char *q = s3_upload_query (op->upload_id, 0);
  if (xml == NULL || q == NULL) {
    free (xml);
    free (q);
    mp_oom (s3, op);
    return;
  }
  queue_new (s3, op, X_MP_COMPLETE, "POST", q, xml, n, xml,
             "application/xml", 0);
  free (q);
}

void
s3_xfer_done (struct xfer *x)
{
  struct s3 *s3 = x->s3;
  struct op *op = x->op;
  bool heap = x->easy != NULL;  /* not one of the on-stack stand-ins */

  if (x->kind == X_SYNC) {
    x->finished = true;
    return;
  }
  struct obj_req *r = op->req;
  switch (x->kind) {
  case X_SIMPLE:
    if (x->err.code)
      op_take_error (op, x);
    else if (r->op == OBJ_GET) {
      /* The body becomes the caller's; an empty one is still malloc'd. */
      r->out = x->resp ? x->resp : malloc (1);
      r->out_len = x->resp_len;
      x->resp = NULL;
      if (r->out == NULL)
        op_error (op, ENOMEM, "GET %s: out of memory", r->key);
    }
    else if (r->op == OBJ_HEAD) {
      curl_off_t cl = -1;
      curl_easy_getinfo (x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
      r->out_len = cl > 0 ? (size_t) cl : 0;
    }
    op_finish (s3, op);
    break;

  case X_MP_CREATE:
    if (x->err.code) {
      op_take_error (op, x);
      op_finish (s3, op);
      break;
    }
    if ((op->upload_id = s3_xml_upload_id (x->resp, x->resp_len)) == NULL) {
      op_error (op, EIO, "%s: no UploadId in the answer", x->what);
      op_finish (s3, op);
      break;
    }
    op->etags = calloc (op->nparts, sizeof op->etags[0]);
    if (op->etags == NULL) {
      mp_oom (s3, op);
      break;
    }
    mp_parts (s3, op);
    break;

  case X_MP_PART:
    if (x->err.code && !op->failed) {
      op->failed = true;
      op_take_error (op, x);
      /* Its parts waiting for a retry are cancelled now, not after
       * their backoff.
       */
      for (struct xfer *d = s3->delayed; d; d = d->next)
        if (d->op == op)
          d->retry_at = 0;
    }
    else if (!x->err.code)
      snprintf (op->etags[x->part - 1], sizeof op->etags[0], "%s", x->etag);
    if (++op->parts_finished == op->nparts) {
      if (op->failed)
        mp_abort (s3, op);
      else
        mp_complete (s3, op);
    }
    break;

  case X_MP_COMPLETE:
    if (x->err.code) {
      op_take_error (op, x);
      mp_abort (s3, op);
    }
    else
      op_finish (s3, op);
    break;

  case X_MP_ABORT:
    if (x->err.code) {
      /* The upload's parts stay until a lifecycle rule or an operator
       * removes them; say so after the error that matters.
       */
      size_t n = strlen (op->err.msg);
      snprintf (op->err.msg + n, sizeof op->err.msg - n,
                "; the upload %s was not aborted either", op->upload_id);
    }
    op_finish (s3, op);
    break;

  case X_SYNC:
    break;
  }
  if (heap)
    s3_xfer_free (x);
}

static void
s3_submit (struct objstore *os, struct obj_req *req)
{
  struct s3 *s3 = os->priv;
  struct op *op = calloc (1, sizeof *op);

  if (op == NULL) {
    /* Still a completion poll() returns, like every other failure. */
    error_set (&req->err, ENOMEM, "%.200s: out of memory", req->key);
    req->backend_priv = s3->oom_reqs;
    s3->oom_reqs = req;
    return;
  }
  op->req = req;
  req->backend_priv = op;

  /* objstore.c has checked the op and the key. */
  switch (req->op) {
  case OBJ_PUT:
    if (req->len > s3->part_size) {
      /* S3 allows 10000 parts: grow them for a huge object. */
      op->part_size = s3->part_size;
      if ((req->len + op->part_size - 1) / op->part_size > MAX_PARTS)
        op->part_size = ((req->len / MAX_PARTS) | ((1u << 20) - 1)) + 1;
      op->nparts = (req->len + op->part_size - 1) / op->part_size;
      queue_new (s3, op, X_MP_CREATE, "POST", "uploads=", NULL, 0, NULL,
                 "application/octet-stream", 0);
    }
    else
      queue_new (s3, op, X_SIMPLE, "PUT", NULL, req->data, req->len, NULL,
                 NULL, 0);
    break;
  case OBJ_GET:
    queue_new (s3, op, X_SIMPLE, "GET", NULL, NULL, 0, NULL, NULL, 0);
    break;
  case OBJ_HEAD:
    queue_new (s3, op, X_SIMPLE, "HEAD", NULL, NULL, 0, NULL, NULL, 0);
    break;
  case OBJ_DELETE:
    queue_new (s3, op, X_SIMPLE, "DELETE", NULL, NULL, 0, NULL, NULL, 0);
    break;
  }
}

static struct obj_req *
pop_done (struct s3 *s3)
{
  struct op *op = s3->done_head;
  if (s3->oom_reqs) {
    struct obj_req *r = s3->oom_reqs;
    s3->oom_reqs = r->backend_priv;
    r->backend_priv = NULL;
    return r;
  }
  if (op == NULL)
    return NULL;
  s3->done_head = op->next;
  if (s3->done_head == NULL)
    s3->done_tail = NULL;
  struct obj_req *r = op->req;
  r->backend_priv = NULL;
  free (op->upload_id);
  free (op->etags);
  free (op);
  return r;
}

static struct obj_req *
s3_poll (struct objstore *os, int timeout_ms)
{
  struct s3 *s3 = os->priv;
  uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
    : now_ns () + (uint64_t) timeout_ms * 1000000;

  for (;;) {
    s3_progress (s3);
    struct obj_req *r = pop_done (s3);
    if (r)
      return r;
    if (atomic_exchange (&s3->woken, false))
      return NULL;
    uint64_t now = now_ns ();
    if (now >= deadline)
      return NULL;
    s3_wait (s3, deadline == UINT64_MAX ? 60000
             : (int64_t) ((deadline - now + 999999) / 1000000));
  }
}

static void
s3_wakeup (struct objstore *os)
{
  struct s3 *s3 = os->priv;
  atomic_store (&s3->woken, true);
  curl_multi_wakeup (s3->multi);
}

/* ---- listing ----------------------------------------------------------- */

/* One page of ListObjectsV2 under the store's prefix + prefix: 0 and
 * the body, or a negative errno with err filled.
 */
static int
list_page (struct s3 *s3, const char *prefix, const char *token, int max_keys,
           char **body, size_t *len, struct error *err)
{
  char *url = s3_list_url (s3, prefix, token, max_keys);
  struct xfer *x = url ? s3_xfer_new (s3, NULL, X_SYNC, "GET", url, NULL, 0,
                                      NULL) : NULL;
  *body = NULL;
  free (url);
  if (x == NULL)
    return error_set (err, ENOMEM, "LIST %s: out of memory", prefix);
  snprintf (x->what, sizeof x->what, "LIST s3://%s/%s%s", s3->bucket,
            s3->prefix, prefix);
  int e = s3_run_sync (s3, x, body, len, err);
  if (e == 0 && *body == NULL)
    e = error_set (err, EIO, "LIST s3://%s/%s%s: empty answer", s3->bucket,
                   s3->prefix, prefix);
  return e;
}

struct list_ctx {
  struct s3 *s3;
  const char *prefix;           /* the caller's, after the store's */
  int (*fn) (void *opaque, const struct obj_entry *e);
  void *opaque;
  struct error *err;
};

/* One <Contents> of a page: to the caller, if it is one of ours. */
static int
list_object (void *opaque, const char *key, const char *size,
             const char *mtime)
{
  struct list_ctx *lc = opaque;
  struct s3 *s3 = lc->s3;
  size_t plen = strlen (s3->prefix);

  if (key == NULL || size == NULL)
    return error_set (lc->err, EIO, "LIST s3://%s/%s%s: %s", s3->bucket,
                      s3->prefix, lc->prefix, key ? "an entry without a Size"
                      : "an entry without a Key, or out of memory");
  /* Only keys under our prefix, and not the prefix itself (a
   * "directory" marker some tools create).
   */
  if (strncmp (key, s3->prefix, plen) != 0 || key[plen] == '\0')
    return 0;
  char *endp;
  errno = 0;
  unsigned long long sz = strtoull (size, &endp, 10);
  if (errno || endp == size || *endp)
    return error_set (lc->err, EIO, "LIST s3://%s/%s%s: bad Size \"%.32s\" "
                      "for %.200s", s3->bucket, s3->prefix, lc->prefix, size,
                      key);
  struct obj_entry e = { .key = key + plen, .size = sz,
                         .mtime = mtime ? s3_parse_time (mtime) : 0 };
  return lc->fn (lc->opaque, &e);
}

static int
s3_list (struct objstore *os, const char *prefix,
         int (*fn) (void *opaque, const struct obj_entry *e),
         void *opaque, struct error *err)
{
  struct s3 *s3 = os->priv;
  struct list_ctx lc = { .s3 = s3, .prefix = prefix, .fn = fn,
                         .opaque = opaque, .err = err };
  char *token = NULL, *body = NULL;
  int r = 0, pages = 0;

  for (;;) {
    size_t len = 0;
    if ((r = list_page (s3, prefix, token, 1000, &body, &len, err)) < 0)
      break;
    pages++;
    if ((r = s3_xml_each_object (body, len, list_object, &lc)) != 0 ||
        !s3_xml_truncated (body, len))
      break;
    char *next = s3_xml_next_token (body, len);
    if (next == NULL || (token && strcmp (next, token) == 0)) {
      r = error_set (err, EIO, "LIST s3://%s/%s%s: page %d is truncated "
                     "but gives no new continuation token", s3->bucket,
                     s3->prefix, prefix, pages);
      free (next);
      break;
    }
    free (token);
    token = next;
    free (body);
    body = NULL;
  }
  free (body);
  free (token);
  return r;
}

/* ---- open, close ------------------------------------------------------- */

static void
s3_free (struct s3 *s3)
{
  if (s3 == NULL)
    return;
  /* Requests still in flight are dropped; their callers never get them
   * back (closing with requests out is the caller's bug).
   */
  while (s3->all)
    s3_xfer_free (s3->all);
  if (s3->multi)
    curl_multi_cleanup (s3->multi);
  while (pop_done (s3))
    ;
  aws_config_free (&s3->cfg);
  free (s3->bucket);
  free (s3->prefix);
  free (s3->root);
  free (s3->host);
  free (s3->sigv4);
  free (s3->token_hdr);
  free (s3);
}

/* The setting name, if set, into *out: a number (or with size, a size)
 * from min to max.  0, or -EINVAL with err filled.
 */
static int
env_uint (const char *name, uint64_t min, uint64_t max, uint64_t *out,
          bool size, struct error *err)
{
  const char *s = objstore_getenv (name);
  if (s == NULL || *s == '\0')
    return 0;
  uint64_t v;
  if ((size ? parse_size (s, &v) : parse_uint (s, 0, UINT64_MAX, &v)) == -1 ||
      v < min || v > max) {
    if (size)
      return error_set (err, EINVAL, "%s=%s: expected a size from %" PRIu64
                        " MiB to %" PRIu64 " GiB", name, s, min >> 20,
                        max >> 30);
    return error_set (err, EINVAL, "%s=%s: expected a number from %" PRIu64
                      " to %" PRIu64, name, s, min, max);
  }
  *out = v;
  return 0;
}

/* The REPVOL_S3_* tunables, over their defaults.  0 or -EINVAL. */
static int
read_settings (struct s3 *s3, struct error *err)
{
  static const struct {
    const char *name;
    uint64_t min, max, dflt;
    bool size;
  } set[] = {
    { "REPVOL_S3_MAX_ATTEMPTS", 1, 100, 6, false },
    { "REPVOL_S3_RETRY_DELAY_MS", 1, 60000, 200, false },
    { "REPVOL_S3_PART_SIZE", MIN_PART_SIZE, MAX_PART_SIZE, 16u << 20, true },
    { "REPVOL_S3_MAX_REQUESTS", 1, 256, 16, false },
  };
  uint64_t v[ARRAY_SIZE (set)];
  for (size_t i = 0; i < ARRAY_SIZE (set); i++) {
    v[i] = set[i].dflt;
    int e = env_uint (set[i].name, set[i].min, set[i].max, &v[i],
                      set[i].size, err);
    if (e < 0)
      return e;
  }
  s3->max_attempts = v[0];
  s3->retry_delay_ms = v[1];
  s3->part_size = v[2];
  s3->max_requests = v[3];
  return 0;
}

/* s3->bucket and s3->prefix from "BUCKET/PREFIX".  0 or a negative
 * errno with err filled (not for -ENOMEM).
 */
static int
parse_location (struct s3 *s3, const char *rest, struct error *err)
{
  const char *slash = strchr (rest, '/');
  size_t blen = slash ? (size_t) (slash - rest) : strlen (rest);

  /* BUCKET: S3's rules (3-63 of [a-z0-9.-]), with upper case and '_'
   * let through for older buckets and other servers.
   */
  if ((s3->bucket = strndup (rest, blen)) == NULL)
    return -ENOMEM;
  bool bucket_ok = blen >= 3 && blen <= 63;
  for (size_t i = 0; i < blen && bucket_ok; i++)
    bucket_ok = s3_unreserved ((unsigned char) rest[i]) && rest[i] != '~';
  if (!bucket_ok)
    return error_set (err, EINVAL, "\"%s\" is not a bucket name "
                      "(3 to 63 letters, digits, '.', '-')", s3->bucket);

  /* PREFIX: no leading, doubled or missing trailing slashes. */
  const char *p = slash ? slash : "";
  if ((s3->prefix = malloc (strlen (p) + 2)) == NULL)
    return -ENOMEM;
  char *o = s3->prefix;
  for (; *p; p++)
    if (*p != '/' || (o > s3->prefix && o[-1] != '/'))
      *o++ = *p;
  if (o > s3->prefix && o[-1] != '/')
    *o++ = '/';
  *o = '\0';
  if (strlen (s3->prefix) > OBJ_KEY_MAX)
    return error_set (err, ENAMETOOLONG, "prefix longer than %d bytes",
                      OBJ_KEY_MAX);
  return 0;
}

/* s3->host and s3->root: path-style URLs with an endpoint (a local
 * server rarely has DNS for BUCKET.host); virtual-hosted on AWS, unless
 * a dotted bucket name would not match the wildcard certificate.  0 or
 * -ENOMEM.
 */
static int
make_root (struct s3 *s3)
{
  const char *ep = s3->cfg.endpoint_url;
  if (ep) {
    size_t n = strlen (ep);
    while (n > 0 && ep[n - 1] == '/')
      n--;
    const char *hs = strstr (ep, "://") + 3;
    const char *he = memchr (hs, '/', ep + n - hs);
    if ((s3->host = strndup (ep, he ? (size_t) (he - ep) : n)) == NULL ||
        asprintf (&s3->root, "%.*s/%s", (int) n, ep, s3->bucket) == -1)
      goto oom;
    s3->path_style = true;
  }
  else if (strchr (s3->bucket, '.')) {
    if (asprintf (&s3->host, "https://s3.%s.amazonaws.com", s3->cfg.region) == -1 ||
        asprintf (&s3->root, "%s/%s", s3->host, s3->bucket) == -1)
      goto oom;
    s3->path_style = true;
  }
  else {
    if (asprintf (&s3->host, "https://%s.s3.%s.amazonaws.com", s3->bucket,
                  s3->cfg.region) == -1 ||
        (s3->root = strdup (s3->host)) == NULL)
      goto oom;
  }
  return 0;
 oom:
  return -ENOMEM;
}

static int
s3_open (struct objstore *os, const char *rest, struct error *err)
{
  struct error why = { 0 };     /* without the URL, which fail: adds */
  struct s3 *s3 = calloc (1, sizeof *s3);
  int e;

  if (s3 == NULL)
    return error_set (err, ENOMEM, "%s: out of memory", os->url);
  CURLcode ce = s3_http_global_init ();
  if (ce != CURLE_OK) {
    e = error_set (&why, EIO, "cannot initialise libcurl: %s",
                   curl_easy_strerror (ce));
    goto fail;
  }
  if ((e = parse_location (s3, rest, &why)) < 0 ||
      (e = aws_config_load (&s3->cfg, &why)) < 0 ||
      (e = read_settings (s3, &why)) < 0 ||
      (e = make_root (s3)) < 0 || (e = s3_sign_setup (s3)) < 0)
    goto fail;

  if ((s3->multi = curl_multi_init ()) == NULL) {
    e = -ENOMEM;
    goto fail;
  }
  /* Keep a connection per request slot between bursts. */
  curl_multi_setopt (s3->multi, CURLMOPT_MAXCONNECTS, (long) s3->max_requests + 4);
  s3->rng = now_ns () ^ (uintptr_t) s3 ^ 0x9e3779b97f4a7c15ull;
  if (s3->rng == 0)
    s3->rng = 1;
  atomic_init (&s3->woken, false);

  /* One cheap signed request, so that wrong credentials or a missing
   * bucket show here, in the server's words, not at the first upload.
   */
  char *body = NULL;
  size_t len;
  struct error lerr = { 0 };
  e = list_page (s3, "", NULL, 1, &body, &len, &lerr);
  free (body);
  if (e < 0) {
    error_set (&why, -e, "%.300s%s%.150s%s", error_msg (&lerr),
               e == -EACCES ? " (credentials from " : "",
               e == -EACCES ? s3->cfg.credentials_from : "",
               e == -EACCES ? ")" : "");
    goto fail;
  }
  log_debug ("%s: bucket %s at %s, prefix \"%s\", region %s, part size %zu, "
             "%d requests at once, %d attempts", os->url, s3->bucket,
             s3->host, s3->prefix, s3->cfg.region, s3->part_size,
             s3->max_requests, s3->max_attempts);
  os->priv = s3;
  return 0;

 fail:
  error_set (err, -e, "%s: %s", os->url,
             e == -ENOMEM && why.msg[0] == '\0' ? "out of memory" : why.msg);
  s3_free (s3);
  return e;
}

static void
s3_close (struct objstore *os)
{
  s3_free (os->priv);
  os->priv = NULL;
}

const struct objstore_ops s3_objstore_ops = {
  .scheme = "s3",
  .open = s3_open,
  .submit = s3_submit,
  .poll = s3_poll,
  .wakeup = s3_wakeup,
  .list = s3_list,
  .close = s3_close,
};
