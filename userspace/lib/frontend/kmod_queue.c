/* kmod_queue.c - the kmod frontend's request channel: requests from
 * /dev/repvolN to the bdev and back, through /dev/repvolcN
 * (kmod/repvol_uapi.h).
 *
 * The channel is one non-blocking fd on the event loop.  When it is
 * readable we read descriptors in batches of KMOD_BATCH, check each
 * and start it: a WRITE first preads its payload from the channel into
 * the tag's buffer, a READ is pwritten back to the channel when the
 * bdev has filled the buffer.  Completions collect in k->done and leave
 * in one write() at the end of the loop pass (a deferred callback), so
 * a burst of requests costs one syscall for its answers.  Every queue's
 * tags come through the one channel; a slot per (queue, tag) holds the
 * request and its buffer, which is the reuse: no allocation per request.
 * The device's life (when the channel is open) is kmod.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <sys/mman.h>

#include "core/util.h"
#include "core/bdev.h"
#include "frontend/kmod_internal.h"

/* ---- completions ---- */

/* A failed pread / pwrite / write on the channel: once at warn level
 * (the device is likely going away, or the module disagrees with us),
 * after that at debug.
 */
static void
chan_warn (struct kmod_dev *k, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
static void
chan_warn (struct kmod_dev *k, const char *fmt, ...)
{
  char msg[256];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  if (!k->warned_chan) {
    k->warned_chan = true;
    log_warn ("kmod: %s: /dev/repvolc%" PRIu32 ": %s", k->name, k->dev_id,
              msg);
  }
  else
    log_debug ("kmod: %s: /dev/repvolc%" PRIu32 ": %s", k->name, k->dev_id,
               msg);
}

/* Write the completions collected this pass.  The module stops at a
 * record it refuses; that one is dropped (we never send one on purpose)
 * and the rest go again.
 */
static void
flush_done (struct loop_defer *d)
{
  struct kmod_dev *k = d->opaque;
  unsigned off = 0;

  while (off < k->ndone) {
    size_t len = (size_t) (k->ndone - off) * sizeof *k->done;
    ssize_t n = write (k->chan_fd, k->done + off, len);

    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1 && (errno == EINVAL || errno == ENOENT)) {
      chan_warn (k, "completion of tag %#" PRIx32 " (result %" PRId32 ") "
                 "refused: %s", k->done[off].tag, k->done[off].result,
                 strerror (errno));
      off++;
      continue;
    }
    if (n <= 0) {
      /* The device is gone (deleted under us): nobody waits for these. */
      chan_warn (k, "writing %u completions: %s", k->ndone - off,
                 n == 0 ? "wrote nothing" : strerror (errno));
      break;
    }
    off += (unsigned) n / sizeof *k->done;
  }
  k->ndone = 0;
  kmod_kick (k);                /* a stop may wait for the last of these */
}

static void
slot_complete (struct kmod_slot *s, int result)
{
  struct kmod_dev *k = s->k;

  s->busy = false;
  k->busy--;
  if (k->ndone == k->nslots)
    flush_done (&k->flush);     /* only if the module reissued a tag early */
  k->done[k->ndone++] = (struct repvol_done) { .tag = s->tag,
                                               .result = result };
  loop_defer (k->loop, &k->flush, flush_done, k);
}

/* ---- serving a request ---- */

static void slot_submit_chunk (struct kmod_slot *s);

static void
slot_io_done (struct bdev_io *io, int err)
{
  struct kmod_slot *s = io->opaque;
  struct kmod_dev *k = s->k;

  s->done_bytes += io->len;
  if (!err && s->op != REPVOL_OP_FLUSH && s->done_bytes < s->len) {
    slot_submit_chunk (s);        /* next piece of a large one */
    return;
  }
  k->with_bdev--;
  if (err) {
    log_debug ("kmod: %s: op %u offset %" PRIu64 " length %" PRIu32 ": %s",
               k->name, s->op, s->offset, s->len, strerror (err));
    slot_complete (s, -err);
    return;
  }
  if (s->op == REPVOL_OP_READ) {
    ssize_t n = pwrite (k->chan_fd, s->buf, s->len,
                        REPVOL_DATA_OFF (s->tag, 0));
    if (n != (ssize_t) s->len) {
      chan_warn (k, "tag %#" PRIx32 ": returning %" PRIu32 " bytes read: %s",
                 s->tag, s->len, n < 0 ? strerror (errno) : "short write");
      slot_complete (s, -EIO);
      return;
    }
  }
  slot_complete (s, 0);
}

