/* store_resize.c - changing a volume's size: its three files in a
 * crash-safe order, then its in-memory state; and BDEV_RESIZE, which
 * waits for the volume's requests before it.
 *
 * The metadata is the commit point (docs/DESIGN.md 3.10).  A grow sizes
 * the data file first (and allocates the grown range when reserving),
 * then replaces the dirty map with one for the new size, then writes
 * the metadata; a shrink writes the metadata first, then the map, then
 * cuts the data file.  So a crash anywhere leaves the metadata's size
 * with a data file and a map at least that large, which start-up cuts
 * back (store.c, dirty.c): never a volume whose files are smaller than
 * it says.
 *
 * A resize touches the files the io engine writes, so it runs only when
 * nothing else does: store_vol_resize refuses (-EBUSY) while requests or
 * a dirty op are in flight; BDEV_RESIZE waits for them instead, holding
 * the requests submitted after it (store_io.c) until it is done.  Like
 * create, it blocks the loop for its fsyncs.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "store/store_internal.h"

/* Size the data file up from old to size (the range past old reads as
 * zeroes), allocated when reserve, durably.  On failure it is cut back.
 */
static int
data_grow (struct store_vol *v, uint64_t old, uint64_t size, bool reserve,
           struct error *err)
{
  int r = 0;

  /* Cut first: bytes a failed shrink left past old must not reappear. */
  if (ftruncate (v->fd, old) == -1 || ftruncate (v->fd, size) == -1)
    r = error_set (err, errno, "%s.data: %s", v->meta.name, strerror (errno));
  else if (reserve && fallocate (v->fd, 0, old, size - old) == -1)
    r = error_set (err, errno, "%s.data: %s", v->meta.name,
                   errno == EOPNOTSUPP
                   ? "the filesystem cannot reserve space (fallocate)"
                   : strerror (errno));
  else if (fdatasync (v->fd) == -1)
    r = error_set (err, errno, "%s.data: fdatasync: %s", v->meta.name,
                   strerror (errno));
  if (r < 0 && ftruncate (v->fd, old) == -1)
    log_warn ("volume %s: cutting the data file back after a failed "
              "resize: %m", v->meta.name);
  return r;
}

/* The dirty map's file for size from map dm: the new file's descriptor
 * into *fdp (-1 when it could not be made; the old file is then the
 * map still).
 */
static int
dirty_replace (struct store_vol *v, const struct dmap *dm, uint64_t size,
               int *fdp, struct error *err)
{
  int r;

  *fdp = -1;
  r = store_dirty_write (v->s->dirfd, v->meta.name, size, dm->mem, fdp);
  if (r < 0)
    error_set (err, -r, "%s.dirty: %s", v->meta.name, strerror (-r));
  return r;
}

/* The map's file is now fd (or stays as it is, fd -1). */
static void
dirty_fd_swap (struct store_vol *v, int fd)
{
  if (fd < 0)
    return;
  if (v->dirty_fd >= 0)
    close (v->dirty_fd);
  v->dirty_fd = fd;
}

/* Write m, the commit point.  A failure after the rename (the
 * directory's fsync) leaves m in place: read back, it counts as done,
 * so the volume in memory is what a restart would load.
 */
static int
meta_commit (struct store_vol *v, const struct store_meta *m,
             struct error *err)
{
  struct store_meta now;
  int r = store_meta_write (v->s->dirfd, m);

  if (r < 0 && store_meta_read (v->s->dirfd, m->name, &now, NULL) == 0 &&
      now.size == m->size) {
    log_warn ("volume %s: resize: writing the metadata: %s (it is in "
              "place: resized)", v->meta.name, strerror (-r));
    r = 0;
  }
  if (r < 0)
    error_set (err, -r, "%s.meta: %s", v->meta.name, strerror (-r));
  return r;
}

static int
grow (struct store_vol *v, const struct store_meta *m, struct dmap *nd,
      bool reserve, struct error *err)
{
  uint64_t old = v->meta.size;
  int fd, r;

  r = data_grow (v, old, m->size, reserve, err);
  if (r < 0)
    return r;
  r = dirty_replace (v, nd, m->size, &fd, err);
  if (r < 0 && ftruncate (v->fd, old) == -1)
    log_warn ("volume %s: cutting the data file back after a failed "
              "resize: %m", v->meta.name);
  /* Not committed: the larger data file and map stay, which fit
   * either size; start-up cuts them back.
   */
  if (r == 0)
    r = meta_commit (v, m, err);
  /* The map's updates must reach the file that is there now. */
  dirty_fd_swap (v, fd);
  return r;
}

