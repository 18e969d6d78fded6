/* s3_http.c - the s3:// backend's HTTP: one request (struct xfer over a
 * curl easy handle) and the driver that runs every request of a store
 * through one curl multi handle (see s3_internal.h).
 *
 * Many requests run in parallel on the thread that calls poll(); at
 * most max_requests are in the multi handle at once, the rest wait in a
 * FIFO.  A request that fails with a connection error, a 5xx or 429 (or
 * S3's SlowDown, RequestTimeout, InternalError) is retried after an
 * exponential backoff with jitter, which is a timer the poll loop waits
 * on, never a sleep.  What a finished request means for the caller's
 * operation is s3.c's business (s3_xfer_done).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "objstore/s3_internal.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void
curl_init (void)
{
  curl_init_result = curl_global_init (CURL_GLOBAL_DEFAULT);
}

CURLcode
s3_http_global_init (void)
{
  pthread_once (&curl_once, curl_init);
  return curl_init_result;
}

static uint64_t
rand64 (struct s3 *s3)
{
  /* xorshift64*: jitter needs spread, not secrecy. */
  uint64_t x = s3->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  s3->rng = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* ---- curl callbacks ---------------------------------------------------- */

static size_t
on_read (char *buf, size_t size, size_t n, void *opaque)
{
  struct xfer *x = opaque;
  size_t want = size * n, left = x->body_len - x->body_pos;
  if (want > left)
    want = left;
  memcpy (buf, x->body + x->body_pos, want);
  x->body_pos += want;
  return want;
}

static int
on_seek (void *opaque, curl_off_t off, int origin)
{
  struct xfer *x = opaque;
  if (origin != SEEK_SET || off < 0 || (uint64_t) off > x->body_len)
    return CURL_SEEKFUNC_CANTSEEK;
  x->body_pos = off;
  return CURL_SEEKFUNC_OK;
}

static size_t
on_write (char *data, size_t size, size_t n, void *opaque)
{
  struct xfer *x = opaque;
  size_t len = size * n;
  bool object = x->kind == X_SIMPLE && x->op->req->op == OBJ_GET;

  if (x->resp_len + len + 1 > x->resp_cap) {
    size_t cap = x->resp_cap ? x->resp_cap : 4096;
    curl_off_t cl = -1;
    /* Size the buffer for the whole object at once when we know it. */
    if (x->resp_cap == 0 &&
        curl_easy_getinfo (x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
                           &cl) == CURLE_OK && cl > 0 &&
        (uint64_t) cl < SIZE_MAX / 2)
      cap = cl + 1;
    while (cap < x->resp_len + len + 1) {
      if (cap > SIZE_MAX / 2)
        return 0;
      cap *= 2;
    }
    if (!object && cap > MAX_META_BODY) {
      snprintf (x->curl_err, sizeof x->curl_err,
                "response larger than %u bytes", MAX_META_BODY);
      return 0;
    }
    char *p = realloc (x->resp, cap);
    if (p == NULL)
      return 0;
    x->resp = p;
    x->resp_cap = cap;
  }
  memcpy (x->resp + x->resp_len, data, len);
  x->resp_len += len;
  x->resp[x->resp_len] = '\0';
  return len;
}

