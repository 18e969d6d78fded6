/* s3.c - the s3://BUCKET/PREFIX object store: the S3 REST API over
 * libcurl.
 *
 * Every HTTP request of a store goes through one curl multi handle, so
 * many run in parallel on the thread that calls poll(); at most
 * max_requests are in the multi handle at once, the rest wait in a FIFO.
 * A request (struct xfer) that fails with a connection error, a 5xx or
 * 429 is retried after an exponential backoff with jitter, which is a
 * timer the poll loop waits on, never a sleep.  An object larger than
 * the part size is a multipart upload: create, every part in parallel,
 * complete; abort when anything fails.
 *
 * Signing is libcurl's CURLOPT_AWS_SIGV4.  libcurl 7.88 signs the query
 * string exactly as written, so queries here are built sorted and
 * percent-encoded with an "=" after every name; and it does not add
 * x-amz-content-sha256, so we do: the body's SHA-256 over plain http
 * (nothing else protects the payload), UNSIGNED-PAYLOAD over https
 * (TLS does), REPVOL_S3_SIGN_PAYLOAD=0/1 to choose.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "objstore/objstore.h"
#include "objstore/aws_config.h"
#include "core/util.h"

#if LIBCURL_VERSION_NUM < 0x074b00
#error "libcurl 7.75 or later is needed for CURLOPT_AWS_SIGV4"
#endif

#define MIN_PART_SIZE (5ull << 20)     /* S3's minimum, except the last */
#define MAX_PART_SIZE (5ull << 30)
#define MAX_PARTS 10000
#define MAX_BACKOFF_MS 20000
#define MAX_META_BODY (16u << 20)       /* error XML, listings */
#define EMPTY_SHA256 \
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

enum xkind { X_SIMPLE, X_MP_CREATE, X_MP_PART, X_MP_COMPLETE, X_MP_ABORT,
             X_SYNC };

struct op;
struct s3;

/* One HTTP request, with its retries. */
struct xfer {
  struct s3 *s3;
  struct op *op;                /* NULL for X_SYNC */
  enum xkind kind;
  int part;                     /* X_MP_PART: 1-based */
  char what[OBJ_KEY_MAX + 64];  /* "PUT key", for messages */
  const char *method;
  CURL *easy;
  struct curl_slist *headers;
  const uint8_t *body;          /* upload: the caller's or owned_body */
  size_t body_len, body_pos;
  char *owned_body;
  char *resp;                   /* response body, NUL-terminated */
  size_t resp_len, resp_cap;
  char etag[128];
  int attempts;
  uint64_t retry_at;            /* ns, while waiting for a retry */
  bool finished;                /* X_SYNC: result ready */
  int err;
  char msg[OBJ_ERR_MAX];
  char curl_err[CURL_ERROR_SIZE];
  bool in_multi;
  struct xfer *next;            /* in the ready or delayed list */
  struct xfer *all_prev, *all_next;     /* every xfer of the store */
};

/* One caller's request. */
struct op {
  struct obj_req *req;
  /* multipart */
  char *upload_id;
  size_t part_size;
  int nparts, parts_finished;
  char (*etags)[128];
  bool failed;
  int err;
  char msg[OBJ_ERR_MAX];
  struct op *next;              /* in the done list */
};

struct s3 {
  struct aws_config cfg;
  char *bucket, *prefix;        /* prefix is "" or ends in '/' */
  char *root;                   /* URL of the bucket, no trailing '/' */
  char *host;                   /* scheme://host[:port], for messages */
  bool path_style;
  char *sigv4;
  char *sha_hdr_empty, *token_hdr;
  bool sign_payload;
  int max_attempts, max_requests;
  unsigned retry_delay_ms;
  size_t part_size;
  CURLM *multi;
  int running;                  /* xfers in the multi handle */
  struct xfer *ready_head, *ready_tail; /* waiting for a slot */
  struct xfer *delayed;         /* waiting for retry_at */
  struct op *done_head, *done_tail;
  struct obj_req *oom_reqs;     /* failed before an op existed (linked
                                 * through backend_priv) */
  struct xfer *all;             /* for close */
  atomic_bool woken;
  uint64_t rng;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void
curl_init (void)
{
  curl_init_result = curl_global_init (CURL_GLOBAL_DEFAULT);
}

/* ------------------------------------------------------------------ */
/* small helpers */

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

static bool
unreserved (unsigned char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
}

/* Percent-encode s; '/' kept when keep_slash (object paths; radosgw
 * refuses %2F in a key).  NULL when out of memory.
 */
static char *
uri_encode (const char *s, bool keep_slash)
{
  char *out = malloc (3 * strlen (s) + 1), *o = out;
  if (out == NULL)
    return NULL;
  for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
    if (unreserved (*p) || (keep_slash && *p == '/'))
      *o++ = *p;
    else
      o += sprintf (o, "%%%02X", *p);
  }
  *o = '\0';
  return out;
}

