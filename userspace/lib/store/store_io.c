/* store_io.c - each volume of the store as a bdev: read, write, flush,
 * trim, write-zeroes and checksum through the io engine.
 *
 * One request (struct sio) is a small state machine over io_engine
 * requests: a read or write is resubmitted for its remainder until done
 * (a short transfer is never reported as success); trim and
 * write-zeroes try fallocate and fall back to writing zeroes where the
 * filesystem lacks the mode; FUA on trim/write-zeroes adds a trailing
 * fdatasync, FUA on a write uses RWF_DSYNC on the write itself.
 *
 * Cache mode "none" keeps a second, O_DIRECT descriptor per volume and
 * uses it for every transfer whose buffer, offset and length are
 * aligned for direct I/O; anything else (and everything in "writeback"
 * mode) uses the buffered descriptor.  The kernel keeps the page cache
 * coherent with direct I/O to the same file.
 *
 * A request with BDEV_DIRTY runs its data I/O while store_dirty_io.c
 * makes its bits durable, and completes when both parts are done;
 * BDEV_MARK_DIRTY, BDEV_DIRTY_GET and BDEV_DIRTY_CLEAR are only the
 * dirty part.
 *
 * A resize (BDEV_RESIZE) waits for the requests before it, holding
 * those after it (store_resize.c).
 *
 * A checksum (BDEV_CHECKSUM) reads its range through the io engine in
 * chunks of at most STORE_CHECKSUM_CHUNK bytes into a scratch buffer of
 * its own, folding each chunk into a running crc32c as it arrives; bytes
 * past the end of a short sparse file count as zeroes, as READ has them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>
#include <linux/falloc.h>

#include "core/util.h"
#include "store/store_internal.h"

static void sio_step (struct sio *io);
static void sio_io_done (struct io_req *r, int res);


/* A request's bookkeeping is kept once it is over, for the next one,
 * instead of a calloc and a free per request.
 */
struct sio *
store_sio_get (struct store *s)
{
  return freelist_get (&s->sio_free, sizeof (struct sio));
}

void
store_sio_put (struct store *s, struct sio *io)
{
  freelist_put (&s->sio_free, io);
}

void
store_sio_finish (struct sio *io, int err)
{
  struct store_vol *v = io->v;
  struct bdev_io *bio = io->bio;

  if (err && !io->perr)
    io->perr = err;
  if (--io->parts > 0)
    return;                     /* the other part is still running */
  err = io->perr;
  if (!err && bio->op == BDEV_CHECKSUM)
    memcpy (bio->buf, &io->crc, sizeof io->crc);
  free (io->scratch);
  store_sio_put (v->s, io);
  v->inflight--;
  bio->done (bio, err);
  if (v->inflight == 0 && v->drain_done) {
    void (*done) (void *) = v->drain_done;
    v->drain_done = NULL;
    done (v->drain_opaque);
  }
  if (v->resize_io)
    store_resize_try (v);
  store_vol_put (v);
}

void
store_sio_run_failed (struct store *s)
{
  while (s->fail_head) {
    struct sio *io = s->fail_head;
    s->fail_head = io->next;
    if (!s->fail_head) s->fail_tail = NULL;
    store_sio_finish (io, io->err);
  }
}

static void
fail_defer_cb (struct loop_defer *d)
{
  store_sio_run_failed (d->opaque);
}

static void
sio_fail_later (struct sio *io, int err)
{
  struct store *s = io->v->s;
  io->err = err;
  io->next = NULL;
  if (s->fail_tail) s->fail_tail->next = io; else s->fail_head = io;
  s->fail_tail = io;
  loop_defer (s->loop, &s->fail_defer, fail_defer_cb, s);
}

static bool
dio_ok (const struct store_vol *v, const void *buf, uint64_t off, size_t len)
{
  return v->dfd >= 0 &&
    ((uintptr_t) buf % DIO_ALIGN | off % DIO_ALIGN | len % DIO_ALIGN) == 0;
}

static void
submit_req (struct sio *io, enum io_op op, int fd, void *buf, size_t len,
            uint64_t off, int rw_flags, int mode)
{
  io->req = (struct io_req) {
    .op = op, .fd = fd, .buf = buf, .len = len, .off = off,
    .rw_flags = rw_flags, .mode = mode, .inline_ok = io->inline_ok,
    .done = sio_io_done, .opaque = io,
  };
  io_engine_submit (io->v->s->eng, &io->req);
}

