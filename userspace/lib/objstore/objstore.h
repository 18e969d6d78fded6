/* objstore.h - object storage for snapshots, behind one small table.
 *
 * The objstore layer stores and fetches whole objects by key, many
 * requests in flight at once, in a local directory or an S3 bucket.  It
 * may call core/ only; snapshot/ (catalog, cow's upload thread, hydrate)
 * and the CLI (repvol snapshot ..., tests/tools/objtool) call it.
 * Callers go through the functions below and never see a backend: the
 * store is opaque, and the wrappers in objstore.c check every request
 * (its operation, key and body) before a backend sees it, refusing a
 * bad one with EINVAL and a message naming it.
 *
 * Two backends: file:///DIR (file.c, the embedded default: one file per
 * object under DIR) and s3://BUCKET/PREFIX (s3.c and its s3_*.c: the S3
 * REST API over libcurl with SigV4, requests in parallel through one
 * curl multi handle, multipart for large objects, retries with backoff).
 * Nothing outside objstore/ knows which one is in use.
 *
 * Keys are relative to the store's root ("snapshots/x.json",
 * "chunks/ab/ab12...").  They are 1 to OBJ_KEY_MAX - 2 bytes of
 * [A-Za-z0-9._/-], with no leading or trailing '/', no empty, "." or
 * ".." component and no "..": see objstore_key_valid().
 *
 * Requests are asynchronous: objstore_submit() starts one, and the
 * thread that drives the store collects completions with objstore_poll().
 * One thread drives a given store; objstore_wakeup() may be called from
 * any thread to make a waiting objstore_poll() return early (so the
 * driving thread can also wait for work produced elsewhere).
 *
 *   struct obj_req r = { .op = OBJ_PUT, .data = buf, .len = n };
 *   snprintf (r.key, sizeof r.key, "chunks/%s", hex);
 *   objstore_submit (os, &r);
 *   struct obj_req *done;
 *   while ((done = objstore_poll (os, 1000)) == NULL)
 *     ;
 *   if (done->err.code) log_error ("%s", error_msg (&done->err));
 *
 * Errors follow core/util.h: functions return 0 or a negative errno
 * (NULL for objstore_open), the reason in the caller's struct error.  A
 * request's own result is a struct error too (obj_req.err): its code a
 * positive errno, a completion value like a bdev_io's.
 */
#ifndef REPVOL_OBJSTORE_H
#define REPVOL_OBJSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/util.h"

#define OBJ_KEY_MAX 256

enum obj_op {
  OBJ_PUT = 1,                  /* store data/len under key (replace) */
  OBJ_GET,                      /* body into out/out_len (malloc'd) */
  OBJ_HEAD,                     /* does key exist; its size in out_len */
  OBJ_DELETE,                   /* remove key; a missing key is not an error */
};

struct obj_req {
  enum obj_op op;
  char key[OBJ_KEY_MAX];
  const void *data;             /* PUT: the body, kept valid until done */
  size_t len;
  void *out;                    /* GET: the body, malloc'd; the caller frees */
  size_t out_len;               /* GET, HEAD: body size */
  /* Result: err.code is 0, ENOENT (GET/HEAD of a missing key), EACCES
   * (refused: credentials, signature), EINVAL (refused before it was
   * sent: a bad key or operation), or another positive errno once
   * retries are exhausted.  With err.code set, err.msg is one line that
   * names the key and what the server answered ("PUT chunks/ab/..: 403
   * SignatureDoesNotMatch: The request signature we calculated does not
   * match ...").
   */
  struct error err;
  void *opaque;                 /* the caller's */
  void *backend_priv;           /* the store's, while in flight */
};

struct obj_entry {
  const char *key;              /* relative to the root, as for obj_req */
  uint64_t size;
  time_t mtime;
};

struct objstore;

/* Open "file:///DIR" or "s3://BUCKET/PREFIX".  NULL with err filled on
 * failure (unknown scheme, missing credentials, unreadable directory).
 */
struct objstore *objstore_open (const char *url, struct error *err);

/* The same, with env ("NAME=VALUE" strings, NULL-terminated) standing in
 * for this process's environment while the store reads its settings
 * (AWS_*, HOME, REPVOL_S3_*): a store opened on behalf of another process,
 * such as an attach taking a snapshot for "repvol snapshot create".
 */
struct objstore *objstore_open_env (const char *url, char *const *env,
                                    struct error *err);

/* The settings a store may read, from this process's environment, as a
 * NULL-terminated malloc'd list for objstore_open_env; free with
 * objstore_env_free.
 */
char **objstore_env_capture (void);
void objstore_env_free (char **env);
void objstore_close (struct objstore *os);

/* The URL the store was opened with, for messages. */
const char *objstore_url (const struct objstore *os);
/* Requests submitted and not yet returned by objstore_poll. */
int objstore_inflight (const struct objstore *os);

/* Start req (op, key and, for a PUT, data/len filled).  A request the
 * store must not see (unknown op, invalid or unterminated key, a PUT
 * body of NULL) completes at once with EINVAL, through objstore_poll
 * like any other.
 */
void objstore_submit (struct objstore *os, struct obj_req *req);
/* The next completed request, or NULL after timeout_ms (or a wakeup). */
struct obj_req *objstore_poll (struct objstore *os, int timeout_ms);
void objstore_wakeup (struct objstore *os);

/* Every key starting with prefix ("" or a key, or a key's leading
 * components ending in '/'), in any order: fn per key.  fn returns 0 to
 * go on; anything else stops the listing and is returned as it is.
 * Otherwise 0, or a negative errno with err filled.
 */
int objstore_list (struct objstore *os, const char *prefix,
                   int (*fn) (void *opaque, const struct obj_entry *e),
                   void *opaque, struct error *err);

/* Blocking forms of one request, for callers with nothing else to do.
 * They must not be mixed with outstanding asynchronous requests.
 * Return 0 or the request's errno negated (-ENOENT, -EINVAL, ...; a key
 * longer than OBJ_KEY_MAX - 2 is -ENAMETOOLONG), with err filled (the
 * request's obj_req.err).
 */
int objstore_put (struct objstore *os, const char *key, const void *data,
                  size_t len, struct error *err);
int objstore_get (struct objstore *os, const char *key, void **data,
                  size_t *len, struct error *err);
int objstore_head (struct objstore *os, const char *key, size_t *len,
                   struct error *err);
int objstore_delete (struct objstore *os, const char *key,
                     struct error *err);

/* The key rules above: a valid key, and a valid listing prefix (which
 * may also be empty or end in '/').
 */
bool objstore_key_valid (const char *key);
bool objstore_prefix_valid (const char *prefix);

#endif