static int
shrink (struct store_vol *v, const struct store_meta *m, struct dmap *nd,
        struct error *err)
{
  struct error e = { 0 };
  int fd, r;

  r = meta_commit (v, m, err);
  if (r < 0)
    return r;
  /* Committed.  What fails from here leaves files larger than the
   * volume, which start-up cuts back; the volume is already smaller.
   */
  if (dirty_replace (v, nd, m->size, &fd, &e) < 0)
    log_warn ("volume %s: resize: %s (cut at the next start)", v->meta.name,
              error_msg (&e));
  dirty_fd_swap (v, fd);
  if (ftruncate (v->fd, m->size) == -1 || fdatasync (v->fd) == -1)
    log_warn ("volume %s: resize: cutting the data file: %m (cut at the "
              "next start)", v->meta.name);
  return 0;
}

/* store_vol_resize without the in-flight check: the caller has made
 * sure nothing else touches the volume's files.
 */
static int
resize_now (struct store_vol *v, uint64_t size, bool reserve,
            struct error *err)
{
  struct store *s = v->s;
  struct store_meta m = v->meta;
  uint64_t old = v->meta.size;
  struct dmap nd;
  char a[32], b[32];
  int r;

  if (v->deleted)
    return error_set (err, ENOENT, "volume deleted");
  if (size == 0 || size % v->meta.block_size)
    return error_set (err, EINVAL, "new size %" PRIu64 " is zero or not a "
                      "multiple of the block size %u", size,
                      v->meta.block_size);
  reserve = size > old && (reserve || (v->meta.flags & STORE_F_RESERVED));
  r = store_size_bounds (s, size, old, reserve ? size - old : 0, err);
  if (r < 0 || size == old)
    return r;
  if (v->dop)
    return error_set (err, EBUSY, "a dirty-map update is in flight");
  if (dmap_resize (&v->dm, &nd, size, store_dirty_region (size)) < 0)
    return error_set (err, ENOMEM, "out of memory for the dirty map");
  m.size = size;
  r = size > old ? grow (v, &m, &nd, reserve, err) : shrink (v, &m, &nd, err);
  if (r < 0) {
    dmap_free (&nd);
    return r;
  }
  /* The new file holds the whole map as it is. */
  dmap_all_durable (&nd);
  dmap_free (&v->dm);
  v->dm = nd;
  s->dirty_mem += store_dirty_mem_bytes (size);
  s->dirty_mem -= store_dirty_mem_bytes (old);
  v->meta = m;
  v->bdev.info.size = size;
  /* The server says it at info, with who asked. */
  log_debug ("volume %s resized %s -> %s%s", v->meta.name,
             format_size (old, a, sizeof a), format_size (size, b, sizeof b),
             reserve ? ", reserved" : "");
  return 0;
}

int
store_vol_resize (struct store_vol *v, uint64_t new_size, bool reserve,
                  struct error *err)
{
  if (v->inflight || v->dop)
    return error_set (err, EBUSY, "requests in flight on the volume");
  return resize_now (v, new_size, reserve, err);
}

/* ---- BDEV_RESIZE ---------------------------------------------------- */

static bool
resize_ready (const struct store_vol *v)
{
  return v->resize_io && !v->dop && v->inflight == v->nheld + 1;
}

static void
resize_cb (struct loop_defer *d)
{
  struct store_vol *v = d->opaque;
  struct sio *io = v->resize_io, *held;
  struct bdev_io *bio;
  struct error e = { 0 };
  int r;

  /* A dirty op may have started since (a kick queued earlier): its end
   * tries again.
   */
  if (!resize_ready (v))
    return;
  bio = io->bio;
  r = resize_now (v, bio->offset, bio->flags & BDEV_RESERVE, &e);
  if (r < 0)
    log_debug ("volume %s: resize to %" PRIu64 " bytes: %s", v->meta.name,
               bio->offset, error_msg (&e));
  /* Start what was held before completing the resize: a request its
   * completion submits must not overtake them.  A held RESIZE becomes
   * the next one, and holds what follows it again.
   */
  v->resize_io = NULL;
  held = v->held_head;
  v->held_head = v->held_tail = NULL;
  v->nheld = 0;
  while (held) {
    struct sio *next = held->next;
    held->next = NULL;
    if (v->resize_io) {
      if (v->held_tail) v->held_tail->next = held; else v->held_head = held;
      v->held_tail = held;
      v->nheld++;
    }
    else
      store_sio_start (held);
    held = next;
  }
  store_sio_finish (io, -r);
}

void
store_resize_try (struct store_vol *v)
{
  if (resize_ready (v))
    loop_defer (v->s->loop, &v->resize_defer, resize_cb, v);
}
