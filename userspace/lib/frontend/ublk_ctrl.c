/* ublk_ctrl.c - the ublk frontend: serve a bdev as /dev/ublkbN through
 * the kernel's ublk_drv (Linux 6.0+), driven by io_uring passthrough
 * commands (liburing).  This file is the control side: the commands on
 * /dev/ublk-control, the device's life (add, start, stop, delete),
 * user recovery and its state file, and the frontend ops; the I/O
 * queues are ublk_queue.c, what both share ublk_internal.h.
 *
 * Control commands (ADD_DEV, SET_PARAMS, START_DEV, ...) go through
 * /dev/ublk-control on a ring of 128-byte SQEs.  Each hardware queue
 * has its own ring on /dev/ublkcN (ublk_queue.c).
 *
 * Everything runs on the event loop thread: the kernel wants each
 * queue's commands issued by one task, and one task may serve every
 * queue.  All rings signal one eventfd that the loop watches.  Commands
 * that wait on I/O (START_DEV, END_USER_RECOVERY, STOP_DEV, DEL_DEV) are
 * never waited for: the kernel runs them on io_uring workers while we
 * go on serving the requests they wait for (START_DEV reads the
 * partition table, STOP_DEV waits for requests in flight).
 *
 * User recovery: the device is created with UBLK_F_USER_RECOVERY (and
 * _REISSUE) where the kernel offers them, so when this process dies
 * the kernel holds the device's I/O (state QUIESCED) instead of failing
 * it, and requeues what we had in hand.  A state file, RUN_DIR/VOL.ublk,
 * names the device; the next attach of the volume finds it there and
 * takes the device over (START_USER_RECOVERY, a FETCH_REQ on every tag,
 * END_USER_RECOVERY) without the filesystem seeing an error.  A clean
 * stop deletes the device and the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <liburing.h>

#include "core/util.h"
#include "core/fsutil.h"
#include "core/loop.h"
#include "core/bdev.h"
#include "frontend/frontend.h"
#include "frontend/ublk_internal.h"

#define UBLK_CONTROL            "/dev/ublk-control"
#define UBLK_MAX_DISCARD        (64u << 20) /* one discard / write-zeroes; split
                                               into the bdev's max_io below */
#define UBLK_DEL_WARN_MS        5000        /* then say who holds up DEL_DEV */

/* user_data of control commands: what to do when they complete.  The
 * synchronous ones (only during start) carry a sequence number instead.
 */
enum {
  CTRL_START = 1,               /* START_DEV */
  CTRL_END_RECOVERY,            /* END_USER_RECOVERY */
  CTRL_STOP,                    /* STOP_DEV */
  CTRL_DEL,                     /* DEL_DEV of our device */
  CTRL_DEL_STALE,               /* DEL_DEV of one an earlier attach left */
};
#define CTRL_SYNC               (1ull << 63)

static void begin_stop (struct ublk_dev *u);

/* ---- control commands ---- */

static const char *
ctrl_name (unsigned op)
{
  switch (_IOC_NR (op)) {
  case UBLK_CMD_GET_DEV_INFO: return "GET_DEV_INFO";
  case UBLK_CMD_ADD_DEV: return "ADD_DEV";
  case UBLK_CMD_DEL_DEV: return "DEL_DEV";
  case UBLK_CMD_START_DEV: return "START_DEV";
  case UBLK_CMD_STOP_DEV: return "STOP_DEV";
  case UBLK_CMD_SET_PARAMS: return "SET_PARAMS";
  case UBLK_CMD_GET_PARAMS: return "GET_PARAMS";
  case UBLK_CMD_START_USER_RECOVERY: return "START_USER_RECOVERY";
  case UBLK_CMD_END_USER_RECOVERY: return "END_USER_RECOVERY";
  case 0x13: return "GET_FEATURES";
  }
  return "ublk command";
}

/* One line for a failed control command; an unknown command means the
 * kernel is older than the feature.
 */
static void
ctrl_error (struct ublk_dev *u, unsigned op, int res)
{
  if (res == -EOPNOTSUPP)
    log_error ("ublk: %s: %s: %s (kernel too old for this command?)",
               u->name, ctrl_name (op), strerror (-res));
  else
    log_error ("ublk: %s: %s: %s", u->name, ctrl_name (op), strerror (-res));
}

