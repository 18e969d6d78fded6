/* s3_internal.h - what the pieces of the s3:// backend share.
 *
 *   s3.c       the operations (simple requests, multipart uploads,
 *              listings) on top of transfers, and open/close
 *   s3_http.c  one HTTP request (struct xfer, a curl easy handle) and
 *              the driver that runs them all through one curl multi
 *              handle, with retries after a backoff
 *   s3_sign.c  what SigV4 needs from us: canonical (sorted, encoded)
 *              URLs and queries, the payload hash header
 *   s3_xml.c   reading S3's XML answers, writing the one body we send
 *
 * Only these files include this header; the rest of the tree sees the
 * backend through objstore.h.
 */
#ifndef REPVOL_S3_INTERNAL_H
#define REPVOL_S3_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <curl/curl.h>

#include "objstore/objstore_backend.h"
#include "objstore/aws_config.h"

#if LIBCURL_VERSION_NUM < 0x074b00
#error "libcurl 7.75 or later is needed for CURLOPT_AWS_SIGV4"
#endif

#define MIN_PART_SIZE (5ull << 20)     /* S3's minimum, except the last */
#define MAX_PART_SIZE (5ull << 30)
#define MAX_PARTS 10000
#define MAX_BACKOFF_MS 20000
#define MAX_META_BODY (16u << 20)       /* error XML, listings */
#define ETAG_MAX 128

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
  char etag[ETAG_MAX];
  int attempts;
  uint64_t retry_at;            /* ns, while waiting for a retry */
  bool finished;                /* X_SYNC: result ready */
  struct error err;             /* as obj_req.err */
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
  char (*etags)[ETAG_MAX];
  bool failed;
  struct error err;             /* the first error, for obj_req.err */
  struct op *next;              /* in the done list */
};

struct s3 {
  struct aws_config cfg;
  char *bucket, *prefix;        /* prefix is "" or ends in '/' */
  char *root;                   /* URL of the bucket, no trailing '/' */
  char *host;                   /* scheme://host[:port], for messages */
  bool path_style;
  char *sigv4;
  char *token_hdr;
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

/* ---- s3_http.c ------------------------------------------------------- */

/* curl_global_init, once per process: its result. */
CURLcode s3_http_global_init (void);
/* A request for METHOD on URL (path and query already encoded), with an
 * optional body, signed; not yet queued.  NULL when out of memory.
 */
struct xfer *s3_xfer_new (struct s3 *s3, struct op *op, enum xkind kind,
                          const char *method, const char *url,
                          const void *body, size_t body_len,
                          const char *content_type);
void s3_xfer_free (struct xfer *x);
/* Queue x for a request slot (FIFO). */
void s3_xfer_queue (struct s3 *s3, struct xfer *x);
/* Run the multi handle without waiting, until nothing changes. */
void s3_progress (struct s3 *s3);
/* Wait at most wait_ms for curl's sockets, a retry coming due, or a
 * wakeup.
 */
void s3_wait (struct s3 *s3, int64_t wait_ms);
/* Send x (kind X_SYNC) and drive the store until it is done (other
 * requests move on meanwhile).  x is freed; 0 and the body in *body
 * (malloc'd), or a negative errno with err filled.
 */
int s3_run_sync (struct s3 *s3, struct xfer *x, char **body, size_t *len,
                 struct error *err);

/* ---- s3.c: called by the driver -------------------------------------- */

/* A transfer is over (x->err says how): move its op on. */
void s3_xfer_done (struct xfer *x);

/* ---- s3_sign.c ------------------------------------------------------- */

/* RFC 3986's unreserved characters: A-Z a-z 0-9 - _ . ~ */
bool s3_unreserved (unsigned char c);
/* Percent-encode s; '/' kept when keep_slash (object paths; radosgw
 * refuses %2F in a key).  NULL when out of memory.
 */
char *s3_uri_encode (const char *s, bool keep_slash);
/* s3->sigv4, s3->token_hdr and s3->sign_payload from the configuration
 * and REPVOL_S3_SIGN_PAYLOAD.  0 or -ENOMEM.
 */
int s3_sign_setup (struct s3 *s3);
/* Sign easy handle e for a METHOD request with this body: the SigV4
 * options, and the headers it needs into *headers (freed by the
 * caller, also on failure).  0 or -ENOMEM.
 */
int s3_sign (struct s3 *s3, CURL *e, const char *method, const void *body,
             size_t body_len, struct curl_slist **headers);
/* ROOT/ENCODED(PREFIX KEY)[?QUERY], malloc'd, NULL when out of memory. */
char *s3_object_url (struct s3 *s3, const char *key, const char *query);
/* "uploadId=ID" or, for part > 0, "partNumber=N&uploadId=ID". */
char *s3_upload_query (const char *upload_id, int part);
/* One ListObjectsV2 page under the store's prefix + prefix. */
char *s3_list_url (struct s3 *s3, const char *prefix, const char *token,
                   int max_keys);

/* ---- s3_xml.c -------------------------------------------------------- */

/* " Code: Message" from an S3 error body, or "" when it has none; one
 * line, whatever the server put in it.
 */
void s3_xml_error (const char *body, size_t len, char *out, size_t outlen);
/* Is errtext (from s3_xml_error) about code? */
bool s3_error_is (const char *errtext, const char *code);
/* The UploadId of a CreateMultipartUpload answer, malloc'd; NULL when
 * there is none (or out of memory).
 */
char *s3_xml_upload_id (const char *body, size_t len);
/* The CompleteMultipartUpload body for nparts parts' ETags, malloc'd,
 * its length in *len; NULL when out of memory.
 */
char *s3_xml_complete_body (const char (*etags)[ETAG_MAX], int nparts,
                            size_t *len);
/* One ListObjectsV2 page: fn for each <Contents> with the texts of its
 * Key, Size and LastModified (NULL when missing, or out of memory).  A
 * non-zero return from fn stops and is returned; else 0.
 */
int s3_xml_each_object (const char *body, size_t len,
                        int (*fn) (void *opaque, const char *key,
                                   const char *size, const char *mtime),
                        void *opaque);
/* The page's IsTruncated, and its NextContinuationToken (malloc'd; NULL
 * when missing or empty).
 */
bool s3_xml_truncated (const char *body, size_t len);
char *s3_xml_next_token (const char *body, size_t len);
/* An ISO 8601 "YYYY-MM-DDTHH:MM:SS..." UTC time, 0 if not one. */
time_t s3_parse_time (const char *s);

#endif
