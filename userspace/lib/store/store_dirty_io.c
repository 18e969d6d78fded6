/* store_dirty_io.c - persisting a volume's dirty map through the io
 * engine (dirty.h keeps the bookkeeping, dirty.c the file format).
 *
 * At most one "dirty op" per volume runs at a time.  A page op writes
 * the bitmap pages that changed (copies taken when it starts) and
 * fdatasyncs.  A reset op (a clear, or creating a missing file) is the
 * atomic replace of core/fsutil.h done asynchronously, step by step
 * through the engine so the loop never blocks on it:
 *
 *   DP_HDR      write the header of a fresh .NAME.dirty.tmp (sized,
 *               all bits zero)
 *   DP_TMPSYNC  fdatasync it
 *               rename it over NAME.dirty; it becomes the map's fd
 *   DP_DIRSYNC  fsync the directory
 *
 * A request whose bits are not durable yet waits on the op that carries
 * them (it sits on the volume's waiter list as one part of its sio);
 * marks made while an op is in flight ride on the next one.  A failed op
 * fails the waiters it was to satisfy; its pages stay pending and the
 * next mark retries them.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "core/wire.h"
#include "store/store_internal.h"

/* One dirty-map disk operation (see the top of this file). */
enum dirty_phase { DP_WRITE, DP_SYNC, DP_HDR, DP_TMPSYNC, DP_DIRSYNC };
struct dirty_op {
  struct store_vol *v;
  struct dmap_op op;
  bool create_only;             /* reset to make a missing file: no seq */
  enum dirty_phase phase;
  unsigned outstanding;
  int err;
  int tmpfd;
  uint8_t *hdr;
  size_t nreqs;
  struct io_req reqs[];
};

static void dirty_kick (struct store_vol *v);

uint64_t
store_vol_dirty_count (const struct store_vol *v)
{
  return v->dm.count;
}

size_t
store_vol_dirty_get_size (const struct store_vol *v)
{
  return STORE_DIRTY_HDR_SIZE + v->dm.nbytes;
}

void
store_vol_dirty_stats (const struct store_vol *v, struct store_dirty_stats *st)
{
  st->persists = v->dm.persists;
  st->clears = v->dm.clears;
  st->pages_written = v->dirty_pages_written;
}

static void dirty_io_done (struct io_req *r, int res);

static void
dirty_submit (struct dirty_op *d, size_t i, enum io_op op, int fd, void *buf,
              size_t len, uint64_t off)
{
  d->reqs[i] = (struct io_req) {
    .op = op, .fd = fd, .buf = buf, .len = len, .off = off,
    .done = dirty_io_done, .opaque = d,
  };
  d->outstanding++;
  io_engine_submit (d->v->s->eng, &d->reqs[i]);
}

/* The op is over: settle the map, complete the waiters it satisfied (or
 * failed), start the next op if anything is left.
 */
static void
dirty_op_end (struct dirty_op *d)
{
  struct store_vol *v = d->v;
  struct sio *done = NULL, **dtail = &done, **pp;
  uint64_t seq = d->op.seq;
  int err = d->err;

  if (d->tmpfd >= 0) {
    char path[STORE_PATH_MAX], tmp[STORE_PATH_MAX];
    close (d->tmpfd);
    store_file_names (v->meta.name, ".dirty", path, tmp);
    unlinkat (v->s->dirfd, tmp, 0);
  }
  if (err)
    log_error ("volume %s: persisting the dirty map: %s", v->meta.name,
               strerror (err));
  if (!d->create_only)
    dmap_end (&v->dm, &d->op, err);
  else if (err)
    seq = v->dm.next_seq;       /* nothing pending can be written */
  v->dop = NULL;
  free (d->hdr);
  free (d);

  /* Collect first, complete after: completions may mark again. */
  for (pp = &v->dwait_head; *pp; ) {
    struct sio *io = *pp;
    if (io->dneed <= v->dm.durable_seq || (err && io->dneed <= seq)) {
      *pp = io->dnext;
      io->dnext = NULL;
      *dtail = io;
      dtail = &io->dnext;
    }
    else
      pp = &io->dnext;
  }
  while (done) {
    struct sio *io = done;
    done = io->dnext;
    store_sio_finish (io, io->dneed <= v->dm.durable_seq ? 0 : err);
  }
  if (!err || v->dwait_head)
    dirty_kick (v);
  if (v->resize_io)
    store_resize_try (v);       /* it waited for this op */
  store_vol_put (v);
}

static void
dirty_io_done (struct io_req *r, int res)
{
  struct dirty_op *d = r->opaque;
  struct store_vol *v = d->v;
  struct store *s = v->s;

  if (res < 0 && !d->err)
    d->err = -res;
  else if (res >= 0 && r->op == IO_WRITE && (size_t) res != r->len &&
           !d->err)
    d->err = EIO;               /* short write to a small file: give up */
  if (--d->outstanding > 0)
    return;
  if (d->err) {
    dirty_op_end (d);
    return;
  }
  switch (d->phase) {
  case DP_WRITE:
    d->phase = DP_SYNC;
    dirty_submit (d, 0, IO_FDATASYNC, v->dirty_fd, NULL, 0, 0);
    return;
  case DP_HDR:
    d->phase = DP_TMPSYNC;
    dirty_submit (d, 0, IO_FDATASYNC, d->tmpfd, NULL, 0, 0);
    return;
  case DP_TMPSYNC: {
    char path[STORE_PATH_MAX], tmp[STORE_PATH_MAX];
    store_file_names (v->meta.name, ".dirty", path, tmp);
    if (v->deleted) {
      d->err = ENOENT;          /* never resurrect a deleted volume's map */
      dirty_op_end (d);
      return;
    }
    if (renameat (s->dirfd, tmp, s->dirfd, path) == -1) {
      d->err = errno;
      dirty_op_end (d);
      return;
    }
    if (v->dirty_fd >= 0)
      close (v->dirty_fd);
    v->dirty_fd = d->tmpfd;
    d->tmpfd = -1;
    d->phase = DP_DIRSYNC;
    dirty_submit (d, 0, IO_FDATASYNC, s->dirfd, NULL, 0, 0);
    return;
  }
  case DP_SYNC:
  case DP_DIRSYNC:
    dirty_op_end (d);
    return;
  }
}