/* Queue a control command and submit it.  0 or a negative errno. */
static int
ctrl_submit (struct ublk_dev *u, unsigned op, uint32_t dev_id, void *buf,
             unsigned len, uint64_t data0, uint64_t user_data)
{
  struct io_uring_sqe *sqe = io_uring_get_sqe (&u->ctrl);
  struct ublksrv_ctrl_cmd *c;
  int r;

  if (!sqe) {
    io_uring_submit (&u->ctrl);
    if (!(sqe = io_uring_get_sqe (&u->ctrl)))
      return -EBUSY;
  }
  memset (sqe, 0, 2 * sizeof *sqe);       /* a 128-byte SQE */
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = u->ctrl_fd;
  sqe->cmd_op = u->legacy ? _IOC_NR (op) : op;
  sqe->user_data = user_data;
  c = (struct ublksrv_ctrl_cmd *) sqe->cmd;
  c->dev_id = dev_id;
  c->queue_id = (uint16_t) -1;
  c->addr = (uintptr_t) buf;
  c->len = len;
  c->data[0] = data0;
  do
    r = io_uring_submit (&u->ctrl);
  while (r == -EINTR);
  return r < 0 ? r : 0;
}

static void ctrl_done (struct ublk_dev *u, uint64_t what, int res);

/* Run a control command that does not wait on I/O and return its
 * result (0 or -errno).  Only from start, before the loop serves us.
 */
static int
ctrl_sync (struct ublk_dev *u, unsigned op, uint32_t dev_id, void *buf,
           unsigned len, uint64_t data0)
{
  uint64_t ud = CTRL_SYNC | ++u->ctrl_seq;
  struct io_uring_cqe *cqe;
  int r = ctrl_submit (u, op, dev_id, buf, len, data0, ud);

  if (r < 0)
    return r;
  for (;;) {
    r = io_uring_wait_cqe (&u->ctrl, &cqe);
    if (r == -EINTR)
      continue;
    if (r < 0)
      return r;
    uint64_t got = cqe->user_data;
    int res = cqe->res;
    io_uring_cqe_seen (&u->ctrl, cqe);
    if (got == ud)
      return res;
    ctrl_done (u, got, res);      /* an earlier asynchronous command */
  }
}

/* Start a control command whose completion ctrl_done handles. */
static void
ctrl_async (struct ublk_dev *u, unsigned op, uint64_t what, uint64_t data0)
{
  int r = ctrl_submit (u, op, u->dev_id, NULL, 0, data0, what);

  if (r < 0) {
    log_error ("ublk: %s: cannot submit %s: %s", u->name, ctrl_name (op),
               strerror (-r));
    ctrl_done (u, what, r);
  }
}

/* Open /dev/ublk-control and a ring that can carry its commands.  0,
 * or a negative errno with what is missing in err.
 */
static int
ctrl_open (int *fdp, struct io_uring *ring, struct error *err)
{
  struct stat st;
  int fd, r;

  if (stat (UBLK_CONTROL, &st) == -1) {
    if (errno == ENOENT)
      return error_set (err, ENOENT, "no %s (load ublk_drv: modprobe "
                        "ublk_drv; needs Linux 6.0+)", UBLK_CONTROL);
    return error_set (err, errno, "%s: %s", UBLK_CONTROL, strerror (errno));
  }
  if (geteuid () != 0)
    return error_set (err, EPERM,
                      "not root (ublk devices need CAP_SYS_ADMIN)");
  fd = open (UBLK_CONTROL, O_RDWR | O_CLOEXEC);
  if (fd == -1)
    return error_set (err, errno, "cannot open %s: %s", UBLK_CONTROL,
                      strerror (errno));
  r = io_uring_queue_init (8, ring, IORING_SETUP_SQE128);
  if (r < 0) {
    close (fd);
    if (r == -EINVAL)
      return error_set (err, -r, "kernel too old: io_uring has no 128-byte "
                        "SQEs (ublk needs Linux 6.0+)");
    if (r == -ENOSYS)
      return error_set (err, -r, "kernel too old: no io_uring");
    if (r == -EPERM)
      return error_set (err, -r, "io_uring is disabled (sysctl "
                        "kernel.io_uring_disabled)");
    return error_set (err, -r, "io_uring_queue_init: %s", strerror (-r));
  }
  *fdp = fd;
  return 0;
}

