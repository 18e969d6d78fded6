/* etcd_internal.h - what etcd.c (the registry operations) and
 * etcd_http.c (the client of etcd's v3 JSON gateway) and etcd_req.c
 * (the requests it sends) share.  Nothing
 * outside registry/etcd*.c includes it.
 *
 * The client POSTs one JSON document to /v3/kv/... on an endpoint and
 * parses the answer; it fails over to the next endpoint, in the order
 * given, on what another member may answer (connection errors,
 * timeouts, HTTP 5xx), never on a 4xx.  Every request is bounded:
 * ETCD_CONNECT_MS to connect, ETCD_REQUEST_MS in all (etcd itself only
 * gives up on a proposal after 7 s when its leader died, while a new
 * leader is there within ~1.3 s), and the whole call, every endpoint
 * and pass included, by ETCD_CALL_MS.
 */
#ifndef REPVOL_REGISTRY_ETCD_INTERNAL_H
#define REPVOL_REGISTRY_ETCD_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <json-c/json.h>

struct error;

#define ETCD_CONNECT_MS   1000
#define ETCD_REQUEST_MS   2500
#define ETCD_CALL_MS      12000
#define ETCD_PASSES       3       /* times round the endpoint list */
#define ETCD_MAX_ENDPOINTS 16
#define ETCD_RESPONSE_MAX (16u << 20)

struct etcd_endpoint {
  char hostport[300];           /* as given: "127.0.0.1:2379" */
  char url[320];                /* "http://127.0.0.1:2379" */
};

struct etcd_client {
  struct etcd_endpoint ep[ETCD_MAX_ENDPOINTS];
  int nep;
  int cur;                      /* the endpoint that answered last */
  bool tls;
  char cafile[PATH_MAX], certfile[PATH_MAX], keyfile[PATH_MAX];
  pthread_mutex_t lock;         /* one request at a time on curl */
  void *curl;                   /* CURL *, made by the process using it */
  void *inherited;              /* a parent's, after fork(): never used */
  pid_t pid;                    /* the process curl belongs to */
  uint64_t rng;                 /* etcd_rand's state, and its process */
  pid_t rng_pid;
};

/* hosts: "HOST:PORT[,HOST:PORT...]" (HOST may be [v6]; PORT defaults to
 * 2379).  With the process's X.509 client credentials (core/tls.h)
 * the endpoints are https with those files.  0 or -EINVAL.
 */
int etcd_client_init (struct etcd_client *c, const char *hosts,
                      struct error *err);
void etcd_client_fini (struct etcd_client *c);

/* POST req (not consumed) to path ("/v3/kv/range") and parse the
 * answer into *resp (a JSON object; json_object_put it).  On failure
 * the reason names the endpoint(s) and cause: "etcd 127.0.0.1:2379:
 * connection refused", "etcd ...: HTTP 503: etcdserver: request timed
 * out".  *maybe_applied (may be NULL) is set when a request was sent
 * but its answer lost (a timeout, a 5xx), so a write may have been
 * applied although this returns an error or another endpoint's answer.
 */
int etcd_call (struct etcd_client *c, const char *path, json_object *req,
               json_object **resp, bool *maybe_applied, struct error *err);

/* Jitter for retry pauses: different in every process. */
uint64_t etcd_rand (struct etcd_client *c);

/* etcd_watch.c: open a watch (req: {"create_request": ...}, not
 * consumed) on the endpoint that answered last and wait until it
 * reports a change (1) or timeout_ms pass quietly (0); a negative errno
 * when the endpoint cannot be watched (the caller falls back).
 */
int etcd_watch_wait (struct etcd_client *c, json_object *req, int timeout_ms,
                     struct error *err);

/* ---- values from etcd (untrusted) ---------------------------------- */

/* Base64 (RFC 4648, with padding).  encode: malloc'd, NUL-terminated
 * (NULL: out of memory).  decode: strict (no whitespace, padding
 * required), malloc'd with a NUL after the data; 0, -EBADMSG, -ENOMEM.
 */
char *etcd_b64_encode (const void *data, size_t len);
int etcd_b64_decode (const char *s, size_t slen, void **out, size_t *outlen);

/* An int64 field, as the gateway writes them (a string of digits) or a
 * JSON integer; absent is 0 (etcd omits zero fields).  0, or -EBADMSG
 * with *why set.
 */
int etcd_get_i64 (json_object *o, const char *key, int64_t *out,
                  const char **why);
/* A boolean field; absent is false.  0 or -EBADMSG with *why. */
int etcd_get_bool (json_object *o, const char *key, bool *out,
                   const char **why);
/* A member of type t (absent: *out = NULL, 0); another type -EBADMSG. */
int etcd_get_member (json_object *o, const char *key, json_type t,
                     json_object **out, const char **why);

