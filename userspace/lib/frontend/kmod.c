/* kmod.c - the kmod frontend: serve a bdev as /dev/repvolN through
 * repvol's own kernel module, repvol.ko (kmod/; the contract is
 * kmod/repvol_uapi.h, its prose docs/DESIGN.md 2.12).  This file is the
 * device's life (add, start, stop, delete), recovery, and the frontend
 * ops; the control ioctls, the state file and the CLI's helpers (probe,
 * stale devices) are kmod_ctrl.c, the request channel kmod_queue.c,
 * what they share kmod_internal.h.
 *
 * ADD and START run on the loop thread: neither waits on I/O (START
 * scans no partitions).  STOP and DEL may wait while the disk writes
 * back through us, so they run on a short-lived thread while the loop
 * goes on serving the channel; the thread posts their results to a
 * mailbox (core/mailbox.h) and the loop finishes the stop.
 *
 * Recovery, as the ublk frontend does it: a state file,
 * RUN_DIR/VOL.kmod, names the device serving the volume, written before
 * the disk appears.  When the attach dies its channel closes and the
 * module holds the disk's requests (WAITING, for recovery_timeout
 * seconds; then FAILING, with EIO).  The next attach of the volume finds
 * the file, checks the device is this volume's (size, block size),
 * opens its channel and RECOVERs: the held requests and those that were
 * in flight come again on the new channel, and the filesystem on
 * /dev/repvolN sees no error.  A clean stop deletes the device and the
 * file.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/util.h"
#include "core/fsutil.h"
#include "core/loop.h"
#include "core/bdev.h"
#include "core/mailbox.h"
#include "frontend/frontend.h"
#include "frontend/kmod_internal.h"

#define KMOD_DEFAULT_QUEUES     1
#define KMOD_DEFAULT_DEPTH      128
#define KMOD_MAX_IO             (1u << 20)  /* per-tag buffer */
#define KMOD_WAIT_MS            10000       /* channel node, old owner's exit */
#define KMOD_POLL_MS            20

/* ---- the device's life: stop on its thread, then finish ---- */

struct stop_msg {
  struct mailbox_msg m;         /* first: the mailbox links through it */
  int stop_res, del_res;
};

/* Posted when the thread cannot allocate one: the loop still needs to
 * hear that STOP and DEL have returned.  One stop per process at a time
 * is all attach does.
 */
static struct stop_msg stop_oom;

/* The thread: STOP (the disk goes; what it writes back meanwhile the
 * loop serves), then DEL.
 */
static void *
stopper (void *opaque)
{
  struct kmod_dev *k = opaque;
  struct stop_msg *msg = calloc (1, sizeof *msg);
  int s, d;

  s = kmod_ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_STOP, k->dev_id, NULL);
  d = kmod_ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_DEL, k->dev_id, NULL);
  if (!msg)
    msg = &stop_oom;
  msg->stop_res = s;
  msg->del_res = d;
  mailbox_post (&k->mb, &msg->m);
  return NULL;
}

static void
on_stopped (struct mailbox *mb, struct mailbox_msg *m)
{
  struct kmod_dev *k = mb->opaque;
  struct stop_msg *msg = (struct stop_msg *) m;

  pthread_join (k->stopper, NULL);
  k->stopper_running = false;
  if (msg->stop_res < 0 && msg->stop_res != -ENODEV)
    log_error ("kmod: %s: STOP of /dev/repvol%" PRIu32 ": %s", k->name,
               k->dev_id, strerror (-msg->stop_res));
  if (msg->del_res < 0 && msg->del_res != -ENODEV)
    log_error ("kmod: %s: DEL of /dev/repvol%" PRIu32 ": %s", k->name,
               k->dev_id, strerror (-msg->del_res));
  else {
    log_info ("kmod: %s: /dev/repvol%" PRIu32 " deleted", k->name,
              k->dev_id);
    kmod_state_remove (k);
    k->have_dev = false;
  }
  if (msg != &stop_oom)
    free (msg);
  k->state = KMOD_DRAINING;
  kmod_kick (k);
}

