/* etcd_http.c - the etcd registry's client of etcd's v3 JSON gateway:
 * endpoints, one POST with failover (libcurl), and the checked readers
 * of what etcd answers (base64, int64-as-string, kvs).  See
 * etcd_internal.h for the contract and the bounds.
 *
 * One curl easy handle per registry handle, so that consecutive
 * requests reuse the connection; a mutex makes the handle usable from
 * the attach's threads.  After fork() the child never touches its
 * parent's handle (its connection is the parent's too): it makes its
 * own on first use.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core/tls.h"
#include "core/util.h"
#include "registry/etcd_internal.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void
curl_init (void)
{
  curl_init_result = curl_global_init (CURL_GLOBAL_DEFAULT);
}

static int64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- endpoints -------------------------------------------------------- */

int
etcd_client_init (struct etcd_client *c, const char *hosts,
                  struct error *err)
{
  const char *tlsdir = tls_client_dir ();
  const char *p = hosts;

  memset (c, 0, sizeof *c);
  pthread_once (&curl_once, curl_init);
  if (curl_init_result != CURLE_OK)
    return error_set (err, EIO, "etcd: cannot initialise libcurl: %s",
                      curl_easy_strerror (curl_init_result));
  if (tlsdir) {
    c->tls = true;
    if (snprintf (c->cafile, sizeof c->cafile, "%s/ca-cert.pem", tlsdir)
        >= (int) sizeof c->cafile ||
        snprintf (c->certfile, sizeof c->certfile, "%s/client-cert.pem",
                  tlsdir) >= (int) sizeof c->certfile ||
        snprintf (c->keyfile, sizeof c->keyfile, "%s/client-key.pem", tlsdir)
        >= (int) sizeof c->keyfile)
      return error_set (err, ENAMETOOLONG, "etcd: TLS directory path too "
                        "long");
  }
  while (*p) {
    const char *end = strchr (p, ',');
    size_t len = end ? (size_t) (end - p) : strlen (p);
    if (len == 0)
      return error_set (err, EINVAL, "etcd: empty endpoint in \"%s\"", hosts);
    if (c->nep == ETCD_MAX_ENDPOINTS)
      return error_set (err, EINVAL, "etcd: more than %d endpoints",
                        ETCD_MAX_ENDPOINTS);
    struct etcd_endpoint *e = &c->ep[c->nep];
    if (len >= sizeof e->hostport - 8)
      return error_set (err, EINVAL, "etcd: endpoint too long in \"%s\"",
                        hosts);
    memcpy (e->hostport, p, len);
    e->hostport[len] = '\0';
    for (size_t i = 0; i < len; i++) {
      unsigned char ch = e->hostport[i];
      if (!isalnum (ch) && !strchr (".-_:[]", ch))
        return error_set (err, EINVAL, "etcd: bad character '%c' in "
                          "endpoint \"%s\"", ch, e->hostport);
    }
    /* The port: after the last ':' outside brackets; 2379 if none. */
    const char *rb = strrchr (e->hostport, ']');
    const char *colon = strrchr (rb ? rb : e->hostport, ':');
    if (e->hostport[0] == '[' && rb == NULL)
      return error_set (err, EINVAL, "etcd: endpoint \"%s\": no ']'",
                        e->hostport);
    if (rb == NULL && colon && strchr (e->hostport, ':') != colon)
      return error_set (err, EINVAL, "etcd: endpoint \"%s\": write an IPv6 "
                        "address as [ADDR]:PORT", e->hostport);
    if (colon) {
      char *pend;
      long port = strtol (colon + 1, &pend, 10);
      if (colon[1] == '\0' || *pend || port < 1 || port > 65535)
        return error_set (err, EINVAL, "etcd: endpoint \"%s\": bad port",
                          e->hostport);
    }
    else
      strcat (e->hostport, ":2379");
    if (e->hostport[0] == ':' || (rb && e->hostport[0] != '['))
      return error_set (err, EINVAL, "etcd: endpoint \"%s\": no host",
                        e->hostport);
    const char *scheme = c->tls ? "https://" : "http://";
    size_t sl = strlen (scheme), hl = strlen (e->hostport);
    memcpy (e->url, scheme, sl);
    memcpy (e->url + sl, e->hostport, hl + 1);
    c->nep++;
    p += len;
    if (*p == ',')
      p++;
    if (end && *p == '\0')
      return error_set (err, EINVAL, "etcd: empty endpoint in \"%s\"", hosts);
  }
  if (c->nep == 0)
    return error_set (err, EINVAL, "etcd: no endpoint given");
  if (pthread_mutex_init (&c->lock, NULL) != 0)
    return error_set (err, ENOMEM, "etcd: cannot make a mutex");
  c->pid = getpid ();
  return 0;
}

