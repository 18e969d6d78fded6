/* ublk_queue.c - the ublk frontend's I/O queues: requests from
 * /dev/ublkbN to the bdev and back.
 *
 * Each hardware queue has its own ring on /dev/ublkcN holding one
 * FETCH_REQ per tag; when the kernel has a request for a tag it
 * completes that command, we read the request's descriptor from the
 * queue's mmapped array, check it, serve it through the bdev into the
 * tag's own buffer (the kernel copies data to and from the address we
 * gave with the command), and answer with COMMIT_AND_FETCH_REQ, which
 * also waits for the tag's next request.  Commands queue on the ring
 * and leave in one io_uring_submit per loop iteration (ublk_kick).
 * Here too is the queues' shape: how many, how deep (the spec), and the
 * block size and request limits the device gets from the bdev.  The
 * device's life (which decides when queues exist) is ublk_ctrl.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <liburing.h>

#include "core/util.h"
#include "core/bdev.h"
#include "frontend/ublk_internal.h"

#define UBLK_MAX_IO_BUF         (1u << 20)  /* per-tag buffer, largest read/write */
#define UBLK_DEFAULT_QUEUES     1
#define UBLK_DEFAULT_DEPTH      128
#define UBLK_MAX_QUEUES         64          /* as repvol attach --queues allows */

/* ---- the queues' shape ---- */

/* "queues=N,depth=N" (either may be left out).  0, or a negative errno
 * (logged, but for running out of memory).
 */
int
ublk_parse_spec (const char *spec, unsigned *queues, unsigned *depth)
{
  char *copy = strdup (spec ? spec : ""), *save = NULL, *tok;
  int rc = 0;

  *queues = UBLK_DEFAULT_QUEUES;
  *depth = UBLK_DEFAULT_DEPTH;
  if (!copy)
    return -ENOMEM;
  for (tok = strtok_r (copy, ",", &save); tok; tok = strtok_r (NULL, ",", &save)) {
    if (!frontend_queue_option (tok, UBLK_MAX_QUEUES, UBLK_MAX_QUEUE_DEPTH,
                                queues, depth)) {
      log_error ("ublk: cannot parse '%s' in '%s': expected queues=1..%d,"
                 "depth=1..%d", tok, spec, UBLK_MAX_QUEUES,
                 UBLK_MAX_QUEUE_DEPTH);
      rc = -EINVAL;
      break;
    }
  }
  free (copy);
  return rc;
}

/* Geometry the device advertises, from the bdev.  0 or -EINVAL, after
 * logging why.
 */
