/* objstore_backend.h - what a backend implements (file.c, s3.c), and the
 * store object objstore.c shares with it.  Only objstore/ includes this:
 * callers see struct objstore through objstore.h, as an opaque handle.
 *
 * objstore.c has checked every request before a backend sees it: the op
 * is one of enum obj_op, the key passes objstore_key_valid (NUL within
 * OBJ_KEY_MAX), a PUT has a body (or a length of 0), and a listing's
 * prefix passes objstore_prefix_valid.  A backend refuses only what is
 * its own business (the file backend its temp names).
 */
#ifndef REPVOL_OBJSTORE_BACKEND_H
#define REPVOL_OBJSTORE_BACKEND_H

#include "objstore/objstore.h"

struct objstore_ops {
  const char *scheme;           /* "file", "s3" */
  /* rest is the URL after "scheme://".  Fill os->priv.  0, or a
   * negative errno with one line in err.
   */
  int (*open) (struct objstore *os, const char *rest, struct error *err);
  /* Start req; its completion (req->err set) is returned by a
   * later poll, never by submit itself.
   */
  void (*submit) (struct objstore *os, struct obj_req *req);
  struct obj_req *(*poll) (struct objstore *os, int timeout_ms);
  void (*wakeup) (struct objstore *os);
  /* As objstore_list. */
  int (*list) (struct objstore *os, const char *prefix,
               int (*fn) (void *opaque, const struct obj_entry *e),
               void *opaque, struct error *err);
  void (*close) (struct objstore *os);
};

struct objstore {
  const struct objstore_ops *ops;
  char *url;                    /* as opened, for messages */
  int inflight;                 /* submitted, not yet returned by poll */
  /* Refused by the checks in objstore_submit, for poll to return first
   * (linked through backend_priv; the driving thread only).
   */
  struct obj_req *refused, *refused_tail;
  void *priv;                   /* the backend's */
};

/* A setting from the environment in effect (see objstore_open_env), or
 * NULL when unset.
 */
const char *objstore_getenv (const char *name);

/* "PUT", "GET", "HEAD", "DELETE" ("?" for anything else), for messages. */
const char *objstore_op_name (enum obj_op op);

extern const struct objstore_ops file_objstore_ops;
extern const struct objstore_ops s3_objstore_ops;

#endif