void
etcd_client_fini (struct etcd_client *c)
{
  /* A parent's handle inherited through fork() stays untouched: its
   * connection is the parent's.
   */
  if (c->curl && c->pid == getpid ())
    curl_easy_cleanup (c->curl);
  if (c->nep > 0)
    pthread_mutex_destroy (&c->lock);
}

uint64_t
etcd_rand (struct etcd_client *c)
{
  /* xorshift64*, seeded per process: jitter needs spread between the
   * processes of one fork(), not secrecy.
   */
  if (c->rng == 0 || c->rng_pid != getpid ()) {
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    c->rng_pid = getpid ();
    c->rng = ((uint64_t) c->rng_pid << 32) ^ (uint64_t) ts.tv_nsec ^
      ((uint64_t) ts.tv_sec << 20) ^ 0x9E3779B97F4A7C15ull;
  }
  uint64_t x = c->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  c->rng = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* ---- one request ------------------------------------------------------ */

struct body {
  char *p;
  size_t len, cap;
  bool too_big;
};

static size_t
on_write (char *data, size_t size, size_t n, void *opaque)
{
  struct body *b = opaque;
  size_t add = size * n;
  if (b->len + add > ETCD_RESPONSE_MAX) {
    b->too_big = true;
    return 0;
  }
  if (b->len + add + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + add + 1)
      cap *= 2;
    char *np = realloc (b->p, cap);
    if (np == NULL)
      return 0;
    b->p = np;
    b->cap = cap;
  }
  memcpy (b->p + b->len, data, add);
  b->len += add;
  b->p[b->len] = '\0';
  return add;
}

/* A JSON object from text, or NULL. */
static json_object *
parse_object (const char *text, size_t len)
{
  json_tokener *tok = json_tokener_new ();
  if (tok == NULL)
    return NULL;
  json_object *o = json_tokener_parse_ex (tok, text, (int) len);
  bool ok = o && json_tokener_get_error (tok) == json_tokener_success;
  for (size_t i = ok ? json_tokener_get_parse_end (tok) : 0; ok && i < len;
       i++)
    if (!isspace ((unsigned char) text[i]))
      ok = false;
  json_tokener_free (tok);
  if (!ok || !json_object_is_type (o, json_type_object)) {
    json_object_put (o);
    return NULL;
  }
  return o;
}

/* The reason in an etcd error body {"error": ..., "message": ...}. */
static void
error_body (const struct body *b, char *why, size_t size)
{
  json_object *o = b->p ? parse_object (b->p, b->len) : NULL, *m;
  const char *s = NULL;
  if (o && json_object_object_get_ex (o, "error", &m) &&
      json_object_is_type (m, json_type_string))
    s = json_object_get_string (m);
  else if (o && json_object_object_get_ex (o, "message", &m) &&
           json_object_is_type (m, json_type_string))
    s = json_object_get_string (m);
  if (s)
    snprintf (why, size, ": %.200s", s);
  else
    why[0] = '\0';
  json_object_put (o);
}

enum outcome { OK, RETRY, FAIL };

static CURL *
handle (struct etcd_client *c)
{
  if (c->pid != getpid ()) {    /* forked: leave the parent's alone */
    c->inherited = c->curl;
    c->curl = NULL;
    c->pid = getpid ();
  }
  if (c->curl == NULL)
    c->curl = curl_easy_init ();
  return c->curl;
}

