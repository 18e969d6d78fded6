/* kmod.c - the kmod frontend: serve a bdev as /dev/repvolN through
 * repvol's own kernel module, repvol.ko (kmod/; the contract is
 * kmod/repvol_uapi.h, its prose docs/DESIGN.md 2.12).  This file is the
 * control side: the ioctls on /dev/repvol-control, the device's life
 * (add, start, stop, delete), recovery and its state file, the frontend
 * ops, and the helpers the CLI uses (probe, stale devices); the request
 * channel is kmod_queue.c, what both share kmod_internal.h.
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

#define KMOD_CONTROL            "/dev/" REPVOL_CONTROL_NAME
#define KMOD_DEFAULT_QUEUES     1
#define KMOD_DEFAULT_DEPTH      128
#define KMOD_MAX_IO             (1u << 20)  /* per-tag buffer */
#define KMOD_WAIT_MS            10000       /* channel node, old owner's exit */
#define KMOD_POLL_MS            20

static const char *
kmod_state_name (uint32_t state)
{
  switch (state) {
  case REPVOL_STATE_ADDED: return "added";
  case REPVOL_STATE_LIVE: return "live";
  case REPVOL_STATE_WAITING: return "waiting for recovery";
  case REPVOL_STATE_FAILING: return "failing (recovery window over)";
  case REPVOL_STATE_STOPPED: return "stopped";
  }
  return "in an unknown state";
}

/* ---- control ioctls ---- */

/* One control ioctl on dev_id (c may carry ADD's or RESIZE's fields and
 * gets INFO's / ADD's answer).  0 or a negative errno.
 */
static int
ctrl_ioctl (int fd, unsigned long ioc, uint32_t dev_id, struct repvol_ctrl *c)
{
  struct repvol_ctrl tmp = { 0 };

  if (!c)
    c = &tmp;
  c->version = REPVOL_UAPI_VERSION;
  c->dev_id = dev_id;
  while (ioctl (fd, ioc, c) == -1)
    if (errno != EINTR)
      return -errno;
  return 0;
}

static int
sleep_ms (unsigned ms)
{
  return usleep (ms * 1000);
}

/* Load repvol.ko if it is not: modprobe, bounded by its own exit. */
static void
try_modprobe (void)
{
  pid_t pid = fork ();
  int st;

  if (pid == 0) {
    int null = open ("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2 (null, 1);
      dup2 (null, 2);
    }
    execlp ("modprobe", "modprobe", "-q", "repvol", (char *) NULL);
    _exit (127);
  }
  if (pid > 0)
    while (waitpid (pid, &st, 0) == -1 && errno == EINTR)
      ;
}

/* Open /dev/repvol-control (loading the module first if modprobe can).
 * The fd, or a negative errno with what is missing in err.
 */
static int
ctrl_open (bool modprobe, struct error *err)
{
  struct stat st;
  int fd;

  if (stat (KMOD_CONTROL, &st) == -1 && errno == ENOENT && modprobe &&
      geteuid () == 0) {
    try_modprobe ();
    /* devtmpfs has the node once misc_register returned. */
  }
  if (stat (KMOD_CONTROL, &st) == -1) {
    if (errno == ENOENT)
      return error_set (err, ENOENT, "repvol.ko is not loaded (no %s: "
                        "modprobe repvol / insmod kmod/repvol.ko)",
                        KMOD_CONTROL);
    return error_set (err, errno, "%s: %s", KMOD_CONTROL, strerror (errno));
  }
  if (geteuid () != 0)
    return error_set (err, EPERM, "not root (%s is root only)", KMOD_CONTROL);
  fd = open (KMOD_CONTROL, O_RDWR | O_CLOEXEC);
  if (fd == -1)
    return error_set (err, errno, "cannot open %s: %s", KMOD_CONTROL,
                      strerror (errno));
  return fd;
}

int
kmod_probe (struct error *err)
{
  int fd = ctrl_open (true, err);

  if (fd < 0)
    return fd;
  close (fd);
  return 0;
}

/* ---- the state file: which device serves this volume ---- */

static void
state_path (struct kmod_dev *k)
{
  int err = 0;
  const char *dir = run_dir (&err);

  if (err < 0)
    log_warn ("kmod: %s: %s: %s; a crashed attach will not be recovered",
              k->name, dir, strerror (-err));
  snprintf (k->state_path, sizeof k->state_path, "%s/%s.kmod", dir, k->name);
}

/* The device id the state file names: 0, or a negative errno
 * (-ENOENT: there is none).
 */
static int
state_read (struct kmod_dev *k, uint32_t *dev_id)
{
  char buf[32] = "";
  uint64_t id;
  int fd = open (k->state_path, O_RDONLY | O_CLOEXEC);
  ssize_t n;

  if (fd == -1)
    return -errno;
  n = read (fd, buf, sizeof buf - 1);
  if (n == -1)
    n = -errno;
  close (fd);
  if (n <= 0)
    return n < 0 ? (int) n : -ENODATA;
  buf[strcspn (buf, "\n")] = '\0';
  if (parse_uint (buf, 0, REPVOL_MAX_DEVICES - 1, &id) < 0) {
    log_warn ("kmod: %s: ignoring %s: not a device id", k->name,
              k->state_path);
    return -EINVAL;
  }
  *dev_id = id;
  return 0;
}

/* Written before the disk appears, so that a crash at any later point
 * leaves a name the next attach can recover or clean up.
 */