int
ublk_probe (struct error *err)
{
  struct io_uring ring;
  int fd, r;

  r = ctrl_open (&fd, &ring, err);
  if (r < 0)
    return r;
  io_uring_queue_exit (&ring);
  close (fd);
  return 0;
}

/* ---- the state file: which device serves this volume ---- */

static void
state_path (struct ublk_dev *u)
{
  int err = 0;
  const char *dir = run_dir (&err);

  if (err < 0)
    log_warn ("ublk: %s: %s: %s; a crashed attach will not be recovered",
              u->name, dir, strerror (-err));
  snprintf (u->state_path, sizeof u->state_path, "%s/%s.ublk", dir, u->name);
}

/* The device id the state file names: 0, or a negative errno
 * (-ENOENT: there is none).
 */
static int
state_read (struct ublk_dev *u, uint32_t *dev_id)
{
  char buf[32] = "";
  uint64_t id;
  int n = read_small_file (u->state_path, buf, sizeof buf);

  if (n < 0)
    return n;
  buf[strcspn (buf, "\n")] = '\0';
  if (parse_uint (buf, 0, UINT32_MAX - 1, &id) < 0) {
    log_warn ("ublk: %s: ignoring %s: not a device id", u->name,
              u->state_path);
    return -EINVAL;
  }
  *dev_id = id;
  return 0;
}

/* Written before the device can serve, so that a crash at any later
 * point leaves a name the next attach can recover or clean up.
 */
static void
state_write (struct ublk_dev *u)
{
  char tmp[sizeof u->state_path + 8], buf[32];
  int n, r;

  snprintf (tmp, sizeof tmp, "%s.tmp", u->state_path);
  n = snprintf (buf, sizeof buf, "%" PRIu32 "\n", u->dev_id);
  r = atomic_replace (AT_FDCWD, u->state_path, tmp, buf, n, 0600);
  if (r < 0)
    log_warn ("ublk: %s: cannot write %s: %s; a crashed attach will not "
              "be recovered", u->name, u->state_path, strerror (-r));
}

static void
state_remove (struct ublk_dev *u)
{
  uint32_t id;

  /* Only if it still names our device. */
  if (state_read (u, &id) == 0 && id == u->dev_id)
    unlink (u->state_path);
}

/* ---- the device's life: deferred work, completions, stop ---- */

static void
del_slow (struct loop_timer *t)
{
  struct ublk_dev *u = t->opaque;

  if (u->state == UBLK_DELETING)
    log_warn ("ublk: %s: deleting /dev/ublkb%" PRIu32 " waits until nothing "
              "holds it: is it still mounted or open?", u->name, u->dev_id);
}

static void
on_kick (struct loop_defer *d)
{
  struct ublk_dev *u = d->opaque;

  ublk_queues_submit (u);

  /* STOP_DEV has returned: the kernel has taken every request back, so
   * once the bdev has finished ours the queues can go, then the device.
   */
  if (u->state == UBLK_STOPPING && u->stop_dev_done && u->busy == 0) {
    ublk_queues_free (u);
    u->state = UBLK_DELETING;
    loop_timer_arm (u->loop, &u->del_timer, UBLK_DEL_WARN_MS, del_slow, u);
    ctrl_async (u, UBLK_U_CMD_DEL_DEV, CTRL_DEL, 0);
  }

  if (u->state == UBLK_DONE && u->stopped && !u->kick.queued) {
    void (*cb) (void *) = u->stopped;
    u->stopped = NULL;
    cb (u->stopped_opaque);       /* may free u: touch nothing after */
  }
}

/* Not before start has put us on the loop: a start that fails must
 * leave nothing of ours queued there.
 */
void
ublk_kick (struct ublk_dev *u)
{
  if (u->watching)
    loop_defer (u->loop, &u->kick, on_kick, u);
}