static enum outcome
request (struct etcd_client *c, const struct etcd_endpoint *e,
         const char *path, const char *body, long timeout_ms,
         json_object **resp, int *code, bool *sent, char *why, size_t size)
{
  char url[sizeof e->url + 64], errbuf[CURL_ERROR_SIZE] = "";
  struct body b = { 0 };
  struct curl_slist *hdr = NULL, *h2;
  long status = 0, oserr = 0;
  enum outcome out;

  CURL *h = handle (c);
  if (h == NULL) {
    *code = ENOMEM;
    snprintf (why, size, "out of memory");
    return FAIL;
  }
  snprintf (url, sizeof url, "%s%s", e->url, path);
  hdr = curl_slist_append (NULL, "Content-Type: application/json");
  /* No "Expect: 100-continue" wait before a large body (a blob). */
  h2 = hdr ? curl_slist_append (hdr, "Expect:") : NULL;
  if (h2 == NULL) {
    curl_slist_free_all (hdr);
    *code = ENOMEM;
    snprintf (why, size, "out of memory");
    return FAIL;
  }
  hdr = h2;
  curl_easy_reset (h);
  curl_easy_setopt (h, CURLOPT_URL, url);
  curl_easy_setopt (h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, hdr);
  curl_easy_setopt (h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt (h, CURLOPT_POSTFIELDSIZE, (long) strlen (body));
  curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt (h, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt (h, CURLOPT_CONNECTTIMEOUT_MS,
                    (long) (timeout_ms < ETCD_CONNECT_MS ? timeout_ms
                            : ETCD_CONNECT_MS));
  curl_easy_setopt (h, CURLOPT_TIMEOUT_MS, timeout_ms);
  if (c->tls) {
    curl_easy_setopt (h, CURLOPT_CAINFO, c->cafile);
    curl_easy_setopt (h, CURLOPT_SSLCERT, c->certfile);
    curl_easy_setopt (h, CURLOPT_SSLKEY, c->keyfile);
  }
  CURLcode rc = curl_easy_perform (h);
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, NULL);     /* both die here */
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, NULL);
  curl_slist_free_all (hdr);
  curl_easy_getinfo (h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo (h, CURLINFO_OS_ERRNO, &oserr);
  double pretransfer = 0;
  curl_easy_getinfo (h, CURLINFO_PRETRANSFER_TIME, &pretransfer);
  *sent = pretransfer > 0;

  if (rc != CURLE_OK) {
    if (rc == CURLE_WRITE_ERROR && b.too_big) {
      *code = EBADMSG;
      snprintf (why, size, "answer larger than %u bytes", ETCD_RESPONSE_MAX);
      out = FAIL;
      goto done;
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      *code = ETIMEDOUT;
      if (*sent)
        snprintf (why, size, "no answer within %ld ms", timeout_ms);
      else
        snprintf (why, size, "cannot connect within %d ms",
                  ETCD_CONNECT_MS);
    }
    else if (rc == CURLE_COULDNT_CONNECT && oserr) {
      *code = (int) oserr;
      snprintf (why, size, "%s", strerror ((int) oserr));
      why[0] = tolower ((unsigned char) why[0]);
    }
    else if (rc == CURLE_GOT_NOTHING && !c->tls) {
      *code = EPROTO;
      snprintf (why, size, "empty reply (a member that serves only TLS? "
                "give --tls-dir)");
    }
    else {
      *code = rc == CURLE_COULDNT_RESOLVE_HOST ? EHOSTUNREACH : EIO;
      for (size_t l = strlen (errbuf);
           l > 0 && isspace ((unsigned char) errbuf[l - 1]);)
        errbuf[--l] = '\0';
      snprintf (why, size, "%s%s", errbuf[0] ? errbuf : curl_easy_strerror (rc),
                rc == CURLE_SSL_CONNECT_ERROR && c->tls
                ? " (does the member serve TLS, with a certificate of this "
                "CA?)" : "");
    }
    out = RETRY;
    goto done;
  }
  if (status != 200) {
    char reason[220];
    error_body (&b, reason, sizeof reason);
    snprintf (why, size, "HTTP %ld%s", status, reason);
    *code = strstr (reason, "too large") ? EFBIG : EIO;
    *sent = *sent || status >= 500;
    out = status >= 500 ? RETRY : FAIL;
    goto done;
  }
  if ((*resp = b.p ? parse_object (b.p, b.len) : NULL) == NULL) {
    *code = EBADMSG;
    snprintf (why, size, "bad answer: not a JSON object");
    out = FAIL;
    goto done;
  }
  out = OK;
 done:
  free (b.p);
  return out;
}

int
etcd_call (struct etcd_client *c, const char *path, json_object *req,
           json_object **resp, bool *maybe_applied, struct error *err)
{
  char why[ETCD_MAX_ENDPOINTS][240];
  int code = EIO, ret = 0;
  bool sent_any = false;

  *resp = NULL;
  if (maybe_applied)
    *maybe_applied = false;
  const char *body = json_object_to_json_string_ext
    (req, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  if (body == NULL)
    return error_set (err, ENOMEM, "etcd: out of memory");
  for (int i = 0; i < c->nep; i++)
    why[i][0] = '\0';

  pthread_mutex_lock (&c->lock);
  int64_t deadline = now_ms () + ETCD_CALL_MS;
  int start = c->cur;
  for (int pass = 0; pass < ETCD_PASSES; pass++) {
    if (pass > 0) {
      /* Every endpoint failed: give an election a moment. */
      int64_t pause = 100 * pass + (int64_t) (etcd_rand (c) % 100);
      if (now_ms () + pause >= deadline)
        break;
      struct timespec ts = { 0, pause * 1000000 };
      nanosleep (&ts, NULL);
    }
    for (int k = 0; k < c->nep; k++) {
      int i = (start + k) % c->nep;
      int64_t left = deadline - now_ms ();
      bool sent = false;
      if (left <= 0)
        goto failed;
      enum outcome o = request (c, &c->ep[i], path, body,
                                left < ETCD_REQUEST_MS ? left
                                : ETCD_REQUEST_MS,
                                resp, &code, &sent, why[i], sizeof why[i]);
      if (o != OK)              /* sent, and the answer lost */
        sent_any = sent_any || sent;
      if (o == OK) {
        c->cur = i;
        goto out;
      }
      if (o == FAIL) {
        ret = error_set (err, code, "etcd %s: %s", c->ep[i].hostport, why[i]);
        goto out;
      }
    }
  }
 failed:
  {
    /* Every endpoint's last failure, in the order given. */
    char msg[sizeof err->msg] = "";
    size_t len = 0;
    for (int i = 0; i < c->nep && len < sizeof msg; i++)
      if (why[i][0])
        len += snprintf (msg + len, sizeof msg - len, "%setcd %s: %s",
                         len ? "; " : "", c->ep[i].hostport, why[i]);
    ret = error_set (err, code, "%s", msg);
  }
 out:
  pthread_mutex_unlock (&c->lock);
  if (maybe_applied)
    *maybe_applied = sent_any;
  return ret;
}

/* ---- base64 ----------------------------------------------------------- */

static const char b64[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
etcd_b64_encode (const void *data, size_t len)
{
  const unsigned char *in = data;
  char *out = malloc ((len + 2) / 3 * 4 + 1), *o = out;
  if (out == NULL)
    return NULL;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t) in[i] << 16;
    if (i + 1 < len)
      v |= (uint32_t) in[i + 1] << 8;
    if (i + 2 < len)
      v |= in[i + 2];
    *o++ = b64[v >> 18];
    *o++ = b64[(v >> 12) & 63];
    *o++ = i + 1 < len ? b64[(v >> 6) & 63] : '=';
    *o++ = i + 2 < len ? b64[v & 63] : '=';
  }
  *o = '\0';
  return out;
}

static int
b64_value (unsigned char ch)
{
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  if (ch == '+') return 62;
  if (ch == '/') return 63;
  return -1;
}

int
etcd_b64_decode (const char *s, size_t slen, void **out, size_t *outlen)
{
  if (slen % 4 != 0)
    return -EBADMSG;
  unsigned char *buf = malloc (slen / 4 * 3 + 1), *o = buf;
  if (buf == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < slen; i += 4) {
    int v[4], pad = 0;
    for (int j = 0; j < 4; j++) {
      unsigned char ch = s[i + j];
      if (ch == '=' && i + 4 == slen && j >= 2 && (j == 3 || s[i + 3] == '=')) {
        v[j] = 0;
        pad++;
        continue;
      }
      if (pad || (v[j] = b64_value (ch)) < 0)
        goto bad;
    }
    uint32_t x = (uint32_t) v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3];
    *o++ = x >> 16;
    if (pad < 2)
      *o++ = (x >> 8) & 255;
    if (pad < 1)
      *o++ = x & 255;
    /* Canonical: the bits padding drops must be zero. */
    if ((pad == 1 && (x & 255)) || (pad == 2 && (x & 0xffff)))
      goto bad;
  }
  *o = '\0';
  *out = buf;
  *outlen = o - buf;
  return 0;
 bad:
  free (buf);
  return -EBADMSG;
}

