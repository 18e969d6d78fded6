/* ublk.c - the ublk frontend: serve a bdev as /dev/ublkbN through the
 * kernel's ublk_drv (Linux 6.0+), driven by io_uring passthrough
 * commands (liburing).
 *
 * Control commands (ADD_DEV, SET_PARAMS, START_DEV, ...) go through
 * /dev/ublk-control on a ring of 128-byte SQEs.  Each hardware queue has
 * its own ring on /dev/ublkcN holding one FETCH_REQ per tag; when the
 * kernel has a request for a tag it completes that command, we read the
 * request's descriptor from the queue's mmapped array, serve it through
 * the bdev into the tag's own buffer (the kernel copies data to and from
 * the address we gave with the command), and answer with
 * COMMIT_AND_FETCH_REQ, which also waits for the tag's next request.
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <liburing.h>

#include "core/util.h"
#include "core/fsutil.h"
#include "core/loop.h"
#include "core/bdev.h"
#include "frontend/frontend.h"
#include "frontend/ublk_abi.h"

#define UBLK_CONTROL            "/dev/ublk-control"
#define UBLK_MAX_IO_BUF         (1u << 20)  /* per-tag buffer, largest read/write */
#define UBLK_MAX_DISCARD        (64u << 20) /* one discard / write-zeroes; split
                                               into the bdev's max_io below */
#define UBLK_WAIT_MS            10000       /* start: device node, old owner's exit */
#define UBLK_POLL_MS            20
#define UBLK_DEL_WARN_MS        5000        /* then say who holds up DEL_DEV */
#define UBLK_DEFAULT_QUEUES     1
#define UBLK_DEFAULT_DEPTH      128
#define UBLK_MAX_QUEUES         64          /* as repvol attach --queues allows */

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

enum ublk_state {
  UBLK_STARTING,                /* START_DEV / END_USER_RECOVERY in flight */
  UBLK_LIVE,
  UBLK_STOPPING,                /* STOP_DEV in flight */
  UBLK_DELETING,                /* queues gone, DEL_DEV in flight */
  UBLK_DONE,
};

struct ublk_dev;
struct ublk_queue;

struct ublk_tag {
  struct ublk_queue *q;
  uint16_t tag;
  bool active;                  /* the kernel holds a command for it */
  bool busy;                    /* its request is with the bdev */
  uint8_t op;                   /* UBLK_IO_OP_* */
  uint64_t offset, len, done_bytes;
  struct bdev_io io;
  char *buf;
};

struct ublk_queue {
  struct ublk_dev *u;
  uint16_t id;
  struct io_uring ring;
  bool ring_ok;
  unsigned unsubmitted;
  struct ublksrv_io_desc *descs;  /* the kernel's, read-only */
  size_t descs_len;
  char *bufs;
  size_t bufs_len;
  struct ublk_tag *tags;
};

struct ublk_dev {
  struct frontend *fe;
  struct loop *loop;
  struct bdev *dev;
  const char *name;

  int ctrl_fd;
  struct io_uring ctrl;
  bool ctrl_ok;
  bool legacy;                  /* kernel predates ioctl-encoded commands */
  uint64_t features;            /* GET_FEATURES, 0 if unknown */
  uint64_t ctrl_seq;

  int efd;                      /* every ring signals it */
  struct loop_watch ewatch;
  bool watching;
  int cdev_fd;

  struct ublksrv_ctrl_dev_info info;    /* as the driver reports it */
  uint32_t dev_id;
  bool have_dev;
  bool created;                 /* by us in this start, not recovered */
  bool recovering;
  uint64_t dev_sectors;
  uint32_t block_size;
  uint32_t max_io;              /* largest read / write (tag buffer) */
  uint32_t bdev_max_io;         /* split discards / write-zeroes to this */
  bool volatile_cache;

  struct ublk_queue *queues;
  unsigned nr_queues, depth;
  unsigned busy;                /* tags whose request is with the bdev */

  enum ublk_state state;
  bool stop_wanted;
  bool stop_dev_done;
  bool warned;
  struct loop_defer kick;
  struct loop_timer del_timer;  /* says why DEL_DEV takes long */
  void (*stopped) (void *opaque);
  void *stopped_opaque;

  char state_path[256];
};

static void kick (struct ublk_dev *u);
static void begin_stop (struct ublk_dev *u);

