/* store.c - volumes in a data directory, each served as a bdev.
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
 * The dirty map (dirty.h keeps the bookkeeping) is persisted by at most
 * one "dirty op" per volume at a time, through the same io engine: a
 * page op writes the bitmap pages that changed (copies taken when it
 * starts) and fdatasyncs; a reset op (clear, or creating a missing file)
 * writes a fresh file beside the old one, fdatasyncs, renames it over
 * and fsyncs the directory.  A request whose bits are not durable yet
 * waits on the op that carries them (a waiter sio); marks made while an
 * op is in flight ride on the next one.  A write with BDEV_DIRTY runs its
 * data I/O meanwhile and completes when both parts are done.
 *
 * A checksum (BDEV_CHECKSUM) reads its range through the io engine in
 * chunks of at most STORE_CHECKSUM_CHUNK bytes into a scratch buffer of
 * its own, folding each chunk into a running crc32c as it arrives; bytes
 * past the end of a short sparse file count as zeroes, as READ has them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <linux/falloc.h>

#include "core/util.h"
#include "core/wire.h"
#include "store/store.h"
#include "store/io_engine.h"
#include "store/dirty.h"

#define ENGINE_DEPTH   256
#define ZERO_BUF_SIZE  (1u << 20)
#define DIO_ALIGN      4096u    /* safe for every device with <= 4K sectors */
#define DRAIN_MS       10000
#define INLINE_WRITE_MAX (1u << 20)

struct store {
  struct loop *loop;
  struct io_engine *eng;
  char *dir;
  int dirfd;
  enum store_cache cache;
  struct store_vol *vols;
  size_t nvols;
  void *zero_buf;               /* ZERO_BUF_SIZE zeroes, aligned */
  bool dio_warned;
  /* Requests refused before reaching the engine complete from here, so
   * submit never completes re-entrantly.
   */
  struct loop_defer fail_defer;
  struct sio *fail_head, *fail_tail;
};

struct dirty_op;

struct store_vol {
  struct store *s;
  struct store_vol *next;
  struct bdev bdev;
  struct store_meta meta;
  int fd;                       /* buffered */
  int dfd;                      /* O_DIRECT, or -1 */
  int refs;
  bool deleted;
  bool no_zero_range, no_punch; /* filesystem refused these modes */
  unsigned inflight;
  void (*drain_done) (void *);
  void *drain_opaque;
  /* dirty map */
  struct dmap dm;
  int dirty_fd;                 /* -1: no file yet (made by the next op) */
  struct dirty_op *dop;         /* the op in flight, or NULL */
  struct sio *dwait_head;       /* requests waiting for durable bits */
  struct loop_defer dirty_defer;
  bool dirty_kick_queued;
  uint64_t dirty_pages_written;
};

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

enum sio_phase {
  PH_RW,                        /* read / write the caller's buffer */
  PH_ZERO,                      /* write zeroes from the zero buffer */
  PH_FALLOC,
  PH_SYNC,
  PH_CSUM,                      /* read into scratch, fold into crc */
};

struct sio {
  struct io_req req;
  struct bdev_io *bio;
  struct store_vol *v;
  enum sio_phase phase;
  uint64_t done;                /* bytes finished in PH_RW / PH_ZERO */
  bool sync_after;              /* fdatasync once the main phase is done */
  bool inline_ok;               /* next engine request may run inline */
  int falloc_mode;
  int err;                      /* for refused requests */
  struct sio *next;
  int parts;                    /* data I/O and/or dirty wait outstanding */
  int perr;                     /* first error of any part */
  uint64_t dneed;               /* dirty op seq waited for */
  struct sio *dnext;            /* the volume's waiter list */
  void *scratch;                /* PH_CSUM: STORE_CHECKSUM_CHUNK at most */
  uint32_t crc;                 /* PH_CSUM: crc32c of the bytes so far */
};

static const struct bdev_ops store_bdev_ops;
static void sio_step (struct sio *io);
static void sio_io_done (struct io_req *r, int res);
static void sio_finish (struct sio *io, int err);
static void dirty_kick (struct store_vol *v);

const char *
store_cache_name (enum store_cache cache)
{
  return cache == STORE_CACHE_WRITEBACK ? "writeback" : "none";
}

int
store_parse_cache (const char *s, enum store_cache *out)
{
  if (!strcmp (s, "none")) *out = STORE_CACHE_NONE;
  else if (!strcmp (s, "writeback")) *out = STORE_CACHE_WRITEBACK;
  else return -1;
  return 0;
}