static void
ctrl_done (struct ublk_dev *u, uint64_t what, int res)
{
  switch (what) {
  case CTRL_START:
  case CTRL_END_RECOVERY:
    if (res < 0) {
      ctrl_error (u, what == CTRL_START ? UBLK_U_CMD_START_DEV
                  : UBLK_U_CMD_END_USER_RECOVERY, res);
      /* Nothing to serve: have the attach detach, which deletes it. */
      log_error ("ublk: %s: /dev/ublkb%" PRIu32 " did not start; detaching",
                 u->name, u->dev_id);
      u->state = UBLK_LIVE;
      if (!u->stop_wanted)
        kill (getpid (), SIGTERM);
    }
    else {
      u->state = UBLK_LIVE;
      log_info ("ublk: %s: /dev/ublkb%" PRIu32 " is %s (%u queue%s, depth "
                "%u, max I/O %" PRIu32 ", %s write cache, user recovery %s)",
                u->name, u->dev_id, u->recovering ? "recovered" : "live",
                u->nr_queues, u->nr_queues == 1 ? "" : "s", u->depth,
                u->max_io, u->volatile_cache ? "volatile" : "no",
                !(u->info.flags & UBLK_F_USER_RECOVERY) ? "off"
                : u->info.flags & UBLK_F_USER_RECOVERY_REISSUE
                ? "on (reissue)" : "on");
    }
    if (u->stop_wanted)
      begin_stop (u);
    break;
  case CTRL_STOP:
    if (res < 0)
      ctrl_error (u, UBLK_U_CMD_STOP_DEV, res);
    u->stop_dev_done = true;
    break;
  case CTRL_DEL:
    if (res < 0)
      ctrl_error (u, UBLK_U_CMD_DEL_DEV, res);
    else
      log_info ("ublk: %s: /dev/ublkb%" PRIu32 " deleted", u->name,
                u->dev_id);
    loop_timer_cancel (u->loop, &u->del_timer);
    state_remove (u);
    u->have_dev = false;
    u->state = UBLK_DONE;
    break;
  case CTRL_DEL_STALE:
    if (res < 0 && res != -ENODEV)
      log_warn ("ublk: %s: deleting the device an earlier attach left: %s",
                u->name, strerror (-res));
    break;
  default:
    if (!(what & CTRL_SYNC))
      log_warn ("ublk: %s: unexpected control completion %" PRIu64,
                u->name, what);
  }
  ublk_kick (u);
}

static void
ctrl_reap (struct ublk_dev *u)
{
  struct io_uring_cqe *cqe;

  while (io_uring_peek_cqe (&u->ctrl, &cqe) == 0) {
    uint64_t what = cqe->user_data;
    int res = cqe->res;
    io_uring_cqe_seen (&u->ctrl, cqe);
    ctrl_done (u, what, res);
  }
}

static void
on_event (struct loop_watch *w, uint32_t revents)
{
  struct ublk_dev *u = w->opaque;
  uint64_t n;

  /* Read first: a completion posted after this signals again. */
  if (read (u->efd, &n, sizeof n) == -1 && errno != EAGAIN)
    log_warn ("ublk: %s: eventfd: %s", u->name, strerror (errno));
  ctrl_reap (u);
  ublk_queues_reap (u);
  ublk_kick (u);
}

static void
begin_stop (struct ublk_dev *u)
{
  if (u->state != UBLK_LIVE)
    return;                       /* STARTING: once it has completed */
  u->state = UBLK_STOPPING;
  /* STOP_DEV waits for the requests in flight, which we keep serving,
   * then removes /dev/ublkbN and aborts our fetches.
   */
  ctrl_async (u, UBLK_U_CMD_STOP_DEV, CTRL_STOP, 0);
}

/* ---- start: a new device, or the one a dead attach left ---- */

static int
shift_of (uint32_t x)
{
  return __builtin_ctz (x);
}

/* A new device of queues x depth for u, with its parameters set.  0 or
 * a negative errno, after logging why.
 */