static void
sleep_ms (unsigned ms)
{
  usleep (ms * 1000);
}

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

static int
ctrl_submit (struct ublk_dev *u, unsigned op, uint32_t dev_id, void *buf,
             unsigned len, uint64_t data0, uint64_t user_data)
{
  struct io_uring_sqe *sqe = io_uring_get_sqe (&u->ctrl);
  struct ublksrv_ctrl_cmd *c;
  int r;

  if (!sqe) {
    io_uring_submit (&u->ctrl);
    if (!(sqe = io_uring_get_sqe (&u->ctrl))) {
      errno = EBUSY;
      return -1;
    }
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
  if (r < 0) {
    errno = -r;
    return -1;
  }
  return 0;
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

  if (ctrl_submit (u, op, dev_id, buf, len, data0, ud) == -1)
    return -errno;
  for (;;) {
    int r = io_uring_wait_cqe (&u->ctrl, &cqe);
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
  if (ctrl_submit (u, op, u->dev_id, NULL, 0, data0, what) == -1) {
    log_error ("ublk: %s: cannot submit %s: %s", u->name, ctrl_name (op),
               strerror (errno));
    ctrl_done (u, what, -errno);
  }
}

/* Open /dev/ublk-control and a ring that can carry its commands, or
 * say in why what is missing.
 */
static int
ctrl_open (int *fdp, struct io_uring *ring, char *why, size_t len)
{
  struct stat st;
  int fd, r;

  if (stat (UBLK_CONTROL, &st) == -1) {
    if (errno == ENOENT)
      snprintf (why, len, "no %s (load ublk_drv: modprobe ublk_drv; "
                "needs Linux 6.0+)", UBLK_CONTROL);
    else
      snprintf (why, len, "%s: %s", UBLK_CONTROL, strerror (errno));
    return -1;
  }
  if (geteuid () != 0) {
    snprintf (why, len, "not root (ublk devices need CAP_SYS_ADMIN)");
    return -1;
  }
  fd = open (UBLK_CONTROL, O_RDWR | O_CLOEXEC);
  if (fd == -1) {
    snprintf (why, len, "cannot open %s: %s", UBLK_CONTROL, strerror (errno));
    return -1;
  }
  r = io_uring_queue_init (8, ring, IORING_SETUP_SQE128);
  if (r < 0) {
    if (r == -EINVAL)
      snprintf (why, len, "kernel too old: io_uring has no 128-byte SQEs "
                "(ublk needs Linux 6.0+)");
    else if (r == -ENOSYS)
      snprintf (why, len, "kernel too old: no io_uring");
    else if (r == -EPERM)
      snprintf (why, len, "io_uring is disabled (sysctl "
                "kernel.io_uring_disabled)");
    else
      snprintf (why, len, "io_uring_queue_init: %s", strerror (-r));
    close (fd);
    return -1;
  }
  *fdp = fd;
  return 0;
}

int
ublk_probe (char *why, size_t len)
{
  struct io_uring ring;
  int fd;

  if (ctrl_open (&fd, &ring, why, len) == -1)
    return -1;
  io_uring_queue_exit (&ring);
  close (fd);
  return 0;
}

/* ---- the state file: which device serves this volume ---- */

static void
state_path (struct ublk_dev *u)
{
  const char *dir = getenv ("REPVOL_RUN_DIR");

  if (!dir)
    dir = "/run/repvol";
  if (mkdir (dir, 0700) == -1 && errno != EEXIST)
    log_warn ("ublk: %s: %s: %s; a crashed attach will not be recovered",
              u->name, dir, strerror (errno));
  snprintf (u->state_path, sizeof u->state_path, "%s/%s.ublk", dir, u->name);
}

static int
state_read (struct ublk_dev *u, uint32_t *dev_id)
{
  char buf[32] = "";
  uint64_t id;
  int fd = open (u->state_path, O_RDONLY | O_CLOEXEC);
  ssize_t n;

  if (fd == -1)
    return -1;
  n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return -1;
  buf[strcspn (buf, "\n")] = '\0';
  if (parse_uint (buf, 0, UINT32_MAX - 1, &id) == -1) {
    log_warn ("ublk: %s: ignoring %s: not a device id", u->name,
              u->state_path);
    return -1;
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

/* ---- serving requests ---- */

static void
bad_request (struct ublk_dev *u, const struct ublk_tag *t,
             const struct ublksrv_io_desc *d, const char *why)
{
  const char *fmt = "ublk: %s: queue %u tag %u: op %u sector %llu count %u: "
    "%s; failing it";

  if (!u->warned) {
    u->warned = true;
    log_warn (fmt, u->name, t->q->id, t->tag, ublksrv_get_op (d),
              (unsigned long long) d->start_sector, d->nr_sectors, why);
  }
  else
    log_debug (fmt, u->name, t->q->id, t->tag, ublksrv_get_op (d),
               (unsigned long long) d->start_sector, d->nr_sectors, why);
}

/* Queue the tag's next command: FETCH_REQ, or COMMIT_AND_FETCH_REQ with
 * the result of the request it held.  The kick submits.
 */
static void
tag_command (struct ublk_tag *t, unsigned op, int32_t result)
{
  struct ublk_queue *q = t->q;
  struct ublk_dev *u = q->u;
  struct io_uring_sqe *sqe = io_uring_get_sqe (&q->ring);
  struct ublksrv_io_cmd *c;

  if (!sqe) {
    /* Cannot happen (one command per tag, ring >= depth), but do not
     * lose the commit if it does.
     */
    io_uring_submit (&q->ring);
    q->unsubmitted = 0;
    if (!(sqe = io_uring_get_sqe (&q->ring))) {
      log_error ("ublk: %s: queue %u: submission ring full; tag %u lost",
                 u->name, q->id, t->tag);
      return;
    }
  }
  memset (sqe, 0, sizeof *sqe);
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = u->cdev_fd;
  sqe->cmd_op = u->legacy ? _IOC_NR (op) : op;
  sqe->user_data = t->tag;
  c = (struct ublksrv_io_cmd *) sqe->cmd;
  c->q_id = q->id;
  c->tag = t->tag;
  c->result = result;
  c->addr = (uintptr_t) t->buf;
  t->active = true;
  q->unsubmitted++;
  kick (u);
}

static void tag_submit_chunk (struct ublk_tag *t);

static void
tag_io_done (struct bdev_io *io, int err)
{
  struct ublk_tag *t = io->opaque;
  struct ublk_dev *u = t->q->u;
  int32_t result;

  t->done_bytes += io->len;
  if (!err && (t->op == UBLK_IO_OP_DISCARD ||
               t->op == UBLK_IO_OP_WRITE_ZEROES) && t->done_bytes < t->len) {
    tag_submit_chunk (t);         /* next piece of a large one */
    return;
  }
  t->busy = false;
  u->busy--;
  if (err) {
    log_debug ("ublk: %s: op %u offset %" PRIu64 " length %" PRIu64 ": %s",
               u->name, t->op, t->offset, t->len, strerror (err));
    result = -err;
  }
  else if (t->op == UBLK_IO_OP_READ || t->op == UBLK_IO_OP_WRITE)
    result = t->len;              /* bytes done; 0 would mean "retry" */
  else
    result = 0;
  tag_command (t, UBLK_U_IO_COMMIT_AND_FETCH_REQ, result);
}

/* Discards and write-zeroes may exceed the bdev's max_io: send them in
 * max_io pieces, one after the other.
 */
static void
tag_submit_chunk (struct ublk_tag *t)
{
  struct ublk_dev *u = t->q->u;
  uint64_t left = t->len - t->done_bytes;

  t->io.offset = t->offset + t->done_bytes;
  t->io.len = left > u->bdev_max_io ? u->bdev_max_io : (uint32_t) left;
  bdev_submit (u->dev, &t->io);   /* may complete at once */
}

/* The kernel handed us tag's request: check it and start it. */
static void
tag_start (struct ublk_tag *t)
{
  struct ublk_dev *u = t->q->u;
  /* A copy: the array is the kernel's and we check what we use. */
  struct ublksrv_io_desc d = t->q->descs[t->tag];
  uint8_t op = ublksrv_get_op (&d);
  uint32_t fl = ublksrv_get_flags (&d);
  uint64_t len = (uint64_t) d.nr_sectors << 9;
  const char *why = NULL;
  int err = EIO;

  switch (op) {
  case UBLK_IO_OP_READ:
  case UBLK_IO_OP_WRITE:
    if (len == 0 || len > u->max_io)
      why = "length beyond the tag's buffer";
    break;
  case UBLK_IO_OP_DISCARD:
  case UBLK_IO_OP_WRITE_ZEROES:
    if (len == 0)
      why = "zero length";
    break;
  case UBLK_IO_OP_FLUSH:
    break;
  default:
    why = "unsupported operation";
    err = EOPNOTSUPP;
  }
  if (!why && op != UBLK_IO_OP_FLUSH &&
      (d.start_sector > u->dev_sectors ||
       d.nr_sectors > u->dev_sectors - d.start_sector))
    why = "beyond the end of the device";
  if (!why && op != UBLK_IO_OP_FLUSH &&
      (((d.start_sector << 9) | len) & (u->block_size - 1)))
    why = "not aligned to the block size";
  if (why) {
    bad_request (u, t, &d, why);
    tag_command (t, UBLK_U_IO_COMMIT_AND_FETCH_REQ, -err);
    return;
  }

  t->op = op;
  t->offset = d.start_sector << 9;
  t->len = len;
  t->done_bytes = 0;
  t->io = (struct bdev_io) { .done = tag_io_done, .opaque = t,
                             .buf = t->buf, .offset = t->offset,
                             .len = len };
  t->busy = true;
  u->busy++;
  switch (op) {
  case UBLK_IO_OP_READ:
    t->io.op = BDEV_READ;
    break;
  case UBLK_IO_OP_WRITE:
    t->io.op = BDEV_WRITE;
    if (fl & UBLK_IO_F_FUA)
      t->io.flags |= BDEV_FUA;
    break;
  case UBLK_IO_OP_FLUSH:
    t->io.op = BDEV_FLUSH;
    t->io.buf = NULL;
    t->io.offset = 0;
    t->io.len = 0;
    break;
  case UBLK_IO_OP_DISCARD:
    t->io.op = BDEV_TRIM;
    tag_submit_chunk (t);
    return;
  case UBLK_IO_OP_WRITE_ZEROES:
    t->io.op = BDEV_WRITE_ZEROES;
    if (fl & UBLK_IO_F_NOUNMAP)
      t->io.flags |= BDEV_NO_HOLE;
    if (fl & UBLK_IO_F_FUA)
      t->io.flags |= BDEV_FUA;
    tag_submit_chunk (t);
    return;
  }
  bdev_submit (u->dev, &t->io);   /* may complete at once */
}

static void
queue_reap (struct ublk_queue *q)
{
  struct ublk_dev *u = q->u;
  struct io_uring_cqe *cqe;

  while (io_uring_peek_cqe (&q->ring, &cqe) == 0) {
    uint64_t tag = cqe->user_data;
    int res = cqe->res;
    struct ublk_tag *t;

    io_uring_cqe_seen (&q->ring, cqe);
    if (tag >= u->depth) {
      log_warn ("ublk: %s: queue %u: completion for unknown tag %" PRIu64,
                u->name, q->id, tag);
      continue;
    }
    t = &q->tags[tag];
    if (!t->active || t->busy) {
      /* Starting it again would reuse a bdev_io still in flight. */
      log_warn ("ublk: %s: queue %u: completion for tag %u, which had no "
                "command outstanding; ignored", u->name, q->id, t->tag);
      continue;
    }
    t->active = false;
    if (res == UBLK_IO_RES_OK)
      tag_start (t);
    else if (res != UBLK_IO_RES_ABORT)
      /* ABORT: the device is stopping; nothing more for this tag. */
      log_warn ("ublk: %s: queue %u tag %u: io command failed: %s",
                u->name, q->id, t->tag, strerror (-res));
  }
}

/* ---- lifecycle ---- */

static void
queues_free (struct ublk_dev *u)
{
  for (unsigned i = 0; u->queues && i < u->nr_queues; i++) {
    struct ublk_queue *q = &u->queues[i];

    if (q->ring_ok) {
      /* Closing the ring cancels the commands the kernel still holds. */
      io_uring_queue_exit (&q->ring);
      q->ring_ok = false;
    }
    if (q->descs)
      munmap (q->descs, q->descs_len);
    if (q->bufs)
      munmap (q->bufs, q->bufs_len);
    free (q->tags);
  }
  free (u->queues);
  u->queues = NULL;
  if (u->cdev_fd >= 0) {
    close (u->cdev_fd);           /* DEL_DEV waits for this */
    u->cdev_fd = -1;
  }
}

static void
del_slow (struct loop_timer *t)
{
  struct ublk_dev *u = t->opaque;

  if (u->state == UBLK_DELETING)
    log_warn ("ublk: %s: deleting /dev/ublkb%" PRIu32 " waits until nothing "
              "holds it: is it still mounted or open?", u->name, u->dev_id);
}

static void
ublk_kick (struct loop_defer *d)
{
  struct ublk_dev *u = d->opaque;

  for (unsigned i = 0; u->queues && i < u->nr_queues; i++) {
    struct ublk_queue *q = &u->queues[i];
    if (q->ring_ok && q->unsubmitted) {
      int r = io_uring_submit (&q->ring);
      if (r >= 0) {
        /* What the kernel did not take stays queued for next time. */
        q->unsubmitted = (unsigned) r >= q->unsubmitted ? 0
          : q->unsubmitted - r;
        if (q->unsubmitted)
          kick (u);
      }
      else if (r == -EINTR || r == -EAGAIN || r == -EBUSY)
        kick (u);                 /* try again next iteration */
      else
        log_error ("ublk: %s: queue %u: io_uring_submit: %s", u->name,
                   q->id, strerror (-r));
    }
  }

  /* STOP_DEV has returned: the kernel has taken every request back, so
   * once the bdev has finished ours the queues can go, then the device.
   */
  if (u->state == UBLK_STOPPING && u->stop_dev_done && u->busy == 0) {
    queues_free (u);
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
static void
kick (struct ublk_dev *u)
{
  if (u->watching)
    loop_defer (u->loop, &u->kick, ublk_kick, u);
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
  kick (u);
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
  for (unsigned i = 0; u->queues && i < u->nr_queues; i++)
    if (u->queues[i].ring_ok)
      queue_reap (&u->queues[i]);
  kick (u);
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

/* Geometry the device advertises, from the bdev. */
static int
geometry (struct ublk_dev *u)
{
  const struct bdev_info *info = &u->dev->info;
  long pagesz = sysconf (_SC_PAGESIZE);
  uint32_t bs = info->block_size ? info->block_size : 512;

  if (bs < 512 || bs > (uint32_t) pagesz || (bs & (bs - 1))) {
    log_error ("ublk: %s: block size %" PRIu32 " cannot be a ublk logical "
               "block size (a power of two from 512 to %ld)", u->name, bs,
               pagesz);
    return -1;
  }
  u->block_size = bs;
  u->dev_sectors = (info->size - info->size % bs) >> 9;
  if (u->dev_sectors == 0) {
    log_error ("ublk: %s: volume is smaller than one block", u->name);
    return -1;
  }
  if (info->size % bs)
    log_warn ("ublk: %s: volume size is not a multiple of the %" PRIu32
              "-byte block size; the tail is unreachable", u->name, bs);
  u->bdev_max_io = info->max_io ? info->max_io : UBLK_MAX_IO_BUF;
  u->bdev_max_io -= u->bdev_max_io % bs;
  u->max_io = MIN (u->bdev_max_io, UBLK_MAX_IO_BUF);
  u->max_io -= u->max_io % pagesz;
  if (u->max_io < bs || u->bdev_max_io < bs) {
    log_error ("ublk: %s: largest request %" PRIu32 " is below the block "
               "size", u->name, info->max_io);
    return -1;
  }
  u->volatile_cache = info->volatile_cache;
  return 0;
}

static int
shift_of (uint32_t x)
{
  return __builtin_ctz (x);
}

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
    return -1;
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
    return -1;
  }
  return 0;
}

/* Delete a device an earlier attach left behind, without waiting:
 * DEL_DEV waits for whoever still holds it open.
 */
static void
delete_stale (struct ublk_dev *u, uint32_t id)
{
  if (ctrl_submit (u, UBLK_U_CMD_DEL_DEV, id, NULL, 0, 0, CTRL_DEL_STALE) == -1)
    log_warn ("ublk: %s: cannot delete /dev/ublkb%" PRIu32 ": %s", u->name,
              id, strerror (errno));
}

/* If the state file names a device an earlier attach of this volume
 * left, take it over.  Returns 1 after START_USER_RECOVERY, 0 when a
 * new device is needed, -1 (logged) when attach must not go on.
 */
static int
try_recover (struct ublk_dev *u)
{
  struct ublksrv_ctrl_dev_info info;
  struct ublk_params p = { .len = sizeof p };
  uint32_t id;
  int r, waited = 0;

  if (state_read (u, &id) == -1)
    return 0;
  for (;; waited += UBLK_POLL_MS, sleep_ms (UBLK_POLL_MS)) {
    memset (&info, 0, sizeof info);
    r = ctrl_sync (u, UBLK_U_CMD_GET_DEV_INFO, id, &info, sizeof info, 0);
    if (r == -ENODEV) {
      unlink (u->state_path);     /* gone: nothing to recover */
      return 0;
    }
    if (r < 0) {
      ctrl_error (u, UBLK_U_CMD_GET_DEV_INFO, r);
      return -1;
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
      return -1;
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
      return -1;
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

static int
open_cdev (struct ublk_dev *u)
{
  char path[64];
  int waited = 0;

  snprintf (path, sizeof path, "/dev/ublkc%" PRIu32, u->dev_id);
  /* devtmpfs (or udev) creates the node shortly after ADD_DEV. */
  while ((u->cdev_fd = open (path, O_RDWR | O_CLOEXEC)) == -1 &&
         errno == ENOENT && waited < UBLK_WAIT_MS) {
    sleep_ms (UBLK_POLL_MS);
    waited += UBLK_POLL_MS;
  }
  if (u->cdev_fd == -1) {
    log_error ("ublk: %s: cannot open %s: %s", u->name, path,
               errno == EBUSY ? "another process serves it" : strerror (errno));
    return -1;
  }
  return 0;
}

static int
setup_queues (struct ublk_dev *u)
{
  long pagesz = sysconf (_SC_PAGESIZE);
  size_t stride = UBLK_QUEUE_DESC_STRIDE ((size_t) pagesz);
  struct io_uring_cqe *cqe;

  u->nr_queues = u->info.nr_hw_queues;
  u->depth = u->info.queue_depth;
  if (u->nr_queues == 0 || u->depth == 0 || u->depth > UBLK_MAX_QUEUE_DEPTH ||
      u->max_io < u->block_size) {
    log_error ("ublk: %s: /dev/ublkb%" PRIu32 " has %u queues of depth %u, "
               "buffers of %" PRIu32 " bytes: cannot serve that", u->name,
               u->dev_id, u->nr_queues, u->depth, u->max_io);
    return -1;
  }
  if (open_cdev (u) == -1)
    return -1;
  u->queues = calloc (u->nr_queues, sizeof *u->queues);
  if (!u->queues)
    goto nomem;

  for (unsigned i = 0; i < u->nr_queues; i++) {
    struct ublk_queue *q = &u->queues[i];
    int r;

    q->u = u;
    q->id = i;
    q->descs_len = (u->depth * sizeof *q->descs + pagesz - 1) / pagesz * pagesz;
    q->descs = mmap (NULL, q->descs_len, PROT_READ, MAP_SHARED | MAP_POPULATE,
                     u->cdev_fd, UBLKSRV_CMD_BUF_OFFSET + i * stride);
    if (q->descs == MAP_FAILED) {
      q->descs = NULL;
      log_error ("ublk: %s: queue %u: mmap of the request descriptors: %s",
                 u->name, i, strerror (errno));
      return -1;
    }
    /* Pages are only used as requests of that size come. */
    q->bufs_len = (size_t) u->depth * u->max_io;
    q->bufs = mmap (NULL, q->bufs_len, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (q->bufs == MAP_FAILED) {
      q->bufs = NULL;
      goto nomem;
    }
    q->tags = calloc (u->depth, sizeof *q->tags);
    if (!q->tags)
      goto nomem;
    r = io_uring_queue_init (u->depth, &q->ring, 0);
    if (r < 0) {
      log_error ("ublk: %s: queue %u: io_uring_queue_init: %s", u->name, i,
                 strerror (-r));
      return -1;
    }
    q->ring_ok = true;
    r = io_uring_register_eventfd (&q->ring, u->efd);
    if (r < 0) {
      log_error ("ublk: %s: queue %u: io_uring_register_eventfd: %s",
                 u->name, i, strerror (-r));
      return -1;
    }
    for (unsigned tag = 0; tag < u->depth; tag++) {
      struct ublk_tag *t = &q->tags[tag];
      t->q = q;
      t->tag = tag;
      t->buf = q->bufs + (size_t) tag * u->max_io;
      tag_command (t, UBLK_U_IO_FETCH_REQ, 0);
    }
    r = io_uring_submit (&q->ring);
    q->unsubmitted = 0;
    if (r < 0) {
      log_error ("ublk: %s: queue %u: submitting FETCH_REQ: %s", u->name, i,
                 strerror (-r));
      return -1;
    }
    /* No request can come before START_DEV / END_USER_RECOVERY, so a
     * completion now is a refused FETCH_REQ.
     */
    if (io_uring_peek_cqe (&q->ring, &cqe) == 0) {
      log_error ("ublk: %s: queue %u: FETCH_REQ refused: %s", u->name, i,
                 strerror (-cqe->res));
      return -1;
    }
  }
  return 0;

 nomem:
  log_error ("ublk: %s: out of memory for %u queues of depth %u", u->name,
             u->nr_queues, u->depth);
  return -1;
}

static int
parse_spec (struct ublk_dev *u, const char *spec, unsigned *queues,
            unsigned *depth)
{
  char *copy = strdup (spec ? spec : ""), *save = NULL, *tok;
  int rc = 0;

  *queues = UBLK_DEFAULT_QUEUES;
  *depth = UBLK_DEFAULT_DEPTH;
  if (!copy)
    return -1;
  for (tok = strtok_r (copy, ",", &save); tok; tok = strtok_r (NULL, ",", &save)) {
    uint64_t v;
    if (strncmp (tok, "queues=", 7) == 0 &&
        parse_uint (tok + 7, 1, UBLK_MAX_QUEUES, &v) == 0)
      *queues = v;
    else if (strncmp (tok, "depth=", 6) == 0 &&
             parse_uint (tok + 6, 1, UBLK_MAX_QUEUE_DEPTH, &v) == 0)
      *depth = v;
    else {
      log_error ("ublk: cannot parse '%s' in '%s': expected queues=1..%d,"
                 "depth=1..%d", tok, spec, UBLK_MAX_QUEUES,
                 UBLK_MAX_QUEUE_DEPTH);
      rc = -1;
      break;
    }
  }
  free (copy);
  return rc;
}

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
  queues_free (u);
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
  char why[200];
  unsigned queues, depth;
  uint64_t features = 0;
  int r;

  if (!u) {
    log_error ("ublk: out of memory");
    return -1;
  }
  f->priv = u;
  u->fe = f;
  u->loop = f->loop;
  u->dev = f->dev;
  u->name = f->export_name;
  u->ctrl_fd = u->cdev_fd = u->efd = -1;

  if (parse_spec (u, spec, &queues, &depth) == -1 || geometry (u) == -1)
    return -1;
  if (ctrl_open (&u->ctrl_fd, &u->ctrl, why, sizeof why) == -1) {
    log_error ("ublk: %s", why);
    return -1;
  }
  u->ctrl_ok = true;
  u->efd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (u->efd == -1) {
    log_error ("ublk: eventfd: %s", strerror (errno));
    return -1;
  }
  r = io_uring_register_eventfd (&u->ctrl, u->efd);
  if (r < 0) {
    log_error ("ublk: io_uring_register_eventfd: %s", strerror (-r));
    return -1;
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
  if (r == -1)
    goto fail;
  if (r == 0 && add_device (u, queues, depth) == -1)
    goto fail;
  if (u->recovering &&
      (u->info.nr_hw_queues != queues || u->info.queue_depth != depth))
    log_info ("ublk: %s: /dev/ublkb%" PRIu32 " keeps the %u queue(s) of "
              "depth %u it was made with", u->name, u->dev_id,
              u->info.nr_hw_queues, u->info.queue_depth);
  if (setup_queues (u) == -1)
    goto fail;
  if (loop_add (u->loop, &u->ewatch, u->efd, EPOLLIN, on_event, u) == -1) {
    log_error ("ublk: %s: cannot watch the eventfd: %s", u->name,
               strerror (errno));
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
  return -1;
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
  kick (u);                       /* never call stopped from inside stop */
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
  queues_free (u);
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