const char *store_engine_name (const struct store *s) { return io_engine_name (s->eng); }
size_t store_volume_count (const struct store *s) { return s->nvols; }
unsigned store_pending (const struct store *s) { return io_engine_pending (s->eng); }
const struct store_meta *store_vol_meta (const struct store_vol *v) { return &v->meta; }
bool store_vol_deleted (const struct store_vol *v) { return v->deleted; }
struct bdev *store_vol_bdev (struct store_vol *v) { return &v->bdev; }

/* ---- volumes ---------------------------------------------------- */

void
store_vol_get (struct store_vol *v)
{
  v->refs++;
}

void
store_vol_put (struct store_vol *v)
{
  if (--v->refs > 0)
    return;
  if (v->dfd >= 0) close (v->dfd);
  if (v->dirty_fd >= 0) close (v->dirty_fd);
  close (v->fd);
  dmap_free (&v->dm);
  free (v);
}

struct store_vol *
store_lookup (struct store *s, const char *name)
{
  for (struct store_vol *v = s->vols; v; v = v->next)
    if (!strcmp (v->meta.name, name))
      return v;
  return NULL;
}

static void
data_name (char *buf, size_t len, const char *name)
{
  snprintf (buf, len, "%s.data", name);
}

/* Load DIR/VOL.dirty into v->dm (a missing file: an empty map, the file
 * made by the first persist).
 */
static int
vol_dirty_open (struct store *s, struct store_vol *v, const char **why)
{
  static char whybuf[STORE_NAME_MAX + 128];
  size_t nbytes = store_dirty_bitmap_bytes (v->meta.size);
  uint8_t *bits = malloc (nbytes ? nbytes : 1);
  const char *r = "";
  int err;

  v->dirty_fd = -1;
  if (!bits) return -ENOMEM;
  err = store_dirty_load (s->dirfd, v->meta.name, v->meta.size, bits,
                          &v->dirty_fd, &r);
  if (err == -ENOENT) {
    log_debug ("volume %s: no %s.dirty; empty dirty map", v->meta.name,
               v->meta.name);
    err = dmap_init (&v->dm, v->meta.size, STORE_DIRTY_REGION, NULL);
  }
  else if (err == 0) {
    err = dmap_init (&v->dm, v->meta.size, STORE_DIRTY_REGION, bits);
    if (err == 0 && v->dm.count)
      log_info ("volume %s: dirty map has %" PRIu64 " dirty region(s)",
                v->meta.name, v->dm.count);
  }
  else {
    snprintf (whybuf, sizeof whybuf, "%s.dirty: %s", v->meta.name, r);
    *why = whybuf;
  }
  free (bits);
  if (err < 0 && v->dirty_fd >= 0) {
    close (v->dirty_fd);
    v->dirty_fd = -1;
  }
  if (err == -ENOMEM)
    *why = "out of memory for the dirty map";
  return err;
}

/* Open the data file(s) of a volume whose metadata is m. */
static int
vol_open (struct store *s, const struct store_meta *m, struct store_vol **out,
          const char **why)
{
  char path[STORE_NAME_MAX + 16];
  struct store_vol *v;
  struct stat st;
  int err;

  v = calloc (1, sizeof *v);
  if (!v) return -ENOMEM;
  v->s = s;
  v->meta = *m;
  v->dfd = -1;
  v->refs = 1;                  /* the store's list */
  data_name (path, sizeof path, m->name);
  v->fd = openat (s->dirfd, path, O_RDWR | O_CLOEXEC);
  if (v->fd == -1) {
    err = errno;
    *why = err == ENOENT ? "data file missing" : strerror (err);
    free (v);
    return -err;
  }
  if (fstat (v->fd, &st) == -1 || !S_ISREG (st.st_mode) ||
      (uint64_t) st.st_size != m->size) {
    *why = "data file size does not match the metadata";
    close (v->fd);
    free (v);
    return -EBADMSG;
  }
  err = vol_dirty_open (s, v, why);
  if (err < 0) {
    close (v->fd);
    free (v);
    return err;
  }
  if (s->cache == STORE_CACHE_NONE) {
    v->dfd = openat (s->dirfd, path, O_RDWR | O_CLOEXEC | O_DIRECT);
    if (v->dfd == -1 && !s->dio_warned) {
      log_info ("O_DIRECT not available in %s (%m); using the page cache",
                s->dir);
      s->dio_warned = true;
    }
  }
  v->bdev.ops = &store_bdev_ops;
  v->bdev.priv = v;
  v->bdev.info.size = m->size;
  v->bdev.info.block_size = m->block_size;
  v->bdev.info.max_io = STORE_MAX_IO;
  /* Even with O_DIRECT the disk may cache writes: FLUSH is needed. */
  v->bdev.info.volatile_cache = 1;

  v->next = s->vols;
  s->vols = v;
  s->nvols++;
  *out = v;
  return 0;
}