/* ---- fields of an answer ----------------------------------------------- */

int
etcd_get_member (json_object *o, const char *key, json_type t,
                 json_object **out, const char **why)
{
  static __thread char buf[80]; /* only for *why */
  json_object *m;
  *out = NULL;
  if (!json_object_object_get_ex (o, key, &m) || m == NULL)
    return 0;
  if (!json_object_is_type (m, t)) {
    snprintf (buf, sizeof buf, "\"%s\" is not %s", key,
              t == json_type_array ? "an array" : t == json_type_object
              ? "an object" : t == json_type_string ? "a string"
              : t == json_type_boolean ? "a boolean" : "of the right type");
    *why = buf;
    return -EBADMSG;
  }
  *out = m;
  return 0;
}

int
etcd_get_i64 (json_object *o, const char *key, int64_t *out,
              const char **why)
{
  json_object *m;
  *out = 0;
  if (!json_object_object_get_ex (o, key, &m) || m == NULL)
    return 0;
  if (json_object_is_type (m, json_type_int)) {
    *out = json_object_get_int64 (m);
    return 0;
  }
  if (json_object_is_type (m, json_type_string)) {
    const char *s = json_object_get_string (m);
    char *end;
    errno = 0;
    long long v = strtoll (s, &end, 10);
    if (*s && *end == '\0' && errno == 0 && (isdigit ((unsigned char) *s) ||
                                             *s == '-')) {
      *out = v;
      return 0;
    }
  }
  *why = "an integer field is not an integer";
  return -EBADMSG;
}

