/* frontend.h - how a volume is exposed to its users.
 *
 * frontend/ is the layer that serves a volume outside the process: it
 * takes a struct bdev (in repvol attach, the snapshot layer over the
 * engine) and answers NBD clients on a socket, the kernel's nbd driver,
 * or ublk_drv's /dev/ublkbN with it.  It may call core/ (the loop,
 * conn, the listener, util) and the bdev below only through the
 * checked wrappers of core/bdev.h; it knows nothing of what that bdev
 * is.  It is called by attach/ (frontend_start / stop / free) and, for
 * the device-picking and stale-device helpers below, by the repvol CLI.
 *
 * Each frontend implements struct frontend_ops in one file or one small
 * group of files, plus one line in the table in frontend.c:
 *   "nbd"         nbd.c (server, transmission), nbd_handshake.c,
 *                 nbd_internal.h; nbd_proto.c is the NBD wire codec
 *   "nbd-kernel"  nbd_kernel.c: /dev/nbdN over generic netlink, served
 *                 by nbd.c on one end of a socketpair;
 *                 nbd_kernel_recover.c (state file, reconnecting the
 *                 device of an attach that died), nbd_kernel_internal.h
 *   "ublk"        ublk_ctrl.c (control device, life, recovery),
 *                 ublk_queue.c (the I/O queues), ublk_internal.h,
 *                 ublk_abi.h
 *   "kmod"        kmod.c (control device, life, recovery), kmod_queue.c
 *                 (the request channel), kmod_internal.h; the contract
 *                 with repvol.ko is kmod/repvol_uapi.h
 * Adding one changes nothing else in the tree.
 *
 * Everything runs on the caller's event loop thread.
 *
 * Typical use (repvol attach):
 *
 *   struct frontend *fe = frontend_start ("nbd", loop, engine, "vol1",
 *                                         "unix:/run/vol1.sock", NULL);
 *   if (!fe) return 1;                    // reason already logged
 *   ...loop_run...
 *   // on detach / SIGTERM:
 *   frontend_stop (fe, stopped_cb, ctx);  // stopped_cb: drain bdev, flush, exit
 *   ...
 *   frontend_free (fe);                   // after stopped_cb has run
 */
#ifndef REPVOL_FRONTEND_H
#define REPVOL_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>

#include "core/util.h"
#include "core/loop.h"
#include "core/bdev.h"
#include "core/tls.h"

struct frontend;

struct frontend_ops {
  const char *name;             /* "nbd", ... as given to frontend_find */

  /* Begin serving f->dev as f->export_name.  spec is the frontend's own
   * address syntax (for "nbd": "unix:PATH" or "tcp:ADDR:PORT").  Store
   * private state in f->priv.  0, or on failure log one line saying why
   * and return a negative errno; f->priv must then need no cleanup
   * beyond the frontend's free.
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

  /* Optional: f->dev grew (its info.size is the new size): show users
   * the new size.  0, with *when saying where they see it ("now",
   * "from each client's next connection"); -ENOTSUP where this
   * frontend cannot change a device's size in place; another negative
   * errno after logging why.
   */
  int (*resized) (struct frontend *f, const char **when);
};

struct frontend {
  const struct frontend_ops *ops;
  struct loop *loop;
  struct bdev *dev;             /* shared by every client; not owned */
  char *export_name;            /* owned copy */
  /* What users open, set by start: "unix:/run/v.sock", "/dev/ublkb0". */
  char where[200];
  void *priv;                   /* the frontend implementation's */
  /* Server credentials: NBD over TCP then requires STARTTLS (not
   * owned; NULL: plaintext).  Frontends without a network ignore it.
   */
  struct tls_creds *tls;
};

/* The frontend called name, or NULL. */
const struct frontend_ops *frontend_find (const char *name);

/* Allocate a frontend of type name and start it (tls: f->tls, may be
 * NULL).  Returns NULL after logging one line (unknown type, bad spec,
 * cannot listen...).
 */
struct frontend *frontend_start (const char *name, struct loop *loop,
                                 struct bdev *dev, const char *export_name,
                                 const char *spec, struct tls_creds *tls);

/* See frontend_ops.stop. */
void frontend_stop (struct frontend *f, void (*stopped) (void *opaque),
                    void *opaque);

/* See frontend_ops.resized; -ENOTSUP for frontends without it. */
int frontend_resized (struct frontend *f, const char **when);