static void
state_write (struct kmod_dev *k)
{
  char tmp[sizeof k->state_path + 8], buf[32];
  int n, r;

  snprintf (tmp, sizeof tmp, "%s.tmp", k->state_path);
  n = snprintf (buf, sizeof buf, "%" PRIu32 "\n", k->dev_id);
  r = atomic_replace (AT_FDCWD, k->state_path, tmp, buf, n, 0600);
  if (r < 0)
    log_warn ("kmod: %s: cannot write %s: %s; a crashed attach will not "
              "be recovered", k->name, k->state_path, strerror (-r));
}

static void
state_remove (struct kmod_dev *k)
{
  uint32_t id;

  /* Only if it still names our device. */
  if (state_read (k, &id) == 0 && id == k->dev_id)
    unlink (k->state_path);
}

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

  s = ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_STOP, k->dev_id, NULL);
  d = ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_DEL, k->dev_id, NULL);
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
    state_remove (k);
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
    if (strncmp (tok, "queues=", 7) == 0 &&
        parse_uint (tok + 7, 1, REPVOL_MAX_QUEUES, &v) == 0)
      *queues = v;
    else if (strncmp (tok, "depth=", 6) == 0 &&
             parse_uint (tok + 6, 1, REPVOL_MAX_DEPTH, &v) == 0)
      *depth = v;
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
    sleep_ms (KMOD_POLL_MS);
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
  int r = ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_ADD, REPVOL_DEV_ANY, &c);

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
  state_write (k);
  /* As taken: the module may have lowered a limit. */
  if (c.max_io_bytes && c.max_io_bytes <= k->p.max_io_bytes)
    k->p.max_io_bytes = c.max_io_bytes;
  return open_chan (k, k->dev_id);
}

/* Delete a device an earlier attach left, which nothing serves. */
static void
delete_stale (struct kmod_dev *k, uint32_t id, const char *why)
{
  int r = ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_DEL, id, NULL);

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

  if (state_read (k, &id) < 0)
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
  for (;; waited += KMOD_POLL_MS, sleep_ms (KMOD_POLL_MS)) {
    memset (&info, 0, sizeof info);
    r = ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_INFO, id, &info);
    if (r == -ENODEV || r == -ENOENT) {
      unlink (k->state_path);     /* gone: nothing to recover */
      return 0;
    }
    if (r < 0) {
      log_error ("kmod: %s: INFO of /dev/repvol%" PRIu32 ": %s", k->name, id,
                 strerror (-r));
      return r;
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
                 "another process after %d s (is another attach of this "
                 "volume running?)", k->name, id, KMOD_WAIT_MS / 1000);
      return -EBUSY;
    }
  }

  if ((r = open_chan (k, id)) < 0)
    return r;
  r = ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_RECOVER, id, NULL);
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
    int r = ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_DEL, k->dev_id, NULL);
    if (r < 0)
      log_error ("kmod: %s: DEL of /dev/repvol%" PRIu32 ": %s", k->name,
                 k->dev_id, strerror (-r));
    state_remove (k);
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
  if ((r = ctrl_open (false, &err)) < 0) {
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

  state_path (k);
  r = try_recover (k);
  if (r < 0)
    goto fail;
  if (r == 0 && (r = add_device (k)) < 0)
    goto fail;
  if ((r = kmod_slots_setup (k)) < 0 || (r = kmod_chan_watch (k)) < 0)
    goto fail;

  if (!k->recovering) {
    /* No I/O inside START: the loop serves what udev reads afterwards. */
    r = ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_START, k->dev_id, NULL);
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
  r = ctrl_ioctl (k->ctrl_fd, REPVOL_IOC_RESIZE, k->dev_id, &c);
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

/* ---- for the CLI: a device a dead attach left ---- */

int
kmod_release_stale (const char *dev, const char *vol, long pid,
                    struct error *err)
{
  struct repvol_ctrl info = { 0 };
  uint64_t id;
  int fd, r;

  if (strncmp (dev, "/dev/" REPVOL_DISK_PREFIX, 11) != 0 ||
      parse_uint (dev + 11, 0, REPVOL_MAX_DEVICES - 1, &id) < 0)
    return error_set (err, EINVAL, "not a repvol.ko device");
  if (pid_alive (pid))
    return 0;                     /* its server lives: not stale */
  if ((fd = ctrl_open (false, err)) < 0)
    return fd == -ENOENT ? 0 : fd;  /* no module: no device */
  r = ctrl_ioctl (fd, REPVOL_IOC_INFO, id, &info);
  if (r == -ENODEV || r == -ENOENT) {
    close (fd);
    return 0;
  }
  if (r < 0) {
    close (fd);
    return error_set (err, -r, "INFO: %s", strerror (-r));
  }
  if (info.state == REPVOL_STATE_LIVE) {
    close (fd);
    return 0;                     /* someone else serves it now */
  }
  /* Nobody holds the channel: DEL fails what it holds and waits on no
   * one.
   */
  r = ctrl_ioctl (fd, REPVOL_IOC_DEL, id, NULL);
  close (fd);
  if (r < 0 && r != -ENODEV && r != -ENOENT)
    return error_set (err, -r, "DEL (it was %s): %s",
                      kmod_state_name (info.state), strerror (-r));
  if (vol) {
    /* Its number is free now, and may be another volume's next: the
     * state file must not name it any more.
     */
    struct kmod_dev k = { .name = vol };
    uint32_t named;
    state_path (&k);
    if (state_read (&k, &named) == 0 && named == id)
      unlink (k.state_path);
  }
  return r < 0 ? 0 : 1;
}