int
ublk_geometry (struct ublk_dev *u)
{
  const struct bdev_info *info = &u->dev->info;
  long pagesz = sysconf (_SC_PAGESIZE);
  uint32_t bs = info->block_size ? info->block_size : 512;

  if (bs < 512 || bs > (uint32_t) pagesz || (bs & (bs - 1))) {
    log_error ("ublk: %s: block size %" PRIu32 " cannot be a ublk logical "
               "block size (a power of two from 512 to %ld)", u->name, bs,
               pagesz);
    return -EINVAL;
  }
  u->block_size = bs;
  u->dev_sectors = (info->size - info->size % bs) >> 9;
  if (u->dev_sectors == 0) {
    log_error ("ublk: %s: volume is smaller than one block", u->name);
    return -EINVAL;
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
    return -EINVAL;
  }
  u->volatile_cache = info->volatile_cache;
  return 0;
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
  ublk_kick (u);
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
  uint64_t offset = t->offset + t->done_bytes;
  uint32_t len = left > u->bdev_max_io ? u->bdev_max_io : (uint32_t) left;

  /* Either may complete at once. */
  if (t->op == UBLK_IO_OP_DISCARD)
    bdev_trim (u->dev, &t->io, offset, len, t->flags);
  else
    bdev_zero (u->dev, &t->io, offset, len, t->flags);
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
  t->flags = 0;
  if ((fl & UBLK_IO_F_FUA) &&
      (op == UBLK_IO_OP_WRITE || op == UBLK_IO_OP_WRITE_ZEROES))
    t->flags |= BDEV_FUA;
  if ((fl & UBLK_IO_F_NOUNMAP) && op == UBLK_IO_OP_WRITE_ZEROES)
    t->flags |= BDEV_NO_HOLE;
  t->io = (struct bdev_io) { .done = tag_io_done, .opaque = t };
  t->busy = true;
  u->busy++;
  /* Each may complete at once. */
  switch (op) {
  case UBLK_IO_OP_READ:
    bdev_read (u->dev, &t->io, t->offset, len, t->buf, 0);
    break;
  case UBLK_IO_OP_WRITE:
    bdev_write (u->dev, &t->io, t->offset, len, t->buf, t->flags);
    break;
  case UBLK_IO_OP_FLUSH:
    bdev_flush (u->dev, &t->io);
    break;
  case UBLK_IO_OP_DISCARD:
  case UBLK_IO_OP_WRITE_ZEROES:
    tag_submit_chunk (t);
    break;
  }
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

void
ublk_queues_reap (struct ublk_dev *u)
{
  for (unsigned i = 0; u->queues && i < u->nr_queues; i++)
    if (u->queues[i].ring_ok)
      queue_reap (&u->queues[i]);
}

void
ublk_queues_submit (struct ublk_dev *u)
{
  for (unsigned i = 0; u->queues && i < u->nr_queues; i++) {
    struct ublk_queue *q = &u->queues[i];
    if (q->ring_ok && q->unsubmitted) {
      int r = io_uring_submit (&q->ring);
      if (r >= 0) {
        /* What the kernel did not take stays queued for next time. */
        q->unsubmitted = (unsigned) r >= q->unsubmitted ? 0
          : q->unsubmitted - r;
        if (q->unsubmitted)
          ublk_kick (u);
      }
      else if (r == -EINTR || r == -EAGAIN || r == -EBUSY)
        ublk_kick (u);            /* try again next iteration */
      else
        log_error ("ublk: %s: queue %u: io_uring_submit: %s", u->name,
                   q->id, strerror (-r));
    }
  }
}

/* ---- setting queues up and down ---- */

static int
open_cdev (struct ublk_dev *u)
{
  char path[64];
  int waited = 0, r;

  snprintf (path, sizeof path, "/dev/ublkc%" PRIu32, u->dev_id);
  /* devtmpfs (or udev) creates the node shortly after ADD_DEV. */
  while ((u->cdev_fd = open (path, O_RDWR | O_CLOEXEC)) == -1 &&
         errno == ENOENT && waited < UBLK_WAIT_MS) {
    ublk_sleep_ms (UBLK_POLL_MS);
    waited += UBLK_POLL_MS;
  }
  if (u->cdev_fd == -1) {
    r = -errno;
    log_error ("ublk: %s: cannot open %s: %s", u->name, path,
               r == -EBUSY ? "another process serves it" : strerror (-r));
    return r;
  }
  return 0;
}

int
ublk_queues_setup (struct ublk_dev *u)
{
  long pagesz = sysconf (_SC_PAGESIZE);
  size_t stride = UBLK_QUEUE_DESC_STRIDE ((size_t) pagesz);
  struct io_uring_cqe *cqe;
  int r;

  u->nr_queues = u->info.nr_hw_queues;
  u->depth = u->info.queue_depth;
  if (u->nr_queues == 0 || u->depth == 0 || u->depth > UBLK_MAX_QUEUE_DEPTH ||
      u->max_io < u->block_size) {
    log_error ("ublk: %s: /dev/ublkb%" PRIu32 " has %u queues of depth %u, "
               "buffers of %" PRIu32 " bytes: cannot serve that", u->name,
               u->dev_id, u->nr_queues, u->depth, u->max_io);
    return -EINVAL;
  }
  r = open_cdev (u);
  if (r < 0)
    return r;
  u->queues = calloc (u->nr_queues, sizeof *u->queues);
  if (!u->queues)
    goto nomem;

  for (unsigned i = 0; i < u->nr_queues; i++) {
    struct ublk_queue *q = &u->queues[i];

    q->u = u;
    q->id = i;
    q->descs_len = (u->depth * sizeof *q->descs + pagesz - 1) / pagesz * pagesz;
    q->descs = mmap (NULL, q->descs_len, PROT_READ, MAP_SHARED | MAP_POPULATE,
                     u->cdev_fd, UBLKSRV_CMD_BUF_OFFSET + i * stride);
    if (q->descs == MAP_FAILED) {
      r = -errno;
      q->descs = NULL;
      log_error ("ublk: %s: queue %u: mmap of the request descriptors: %s",
                 u->name, i, strerror (-r));
      return r;
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
      return r;
    }
    q->ring_ok = true;
    r = io_uring_register_eventfd (&q->ring, u->efd);
    if (r < 0) {
      log_error ("ublk: %s: queue %u: io_uring_register_eventfd: %s",
                 u->name, i, strerror (-r));
      return r;
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
      return r;
    }
    /* No request can come before START_DEV / END_USER_RECOVERY, so a
     * completion now is a refused FETCH_REQ.
     */
    if (io_uring_peek_cqe (&q->ring, &cqe) == 0) {
      log_error ("ublk: %s: queue %u: FETCH_REQ refused: %s", u->name, i,
                 strerror (-cqe->res));
      return cqe->res < 0 ? cqe->res : -EIO;
    }
  }
  return 0;

 nomem:
  log_error ("ublk: %s: out of memory for %u queues of depth %u", u->name,
             u->nr_queues, u->depth);
  return -ENOMEM;
}


void
ublk_queues_free (struct ublk_dev *u)
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