static size_t
on_header (char *data, size_t size, size_t n, void *opaque)
{
  struct xfer *x = opaque;
  size_t len = size * n;
  if (len > 5 && strncasecmp (data, "etag:", 5) == 0) {
    const char *s = data + 5, *e = data + len;
    while (s < e && (*s == ' ' || *s == '\t'))
      s++;
    while (e > s && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
      e--;
    if ((size_t) (e - s) < sizeof x->etag) {
      memcpy (x->etag, s, e - s);
      x->etag[e - s] = '\0';
    }
  }
  return len;
}

/* ---- one request ------------------------------------------------------- */

void
s3_xfer_free (struct xfer *x)
{
  if (x == NULL)
    return;
  if (x->all_prev)
    x->all_prev->all_next = x->all_next;
  else if (x->s3->all == x)
    x->s3->all = x->all_next;
  if (x->all_next)
    x->all_next->all_prev = x->all_prev;
  if (x->in_multi)
    curl_multi_remove_handle (x->s3->multi, x->easy);
  if (x->easy)
    curl_easy_cleanup (x->easy);
  curl_slist_free_all (x->headers);
  free (x->owned_body);
  free (x->resp);
  free (x);
}

struct xfer *
s3_xfer_new (struct s3 *s3, struct op *op, enum xkind kind,
             const char *method, const char *url, const void *body,
             size_t body_len, const char *content_type)
{
  struct xfer *x = calloc (1, sizeof *x);
  if (x == NULL)
    return NULL;
  x->s3 = s3;
  x->all_next = s3->all;
  if (s3->all)
    s3->all->all_prev = x;
  s3->all = x;
  x->op = op;
  x->kind = kind;
  x->method = method;
  x->body = body;
  x->body_len = body_len;
  if ((x->easy = curl_easy_init ()) == NULL ||
      s3_sign (s3, x->easy, method, body, body_len, &x->headers) < 0)
    goto fail;
  if (content_type) {
    char ct[128];
    snprintf (ct, sizeof ct, "Content-Type: %s", content_type);
    if (!curl_slist_append (x->headers, ct))
      goto fail;
  }

  CURL *e = x->easy;
  curl_easy_setopt (e, CURLOPT_URL, url);
  curl_easy_setopt (e, CURLOPT_PRIVATE, x);
  curl_easy_setopt (e, CURLOPT_HTTPHEADER, x->headers);
  curl_easy_setopt (e, CURLOPT_ERRORBUFFER, x->curl_err);
  curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt (e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt (e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt (e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (e, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
  curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  /* A server that stops sending for 30 s is as good as gone: retry. */
  curl_easy_setopt (e, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt (e, CURLOPT_LOW_SPEED_TIME, 30L);
  curl_easy_setopt (e, CURLOPT_TCP_KEEPALIVE, 1L);
  /* Bigger buffers than curl's 16/64 KiB: fewer callbacks and copies
   * per MiB, which is most of a loopback transfer's cost.
   */
  curl_easy_setopt (e, CURLOPT_BUFFERSIZE, 256L << 10);
  if (strcmp (method, "PUT") == 0)
    curl_easy_setopt (e, CURLOPT_UPLOAD_BUFFERSIZE, 1L << 20);
  if (strcmp (method, "HEAD") == 0)
    curl_easy_setopt (e, CURLOPT_NOBODY, 1L);
  else if (strcmp (method, "PUT") == 0) {
    curl_easy_setopt (e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt (e, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt (e, CURLOPT_READDATA, x);
    curl_easy_setopt (e, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt (e, CURLOPT_SEEKDATA, x);
    curl_easy_setopt (e, CURLOPT_INFILESIZE_LARGE, (curl_off_t) body_len);
  }
  else if (strcmp (method, "POST") == 0) {
    curl_easy_setopt (e, CURLOPT_POST, 1L);
    curl_easy_setopt (e, CURLOPT_POSTFIELDS, body_len ? (const char *) body : "");
    curl_easy_setopt (e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body_len);
  }
  else if (strcmp (method, "DELETE") == 0)
    curl_easy_setopt (e, CURLOPT_CUSTOMREQUEST, "DELETE");
  return x;

 fail:
  s3_xfer_free (x);
  return NULL;
}

/* ---- the driver -------------------------------------------------------- */

void
s3_xfer_queue (struct s3 *s3, struct xfer *x)
{
  x->next = NULL;
  if (s3->ready_tail)
    s3->ready_tail->next = x;
  else
    s3->ready_head = x;
  s3->ready_tail = x;
}

/* Move retries that are due to the ready list and start ready xfers
 * while there is room.  Returns how many were started or finished.
 */
static int
start_ready (struct s3 *s3)
{
  uint64_t now = now_ns ();
  int n = 0;

  for (struct xfer **pp = &s3->delayed; *pp;) {
    struct xfer *x = *pp;
    if (x->retry_at <= now) {
      *pp = x->next;
      s3_xfer_queue (s3, x);
    }
    else
      pp = &x->next;
  }
  while (s3->ready_head) {
    struct xfer *x = s3->ready_head;
    /* A part of an upload that already failed is not worth sending;
     * it goes without waiting for a slot.
     */
    bool cancel = x->kind == X_MP_PART && x->op->failed;
    if (!cancel && s3->running >= s3->max_requests)
      break;
    s3->ready_head = x->next;
    if (s3->ready_head == NULL)
      s3->ready_tail = NULL;
    n++;
    if (cancel) {
      x->err.code = ECANCELED;
      s3_xfer_done (x);
      continue;
    }
    x->attempts++;
    x->body_pos = 0;
    x->resp_len = 0;
    if (x->resp)
      x->resp[0] = '\0';
    x->etag[0] = '\0';
    x->curl_err[0] = '\0';
    CURLMcode mc = curl_multi_add_handle (s3->multi, x->easy);
    if (mc != CURLM_OK) {
      error_set (&x->err, EIO, "%s: %s", x->what, curl_multi_strerror (mc));
      s3_xfer_done (x);
      continue;
    }
    x->in_multi = true;
    s3->running++;
  }
  return n;
}

/* A transfer left the multi handle with result cres: finish it, or
 * schedule another attempt.
 */
static void
xfer_result (struct xfer *x, CURLcode cres)
{
  struct s3 *s3 = x->s3;
  long status = 0;
  char errtext[256] = "";
  bool retry;
  int err;

  curl_easy_getinfo (x->easy, CURLINFO_RESPONSE_CODE, &status);
  if (cres != CURLE_OK) {
    switch (cres) {
    case CURLE_URL_MALFORMAT: case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_OUT_OF_MEMORY: case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE: case CURLE_LOGIN_DENIED:
    case CURLE_WRITE_ERROR:
      retry = false;
      break;
    default:
      retry = true;
    }
    err = cres == CURLE_COULDNT_CONNECT ? ECONNREFUSED
      : cres == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT
      : cres == CURLE_COULDNT_RESOLVE_HOST ? EHOSTUNREACH
      : cres == CURLE_OUT_OF_MEMORY ? ENOMEM : EIO;
  }
  else {
    if (status >= 300 || (x->kind == X_MP_COMPLETE && x->resp &&
                          strstr (x->resp, "<Error>")))
      s3_xml_error (x->resp, x->resp_len, errtext, sizeof errtext);
    if (status >= 200 && status < 300 && errtext[0] == '\0') {
      if (x->kind == X_MP_PART && x->etag[0] == '\0') {
        error_set (&x->err, EIO, "%s: HTTP %ld without an ETag", x->what,
                   status);
      }
      s3_xfer_done (x);
      return;
    }
    /* A 404 of a DELETE is what we wanted, unless the bucket is gone. */
    if (status == 404 && strcmp (x->method, "DELETE") == 0 &&
        !s3_error_is (errtext, "NoSuchBucket")) {
      s3_xfer_done (x);
      return;
    }
    retry = status >= 500 || status == 429 || status < 200 ||
      s3_error_is (errtext, "SlowDown") ||
      s3_error_is (errtext, "RequestTimeout") ||
      s3_error_is (errtext, "InternalError");
    err = status == 404 ? ENOENT
      : status == 401 || status == 403 ? EACCES
      : status == 416 ? EINVAL : EIO;
  }

  if (retry && x->attempts < s3->max_attempts) {
    uint64_t d = (uint64_t) s3->retry_delay_ms << (x->attempts - 1);
    if (d > MAX_BACKOFF_MS)
      d = MAX_BACKOFF_MS;
    /* Half fixed, half random: clients that failed together do not all
     * come back at the same moment.
     */
    d = d / 2 + rand64 (s3) % (d / 2 + 1);
    char why[64];
    if (cres != CURLE_OK)
      snprintf (why, sizeof why, "%s", curl_easy_strerror (cres));
    else
      snprintf (why, sizeof why, "HTTP %ld", status);
    log_debug ("%s: attempt %d failed (%s), retrying in %" PRIu64 " ms",
               x->what, x->attempts, why, d);
    x->retry_at = now_ns () + d * 1000000;
    x->next = s3->delayed;
    s3->delayed = x;
    return;
  }

  char after[48] = "";
  if (x->attempts > 1)
    snprintf (after, sizeof after, " (after %d attempts)", x->attempts);
  if (cres == CURLE_COULDNT_CONNECT)
    error_set (&x->err, err, "%s: cannot connect to %s: %s%s", x->what,
               s3->host, curl_easy_strerror (cres), after);
  else if (cres != CURLE_OK)
    error_set (&x->err, err, "%s: %s%s%.160s%s%s", x->what,
               curl_easy_strerror (cres), x->curl_err[0] ? " (" : "",
               x->curl_err, x->curl_err[0] ? ")" : "", after);
  else
    error_set (&x->err, err, "%s: HTTP %ld%s%s", x->what, status,
               errtext[0] ? errtext : status == 404 ? " Not Found"
               : status == 403 ? " Forbidden" : "", after);
  s3_xfer_done (x);
}

/* Collect finished transfers from the multi handle. */
static int
reap (struct s3 *s3)
{
  CURLMsg *m;
  int left, n = 0;
  while ((m = curl_multi_info_read (s3->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE)
      continue;
    struct xfer *x = NULL;
    CURLcode cres = m->data.result;
    CURL *e = m->easy_handle;
    curl_easy_getinfo (e, CURLINFO_PRIVATE, (char **) &x);
    curl_multi_remove_handle (s3->multi, e);
    x->in_multi = false;
    s3->running--;
    n++;
    xfer_result (x, cres);
  }
  return n;
}

void
s3_progress (struct s3 *s3)
{
  /* Start what can start, let curl move data, collect what finished. */
  for (int i = 0; i < 8; i++) {
    int still, changed = start_ready (s3);
    curl_multi_perform (s3->multi, &still);
    changed += reap (s3);
    if (!changed)
      break;
  }
}

void
s3_wait (struct s3 *s3, int64_t wait_ms)
{
  if (s3->delayed) {
    uint64_t now = now_ns (), first = UINT64_MAX;
    for (struct xfer *x = s3->delayed; x; x = x->next)
      if (x->retry_at < first)
        first = x->retry_at;
    int64_t due = first <= now ? 0 : (int64_t) ((first - now + 999999) / 1000000);
    if (due < wait_ms)
      wait_ms = due;
  }
  if (wait_ms > 0)
    curl_multi_poll (s3->multi, NULL, 0, (int) (wait_ms > 60000 ? 60000 : wait_ms), NULL);
}

int
s3_run_sync (struct s3 *s3, struct xfer *x, char **body, size_t *len,
             struct error *err)
{
  s3_xfer_queue (s3, x);
  while (!x->finished) {
    s3_progress (s3);
    if (!x->finished)
      s3_wait (s3, 1000);
  }
  int e = x->err.code;
  if (e) {
    if (err)
      *err = x->err;
  }
  else {
    *body = x->resp;
    *len = x->resp_len;
    x->resp = NULL;
  }
  s3_xfer_free (x);
  return -e;
}