static int
add_device (struct ublk_dev *u, unsigned queues, unsigned depth)
{
  struct ublksrv_ctrl_dev_info info = {
    .nr_hw_queues = queues,
    .queue_depth = depth,
    .max_io_buf_bytes = u->max_io,
    .dev_id = (uint32_t) -1,
  };
  struct ublk_params p = { .len = sizeof p };
  int r;

  /* Recovery where the kernel offers it; with features unknown (before
   * GET_FEATURES existed) ask anyway: ADD_DEV drops what it lacks.
   */
  info.flags = UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE;
  if (u->features)
    info.flags &= u->features;
  if (!u->legacy)
    info.flags |= UBLK_F_CMD_IOCTL_ENCODE;

  r = ctrl_sync (u, UBLK_U_CMD_ADD_DEV, (uint32_t) -1, &info, sizeof info, 0);
  if (r < 0) {
    ctrl_error (u, UBLK_U_CMD_ADD_DEV, r);
    return r;
  }
  u->info = info;
  u->dev_id = info.dev_id;
  u->have_dev = true;
  u->created = true;
  state_write (u);
  if (info.max_io_buf_bytes < u->max_io)
    u->max_io = info.max_io_buf_bytes;  /* the kernel rounds it down */
  if (!(info.flags & UBLK_F_USER_RECOVERY))
    log_warn ("ublk: %s: this kernel has no ublk user recovery: if the "
              "attach dies, /dev/ublkb%" PRIu32 " fails its I/O", u->name,
              u->dev_id);

  p.types = UBLK_PARAM_TYPE_BASIC | UBLK_PARAM_TYPE_DISCARD;
  /* Only a volatile cache needs FLUSH and FUA from the kernel. */
  if (u->volatile_cache)
    p.basic.attrs = UBLK_ATTR_VOLATILE_CACHE | UBLK_ATTR_FUA;
  p.basic.logical_bs_shift = shift_of (u->block_size);
  p.basic.physical_bs_shift = MAX (shift_of (u->block_size), 12);
  p.basic.io_min_shift = shift_of (u->block_size);
  p.basic.io_opt_shift = MAX (shift_of (u->block_size), 12);
  p.basic.max_sectors = u->max_io >> 9;
  p.basic.dev_sectors = u->dev_sectors;
  p.discard.discard_granularity = u->block_size;
  p.discard.max_discard_sectors = UBLK_MAX_DISCARD >> 9;
  p.discard.max_write_zeroes_sectors = UBLK_MAX_DISCARD >> 9;
  p.discard.max_discard_segments = 1;
  r = ctrl_sync (u, UBLK_U_CMD_SET_PARAMS, u->dev_id, &p, sizeof p, 0);
  if (r < 0) {
    ctrl_error (u, UBLK_U_CMD_SET_PARAMS, r);
    return r;
  }
  return 0;
}

/* Delete a device an earlier attach left behind, without waiting:
 * DEL_DEV waits for whoever still holds it open.
 */
static void
delete_stale (struct ublk_dev *u, uint32_t id)
{
  int r = ctrl_submit (u, UBLK_U_CMD_DEL_DEV, id, NULL, 0, 0, CTRL_DEL_STALE);

  if (r < 0)
    log_warn ("ublk: %s: cannot delete /dev/ublkb%" PRIu32 ": %s", u->name,
              id, strerror (-r));
}

/* If the state file names a device an earlier attach of this volume
 * left, take it over.  Returns 1 after START_USER_RECOVERY, 0 when a
 * new device is needed, a negative errno (logged) when attach must not
 * go on.
 */