/* See frontend_ops.free; also frees f.  NULL is a no-op. */
void frontend_free (struct frontend *f);

/* The best kernel block device frontend this machine offers: "ublk"
 * where ublk_drv is usable, else "kmod" where repvol.ko is (loaded, or
 * modprobe loads it), else "nbd-kernel"; NULL with what is missing for
 * each in err when none is.  why (may be NULL) gets why the better ones
 * were passed over ("" when the first was taken).
 */
const char *frontend_pick_device (struct error *err, char *why,
                                  size_t whylen);

/* Requests the NBD servers of this process answered with an error
 * without passing them on (out of range, misaligned, bad flags), for
 * metrics.  Loop thread only.
 */
uint64_t frontend_refused_count (void);

/* 0 when this machine can serve ublk devices (ublk_drv loaded, root,
 * a new enough kernel), else a negative errno with what is missing in
 * err.
 */
int ublk_probe (struct error *err);
/* 0 if this process can serve /dev/nbdN (nbd loaded, its generic
 * netlink family there, root); else a negative errno with what is
 * missing in err.
 */
int nbd_kernel_probe (struct error *err);
/* 0 if this process can serve repvol.ko devices (/dev/repvol-control
 * there, after a modprobe repvol if it was not, and root); else a
 * negative errno with what is missing in err.
 */
int kmod_probe (struct error *err);

/* A /dev/nbdN (dev) an attach of volume vol that died left: disconnect
 * it if the kernel still shows it as pid's, or (vol not NULL) if it is
 * vol's and no live process serves it (after a recovery the kernel
 * keeps showing the first attach's pid).  1 if it did, 0 if the device
 * is not that attach's, a negative errno with why in err on failure.
 */
int nbd_kernel_disconnect_stale (const char *dev, const char *vol, long pid,
                                 struct error *err);

/* An attach that died may leave a kernel device behind, connected to
 * nothing.  desc is its registry "frontend" field ("nbd-kernel
 * /dev/nbd0"), vol the volume, pid its process.  Frees the device if
 * it is still that attach's: 1 (where names it), 0 if there was nothing
 * to do, a negative errno with the reason in err.
 */
int frontend_release_stale (const char *desc, const char *vol, long pid,
                            char *where, size_t wherelen, struct error *err);

/* Whether starting frontend name with spec may take over, instead of
 * replacing, the device desc (as for frontend_release_stale) that a
 * dead attach of the volume left: then the caller leaves that device
 * alone until the frontend has started, and releases it only if the
 * frontend serves somewhere else.  Kernel NBD recovers its device
 * (nbd_kernel_recover.c), repvol.ko its "kmod /dev/repvolN" (kmod.c,
 * told which through frontend_start_spec); ublk recovers its own
 * without this.
 */
bool frontend_may_recover (const char *name, const char *spec,
                           const char *desc);

/* The spec to start frontend name with: spec, plus for "kmod" which
 * device the volume's dead predecessor on this host served (prev: its
 * registry "frontend" field, NULL or "" if there is none), so that a
 * state file that outlived its device never hands this volume another
 * volume's device.  Into buf; returns buf, or spec unchanged.
 */
const char *frontend_start_spec (const char *name, const char *spec,
                                 const char *prev, char *buf, size_t len);

/* A /dev/repvolN (dev) left by the dead attach pid of volume vol:
 * deleted if nobody serves its channel (the module holds or fails its
 * I/O), and vol's state file with it if it names that device.  1 if it
 * was, 0 if there was nothing to do, a negative errno with why in err.
 */
int kmod_release_stale (const char *dev, const char *vol, long pid,
                        struct error *err);

/* For the device frontends' spec parsers: tok is "queues=N" with N in
 * 1..max_queues or "depth=N" with N in 1..max_depth; stores it and
 * returns true, else false (not such an option, or out of range).
 */
bool frontend_queue_option (const char *tok, unsigned max_queues,
                            unsigned max_depth, unsigned *queues,
                            unsigned *depth);

/* The frontends, for frontend.c's table. */
extern const struct frontend_ops nbd_frontend_ops;         /* nbd.c */
extern const struct frontend_ops ublk_frontend_ops;        /* ublk_ctrl.c */
extern const struct frontend_ops nbd_kernel_frontend_ops;  /* nbd_kernel.c */
extern const struct frontend_ops kmod_frontend_ops;        /* kmod.c */

#endif