static void
sha256_hex (const void *data, size_t len, char out[65])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest (data, len, md, &n, EVP_sha256 (), NULL) != 1 || n != 32) {
    /* Cannot happen with a working libcrypto; the server would refuse
     * the request, so the error still surfaces.
     */
    snprintf (out, 65, "%s", "UNSIGNED-PAYLOAD");
    return;
  }
  for (unsigned i = 0; i < 32; i++)
    sprintf (out + 2 * i, "%02x", md[i]);
}

/* Find <tag>text</tag> in [p, end).  Sets *vs and *ve around the text and
 * returns the end of the closing tag, or NULL.
 */
static const char *
xml_find (const char *p, const char *end, const char *tag,
          const char **vs, const char **ve)
{
  char open[64], close[64];
  int no = snprintf (open, sizeof open, "<%s>", tag);
  int nc = snprintf (close, sizeof close, "</%s>", tag);
  if (p == NULL || p >= end)
    return NULL;
  const char *a = memmem (p, end - p, open, no);
  if (a == NULL)
    return NULL;
  a += no;
  const char *b = memmem (a, end - a, close, nc);
  if (b == NULL)
    return NULL;
  *vs = a;
  *ve = b;
  return b + nc;
}

static size_t
utf8_put (char *o, unsigned long cp)
{
  if (cp < 0x80) {
    o[0] = cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = 0xc0 | (cp >> 6);
    o[1] = 0x80 | (cp & 0x3f);
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = 0xe0 | (cp >> 12);
    o[1] = 0x80 | ((cp >> 6) & 0x3f);
    o[2] = 0x80 | (cp & 0x3f);
    return 3;
  }
  o[0] = 0xf0 | (cp >> 18);
  o[1] = 0x80 | ((cp >> 12) & 0x3f);
  o[2] = 0x80 | ((cp >> 6) & 0x3f);
  o[3] = 0x80 | (cp & 0x3f);
  return 4;
}

/* The text of [s, e) with XML entities decoded, malloc'd.  The output
 * is never longer than the input (an entity is at least as long as its
 * UTF-8).  An entity we do not know is kept as written.
 */