/* Issue the next engine request for io's current phase. */
static void
sio_step (struct sio *io)
{
  struct store_vol *v = io->v;
  struct bdev_io *bio = io->bio;
  uint64_t off = bio->offset + io->done;
  size_t rem = bio->len - io->done;

  switch (io->phase) {
  case PH_RW: {
    char *buf = (char *) bio->buf + io->done;
    int fd = dio_ok (v, buf, off, rem) ? v->dfd : v->fd;
    bool w = bio->op == BDEV_WRITE;
    bool fua = w && (bio->flags & BDEV_FUA);
    /* A page-cache write that needs no sync is a memory copy. */
    io->inline_ok = w && !fua && fd == v->fd && rem <= INLINE_WRITE_MAX;
    submit_req (io, w ? IO_WRITE : IO_READ, fd, buf, rem, off,
                fua ? RWF_DSYNC : 0, 0);
    io->inline_ok = false;
    return;
  }
  case PH_ZERO: {
    size_t n = MIN (rem, (size_t) ZERO_BUF_SIZE);
    int fd = dio_ok (v, v->s->zero_buf, off, n) ? v->dfd : v->fd;
    submit_req (io, IO_WRITE, fd, v->s->zero_buf, n, off, 0, 0);
    return;
  }
  case PH_FALLOC:
    submit_req (io, IO_FALLOCATE, v->fd, NULL, bio->len, bio->offset, 0,
                io->falloc_mode);
    return;
  case PH_SYNC:
    submit_req (io, IO_FDATASYNC, v->fd, NULL, 0, 0, 0, 0);
    return;
  case PH_CSUM: {
    size_t n = MIN (rem, (size_t) STORE_CHECKSUM_CHUNK);
    int fd = dio_ok (v, io->scratch, off, n) ? v->dfd : v->fd;
    submit_req (io, IO_READ, fd, io->scratch, n, off, 0, 0);
    return;
  }
  }
}

static void
sio_main_done (struct sio *io)
{
  if (io->sync_after) {
    io->sync_after = false;
    io->phase = PH_SYNC;
    sio_step (io);
  }
  else
    store_sio_finish (io, 0);
}

static void
sio_io_done (struct io_req *r, int res)
{
  struct sio *io = r->opaque;
  struct store_vol *v = io->v;
  struct bdev_io *bio = io->bio;

  switch (io->phase) {
  case PH_RW:
  case PH_ZERO:
  case PH_CSUM:
    if (res == -EINVAL && r->fd != v->fd) {
      /* The device wants stricter direct I/O alignment than we assume:
       * use the page cache for this volume from now on.
       */
      if (v->dfd >= 0)
        log_warn ("volume %s: O_DIRECT I/O refused (EINVAL); "
                  "using the page cache", v->meta.name);
      if (v->dfd >= 0) {
        close (v->dfd);
        v->dfd = -1;
      }
      sio_step (io);
      return;
    }
    if (res < 0) {
      store_sio_finish (io, -res);
      return;
    }
    if (io->phase == PH_CSUM) {
      if (res == 0) {
        /* Past the end of a (shorter than expected) sparse file. */
        for (uint64_t left = bio->len - io->done; left; ) {
          size_t n = MIN (left, (uint64_t) ZERO_BUF_SIZE);
          io->crc = crc32c (io->crc, v->s->zero_buf, n);
          left -= n;
        }
        io->done = bio->len;
      }
      else {
        io->crc = crc32c (io->crc, io->scratch, (size_t) res);
        io->done += res;
      }
      if (io->done < bio->len)
        sio_step (io);          /* the next chunk, or a short read's rest */
      else
        store_sio_finish (io, 0);
      return;
    }
    if (res == 0) {
      if (r->op == IO_WRITE) {
        store_sio_finish (io, EIO);
        return;
      }
      /* Past the end of a (shorter than expected) sparse file: zeroes. */
      memset ((char *) bio->buf + io->done, 0, bio->len - io->done);
      io->done = bio->len;
    }
    else
      io->done += res;
    if (io->done < bio->len) {
      sio_step (io);          /* short transfer: the rest */
      return;
    }
    sio_main_done (io);
    return;

  case PH_FALLOC:
    if (res == -EOPNOTSUPP || res == -ENOTSUP || res == -EINVAL) {
      if (io->falloc_mode & FALLOC_FL_ZERO_RANGE)
        v->no_zero_range = true;
      else
        v->no_punch = true;
      io->phase = PH_ZERO;
      io->done = 0;
      sio_step (io);
      return;
    }
    if (res < 0) {
      store_sio_finish (io, -res);
      return;
    }
    sio_main_done (io);
    return;

  case PH_SYNC:
    store_sio_finish (io, res < 0 ? -res : 0);
    return;
  }
}

static void
store_submit (struct bdev *b, struct bdev_io *bio)
{
  struct store_vol *v = b->priv;
  struct sio *io = store_sio_get (v->s);

  if (!io) {
    /* No memory even for the bookkeeping: complete at once (the bdev
     * contract allows it) rather than lose the request.
     */
    bio->done (bio, ENOMEM);
    return;
  }
  io->bio = bio;
  io->v = v;
  io->parts = 1;
  store_vol_get (v);
  v->inflight++;
  /* What comes after a resize runs against the new size: it waits. */
  if (v->resize_io) {
    if (v->held_tail) v->held_tail->next = io; else v->held_head = io;
    v->held_tail = io;
    v->nheld++;
    return;
  }
  store_sio_start (io);
}