static void
on_kick (struct loop_defer *d)
{
  struct kmod_dev *k = d->opaque;

  /* DEL has returned and the bdev has finished what we gave it: the
   * channel can close.
   */
  if (k->state == KMOD_DRAINING && k->with_bdev == 0 && !k->flush.queued) {
    kmod_chan_unwatch (k);
    if (k->chan_fd >= 0)
      close (k->chan_fd);
    k->chan_fd = -1;
    k->state = KMOD_DONE;
  }
  if (k->state == KMOD_DONE && k->stopped) {
    void (*cb) (void *) = k->stopped;
    k->stopped = NULL;
    cb (k->stopped_opaque);       /* may free k: touch nothing after */
  }
}

void
kmod_kick (struct kmod_dev *k)
{
  if (k->state != KMOD_LIVE)
    loop_defer (k->loop, &k->kick, on_kick, k);
}

/* ---- start: a new device, or the one a dead attach left ---- */

int
kmod_parse_spec (const char *spec, unsigned *queues, unsigned *depth,
                 int64_t *recover)
{
  char *copy = strdup (spec ? spec : ""), *save = NULL, *tok;
  int rc = 0;

  *queues = KMOD_DEFAULT_QUEUES;
  *depth = KMOD_DEFAULT_DEPTH;
  *recover = KMOD_RECOVER_ANY;
  if (!copy)
    return -ENOMEM;
  for (tok = strtok_r (copy, ",", &save); tok; tok = strtok_r (NULL, ",", &save)) {
    uint64_t v;
    if (frontend_queue_option (tok, REPVOL_MAX_QUEUES, REPVOL_MAX_DEPTH,
                               queues, depth))
      ;
    else if (strcmp (tok, "recover=none") == 0)
      *recover = KMOD_RECOVER_NONE;
    else if (strncmp (tok, "recover=/dev/" REPVOL_DISK_PREFIX, 19) == 0 &&
             parse_uint (tok + 19, 0, REPVOL_MAX_DEVICES - 1, &v) == 0)
      *recover = (int64_t) v;
    else {
      log_error ("kmod: cannot parse '%s' in '%s': expected queues=1..%d,"
                 "depth=1..%d,recover=/dev/repvolN|none", tok, spec,
                 REPVOL_MAX_QUEUES, REPVOL_MAX_DEPTH);
      rc = -EINVAL;
      break;
    }
  }
  free (copy);
  return rc;
}

/* The owner a device of this volume carries (ADD's owner, shown by
 * INFO): FNV-1a over the volume's name, never 0 (which means none).  A
 * recovery takes over only a device with its own volume's owner, so a
 * state file that outlived its device (rmmod, then another volume's
 * device under the same number) cannot hand it another volume's disk.
 */
uint64_t
kmod_owner (const char *volume)
{
  uint64_t h = 0xcbf29ce484222325ull;

  for (; *volume; volume++)
    h = (h ^ (unsigned char) *volume) * 0x100000001b3ull;
  return h ? h : 1;
}