/* A request may exceed the bdev's max_io: discards and write-zeroes
 * always may, reads and writes on a device recovered from an attach
 * that made it with larger requests.  Send it in pieces, one after the
 * other.
 */
static void
slot_submit_chunk (struct kmod_slot *s)
{
  struct kmod_dev *k = s->k;
  uint32_t left = s->len - s->done_bytes;
  uint64_t offset = s->offset + s->done_bytes;
  uint32_t len = MIN (left, k->bdev_max_io);

  /* Each may complete at once. */
  switch (s->op) {
  case REPVOL_OP_READ:
    bdev_read (k->dev, &s->io, offset, len, s->buf + s->done_bytes, 0);
    break;
  case REPVOL_OP_WRITE:
    bdev_write (k->dev, &s->io, offset, len, s->buf + s->done_bytes,
                s->flags);
    break;
  case REPVOL_OP_DISCARD:
    bdev_trim (k->dev, &s->io, offset, len, s->flags);
    break;
  default:
    bdev_zero (k->dev, &s->io, offset, len, s->flags);
  }
}

static void
bad_request (struct kmod_dev *k, const struct repvol_io *d, const char *why)
{
  const char *fmt = "kmod: %s: tag %#x: op %u sector %llu length %u: %s; "
    "failing it";

  if (!k->warned_req) {
    k->warned_req = true;
    log_warn (fmt, k->name, d->tag, d->op, (unsigned long long) d->sector,
              d->len, why);
  }
  else
    log_debug (fmt, k->name, d->tag, d->op, (unsigned long long) d->sector,
               d->len, why);
}

/* The slot of a tag (queue << 16 | tag within the queue), or NULL. */
static struct kmod_slot *
slot_of (struct kmod_dev *k, uint32_t tag)
{
  uint32_t q = tag >> 16, t = tag & 0xffff;

  if (q >= k->p.nr_queues || t >= k->p.queue_depth)
    return NULL;
  return &k->slots[(size_t) q * k->p.queue_depth + t];
}

/* A descriptor from the channel: check it and start it.  Here only what
 * keeps us safe (the tag's buffer, a known op); range and alignment are
 * the bdev's checked wrappers' (core/bdev.c), which fail a bad request
 * with EINVAL.  A disagreement with the module fails the one request,
 * not the device.
 */
static void
start_request (struct kmod_dev *k, const struct repvol_io *d)
{
  struct kmod_slot *s = slot_of (k, d->tag);
  uint64_t offset = d->sector << 9;
  const char *why = NULL;
  int err = EIO;

  if (!s) {
    /* Nothing to complete it with that the module would take. */
    log_warn ("kmod: %s: request with tag %#" PRIx32 " outside %" PRIu32
              " queue(s) of depth %" PRIu32 "; ignored", k->name, d->tag,
              k->p.nr_queues, k->p.queue_depth);
    return;
  }
  if (s->busy) {
    /* Completing it would complete the one in flight. */
    log_warn ("kmod: %s: request with tag %#" PRIx32 ", which is still in "
              "flight; ignored", k->name, d->tag);
    return;
  }
  s->busy = true;
  k->busy++;

  switch (d->op) {
  case REPVOL_OP_READ:
  case REPVOL_OP_WRITE:
    if (d->len == 0 || d->len > k->p.max_io_bytes)
      why = "length beyond the tag's buffer";
    break;
  case REPVOL_OP_DISCARD:
  case REPVOL_OP_WRITE_ZEROES:
    if (d->len == 0)
      why = "zero length";
    break;
  case REPVOL_OP_FLUSH:
    break;
  default:
    why = "unsupported operation";
    err = EOPNOTSUPP;
  }
  if (why) {
    bad_request (k, d, why);
    slot_complete (s, -err);
    return;
  }

  s->op = d->op;
  s->offset = offset;
  s->len = d->len;
  s->done_bytes = 0;
  s->flags = 0;
  if ((d->flags & REPVOL_IO_FUA) &&
      (d->op == REPVOL_OP_WRITE || d->op == REPVOL_OP_WRITE_ZEROES))
    s->flags |= BDEV_FUA;
  if ((d->flags & REPVOL_IO_NOUNMAP) && d->op == REPVOL_OP_WRITE_ZEROES)
    s->flags |= BDEV_NO_HOLE;
  if (d->op == REPVOL_OP_WRITE) {
    ssize_t n = pread (k->chan_fd, s->buf, s->len,
                       REPVOL_DATA_OFF (s->tag, 0));
    if (n != (ssize_t) s->len) {
      chan_warn (k, "tag %#" PRIx32 ": fetching %" PRIu32 " bytes to "
                 "write: %s", s->tag, s->len,
                 n < 0 ? strerror (errno) : "short read");
      slot_complete (s, -EIO);
      return;
    }
  }
  s->io = (struct bdev_io) { .done = slot_io_done, .opaque = s };
  k->with_bdev++;
  /* May complete at once. */
  if (d->op == REPVOL_OP_FLUSH)
    bdev_flush (k->dev, &s->io);
  else
    slot_submit_chunk (s);
}