static void
vol_unlink_from_list (struct store *s, struct store_vol *v)
{
  for (struct store_vol **pp = &s->vols; *pp; pp = &(*pp)->next)
    if (*pp == v) {
      *pp = v->next;
      s->nvols--;
      return;
    }
}

int
store_create (struct store *s, const char *name, uint64_t size,
              uint32_t block_size, uint32_t flags, uint64_t epoch,
              struct store_vol **out)
{
  char path[STORE_NAME_MAX + 16];
  struct store_meta m = { 0 };
  const char *why;
  int fd, err;

  if (strlen (name) >= STORE_NAME_MAX)
    return -EINVAL;
  strcpy (m.name, name);
  m.size = size;
  m.block_size = block_size;
  m.flags = flags;
  m.epoch = epoch;
  m.created = time (NULL);
  if (getrandom (m.uuid, sizeof m.uuid, 0) != sizeof m.uuid)
    memset (m.uuid, 0, sizeof m.uuid);
  if (store_meta_check (&m, &why) == -1) {
    log_warn ("create %s: %s", name, why);
    return -EINVAL;
  }
  if (store_lookup (s, name))
    return -EEXIST;
  /* A metadata file we refused at start-up still guards its volume: an
   * operator may yet repair it, so never create over it.
   */
  snprintf (path, sizeof path, "%s.meta", name);
  if (faccessat (s->dirfd, path, F_OK, 0) == 0) {
    log_warn ("create %s: %s/%s exists (refused at start-up?)", name,
              s->dir, path);
    return -EEXIST;
  }

  /* No .meta means no volume: a .data left by an interrupted create is
   * ours to overwrite.
   */
  data_name (path, sizeof path, name);
  fd = openat (s->dirfd, path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd == -1)
    return -errno;
  if (ftruncate (fd, size) == -1)
    goto fail;
  if ((flags & STORE_F_RESERVED) && fallocate (fd, 0, 0, size) == -1) {
    if (errno == EOPNOTSUPP)
      log_warn ("create %s: filesystem cannot reserve space (fallocate)",
                name);
    goto fail;
  }
  if (fsync (fd) == -1)
    goto fail;
  close (fd);
  fd = -1;
  err = store_dirty_create (s->dirfd, name, size);
  if (err == 0)
    err = store_meta_write (s->dirfd, &m);
  if (err < 0) {
    unlinkat (s->dirfd, path, 0);
    snprintf (path, sizeof path, "%s.dirty", name);
    unlinkat (s->dirfd, path, 0);
    return err;
  }
  err = vol_open (s, &m, out, &why);
  if (err < 0) {
    log_error ("create %s: reopening: %s", name, why);
    return err;
  }
  log_info ("created volume %s: %" PRIu64 " bytes, block size %u%s, epoch %"
            PRIu64, name, size, block_size,
            flags & STORE_F_RESERVED ? ", reserved" : "", epoch);
  return 0;

 fail:
  err = errno;
  close (fd);
  unlinkat (s->dirfd, path, 0);
  return -err;
}

int
store_delete (struct store *s, struct store_vol *v)
{
  char path[STORE_NAME_MAX + 16];

  if (v->deleted)
    return -ENOENT;
  /* Metadata first: from here on the volume does not exist, whatever
   * happens to the data file.
   */
  snprintf (path, sizeof path, "%s.meta", v->meta.name);
  if (unlinkat (s->dirfd, path, 0) == -1)
    return -errno;
  data_name (path, sizeof path, v->meta.name);
  if (unlinkat (s->dirfd, path, 0) == -1)
    log_warn ("delete %s: removing %s: %m", v->meta.name, path);
  snprintf (path, sizeof path, "%s.dirty", v->meta.name);
  if (unlinkat (s->dirfd, path, 0) == -1 && errno != ENOENT)
    log_warn ("delete %s: removing %s: %m", v->meta.name, path);
  if (fsync (s->dirfd) == -1)
    log_warn ("delete %s: fsync %s: %m", v->meta.name, s->dir);
  log_info ("deleted volume %s", v->meta.name);
  v->deleted = true;
  vol_unlink_from_list (s, v);
  store_vol_put (v);
  return 0;
}

int
store_vol_set_epoch (struct store_vol *v, uint64_t epoch)
{
  struct store_meta m = v->meta;
  int err;

  if (epoch <= v->meta.epoch)
    return 0;
  if (v->deleted)
    return -ENOENT;
  m.epoch = epoch;
  err = store_meta_write (v->s->dirfd, &m);
  if (err < 0) {
    log_error ("volume %s: persisting epoch %" PRIu64 ": %s",
               v->meta.name, epoch, strerror (-err));
    return err;
  }
  v->meta.epoch = epoch;
  return 0;
}