static int
try_recover (struct ublk_dev *u)
{
  struct ublksrv_ctrl_dev_info info;
  struct ublk_params p = { .len = sizeof p };
  uint32_t id;
  int r, waited = 0;

  if (state_read (u, &id) < 0)
    return 0;
  for (;; waited += UBLK_POLL_MS, ublk_sleep_ms (UBLK_POLL_MS)) {
    memset (&info, 0, sizeof info);
    r = ctrl_sync (u, UBLK_U_CMD_GET_DEV_INFO, id, &info, sizeof info, 0);
    if (r == -ENODEV) {
      unlink (u->state_path);     /* gone: nothing to recover */
      return 0;
    }
    if (r < 0) {
      ctrl_error (u, UBLK_U_CMD_GET_DEV_INFO, r);
      return r;
    }
    if (waited == 0) {
      r = ctrl_sync (u, UBLK_U_CMD_GET_PARAMS, id, &p, sizeof p, 0);
      if (r < 0 || p.basic.dev_sectors != u->dev_sectors ||
          p.basic.logical_bs_shift != shift_of (u->block_size)) {
        log_warn ("ublk: %s: %s names /dev/ublkb%" PRIu32 ", which is not "
                  "this volume's; leaving it alone", u->name, u->state_path,
                  id);
        return 0;
      }
    }

    if (info.state == UBLK_S_DEV_DEAD) {
      log_info ("ublk: %s: deleting the stopped /dev/ublkb%" PRIu32 " an "
                "earlier attach left", u->name, id);
      delete_stale (u, id);
      unlink (u->state_path);
      return 0;
    }
    if (info.state == UBLK_S_DEV_LIVE && pid_alive (info.ublksrv_pid)) {
      log_error ("ublk: %s: /dev/ublkb%" PRIu32 " already serves this volume "
                 "(pid %d); detach that first", u->name, id,
                 (int) info.ublksrv_pid);
      return -EBUSY;
    }
    if (info.state == UBLK_S_DEV_QUIESCED) {
      r = ctrl_sync (u, UBLK_U_CMD_START_USER_RECOVERY, id, NULL, 0, 0);
      if (r == 0)
        break;
      if (r != -EBUSY) {
        /* Unrecoverable (a recovery that itself died half way): its
         * held I/O fails, and the volume gets a new device.
         */
        ctrl_error (u, UBLK_U_CMD_START_USER_RECOVERY, r);
        log_warn ("ublk: %s: cannot recover /dev/ublkb%" PRIu32 "; "
                  "removing it and creating a new device", u->name, id);
        ctrl_sync (u, UBLK_U_CMD_STOP_DEV, id, NULL, 0, 0);
        delete_stale (u, id);
        unlink (u->state_path);
        return 0;
      }
    }
    /* LIVE with its server gone, or QUIESCED with /dev/ublkcN still
     * open: the old server is still exiting.
     */
    if (waited >= UBLK_WAIT_MS) {
      log_error ("ublk: %s: /dev/ublkb%" PRIu32 " is still held by its "
                 "former server (pid %d) after %d s; try again", u->name, id,
                 (int) info.ublksrv_pid, UBLK_WAIT_MS / 1000);
      return -EBUSY;
    }
  }

  /* Serve it as it was set up: its queues, depth and buffer size. */
  u->info = info;
  u->dev_id = id;
  u->have_dev = true;
  u->recovering = true;
  u->max_io = MIN ((uint64_t) info.max_io_buf_bytes,
                   (uint64_t) p.basic.max_sectors << 9);
  u->volatile_cache = !!(p.basic.attrs & UBLK_ATTR_VOLATILE_CACHE);
  if (u->volatile_cache != u->dev->info.volatile_cache)
    log_warn ("ublk: %s: /dev/ublkb%" PRIu32 " advertises %s write cache; "
              "the volume now has %s", u->name, id,
              u->volatile_cache ? "a volatile" : "no",
              u->dev->info.volatile_cache ? "one" : "none");
  log_info ("ublk: %s: recovering /dev/ublkb%" PRIu32 " from the attach "
            "that died (pid %d)", u->name, id, (int) info.ublksrv_pid);
  return 1;
}

/* ---- frontend_ops ---- */

/* Undo a start that failed: a device we created goes away (nothing
 * has used it); one we were recovering is left for the next attempt.
 */
static void
start_failed (struct ublk_dev *u)
{
  if (u->watching) {
    loop_del (u->loop, &u->ewatch);
    u->watching = false;
  }
  ublk_queues_free (u);
  if (u->have_dev && u->created) {
    int r = ctrl_sync (u, UBLK_U_CMD_DEL_DEV, u->dev_id, NULL, 0, 0);
    if (r < 0)
      ctrl_error (u, UBLK_U_CMD_DEL_DEV, r);
    state_remove (u);
    u->have_dev = false;
  }
}