/* One key-value of a range answer ("kvs"[i]), decoded. */
struct etcd_kv {
  char *key;                    /* malloc'd, NUL-terminated */
  size_t key_len;
  void *value;                  /* malloc'd (NUL after it), NULL if none */
  size_t value_len;
  int64_t mod_revision, version;
};
void etcd_kv_free (struct etcd_kv *kv);
/* The "kvs" of a range answer r: *kvs malloc'd (free each with
 * etcd_kv_free, then the array), *n entries (0 when absent).  0 or
 * -EBADMSG/-ENOMEM with *why.
 */
int etcd_range_kvs (json_object *r, struct etcd_kv **kvs, int *n,
                    const char **why);

/* ---- requests (etcd_req.c) ------------------------------------------ */

/* Each returns a new JSON object, or NULL when out of memory; the ones
 * taking objects consume them, also on failure, so calls nest:
 * etcd_txn (etcd_compare (...), etcd_put (...), NULL, NULL).
 */
/* {"key": KEY}, and for a prefix (ending in '/') its "range_end". */
json_object *etcd_key_req (const char *key, bool prefix);
/* {what: inner}, e.g. {"request_range": ...}. */
json_object *etcd_op (const char *what, json_object *inner);
/* {"key", "value"[, "lease"]}: the body of a put, on lease (0: none);
 * etcd_put_lease wraps it as a transaction's request_put.
 */
json_object *etcd_kv_req (const char *key, const char *value, size_t len,
                          int64_t lease);
json_object *etcd_put_lease (const char *key, const char *value, size_t len,
                             int64_t lease);
json_object *etcd_put (const char *key, const char *value, size_t len);
/* A compare on key: target VERSION or MOD, result EQUAL or GREATER. */
json_object *etcd_compare (const char *key, const char *target,
                           const char *result, int64_t value);
/* {"compare": [cmp], "success": [s1, s2, s3], "failure": [fail]};
 * s2, s3 and fail may be NULL (none).
 */
json_object *etcd_txn3 (json_object *cmp, json_object *s1, json_object *s2,
                        json_object *s3, json_object *fail);
json_object *etcd_txn (json_object *cmp, json_object *s1, json_object *s2,
                       json_object *fail);

/* ---- the registry handle (etcd.c), shared with etcd_pool.c ---------- */

#include "registry/backends.h"

#define ETCD_PREFIX_MAX   200
#define KEY_MAX (ETCD_PREFIX_MAX + 2 * REG_NAME_MAX + 32)

struct etcd_registry {
  struct registry r;
  struct etcd_client c;
  char prefix[ETCD_PREFIX_MAX];       /* "/repvol", no trailing '/' */
  char loc[512];                      /* the location, for messages */
  int64_t lease;                      /* for receipts; 0: none yet */
  time_t lease_at;                    /* when it was granted */
  pid_t lease_pid;                    /* the process it was granted to */
  int64_t srv_lease;                  /* registry_server_put's; 0: none */
  unsigned srv_ttl;                   /* its TTL */
};

static inline struct etcd_registry *
etcd_of (struct registry *r)
{
  return r->priv;
}

/* etcd_call with req consumed (NULL: out of memory) and the reason
 * prefixed with the registry's location.
 */
int etcd_reg_call (struct etcd_registry *e, const char *path,
                   json_object *req, json_object **resp, bool *maybe_applied,
                   struct error *err);
/* -EBADMSG: etcd's answer about key was not what the API says (why). */
int etcd_reg_bad_answer (struct etcd_registry *e, const char *key,
                         const char *why, struct error *err);
int etcd_reg_nomem (struct etcd_registry *e, struct error *err);
void etcd_kvs_free (struct etcd_kv *kv, int n);
/* POST the range req (consumed) and decode its kvs: *kvs (free with
 * etcd_kvs_free), *n.  what names the range in a bad answer's reason.
 */
int etcd_reg_range (struct etcd_registry *e, json_object *req,
                    const char *what, struct etcd_kv **kvs, int *n,
                    struct error *err);
/* A new lease of ttl seconds: *id. */
int etcd_reg_grant (struct etcd_registry *e, unsigned ttl, int64_t *id,
                    struct error *err);

/* etcd_pool.c: the server pool's operations (registry_ops). */
int etcd_server_put (struct registry *r, const struct reg_server *s,
                     unsigned ttl, struct error *err);
int etcd_server_down (struct registry *r, const char *name,
                      struct error *err);
int etcd_server_list (struct registry *r, struct reg_server **servers,
                      int *n, struct error *err);
int etcd_server_drain (struct registry *r, const char *name, bool on,
                       struct error *err);

#endif