uint64_t
store_vol_allocated (const struct store_vol *v)
{
  struct stat st;
  if (fstat (v->fd, &st) == -1)
    return 0;
  return (uint64_t) st.st_blocks * 512;
}

/* ---- I/O ---------------------------------------------------------- */

static void
sio_finish (struct sio *io, int err)
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
  free (io);
  v->inflight--;
  bio->done (bio, err);
  if (v->inflight == 0 && v->drain_done) {
    void (*done) (void *) = v->drain_done;
    v->drain_done = NULL;
    done (v->drain_opaque);
  }
  store_vol_put (v);
}

static void
run_failed (struct store *s)
{
  while (s->fail_head) {
    struct sio *io = s->fail_head;
    s->fail_head = io->next;
    if (!s->fail_head) s->fail_tail = NULL;
    sio_finish (io, io->err);
  }
}

static void
fail_defer_cb (struct loop_defer *d)
{
  run_failed (d->opaque);
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
    sio_finish (io, 0);
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
      sio_finish (io, -res);
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
        sio_finish (io, 0);
      return;
    }
    if (res == 0) {
      if (r->op == IO_WRITE) {
        sio_finish (io, EIO);
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
      sio_finish (io, -res);
      return;
    }
    sio_main_done (io);
    return;

  case PH_SYNC:
    sio_finish (io, res < 0 ? -res : 0);
    return;
  }
}

/* ---- the dirty map on disk ---------------------------------------- */

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
    char tmp[STORE_NAME_MAX + 16];
    close (d->tmpfd);
    snprintf (tmp, sizeof tmp, ".%s.dirty.tmp", v->meta.name);
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
    sio_finish (io, io->dneed <= v->dm.durable_seq ? 0 : err);
  }
  if (!err || v->dwait_head)
    dirty_kick (v);
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
    char tmp[STORE_NAME_MAX + 16], path[STORE_NAME_MAX + 16];
    snprintf (tmp, sizeof tmp, ".%s.dirty.tmp", v->meta.name);
    snprintf (path, sizeof path, "%s.dirty", v->meta.name);
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
  store_dirty_hdr_encode (STORE_DIRTY_REGION, v->dm.nregions, d->hdr);
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

/* Wait for op seq need (if any) before io's dirty part completes. */
static void
dirty_wait (struct sio *io, uint64_t need)
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

static uint64_t
dirty_mark_range (struct store_vol *v, uint64_t off, uint64_t len)
{
  uint64_t first, last;
  dmap_range (&v->dm, off, len, STORE_DIRTY_REGION, &first, &last);
  return dmap_mark (&v->dm, first, last);
}

static void
dirty_get (struct store_vol *v, struct bdev_io *bio)
{
  uint8_t *p = bio->buf;
  putle32 (p, STORE_DIRTY_REGION);
  putle32 (p + 4, 0);
  putle64 (p + 8, v->dm.nregions);
  memcpy (p + STORE_DIRTY_HDR_SIZE, v->dm.mem, v->dm.nbytes);
}