static int
ublk_start (struct frontend *f, const char *spec)
{
  struct ublk_dev *u = calloc (1, sizeof *u);
  struct error err = { 0 };
  unsigned queues, depth;
  uint64_t features = 0;
  int r;

  if (!u) {
    log_error ("ublk: out of memory");
    return -ENOMEM;
  }
  f->priv = u;
  u->fe = f;
  u->loop = f->loop;
  u->dev = f->dev;
  u->name = f->export_name;
  u->ctrl_fd = u->cdev_fd = u->efd = -1;

  if ((r = ublk_parse_spec (spec, &queues, &depth)) < 0 ||
      (r = ublk_geometry (u)) < 0)
    return r;
  r = ctrl_open (&u->ctrl_fd, &u->ctrl, &err);
  if (r < 0) {
    log_error ("ublk: %s", error_msg (&err));
    return r;
  }
  u->ctrl_ok = true;
  u->efd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (u->efd == -1) {
    r = -errno;
    log_error ("ublk: eventfd: %s", strerror (-r));
    return r;
  }
  r = io_uring_register_eventfd (&u->ctrl, u->efd);
  if (r < 0) {
    log_error ("ublk: io_uring_register_eventfd: %s", strerror (-r));
    return r;
  }

  /* GET_FEATURES (6.5+) answers only to the ioctl encoding; a kernel
   * without it may predate that encoding too, so use the legacy one.
   */
  r = ctrl_sync (u, UBLK_U_CMD_GET_FEATURES, (uint32_t) -1, &features,
                 sizeof features, 0);
  if (r == 0)
    u->features = features;
  else
    u->legacy = true;

  state_path (u);
  r = try_recover (u);
  if (r < 0)
    goto fail;
  if (r == 0 && (r = add_device (u, queues, depth)) < 0)
    goto fail;
  if (u->recovering &&
      (u->info.nr_hw_queues != queues || u->info.queue_depth != depth))
    log_info ("ublk: %s: /dev/ublkb%" PRIu32 " keeps the %u queue(s) of "
              "depth %u it was made with", u->name, u->dev_id,
              u->info.nr_hw_queues, u->info.queue_depth);
  r = ublk_queues_setup (u);
  if (r < 0)
    goto fail;
  if (loop_add (u->loop, &u->ewatch, u->efd, EPOLLIN, on_event, u) == -1) {
    r = -errno;
    log_error ("ublk: %s: cannot watch the eventfd: %s", u->name,
               strerror (-r));
    goto fail;
  }
  u->watching = true;

  /* Both wait until every tag has fetched, and START_DEV then reads the
   * partition table through us: their completions arrive on the loop.
   */
  u->state = UBLK_STARTING;
  if (u->recovering)
    ctrl_async (u, UBLK_U_CMD_END_USER_RECOVERY, CTRL_END_RECOVERY, getpid ());
  else
    ctrl_async (u, UBLK_U_CMD_START_DEV, CTRL_START, getpid ());
  snprintf (f->where, sizeof f->where, "/dev/ublkb%" PRIu32, u->dev_id);
  log_info ("ublk: %s: %s /dev/ublkb%" PRIu32 " (%" PRIu64 " bytes, block %"
            PRIu32 ")", u->name, u->recovering ? "taking over" : "starting",
            u->dev_id, u->dev_sectors << 9, u->block_size);
  return 0;

 fail:
  start_failed (u);
  return r;
}

static void
ublk_stop (struct frontend *f, void (*stopped) (void *), void *opaque)
{
  struct ublk_dev *u = f->priv;

  if (u->stop_wanted)
    return;
  u->stop_wanted = true;
  u->stopped = stopped;
  u->stopped_opaque = opaque;
  log_info ("ublk: %s: stopping /dev/ublkb%" PRIu32 " (%u requests in "
            "flight)", u->name, u->dev_id, u->busy);
  begin_stop (u);
  ublk_kick (u);                  /* never call stopped from inside stop */
}

static void
ublk_free (struct frontend *f)
{
  struct ublk_dev *u = f->priv;

  if (!u)
    return;
  if (u->busy || u->kick.queued) {
    /* The bdev still holds our tags; freeing them would be a use
     * after free later.  Leaking is the lesser evil.
     */
    log_error ("ublk: %s: freed with %u requests in flight; leaking",
               u->name, u->busy);
    f->priv = NULL;
    return;
  }
  if (u->watching)
    loop_del (u->loop, &u->ewatch);
  loop_timer_cancel (u->loop, &u->del_timer);
  /* Without a clean stop the device stays for the next attach. */
  ublk_queues_free (u);
  if (u->ctrl_ok)
    io_uring_queue_exit (&u->ctrl);
  if (u->ctrl_fd >= 0)
    close (u->ctrl_fd);
  if (u->efd >= 0)
    close (u->efd);
  free (u);
  f->priv = NULL;
}

const struct frontend_ops ublk_frontend_ops = {
  .name = "ublk",
  .start = ublk_start,
  .stop = ublk_stop,
  .free = ublk_free,
};