int
kmod_geometry (struct kmod_dev *k, unsigned queues, unsigned depth)
{
  const struct bdev_info *info = &k->dev->info;
  uint32_t bs = info->block_size ? info->block_size : 512;
  uint32_t max_io;

  if (bs < 512 || bs > 4096 || (bs & (bs - 1))) {
    log_error ("kmod: %s: block size %" PRIu32 " cannot be a repvol.ko "
               "logical block size (a power of two from 512 to 4096)",
               k->name, bs);
    return -EINVAL;
  }
  if (info->size < bs) {
    log_error ("kmod: %s: volume is smaller than one block", k->name);
    return -EINVAL;
  }
  if (info->size % bs)
    log_warn ("kmod: %s: volume size is not a multiple of the %" PRIu32
              "-byte block size; the tail is unreachable", k->name, bs);
  k->bdev_max_io = info->max_io ? info->max_io : KMOD_MAX_IO;
  k->bdev_max_io -= k->bdev_max_io % bs;
  max_io = MIN (k->bdev_max_io, KMOD_MAX_IO);
  max_io -= max_io % REPVOL_MIN_IO_BYTES;
  if (max_io < REPVOL_MIN_IO_BYTES) {
    log_error ("kmod: %s: largest request %" PRIu32 " is below the %u "
               "bytes repvol.ko needs", k->name, info->max_io,
               REPVOL_MIN_IO_BYTES);
    return -EINVAL;
  }
  k->p = (struct repvol_ctrl) {
    .size = info->size - info->size % bs,
    .logical_block_size = bs,
    .physical_block_size = MAX (bs, 4096u),
    .nr_queues = queues,
    .queue_depth = depth,
    .max_io_bytes = max_io,
    /* Always a volatile cache: the engine acknowledges a write before
     * every replica has it on disk until a FLUSH or a FUA write.  The
     * bdev table has no capability bits; every repvol bdev takes trim
     * and write-zeroes.
     */
    .features = REPVOL_F_WRITE_CACHE | REPVOL_F_FUA | REPVOL_F_DISCARD |
                REPVOL_F_WRITE_ZEROES,
    .owner = kmod_owner (k->name),
  };
  return 0;
}

/* Open /dev/repvolcN, non-blocking.  devtmpfs creates the node shortly
 * after ADD; a second opener gets EBUSY, which for a device whose
 * server just died means it is still exiting.  0 or a negative errno
 * (logged).
 */
static int
open_chan (struct kmod_dev *k, uint32_t id)
{
  char path[64];
  int waited = 0, r;

  snprintf (path, sizeof path, "/dev/" REPVOL_CHAN_PREFIX "%" PRIu32, id);
  while ((k->chan_fd = open (path, O_RDWR | O_NONBLOCK | O_CLOEXEC)) == -1 &&
         (errno == ENOENT || errno == EBUSY) && waited < KMOD_WAIT_MS) {
    kmod_sleep_ms (KMOD_POLL_MS);
    waited += KMOD_POLL_MS;
  }
  if (k->chan_fd == -1) {
    r = -errno;
    log_error ("kmod: %s: cannot open %s: %s", k->name, path,
               r == -EBUSY ? "another process serves it" : strerror (-r));
    return r;
  }
  return 0;
}

/* A new device of k->p's shape, its channel open.  0 or a negative
 * errno, after logging why.
 */
static int
add_device (struct kmod_dev *k)
{
  struct repvol_ctrl c = k->p;
  int r = kmod_ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_ADD, REPVOL_DEV_ANY, &c);

  if (r < 0) {
    log_error ("kmod: %s: ADD (%" PRIu64 " bytes, block %" PRIu32 ", %"
               PRIu32 " queue(s) of depth %" PRIu32 ", max I/O %" PRIu32
               "): %s", k->name, (uint64_t) k->p.size, k->p.logical_block_size,
               k->p.nr_queues, k->p.queue_depth, k->p.max_io_bytes,
               strerror (-r));
    return r;
  }
  k->dev_id = c.dev_id;
  k->have_dev = true;
  k->created = true;
  kmod_state_write (k);
  /* As taken: the module may have lowered a limit. */
  if (c.max_io_bytes && c.max_io_bytes <= k->p.max_io_bytes)
    k->p.max_io_bytes = c.max_io_bytes;
  return open_chan (k, k->dev_id);
}