static void
store_submit (struct bdev *b, struct bdev_io *bio)
{
  struct store_vol *v = b->priv;
  struct sio *io = calloc (1, sizeof *io);
  bool fua = bio->flags & BDEV_FUA;

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

  /* Trim and write-zeroes carry no buffer, so only transfers are bound
   * by STORE_MAX_IO.
   */
  if (bio->op != BDEV_FLUSH && bio->op != BDEV_DIRTY_GET &&
      bio->op != BDEV_DIRTY_CLEAR &&
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
    uint64_t need = dirty_mark_range (v, bio->offset, bio->len);
    /* The waiter is the request's only part: it completes it. */
    if (need == 0 || need <= v->dm.durable_seq) {
      sio_fail_later (io, 0);
      return;
    }
    dirty_wait (io, need);
    io->parts--;
    return;
  }
  case BDEV_DIRTY_GET:
    if (!bio->buf || bio->len != store_vol_dirty_get_size (v)) {
      sio_fail_later (io, EINVAL);
      return;
    }
    dirty_get (v, bio);
    sio_fail_later (io, 0);
    return;
  case BDEV_DIRTY_CLEAR:
    dirty_wait (io, dmap_clear (&v->dm));
    io->parts--;
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
    dirty_wait (io, dirty_mark_range (v, bio->offset, bio->len));
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

static const struct bdev_ops store_bdev_ops = {
  .name = "store",
  .submit = store_submit,
  .drain = store_drain,
  .close = store_bdev_close,
};

/* ---- the data directory ------------------------------------------- */

static bool
has_suffix (const char *s, const char *suffix, size_t *stem)
{
  size_t n = strlen (s), k = strlen (suffix);
  if (n <= k || strcmp (s + n - k, suffix) != 0)
    return false;
  *stem = n - k;
  return true;
}

static void
load_all (struct store *s, size_t *refused)
{
  DIR *d = fdopendir (dup (s->dirfd));
  struct dirent *de;

  if (!d) {
    log_error ("%s: %m", s->dir);
    return;
  }
  while ((de = readdir (d)) != NULL) {
    char name[STORE_NAME_MAX];
    struct store_meta m;
    struct store_vol *v;
    const char *why = "";
    size_t stem;
    int err;

    if (de->d_name[0] == '.') {
      if (has_suffix (de->d_name, ".meta.tmp", &stem) ||
          has_suffix (de->d_name, ".dirty.tmp", &stem)) {
        /* A metadata update that crashed before its rename: the old
         * file is still the valid one.
         */
        log_info ("removing stale %s/%s", s->dir, de->d_name);
        unlinkat (s->dirfd, de->d_name, 0);
      }
      continue;
    }
    if (has_suffix (de->d_name, ".data", &stem)) {
      char meta[STORE_NAME_MAX + 16];
      snprintf (meta, sizeof meta, "%.*s.meta", (int) stem, de->d_name);
      if (faccessat (s->dirfd, meta, F_OK, 0) == -1)
        log_warn ("%s/%s has no metadata (interrupted create?); ignored",
                  s->dir, de->d_name);
      continue;
    }
    if (!has_suffix (de->d_name, ".meta", &stem))
      continue;
    if (stem >= sizeof name) {
      log_error ("%s/%s: name too long; volume refused", s->dir, de->d_name);
      ++*refused;
      continue;
    }
    memcpy (name, de->d_name, stem);
    name[stem] = '\0';
    err = store_meta_read (s->dirfd, name, &m, &why);
    if (err == 0)
      err = vol_open (s, &m, &v, &why);
    if (err < 0) {
      log_error ("%s/%s: %s; volume refused", s->dir, de->d_name, why);
      ++*refused;
      continue;
    }
    log_debug ("loaded volume %s (%" PRIu64 " bytes, epoch %" PRIu64 ")",
               m.name, m.size, m.epoch);
  }
  closedir (d);
}

struct store *
store_open (struct loop *loop, const char *dir, const char *engine,
            enum store_cache cache)
{
  struct store *s = calloc (1, sizeof *s);
  size_t refused = 0;

  if (!s) return NULL;
  s->loop = loop;
  s->cache = cache;
  s->dirfd = -1;
  s->dir = strdup (dir);
  if (!s->dir) goto fail;
  s->dirfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (s->dirfd == -1) {
    log_error ("data directory %s: %m", dir);
    goto fail;
  }
  if (faccessat (s->dirfd, ".", W_OK, AT_EACCESS) == -1) {
    log_error ("data directory %s: not writable: %m", dir);
    goto fail;
  }
  if (posix_memalign (&s->zero_buf, DIO_ALIGN, ZERO_BUF_SIZE) != 0)
    goto fail;
  memset (s->zero_buf, 0, ZERO_BUF_SIZE);
  s->eng = io_engine_new (loop, engine, ENGINE_DEPTH);
  if (!s->eng)
    goto fail;
  load_all (s, &refused);
  if (refused)
    log_warn ("%zu volume(s) in %s refused; see above", refused, dir);
  return s;

 fail:
  if (s->dirfd >= 0) close (s->dirfd);
  free (s->zero_buf);
  free (s->dir);
  free (s);
  return NULL;
}

void
store_close (struct store *s)
{
  if (!s) return;
  if (io_engine_drain_sync (s->eng, DRAIN_MS) < 0)
    log_warn ("store: %u I/O requests still pending at close",
              io_engine_pending (s->eng));
  run_failed (s);
  while (s->vols) {
    struct store_vol *v = s->vols;
    if (fdatasync (v->fd) == -1)
      log_error ("volume %s: fdatasync: %m", v->meta.name);
    s->vols = v->next;
    s->nvols--;
    if (v->refs > 1)
      log_warn ("volume %s: still referenced at close", v->meta.name);
    store_vol_put (v);
  }
  io_engine_free (s->eng);
  close (s->dirfd);
  free (s->zero_buf);
  free (s->dir);
  free (s);
}