int
etcd_get_bool (json_object *o, const char *key, bool *out, const char **why)
{
  json_object *m;
  int r = etcd_get_member (o, key, json_type_boolean, &m, why);
  *out = r == 0 && m && json_object_get_boolean (m);
  return r;
}

void
etcd_kv_free (struct etcd_kv *kv)
{
  free (kv->key);
  free (kv->value);
}

int
etcd_range_kvs (json_object *r, struct etcd_kv **kvs_out, int *n_out,
                const char **why)
{
  json_object *arr;
  *kvs_out = NULL;
  *n_out = 0;
  int ret = etcd_get_member (r, "kvs", json_type_array, &arr, why);
  if (ret < 0 || arr == NULL)
    return ret;
  size_t n = json_object_array_length (arr);
  if (n == 0)
    return 0;
  struct etcd_kv *kvs = calloc (n, sizeof *kvs);
  if (kvs == NULL) {
    *why = "out of memory";
    return -ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    json_object *kv = json_object_array_get_idx (arr, i), *k, *v;
    struct etcd_kv *e = &kvs[i];
    if (!json_object_is_type (kv, json_type_object)) {
      *why = "a kvs entry is not an object";
      ret = -EBADMSG;
    }
    else if ((ret = etcd_get_member (kv, "key", json_type_string, &k, why))
             < 0 ||
             (ret = etcd_get_member (kv, "value", json_type_string, &v, why))
             < 0 ||
             (ret = etcd_get_i64 (kv, "mod_revision", &e->mod_revision,
                                  why)) < 0 ||
             (ret = etcd_get_i64 (kv, "version", &e->version, why)) < 0)
      ;
    else if (k == NULL) {
      *why = "a kvs entry has no key";
      ret = -EBADMSG;
    }
    else if (etcd_b64_decode (json_object_get_string (k),
                              json_object_get_string_len (k),
                              (void **) &e->key, &e->key_len) < 0) {
      *why = "a key is not base64";
      ret = -EBADMSG;
    }
    else if (etcd_b64_decode (v ? json_object_get_string (v) : "",
                              v ? json_object_get_string_len (v) : 0,
                              &e->value, &e->value_len) < 0) {
      *why = "a value is not base64";
      ret = -EBADMSG;
    }
    else if (strlen (e->key) != e->key_len) {
      *why = "a key holds a NUL byte";
      ret = -EBADMSG;
    }
    if (ret < 0) {
      for (size_t j = 0; j <= i; j++)
        etcd_kv_free (&kvs[j]);
      free (kvs);
      return ret;
    }
  }
  *kvs_out = kvs;
  *n_out = (int) n;
  return 0;
}