static char *
xml_text (const char *s, const char *e)
{
  char *out = malloc (e - s + 1), *o = out;
  static const struct { const char *name; char c; } ents[] = {
    { "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' },
    { "apos;", '\'' },
  };
  if (out == NULL)
    return NULL;
  while (s < e) {
    if (*s != '&') {
      *o++ = *s++;
      continue;
    }
    const char *p = s + 1;
    size_t left = e - p;
    bool done = false;
    for (size_t i = 0; i < sizeof ents / sizeof ents[0] && !done; i++) {
      size_t n = strlen (ents[i].name);
      if (left >= n && memcmp (p, ents[i].name, n) == 0) {
        *o++ = ents[i].c;
        s = p + n;
        done = true;
      }
    }
    if (!done && left >= 3 && *p == '#') {
      const char *semi = memchr (p, ';', left > 10 ? 10 : left);
      unsigned long cp = 0;
      bool hex = p[1] == 'x' || p[1] == 'X';
      const char *d = p + 1 + hex;
      bool ok = semi && d < semi;
      for (; ok && d < semi; d++) {
        int v;
        if (*d >= '0' && *d <= '9') v = *d - '0';
        else if (hex && *d >= 'a' && *d <= 'f') v = *d - 'a' + 10;
        else if (hex && *d >= 'A' && *d <= 'F') v = *d - 'A' + 10;
        else { ok = false; break; }
        cp = cp * (hex ? 16 : 10) + v;
        if (cp > 0x10ffff)
          ok = false;
      }
      /* "&#1;" is 4 bytes and its UTF-8 is 1; "&#x10000;" is 9 and 4:
       * the output never overtakes the input.
       */
      if (ok && cp != 0) {
        o += utf8_put (o, cp);
        s = semi + 1;
        done = true;
      }
    }
    if (!done)
      *o++ = *s++;
  }
  *o = '\0';
  return out;
}

/* "Code: Message" from an S3 error body, or "" when it has none. */
static void
s3_error_text (const char *body, size_t len, char *out, size_t outlen)
{
  const char *end = body + len, *cs, *ce, *ms, *me;
  char *code = NULL, *msg = NULL;

  out[0] = '\0';
  if (body == NULL || len == 0)
    return;
  if (xml_find (body, end, "Code", &cs, &ce))
    code = xml_text (cs, ce);
  if (xml_find (body, end, "Message", &ms, &me))
    msg = xml_text (ms, me);
  if (code && msg && *msg)
    snprintf (out, outlen, " %s: %s", code, msg);
  else if (code)
    snprintf (out, outlen, " %s", code);
  free (code);
  free (msg);
  /* One line, whatever the server put in it. */
  for (char *p = out; *p; p++)
    if (*p == '\n' || *p == '\r' || *p == '\t')
      *p = ' ';
}

/* ------------------------------------------------------------------ */
/* curl callbacks */

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

/* ------------------------------------------------------------------ */
/* transfers */

static void
xfer_free (struct xfer *x)
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

/* A request for METHOD on URL (path and query already encoded), with an
 * optional body.  NULL when out of memory.
 */
static struct xfer *
xfer_new (struct s3 *s3, struct op *op, enum xkind kind, const char *method,
          const char *url, const void *body, size_t body_len,
          const char *content_type)
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
  if ((x->easy = curl_easy_init ()) == NULL)
    goto fail;

  char sha[128] = "x-amz-content-sha256: ";
  bool upload = strcmp (method, "PUT") == 0 || strcmp (method, "POST") == 0;
  if (!upload)
    strcat (sha, EMPTY_SHA256);
  else if (s3->sign_payload)
    sha256_hex (body, body_len, sha + strlen (sha));
  else
    strcat (sha, "UNSIGNED-PAYLOAD");
  struct curl_slist *h = curl_slist_append (NULL, sha);
  if (h == NULL)
    goto fail;
  x->headers = h;
  if (s3->token_hdr && !(h = curl_slist_append (h, s3->token_hdr)))
    goto fail;
  if (content_type) {
    char ct[128];
    snprintf (ct, sizeof ct, "Content-Type: %s", content_type);
    if (!(h = curl_slist_append (h, ct)))
      goto fail;
  }

  CURL *e = x->easy;
  curl_easy_setopt (e, CURLOPT_URL, url);
  curl_easy_setopt (e, CURLOPT_PRIVATE, x);
  curl_easy_setopt (e, CURLOPT_AWS_SIGV4, s3->sigv4);
  curl_easy_setopt (e, CURLOPT_USERNAME, s3->cfg.access_key_id);
  curl_easy_setopt (e, CURLOPT_PASSWORD, s3->cfg.secret_access_key);
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
  xfer_free (x);
  return NULL;
}

/* The URL of an object: ROOT/ENCODED(PREFIX KEY)[?QUERY]. */
static char *
object_url (struct s3 *s3, const char *key, const char *query)
{
  char *full = NULL, *enc = NULL, *url = NULL;
  if (asprintf (&full, "%s%s", s3->prefix, key) == -1)
    return NULL;
  enc = uri_encode (full, true);
  if (enc && asprintf (&url, "%s/%s%s%s", s3->root, enc,
                       query ? "?" : "", query ? query : "") == -1)
    url = NULL;
  free (full);
  free (enc);
  return url;
}

static void
ready_push (struct s3 *s3, struct xfer *x)
{
  x->next = NULL;
  if (s3->ready_tail)
    s3->ready_tail->next = x;
  else
    s3->ready_head = x;
  s3->ready_tail = x;
}

static void xfer_done (struct xfer *x);

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
      ready_push (s3, x);
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
      x->err = ECANCELED;
      xfer_done (x);
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
      x->err = EIO;
      snprintf (x->msg, sizeof x->msg, "%s: %s", x->what,
                curl_multi_strerror (mc));
      xfer_done (x);
      continue;
    }
    x->in_multi = true;
    s3->running++;
  }
  return n;
}

/* Is errtext (" Code: Message" from s3_error_text) about code? */
static bool
code_is (const char *errtext, const char *code)
{
  size_t n = strlen (code);
  return errtext[0] == ' ' && strncmp (errtext + 1, code, n) == 0 &&
    (errtext[1 + n] == '\0' || errtext[1 + n] == ':');
}

/* A transfer left the multi handle with result cres: finish it, or
 * schedule another attempt.
 */