/* Start a reset: a fresh, empty file replacing the old one (or none). */
static void
dirty_start_reset (struct dirty_op *d)
{
  struct store_vol *v = d->v;
  int err;

  d->hdr = aligned_alloc (DIO_ALIGN, STORE_DIRTY_FILE_HDR);
  if (!d->hdr) {
    d->err = ENOMEM;
    dirty_op_end (d);
    return;
  }
  store_dirty_hdr_encode (v->dm.region, v->dm.nregions, d->hdr);
  err = store_dirty_tmp_create (v->s->dirfd, v->meta.name, v->meta.size,
                                &d->tmpfd);
  if (err < 0) {
    d->err = -err;
    dirty_op_end (d);
    return;
  }
  d->phase = DP_HDR;
  dirty_submit (d, 0, IO_WRITE, d->tmpfd, d->hdr, STORE_DIRTY_FILE_HDR, 0);
}

static void
dirty_start_pages (struct dirty_op *d)
{
  struct store_vol *v = d->v;
  struct dmap_op *op = &d->op;
  size_t n = 0;

  d->phase = DP_WRITE;
  /* One write per run of consecutive pages. */
  for (size_t i = 0; i < op->npages; ) {
    size_t j = i + 1;
    while (j < op->npages && op->pages[j] == op->pages[j - 1] + 1)
      j++;
    uint64_t off = (uint64_t) op->pages[i] * DMAP_PAGE;
    size_t len = MIN ((j - i) * (size_t) DMAP_PAGE, v->dm.nbytes - off);
    v->dirty_pages_written += j - i;
    dirty_submit (d, n++, IO_WRITE, v->dirty_fd,
                  op->stage + i * DMAP_PAGE, len,
                  STORE_DIRTY_FILE_HDR + off);
    i = j;
  }
}

/* Start the next op if none is in flight and something needs one. */
static void
dirty_kick (struct store_vol *v)
{
  struct dirty_op *d;
  struct dmap_op op;
  bool create = false;
  int rc;

  if (v->dop)
    return;
  if (v->dirty_fd < 0 && !v->dm.clear_queued) {
    if (!v->dm.npending)
      return;
    create = true;              /* make the file, then the pages */
    memset (&op, 0, sizeof op);
  }
  else {
    rc = dmap_begin (&v->dm, &op);
    if (rc == 0)
      return;
    if (rc < 0) {
      log_error ("volume %s: no memory to persist the dirty map",
                 v->meta.name);
      return;   /* waiters stay; the next mark or op retries */
    }
  }
  d = calloc (1, sizeof *d + MAX (op.npages, 1) * sizeof (struct io_req));
  if (!d) {
    if (!create)
      dmap_end (&v->dm, &op, ENOMEM);
    log_error ("volume %s: no memory to persist the dirty map",
               v->meta.name);
    return;
  }
  d->v = v;
  d->op = op;
  d->create_only = create;
  d->tmpfd = -1;
  v->dop = d;
  store_vol_get (v);
  if (create || op.clear)
    dirty_start_reset (d);
  else
    dirty_start_pages (d);
}

static void
dirty_kick_cb (struct loop_defer *dd)
{
  struct store_vol *v = dd->opaque;
  v->dirty_kick_queued = false;
  dirty_kick (v);
  store_vol_put (v);
}

void
store_dirty_wait (struct sio *io, uint64_t need)
{
  struct store_vol *v = io->v;

  if (need == 0 || need <= v->dm.durable_seq)
    return;
  io->parts++;
  io->dneed = need;
  io->dnext = v->dwait_head;
  v->dwait_head = io;
  /* Start at the end of this loop iteration, so every mark that arrives
   * in the same wakeup rides on one op.
   */
  if (!v->dirty_kick_queued && !v->dop) {
    v->dirty_kick_queued = true;
    store_vol_get (v);
    loop_defer (v->s->loop, &v->dirty_defer, dirty_kick_cb, v);
  }
}

uint64_t
store_dirty_mark (struct store_vol *v, uint64_t off, uint64_t len)
{
  uint64_t first, last;
  dmap_range (&v->dm, off, len, v->dm.region, &first, &last);
  return dmap_mark (&v->dm, first, last);
}

void
store_dirty_get (struct store_vol *v, void *buf)
{
  uint8_t *p = buf;
  putle32 (p, v->dm.region);
  putle32 (p + 4, 0);
  putle64 (p + 8, v->dm.nregions);
  memcpy (p + STORE_DIRTY_HDR_SIZE, v->dm.mem, v->dm.nbytes);
}