/* Delete a device an earlier attach left, which nothing serves. */
static void
delete_stale (struct kmod_dev *k, uint32_t id, const char *why)
{
  int r = kmod_ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_DEL, id, NULL);

  if (r < 0 && r != -ENODEV && r != -ENOENT)
    log_warn ("kmod: %s: deleting /dev/repvol%" PRIu32 " (%s): %s", k->name,
              id, why, strerror (-r));
  else
    log_info ("kmod: %s: deleted /dev/repvol%" PRIu32 " an earlier attach "
              "left (%s)", k->name, id, why);
}

/* If the state file names a device an earlier attach of this volume
 * left, take it over.  1 once RECOVER has taken the new channel, 0
 * when a new device is needed, a negative errno (logged) when attach
 * must not go on.
 */
static int
try_recover (struct kmod_dev *k)
{
  struct repvol_ctrl info;
  uint32_t id;
  int r, waited = 0;

  if (kmod_state_read (k, &id) < 0)
    return 0;
  if (k->recover != KMOD_RECOVER_ANY && k->recover != (int64_t) id) {
    /* The file outlived its device (deleted by repvol detach, or by
     * rmmod), and the number may now be another volume's device: only
     * the one this volume's dead attach was serving is ours to take.
     */
    log_info ("kmod: %s: %s names /dev/repvol%" PRIu32 ", which the "
              "volume's last attach was not serving when it died; not "
              "taking it over", k->name, k->state_path, id);
    unlink (k->state_path);
    return 0;
  }
  for (;; waited += KMOD_POLL_MS, kmod_sleep_ms (KMOD_POLL_MS)) {
    memset (&info, 0, sizeof info);
    r = kmod_ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_INFO, id, &info);
    if (r == -ENODEV || r == -ENOENT) {
      unlink (k->state_path);     /* gone: nothing to recover */
      return 0;
    }
    if (r < 0) {
      log_error ("kmod: %s: INFO of /dev/repvol%" PRIu32 ": %s", k->name, id,
                 strerror (-r));
      return r;
    }
    if (info.owner != k->p.owner) {
      log_warn ("kmod: %s: %s names /dev/repvol%" PRIu32 ", which belongs "
                "to another volume (owner %016" PRIx64 ", ours %016" PRIx64
                "); leaving it alone", k->name, k->state_path, id,
                (uint64_t) info.owner, (uint64_t) k->p.owner);
      unlink (k->state_path);
      return 0;
    }
    if (info.size != k->p.size ||
        info.logical_block_size != k->p.logical_block_size) {
      log_warn ("kmod: %s: %s names /dev/repvol%" PRIu32 ", which is not "
                "this volume's (%" PRIu64 " bytes, block %" PRIu32 "); "
                "leaving it alone", k->name, k->state_path, id, (uint64_t) info.size,
                info.logical_block_size);
      return 0;
    }
    if (info.state == REPVOL_STATE_ADDED || info.state == REPVOL_STATE_STOPPED) {
      /* Died before START, or while stopping: nothing holds I/O. */
      delete_stale (k, id, kmod_state_name (info.state));
      unlink (k->state_path);
      return 0;
    }
    if (info.state == REPVOL_STATE_WAITING ||
        info.state == REPVOL_STATE_FAILING)
      break;
    /* LIVE: a server holds the channel.  The one that died may still be
     * exiting; anyone else is a second attach, which the registry
     * should have refused.
     */
    if (waited >= KMOD_WAIT_MS) {
      log_error ("kmod: %s: /dev/repvol%" PRIu32 " is still served by "
                 "pid %" PRIu32 " after %d s (is another attach of this "
                 "volume running?)", k->name, id, info.server_pid,
                 KMOD_WAIT_MS / 1000);
      return -EBUSY;
    }
  }

  if ((r = open_chan (k, id)) < 0)
    return r;
  r = kmod_ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_RECOVER, id, NULL);
  if (r < 0) {
    /* Its held I/O fails; the volume gets a new device. */
    log_warn ("kmod: %s: RECOVER of /dev/repvol%" PRIu32 ": %s; deleting "
              "it and creating a new device", k->name, id, strerror (-r));
    close (k->chan_fd);
    k->chan_fd = -1;
    delete_stale (k, id, "could not recover it");
    unlink (k->state_path);
    return 0;
  }
  /* Serve it as it was made: its queues, depth and buffer size. */
  /* held counts the requests that were in flight when the old server
   * died too: the module put them back in front of the queue.
   */
  log_info ("kmod: %s: recovered /dev/repvol%" PRIu32 " (%s, %" PRIu32
            " request(s) held)", k->name, id, kmod_state_name (info.state),
            info.held + info.in_flight);
  if (info.nr_queues != k->p.nr_queues || info.queue_depth != k->p.queue_depth)
    log_info ("kmod: %s: /dev/repvol%" PRIu32 " keeps the %" PRIu32
              " queue(s) of depth %" PRIu32 " it was made with", k->name, id,
              info.nr_queues, info.queue_depth);
  k->p.nr_queues = info.nr_queues;
  k->p.queue_depth = info.queue_depth;
  k->p.max_io_bytes = info.max_io_bytes;
  k->p.features = info.features;
  k->dev_id = id;
  k->have_dev = true;
  k->recovering = true;
  return 1;
}