static void
xfer_result (struct xfer *x, CURLcode cres)
{
  struct s3 *s3 = x->s3;
  long status = 0;
  char errtext[OBJ_ERR_MAX / 2] = "";
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
      s3_error_text (x->resp, x->resp_len, errtext, sizeof errtext);
    if (status >= 200 && status < 300 && errtext[0] == '\0') {
      if (x->kind == X_MP_PART && x->etag[0] == '\0') {
        x->err = EIO;
        snprintf (x->msg, sizeof x->msg, "%s: HTTP %ld without an ETag",
                  x->what, status);
      }
      xfer_done (x);
      return;
    }
    /* A 404 of a DELETE is what we wanted, unless the bucket is gone. */
    if (status == 404 && strcmp (x->method, "DELETE") == 0 &&
        !code_is (errtext, "NoSuchBucket")) {
      xfer_done (x);
      return;
    }
    retry = status >= 500 || status == 429 || status < 200 ||
      code_is (errtext, "SlowDown") || code_is (errtext, "RequestTimeout") ||
      code_is (errtext, "InternalError");
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
  x->err = err;
  if (cres == CURLE_COULDNT_CONNECT)
    snprintf (x->msg, sizeof x->msg, "%s: cannot connect to %s: %s%s",
              x->what, s3->host, curl_easy_strerror (cres), after);
  else if (cres != CURLE_OK)
    snprintf (x->msg, sizeof x->msg, "%s: %s%s%.160s%s%s", x->what,
              curl_easy_strerror (cres), x->curl_err[0] ? " (" : "",
              x->curl_err, x->curl_err[0] ? ")" : "", after);
  else
    snprintf (x->msg, sizeof x->msg, "%s: HTTP %ld%s%s", x->what, status,
              errtext[0] ? errtext : status == 404 ? " Not Found"
              : status == 403 ? " Forbidden" : "", after);
  xfer_done (x);
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

/* Run the multi handle without waiting: start what can start, let curl
 * move data, collect what finished, until nothing changes.
 */
static void
progress (struct s3 *s3)
{
  for (int i = 0; i < 8; i++) {
    int still, changed = start_ready (s3);
    curl_multi_perform (s3->multi, &still);
    changed += reap (s3);
    if (!changed)
      break;
  }
}

/* Wait at most wait_ms for curl's sockets, a retry coming due, or a
 * wakeup.
 */
static void
wait_some (struct s3 *s3, int64_t wait_ms)
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

/* ------------------------------------------------------------------ */
/* operations */

static void
op_finish (struct s3 *s3, struct op *op)
{
  struct obj_req *r = op->req;
  r->err = op->err;
  if (op->err)
    snprintf (r->errmsg, sizeof r->errmsg, "%s", op->msg);
  op->next = NULL;
  if (s3->done_tail)
    s3->done_tail->next = op;
  else
    s3->done_head = op;
  s3->done_tail = op;
}

static void
op_fail (struct s3 *s3, struct op *op, int err, const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));

static void
op_fail (struct s3 *s3, struct op *op, int err, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  op->err = err;
  vsnprintf (op->msg, sizeof op->msg, fmt, ap);
  va_end (ap);
  op_finish (s3, op);
}

static void
queue_new (struct s3 *s3, struct op *op, enum xkind kind, const char *method,
           const char *query, const void *body, size_t body_len,
           char *owned_body, const char *content_type, int part)
{
  struct obj_req *r = op->req;
  char *url = object_url (s3, r->key, query);
  struct xfer *x = url ? xfer_new (s3, op, kind, method, url, body, body_len,
                                   content_type) : NULL;
  free (url);
  if (x == NULL) {
    free (owned_body);
    if (kind == X_MP_PART) {
      /* Counted as a finished part, so the upload still ends. */
      struct xfer fake = { .s3 = s3, .op = op, .kind = kind, .part = part,
                           .err = ENOMEM };
      snprintf (fake.msg, sizeof fake.msg, "PUT %s: out of memory", r->key);
      xfer_done (&fake);
      return;
    }
    op_fail (s3, op, ENOMEM, "%s %s: out of memory", method, r->key);
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
  ready_push (s3, x);
}

static char *
upload_query (struct op *op, int part)
{
  char *enc = uri_encode (op->upload_id, false), *q = NULL;
  if (enc == NULL)
    return NULL;
  /* Sorted: partNumber before uploadId (libcurl signs it as written). */
  int n = part > 0 ? asprintf (&q, "partNumber=%d&uploadId=%s", part, enc)
    : asprintf (&q, "uploadId=%s", enc);
  if (n == -1)
    q = NULL;
  free (enc);
  return q;
}

static void
mp_abort (struct s3 *s3, struct op *op)
{
  char *q = upload_query (op, 0);
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
    char *q = upload_query (op, i + 1);
    if (q == NULL) {
      struct xfer fake = { .s3 = s3, .op = op, .kind = X_MP_PART,
                           .part = i + 1, .err = ENOMEM };
      snprintf (fake.msg, sizeof fake.msg, "PUT %s: out of memory",
                op->req->key);
      xfer_done (&fake);
      continue;
    }
    queue_new (s3, op, X_MP_PART, "PUT", q, data + off, n, NULL, NULL, i + 1);
    free (q);
  }
}