void
store_sio_start (struct sio *io)
{
  struct store_vol *v = io->v;
  struct bdev_io *bio = io->bio;
  bool fua = bio->flags & BDEV_FUA;

  /* Trim and write-zeroes carry no buffer, so only transfers are bound
   * by STORE_MAX_IO.
   */
  if (bio->op != BDEV_FLUSH && bio->op != BDEV_DIRTY_GET &&
      bio->op != BDEV_DIRTY_CLEAR && bio->op != BDEV_RESIZE &&
      (bio->len == 0 || bio->offset > v->meta.size ||
       bio->len > v->meta.size - bio->offset ||
       ((bio->op == BDEV_READ || bio->op == BDEV_WRITE) &&
        bio->len > STORE_MAX_IO))) {
    sio_fail_later (io, EINVAL);
    return;
  }

  if ((bio->flags & BDEV_DIRTY) && bio->op != BDEV_WRITE &&
      bio->op != BDEV_TRIM && bio->op != BDEV_WRITE_ZEROES) {
    sio_fail_later (io, EINVAL);
    return;
  }

  switch (bio->op) {
  case BDEV_MARK_DIRTY: {
    uint64_t need = store_dirty_mark (v, bio->offset, bio->len);
    /* The waiter is the request's only part: it completes it. */
    if (need == 0 || need <= v->dm.durable_seq) {
      sio_fail_later (io, 0);
      return;
    }
    store_dirty_wait (io, need);
    io->parts--;
    return;
  }
  case BDEV_DIRTY_GET:
    if (!bio->buf || bio->len != store_vol_dirty_get_size (v)) {
      sio_fail_later (io, EINVAL);
      return;
    }
    store_dirty_get (v, bio->buf);
    sio_fail_later (io, 0);
    return;
  case BDEV_DIRTY_CLEAR:
    store_dirty_wait (io, dmap_clear (&v->dm));
    io->parts--;
    return;
  case BDEV_RESIZE:
    /* After the requests already submitted (bdev.h): it runs once they
     * and the dirty op in flight are done (store_resize.c).
     */
    if (bio->len || (bio->flags & ~BDEV_RESERVE)) {
      sio_fail_later (io, EINVAL);
      return;
    }
    v->resize_io = io;
    store_resize_try (v);
    return;
  case BDEV_READ:
  case BDEV_WRITE:
    io->phase = PH_RW;
    break;
  case BDEV_FLUSH:
    io->phase = PH_SYNC;
    break;
  case BDEV_CHECKSUM:
    if (!bio->buf ||
        posix_memalign (&io->scratch, DIO_ALIGN,
                        MIN (bio->len, STORE_CHECKSUM_CHUNK)) != 0) {
      io->scratch = NULL;
      sio_fail_later (io, bio->buf ? ENOMEM : EINVAL);
      return;
    }
    io->phase = PH_CSUM;
    break;
  case BDEV_TRIM:
  case BDEV_WRITE_ZEROES: {
    /* A reserved volume keeps its blocks (ZERO_RANGE) so a later write
     * cannot hit ENOSPC; so does write-zeroes with NO_HOLE.  Otherwise
     * punch a hole.  Trim, too, leaves zeroes behind so replicas stay
     * byte-identical whatever their filesystems support.
     */
    bool keep = (v->meta.flags & STORE_F_RESERVED) ||
                (bio->op == BDEV_WRITE_ZEROES && (bio->flags & BDEV_NO_HOLE));
    io->sync_after = fua;
    if (keep ? v->no_zero_range : v->no_punch) {
      io->phase = PH_ZERO;
    }
    else {
      io->phase = PH_FALLOC;
      io->falloc_mode = FALLOC_FL_KEEP_SIZE |
        (keep ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE);
    }
    break;
  }
  default:
    sio_fail_later (io, EINVAL);
    return;
  }
  /* The data I/O starts now, in parallel with the persist of its bits. */
  if (bio->flags & BDEV_DIRTY)
    store_dirty_wait (io, store_dirty_mark (v, bio->offset, bio->len));
  sio_step (io);
}

static void
store_drain (struct bdev *b, void (*done) (void *), void *opaque)
{
  struct store_vol *v = b->priv;
  if (v->inflight == 0) {
    done (opaque);
    return;
  }
  v->drain_done = done;
  v->drain_opaque = opaque;
}

static void
store_bdev_close (struct bdev *b)
{
  /* The volume belongs to the store; references are released with
   * store_vol_put.
   */
}

const struct bdev_ops store_bdev_ops = {
  .name = "store",
  .submit = store_submit,
  .drain = store_drain,
  .close = store_bdev_close,
};
