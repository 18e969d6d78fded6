/* frontend.h - how a volume is exposed to its users.
 *
 * A frontend takes a struct bdev (normally the engine) and serves it to
 * something outside the process: NBD clients on a socket (nbd.c), the
 * kernel's NBD driver over netlink, ublk, or repvol.ko.  Each frontend
 * is one file implementing struct frontend_ops plus one line in the
 * table in frontend.c; nothing else in the tree changes.
 *
 * Everything runs on the caller's event loop thread.
 *
 * Typical use (repvol attach):
 *
 *   struct frontend *fe = frontend_start ("nbd", loop, engine, "vol1",
 *                                         "unix:/run/vol1.sock");
 *   if (!fe) return 1;                    // reason already logged
 *   ...loop_run...
 *   // on detach / SIGTERM:
 *   frontend_stop (fe, stopped_cb, ctx);  // stopped_cb: drain bdev, flush, exit
 *   ...
 *   frontend_free (fe);                   // after stopped_cb has run
 */
#ifndef REPVOL_FRONTEND_H
#define REPVOL_FRONTEND_H

#include "core/loop.h"
#include "core/bdev.h"

struct frontend;

struct frontend_ops {
  const char *name;             /* "nbd", ... as given to frontend_find */

  /* Begin serving f->dev as f->export_name.  spec is the frontend's own
   * address syntax (for "nbd": "unix:PATH" or "tcp:ADDR:PORT").  Store
   * private state in f->priv.  On failure log one line saying why and
   * return -1; f->priv must then need no cleanup beyond free().
   */
  int (*start) (struct frontend *f, const char *spec);

  /* Stop accepting new users, let requests already submitted to the
   * bdev complete and their replies go out, disconnect everyone, then
   * call stopped(opaque) exactly once, from the loop (never from inside
   * stop itself).  After stopped runs, the frontend submits nothing
   * more to the bdev.
   */
  void (*stop) (struct frontend *f, void (*stopped) (void *opaque),
                void *opaque);

  /* Release f->priv.  Only after stopped ran, or if start failed. */
  void (*free) (struct frontend *f);
};

struct frontend {
  const struct frontend_ops *ops;
  struct loop *loop;
  struct bdev *dev;             /* shared by every client; not owned */
  char *export_name;            /* owned copy */
  /* What users open, set by start: "unix:/run/v.sock", "/dev/ublkb0". */
  char where[200];
  void *priv;                   /* the frontend implementation's */
};

/* The frontend called name, or NULL. */
const struct frontend_ops *frontend_find (const char *name);

/* Allocate a frontend of type name and start it.  Returns NULL after
 * logging one line (unknown type, bad spec, cannot listen...).
 */
struct frontend *frontend_start (const char *name, struct loop *loop,
                                 struct bdev *dev, const char *export_name,
                                 const char *spec);

/* See frontend_ops.stop. */
void frontend_stop (struct frontend *f, void (*stopped) (void *opaque),
                    void *opaque);

/* See frontend_ops.free; also frees f.  NULL is a no-op. */
void frontend_free (struct frontend *f);

/* The best kernel block device frontend this machine offers: "ublk"
 * where ublk_drv is usable, else "nbd-kernel"; NULL with why filled
 * (what is missing for each) when neither is.
 */
const char *frontend_pick_device (char *why, size_t whylen);

/* 0 when this machine can serve ublk devices (ublk_drv loaded, root,
 * a new enough kernel), else -1 with what is missing in why.
 */
int ublk_probe (char *why, size_t len);
/* 0 if this process can serve /dev/nbdN (nbd loaded, its generic
 * netlink family there, root); else -1 with why saying what is missing.
 */
int nbd_kernel_probe (char *why, size_t len);

/* A /dev/nbdN (dev) that the kernel still shows as connected by pid, an
 * attach that died: disconnect it.  1 if it did, 0 if the device is
 * not pid's, -1 with why on failure.
 */
int nbd_kernel_disconnect_stale (const char *dev, long pid, char *why,
                                 size_t len);

/* An attach that died may leave a kernel device behind, connected to
 * nothing.  desc is its registry "frontend" field ("nbd-kernel
 * /dev/nbd0"), pid its process.  Frees the device if the kernel still
 * shows it as pid's: 1 (where names it), 0 if there was nothing to do,
 * -1 with why.
 */
int frontend_release_stale (const char *desc, long pid, char *where,
                            size_t wherelen, char *why, size_t whylen);

/* The frontends, for frontend.c's table. */
extern const struct frontend_ops nbd_frontend_ops;
extern const struct frontend_ops ublk_frontend_ops;        /* ublk.c */
extern const struct frontend_ops nbd_kernel_frontend_ops;  /* nbd_kernel.c */

#endif