static void
mp_complete (struct s3 *s3, struct op *op)
{
  size_t cap = 128 + (size_t) op->nparts * (64 + sizeof op->etags[0]);
  char *xml = malloc (cap), *q = upload_query (op, 0);
  if (xml == NULL || q == NULL) {
    free (xml);
    free (q);
    op->err = ENOMEM;
    snprintf (op->msg, sizeof op->msg, "PUT %s: out of memory", op->req->key);
    mp_abort (s3, op);
    return;
  }
  size_t n = snprintf (xml, cap, "<CompleteMultipartUpload>");
  for (int i = 0; i < op->nparts; i++) {
    /* An ETag is a quoted hex string; anything else is escaped. */
    char et[sizeof op->etags[0] * 6], *o = et;
    for (const char *s = op->etags[i]; *s; s++)
      o += *s == '&' ? sprintf (o, "&amp;") : *s == '<' ? sprintf (o, "&lt;")
        : *s == '>' ? sprintf (o, "&gt;") : (*o = *s, 1);
    *o = '\0';
    if (n + strlen (et) + 64 >= cap) {
      cap = 2 * cap + strlen (et) + 64;
      char *p = realloc (xml, cap);
      if (p == NULL) {
        free (xml);
        free (q);
        op->err = ENOMEM;
        snprintf (op->msg, sizeof op->msg, "PUT %s: out of memory",
                  op->req->key);
        mp_abort (s3, op);
        return;
      }
      xml = p;
    }
    n += snprintf (xml + n, cap - n, "<Part><PartNumber>%d</PartNumber>"
                   "<ETag>%s</ETag></Part>", i + 1, et);
  }
  n += snprintf (xml + n, cap - n, "</CompleteMultipartUpload>");
  queue_new (s3, op, X_MP_COMPLETE, "POST", q, xml, n, xml,
             "application/xml", 0);
  free (q);
}

/* A transfer is over (x->err says how); move its op on. */
static void
xfer_done (struct xfer *x)
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
    if (x->err) {
      op->err = x->err;
      snprintf (op->msg, sizeof op->msg, "%s", x->msg);
    }
    else if (r->op == OBJ_GET) {
      /* The body becomes the caller's; an empty one is still malloc'd. */
      r->out = x->resp ? x->resp : malloc (1);
      r->out_len = x->resp_len;
      x->resp = NULL;
      if (r->out == NULL) {
        op->err = ENOMEM;
        snprintf (op->msg, sizeof op->msg, "GET %s: out of memory", r->key);
      }
    }
    else if (r->op == OBJ_HEAD) {
      curl_off_t cl = -1;
      curl_easy_getinfo (x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
      r->out_len = cl > 0 ? (size_t) cl : 0;
    }
    op_finish (s3, op);
    break;

  case X_MP_CREATE: {
    const char *vs, *ve;
    if (x->err) {
      op->err = x->err;
      snprintf (op->msg, sizeof op->msg, "%s", x->msg);
      op_finish (s3, op);
      break;
    }
    if (!xml_find (x->resp, x->resp + x->resp_len, "UploadId", &vs, &ve) ||
        vs == ve || (op->upload_id = xml_text (vs, ve)) == NULL) {
      op_fail (s3, op, EIO, "%s: no UploadId in the answer", x->what);
      break;
    }
    op->etags = calloc (op->nparts, sizeof op->etags[0]);
    if (op->etags == NULL) {
      op->err = ENOMEM;
      snprintf (op->msg, sizeof op->msg, "PUT %s: out of memory", r->key);
      mp_abort (s3, op);
      break;
    }
    mp_parts (s3, op);
    break;
  }

  case X_MP_PART:
    if (x->err && !op->failed) {
      op->failed = true;
      op->err = x->err;
      snprintf (op->msg, sizeof op->msg, "%s", x->msg);
      /* Its parts waiting for a retry are cancelled now, not after
       * their backoff.
       */
      for (struct xfer *d = s3->delayed; d; d = d->next)
        if (d->op == op)
          d->retry_at = 0;
    }
    else if (!x->err)
      snprintf (op->etags[x->part - 1], sizeof op->etags[0], "%s", x->etag);
    if (++op->parts_finished == op->nparts) {
      if (op->failed)
        mp_abort (s3, op);
      else
        mp_complete (s3, op);
    }
    break;

  case X_MP_COMPLETE:
    if (x->err) {
      op->err = x->err;
      snprintf (op->msg, sizeof op->msg, "%s", x->msg);
      mp_abort (s3, op);
    }
    else
      op_finish (s3, op);
    break;

  case X_MP_ABORT:
    if (x->err) {
      /* The upload's parts stay until a lifecycle rule or an operator
       * removes them; say so after the error that matters.
       */
      size_t n = strlen (op->msg);
      snprintf (op->msg + n, sizeof op->msg - n,
                "; the upload %s was not aborted either", op->upload_id);
    }
    op_finish (s3, op);
    break;

  case X_SYNC:
    break;
  }
  if (heap)
    xfer_free (x);
}