/* ---- frontend_ops ---- */

/* Undo a start that failed: a device we created goes away (nothing has
 * used it); one we were recovering stays for the next attempt.
 */
static void
start_failed (struct kmod_dev *k)
{
  kmod_chan_unwatch (k);
  if (k->chan_fd >= 0)
    close (k->chan_fd);
  k->chan_fd = -1;
  if (k->have_dev && k->created) {
    int r = kmod_ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_DEL, k->dev_id, NULL);
    if (r < 0)
      log_error ("kmod: %s: DEL of /dev/repvol%" PRIu32 ": %s", k->name,
                 k->dev_id, strerror (-r));
    kmod_state_remove (k);
    k->have_dev = false;
  }
}

static int
kmod_start (struct frontend *f, const char *spec)
{
  struct kmod_dev *k = calloc (1, sizeof *k);
  struct error err = { 0 };
  unsigned queues, depth;
  int r;

  if (!k) {
    log_error ("kmod: out of memory");
    return -ENOMEM;
  }
  f->priv = k;
  k->fe = f;
  k->loop = f->loop;
  k->dev = f->dev;
  k->name = f->export_name;
  k->ctrl_fd = k->chan_fd = -1;

  if ((r = kmod_parse_spec (spec, &queues, &depth, &k->recover)) < 0 ||
      (r = kmod_geometry (k, queues, depth)) < 0)
    return r;
  if ((r = kmod_ctrl_open (false, &err)) < 0) {
    log_error ("kmod: %s", error_msg (&err));
    return r;
  }
  k->ctrl_fd = r;
  if (mailbox_init (&k->mb, k->loop, on_stopped, k) == -1) {
    r = -errno;
    log_error ("kmod: %s: mailbox: %s", k->name, strerror (-r));
    return r;
  }
  k->mb_ok = true;

  /* The kernel may write back through this process's own device under
   * memory pressure; without this, reclaim in our allocations could
   * wait on that writeback, which only we can complete.
   */
  if (prctl (PR_SET_IO_FLUSHER, 1, 0, 0, 0) == -1)
    log_warn ("kmod: prctl(PR_SET_IO_FLUSHER): %s: under memory pressure, "
              "reclaim may deadlock on /dev/repvolN", strerror (errno));

  kmod_state_path (k);
  r = try_recover (k);
  if (r < 0)
    goto fail;
  if (r == 0 && (r = add_device (k)) < 0)
    goto fail;
  if ((r = kmod_slots_setup (k)) < 0 || (r = kmod_chan_watch (k)) < 0)
    goto fail;

  if (!k->recovering) {
    /* No I/O inside START: the loop serves what udev reads afterwards. */
    r = kmod_ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_START, k->dev_id, NULL);
    if (r < 0) {
      log_error ("kmod: %s: START of /dev/repvol%" PRIu32 ": %s", k->name,
                 k->dev_id, strerror (-r));
      goto fail;
    }
  }
  snprintf (f->where, sizeof f->where, "/dev/" REPVOL_DISK_PREFIX "%" PRIu32,
            k->dev_id);
  log_info ("kmod: %s: serving %s (%s; %" PRIu64 " bytes, block %" PRIu32
            ", %" PRIu32 " queue(s) of depth %" PRIu32 ", max I/O %" PRIu32
            ")", k->name, f->where, k->recovering ? "recovered" : "new",
            (uint64_t) k->p.size,
            k->p.logical_block_size, k->p.nr_queues, k->p.queue_depth,
            k->p.max_io_bytes);
  return 0;

 fail:
  start_failed (k);
  return r;
}