static void
on_chan (struct loop_watch *w, uint32_t revents)
{
  struct kmod_dev *k = w->opaque;
  struct repvol_io batch[KMOD_BATCH];

  if (revents & EPOLLIN) {
    for (;;) {
      ssize_t n = read (k->chan_fd, batch, sizeof batch);
      if (n == -1 && errno == EINTR)
        continue;
      if (n == -1) {
        if (errno != EAGAIN)
          chan_warn (k, "reading requests: %s", strerror (errno));
        break;
      }
      if (n % sizeof batch[0])
        chan_warn (k, "read %zd bytes, not whole requests", n);
      for (size_t i = 0; i < (size_t) n / sizeof batch[0]; i++)
        start_request (k, &batch[i]);
      if ((size_t) n < sizeof batch)
        break;                    /* no more pending now */
    }
  }
  if (revents & (EPOLLHUP | EPOLLERR)) {
    /* The device was deleted: by our own stop, or under us. */
    kmod_chan_unwatch (k);
    if (k->state == KMOD_LIVE) {
      log_error ("kmod: %s: /dev/repvol%" PRIu32 " was deleted while "
                 "serving; detaching", k->name, k->dev_id);
      kill (getpid (), SIGTERM);
    }
  }
}

/* ---- set up and down ---- */

int
kmod_slots_setup (struct kmod_dev *k)
{
  k->nslots = (size_t) k->p.nr_queues * k->p.queue_depth;
  k->slots = calloc (k->nslots, sizeof *k->slots);
  k->done = calloc (k->nslots, sizeof *k->done);
  /* Pages are used only as requests of that size come. */
  k->bufs_len = k->nslots * k->p.max_io_bytes;
  k->bufs = mmap (NULL, k->bufs_len, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (k->bufs == MAP_FAILED)
    k->bufs = NULL;
  if (!k->slots || !k->done || !k->bufs) {
    log_error ("kmod: %s: out of memory for %" PRIu32 " queues of depth %"
               PRIu32, k->name, k->p.nr_queues, k->p.queue_depth);
    return -ENOMEM;
  }
  for (size_t i = 0; i < k->nslots; i++) {
    struct kmod_slot *s = &k->slots[i];
    s->k = k;
    s->tag = (uint32_t) (i / k->p.queue_depth) << 16 |
             (uint32_t) (i % k->p.queue_depth);
    s->buf = k->bufs + i * k->p.max_io_bytes;
  }
  return 0;
}

void
kmod_slots_free (struct kmod_dev *k)
{
  if (k->bufs)
    munmap (k->bufs, k->bufs_len);
  k->bufs = NULL;
  free (k->slots);
  k->slots = NULL;
  free (k->done);
  k->done = NULL;
}

int
kmod_chan_watch (struct kmod_dev *k)
{
  if (loop_add (k->loop, &k->watch, k->chan_fd, EPOLLIN, on_chan, k) == -1) {
    int r = -errno;
    log_error ("kmod: %s: cannot watch /dev/repvolc%" PRIu32 ": %s", k->name,
               k->dev_id, strerror (-r));
    return r;
  }
  k->watching = true;
  return 0;
}

void
kmod_chan_unwatch (struct kmod_dev *k)
{
  if (k->watching)
    loop_del (k->loop, &k->watch);
  k->watching = false;
}