static bool
valid_key (const char *k)
{
  if (*k == '\0' || *k == '/')
    return false;
  for (; *k; k++)
    if (!unreserved ((unsigned char) *k) && *k != '/')
      return false;
  return true;
}

static void
s3_submit (struct objstore *os, struct obj_req *req)
{
  struct s3 *s3 = os->priv;
  struct op *op = calloc (1, sizeof *op);

  if (op == NULL) {
    /* Still a completion poll() returns, like every other failure. */
    req->err = ENOMEM;
    snprintf (req->errmsg, sizeof req->errmsg, "%.200s: out of memory",
              req->key);
    req->backend_priv = s3->oom_reqs;
    s3->oom_reqs = req;
    return;
  }
  op->req = req;
  req->backend_priv = op;
  if (!valid_key (req->key) || strnlen (req->key, OBJ_KEY_MAX) >= OBJ_KEY_MAX) {
    op_fail (s3, op, EINVAL, "%.*s: not a valid object key", OBJ_KEY_MAX - 1,
             req->key);
    return;
  }

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
  default:
    op_fail (s3, op, EINVAL, "%s: unknown request type %d", req->key,
             (int) req->op);
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
    progress (s3);
    struct obj_req *r = pop_done (s3);
    if (r)
      return r;
    if (atomic_exchange (&s3->woken, false))
      return NULL;
    uint64_t now = now_ns ();
    if (now >= deadline)
      return NULL;
    wait_some (s3, deadline == UINT64_MAX ? 60000
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

/* Send one request outside any op and drive the store until it is
 * done (other requests move on meanwhile).  x is freed; 0 and the body
 * in *body (malloc'd), or an errno with err filled.
 */
static int
run_sync (struct s3 *s3, struct xfer *x, char **body, size_t *len,
          char *err, size_t errlen)
{
  ready_push (s3, x);
  while (!x->finished) {
    progress (s3);
    if (!x->finished)
      wait_some (s3, 1000);
  }
  int e = x->err;
  if (e)
    snprintf (err, errlen, "%s", x->msg);
  else {
    *body = x->resp;
    *len = x->resp_len;
    x->resp = NULL;
  }
  xfer_free (x);
  return e;
}

/* One page of ListObjectsV2 under the store's prefix + prefix. */
static int
list_page (struct s3 *s3, const char *prefix, const char *token, int max_keys,
           char **body, size_t *len, char *err, size_t errlen)
{
  char *full = NULL, *encp = NULL, *enct = NULL, *url = NULL;
  struct xfer *x = NULL;
  int e;

  *body = NULL;
  if (asprintf (&full, "%s%s", s3->prefix, prefix) == -1)
    full = NULL;
  if (full)
    encp = uri_encode (full, false);
  if (token)
    enct = uri_encode (token, false);
  /* Sorted by name, as libcurl signs the query as written. */
  if (encp && (enct || !token) &&
      asprintf (&url, "%s%s?%s%s%slist-type=2&max-keys=%d&prefix=%s",
                s3->root, s3->path_style ? "" : "/",
                token ? "continuation-token=" : "", token ? enct : "",
                token ? "&" : "", max_keys, encp) == -1)
    url = NULL;
  if (url)
    x = xfer_new (s3, NULL, X_SYNC, "GET", url, NULL, 0, NULL);
  if (x == NULL) {
    snprintf (err, errlen, "LIST %s: out of memory", prefix);
    e = ENOMEM;
  }
  else {
    snprintf (x->what, sizeof x->what, "LIST s3://%s/%s", s3->bucket, full);
    e = run_sync (s3, x, body, len, err, errlen);
    if (e == 0 && *body == NULL) {
      snprintf (err, errlen, "LIST s3://%s/%s: empty answer", s3->bucket,
                full);
      e = EIO;
    }
  }
  free (full);
  free (encp);
  free (enct);
  free (url);
  return e;
}

static time_t
parse_time (const char *s)
{
  struct tm tm = { 0 };
  if (sscanf (s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
              &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
    return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return timegm (&tm);
}

static int
s3_list (struct objstore *os, const char *prefix,
         int (*fn) (void *opaque, const struct obj_entry *e),
         void *opaque, char *err, size_t errlen)
{
  struct s3 *s3 = os->priv;
  char *token = NULL, *body = NULL;
  size_t plen = strlen (s3->prefix);
  int r = 0, pages = 0;

  for (;;) {
    size_t len = 0;
    body = NULL;
    if (list_page (s3, prefix, token, 1000, &body, &len, err, errlen) != 0) {
      r = -1;
      break;
    }
    pages++;
    const char *p = body, *end = body + len, *cs, *ce, *vs, *ve;
    while (r == 0 && (p = xml_find (p, end, "Contents", &cs, &ce)) != NULL) {
      char *key = NULL, *size = NULL, *mtime = NULL;
      if (xml_find (cs, ce, "Key", &vs, &ve))
        key = xml_text (vs, ve);
      if (xml_find (cs, ce, "Size", &vs, &ve))
        size = xml_text (vs, ve);
      if (xml_find (cs, ce, "LastModified", &vs, &ve))
        mtime = xml_text (vs, ve);
      if (key == NULL || size == NULL) {
        snprintf (err, errlen, "LIST s3://%s/%s%s: %s", s3->bucket,
                  s3->prefix, prefix, key ? "an entry without a Size"
                  : "an entry without a Key, or out of memory");
        r = -1;
      }
      /* Only keys under our prefix, and not the prefix itself (a
       * "directory" marker some tools create).
       */
      else if (strncmp (key, s3->prefix, plen) == 0 && key[plen] != '\0') {
        char *endp;
        errno = 0;
        unsigned long long sz = strtoull (size, &endp, 10);
        if (errno || endp == size || *endp) {
          snprintf (err, errlen, "LIST s3://%s/%s%s: bad Size \"%.32s\" for %.200s",
                    s3->bucket, s3->prefix, prefix, size, key);
          r = -1;
        }
        else {
          struct obj_entry e = { .key = key + plen, .size = sz,
                                 .mtime = mtime ? parse_time (mtime) : 0 };
          r = fn (opaque, &e);
        }
      }
      free (key);
      free (size);
      free (mtime);
    }
    if (r != 0)
      break;
    bool truncated = xml_find (body, end, "IsTruncated", &vs, &ve) &&
      ve - vs == 4 && memcmp (vs, "true", 4) == 0;
    if (!truncated)
      break;
    char *next = NULL;
    if (xml_find (body, end, "NextContinuationToken", &vs, &ve) && vs < ve)
      next = xml_text (vs, ve);
    if (next == NULL || (token && strcmp (next, token) == 0)) {
      snprintf (err, errlen, "LIST s3://%s/%s%s: page %d is truncated but "
                "gives no new continuation token", s3->bucket, s3->prefix,
                prefix, pages);
      free (next);
      r = -1;
      break;
    }
    free (token);
    token = next;
    free (body);
  }
  free (body);
  free (token);
  return r;
}

/* ------------------------------------------------------------------ */
/* open, close */

static void
s3_free (struct s3 *s3)
{
  if (s3 == NULL)
    return;
  /* Requests still in flight are dropped; their callers never get them
   * back (closing with requests out is the caller's bug).
   */
  while (s3->all)
    xfer_free (s3->all);
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

static int
env_uint (const char *name, uint64_t min, uint64_t max, uint64_t *out,
          bool size, char *err, size_t errlen)
{
  const char *s = objstore_getenv (name);
  if (s == NULL || *s == '\0')
    return 0;
  uint64_t v;
  if ((size ? parse_size (s, &v) : parse_uint (s, 0, UINT64_MAX, &v)) == -1 ||
      v < min || v > max) {
    if (size)
      snprintf (err, errlen, "%s=%s: expected a size from %" PRIu64
                " MiB to %" PRIu64 " GiB", name, s, min >> 20, max >> 30);
    else
      snprintf (err, errlen, "%s=%s: expected a number from %" PRIu64
                " to %" PRIu64, name, s, min, max);
    return -1;
  }
  *out = v;
  return 0;
}

static int
s3_open (struct objstore *os, const char *rest, char *err, size_t errlen)
{
  char msg[OBJ_ERR_MAX] = "";
  struct s3 *s3 = calloc (1, sizeof *s3);
  const char *slash = strchr (rest, '/');
  size_t blen = slash ? (size_t) (slash - rest) : strlen (rest);

  if (s3 == NULL) {
    snprintf (err, errlen, "%s: out of memory", os->url);
    return -1;
  }
  pthread_once (&curl_once, curl_init);
  if (curl_init_result != CURLE_OK) {
    snprintf (msg, sizeof msg, "cannot initialise libcurl: %s",
              curl_easy_strerror (curl_init_result));
    goto fail;
  }

  /* BUCKET: S3's rules (3-63 of [a-z0-9.-]), with upper case and '_'
   * let through for older buckets and other servers.
   */
  s3->bucket = strndup (rest, blen);
  if (s3->bucket == NULL)
    goto oom;
  bool bucket_ok = blen >= 3 && blen <= 63;
  for (size_t i = 0; i < blen && bucket_ok; i++)
    bucket_ok = unreserved ((unsigned char) rest[i]) && rest[i] != '~';
  if (!bucket_ok) {
    snprintf (msg, sizeof msg, "\"%s\" is not a bucket name "
              "(3 to 63 letters, digits, '.', '-')", s3->bucket);
    goto fail;
  }

  /* PREFIX: no leading, doubled or missing trailing slashes. */
  const char *p = slash ? slash : "";
  s3->prefix = malloc (strlen (p) + 2);
  if (s3->prefix == NULL)
    goto oom;
  char *o = s3->prefix;
  for (; *p; p++)
    if (*p != '/' || (o > s3->prefix && o[-1] != '/'))
      *o++ = *p;
  if (o > s3->prefix && o[-1] != '/')
    *o++ = '/';
  *o = '\0';
  if (strlen (s3->prefix) > OBJ_KEY_MAX) {
    snprintf (msg, sizeof msg, "prefix longer than %d bytes", OBJ_KEY_MAX);
    goto fail;
  }

  if (aws_config_load (&s3->cfg, msg, sizeof msg) == -1)
    goto fail;

  uint64_t v;
  s3->max_attempts = 6;
  s3->retry_delay_ms = 200;
  s3->part_size = 16u << 20;
  s3->max_requests = 16;
  v = s3->max_attempts;
  if (env_uint ("REPVOL_S3_MAX_ATTEMPTS", 1, 100, &v, false, msg, sizeof msg))
    goto fail;
  s3->max_attempts = v;
  v = s3->retry_delay_ms;
  if (env_uint ("REPVOL_S3_RETRY_DELAY_MS", 1, 60000, &v, false, msg, sizeof msg))
    goto fail;
  s3->retry_delay_ms = v;
  v = s3->part_size;
  if (env_uint ("REPVOL_S3_PART_SIZE", MIN_PART_SIZE, MAX_PART_SIZE, &v, true,
                msg, sizeof msg))
    goto fail;
  s3->part_size = v;
  v = s3->max_requests;
  if (env_uint ("REPVOL_S3_MAX_REQUESTS", 1, 256, &v, false, msg, sizeof msg))
    goto fail;
  s3->max_requests = v;

  /* Path-style URLs with an endpoint (a local server rarely has DNS for
   * BUCKET.host); virtual-hosted on AWS, unless a dotted bucket name
   * would not match the wildcard certificate.
   */
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
  s3->sign_payload = strncmp (s3->root, "http://", 7) == 0;
  const char *sp = objstore_getenv ("REPVOL_S3_SIGN_PAYLOAD");
  if (sp && *sp)
    s3->sign_payload = strcmp (sp, "0") != 0;
  if (asprintf (&s3->sigv4, "aws:amz:%s:s3", s3->cfg.region) == -1 ||
      (s3->cfg.session_token &&
       asprintf (&s3->token_hdr, "x-amz-security-token: %s",
                 s3->cfg.session_token) == -1))
    goto oom;

  if ((s3->multi = curl_multi_init ()) == NULL)
    goto oom;
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
  char lerr[OBJ_ERR_MAX];
  int e = list_page (s3, "", NULL, 1, &body, &len, lerr, sizeof lerr);
  free (body);
  if (e) {
    snprintf (msg, sizeof msg, "%.300s%s%.150s%s", lerr,
              e == EACCES ? " (credentials from " : "",
              e == EACCES ? s3->cfg.credentials_from : "",
              e == EACCES ? ")" : "");
    goto fail;
  }
  log_debug ("%s: bucket %s at %s, prefix \"%s\", region %s, part size %zu, "
             "%d requests at once, %d attempts", os->url, s3->bucket,
             s3->host, s3->prefix, s3->cfg.region, s3->part_size,
             s3->max_requests, s3->max_attempts);
  os->priv = s3;
  return 0;

 oom:
  snprintf (msg, sizeof msg, "out of memory");
 fail:
  snprintf (err, errlen, "%s: %s", os->url, msg);
  s3_free (s3);
  return -1;
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