static void
kmod_stop (struct frontend *f, void (*stopped) (void *), void *opaque)
{
  struct kmod_dev *k = f->priv;
  int r;

  if (k->state != KMOD_LIVE)
    return;
  k->stopped = stopped;
  k->stopped_opaque = opaque;
  k->state = KMOD_STOPPING;
  log_info ("kmod: %s: stopping /dev/repvol%" PRIu32 " (%u requests in "
            "flight)", k->name, k->dev_id, k->busy);
  r = pthread_create (&k->stopper, NULL, stopper, k);
  if (r != 0) {
    /* Without a thread STOP could wait on I/O only we serve; leave the
     * device for the next attach (or repvol detach) to delete.
     */
    log_error ("kmod: %s: cannot start a thread for STOP: %s; leaving "
               "/dev/repvol%" PRIu32 " behind", k->name, strerror (r),
               k->dev_id);
    k->state = KMOD_DRAINING;
  }
  else
    k->stopper_running = true;
  kmod_kick (k);                  /* never call stopped from inside stop */
}

static int
kmod_resized (struct frontend *f, const char **when)
{
  struct kmod_dev *k = f->priv;
  struct repvol_ctrl c = { 0 };
  uint64_t size = k->dev->info.size;
  int r;

  c.arg = size - size % k->p.logical_block_size;
  r = kmod_ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_RESIZE, k->dev_id, &c);
  if (r < 0) {
    log_error ("kmod: %s: RESIZE of /dev/repvol%" PRIu32 " to %" PRIu64
               " bytes: %s", k->name, k->dev_id, (uint64_t) c.arg,
               strerror (-r));
    return r;
  }
  k->p.size = c.arg;
  *when = "now";
  return 0;
}

static void
kmod_free (struct frontend *f)
{
  struct kmod_dev *k = f->priv;

  if (!k)
    return;
  if (k->with_bdev || k->stopper_running) {
    /* The bdev still holds our slots, or the thread our fds; freeing
     * them would be a use after free later.  Leaking is the lesser evil.
     */
    log_error ("kmod: %s: freed with %u requests in flight%s; leaking",
               k->name, k->with_bdev,
               k->stopper_running ? " and STOP running" : "");
    f->priv = NULL;
    return;
  }
  loop_defer_cancel (k->loop, &k->kick);
  loop_defer_cancel (k->loop, &k->flush);
  /* Without a clean stop the device stays for the next attach: closing
   * the channel makes the module hold its I/O.
   */
  kmod_chan_unwatch (k);
  if (k->chan_fd >= 0)
    close (k->chan_fd);
  kmod_slots_free (k);
  if (k->mb_ok)
    mailbox_fini (&k->mb);
  if (k->ctrl_fd >= 0)
    close (k->ctrl_fd);
  free (k);
  f->priv = NULL;
}

const struct frontend_ops kmod_frontend_ops = {
  .name = "kmod",
  .start = kmod_start,
  .stop = kmod_stop,
  .free = kmod_free,
  .resized = kmod_resized,
};
