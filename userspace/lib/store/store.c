/* store.c - the replica store's data directory: open (load every volume,
 * remove temp files a crash left behind), close, and the lifecycle of a
 * volume (create, delete, epoch, references).
 *
 * A volume's I/O is store_io.c; the asynchronous updates of its dirty
 * map are store_dirty_io.c.  Only what this file does blocks the event
 * loop, briefly: creating and deleting a volume and persisting a new
 * epoch fsync their files (atomic_replace of core/fsutil.h); so does a
 * resize (store_resize.c).
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
#include <sys/statvfs.h>

#include "core/util.h"
#include "store/store_internal.h"

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
  else return -EINVAL;
  return 0;
}

void store_set_reserve_margin (struct store *s, uint64_t bytes) { s->reserve_margin = bytes; }
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

/* Load DIR/VOL.dirty into v->dm (a missing file: an empty map, the file
 * made by the first persist).  fresh: the volume was just created, its
 * file holds an empty map: open it without reading it back, so a create
 * costs no more than the (lazily zeroed) allocation.  0, or -errno with
 * the reason in *err.
 */
static int
vol_dirty_open (struct store *s, struct store_vol *v, bool fresh,
                struct error *err)
{
  size_t nbytes = store_dirty_bitmap_bytes (v->meta.size);
  uint8_t *bits = NULL;
  char path[STORE_PATH_MAX];
  int r;

  v->dirty_fd = -1;
  if (fresh) {
    store_file_names (v->meta.name, ".dirty", path, NULL);
    v->dirty_fd = openat (s->dirfd, path, O_RDWR | O_CLOEXEC);
    r = v->dirty_fd == -1 ? -errno : 0;
    if (r < 0)
      return error_set (err, -r, "%s: %s", path, strerror (-r));
  }
  else {
    bits = malloc (nbytes ? nbytes : 1);
    if (!bits)
      return error_set (err, ENOMEM, "out of memory for the dirty map");
    r = store_dirty_load (s->dirfd, v->meta.name, v->meta.size, bits,
                          &v->dirty_fd, err);
  }
  if (r == 1) {
    /* A map for a larger size (an interrupted resize) or of another
     * region size (written before issue 15, or by a resize across a
     * size boundary): keep the bits of the volume's regions, converted,
     * in a file of the right size.
     */
    log_warn ("volume %s: %s.dirty is for a larger volume or another "
              "region size; rewritten for %u-byte regions", v->meta.name,
              v->meta.name, store_dirty_region (v->meta.size));
    close (v->dirty_fd);
    v->dirty_fd = -1;
    r = store_dirty_write (s->dirfd, v->meta.name, v->meta.size, bits,
                           &v->dirty_fd);
    if (r < 0) {
      error_set (err, -r, "rewriting it: %s", strerror (-r));
      r = r == -ENOENT ? -EIO : r;      /* not "no file": refuse it */
    }
  }
  if (r == -ENOENT) {
    log_debug ("volume %s: no %s.dirty; empty dirty map", v->meta.name,
               v->meta.name);
    r = dmap_init (&v->dm, v->meta.size, store_dirty_region (v->meta.size), NULL);
  }
  else if (r == 0) {
    r = dmap_init (&v->dm, v->meta.size, store_dirty_region (v->meta.size), bits);
    if (r == 0 && v->dm.count)
      log_info ("volume %s: dirty map has %" PRIu64 " dirty region(s)",
                v->meta.name, v->dm.count);
  }
  else
    error_prefix (err, "%s.dirty: ", v->meta.name);
  free (bits);
  if (r < 0 && v->dirty_fd >= 0) {
    close (v->dirty_fd);
    v->dirty_fd = -1;
  }
  if (r == -ENOMEM)
    error_set (err, ENOMEM, "out of memory for the dirty map");
  return r;
}

/* Open the data file(s) of a volume whose metadata is m: 0, or -errno
 * with the reason in *err.
 */
static int
vol_open (struct store *s, const struct store_meta *m, bool fresh,
          struct store_vol **out, struct error *err)
{
  char path[STORE_PATH_MAX];
  struct store_vol *v;
  struct stat st;
  int r;

  v = calloc (1, sizeof *v);
  if (!v)
    return error_set (err, ENOMEM, "out of memory");
  v->s = s;
  v->meta = *m;
  v->dfd = -1;
  v->refs = 1;                  /* the store's list */
  store_file_names (m->name, ".data", path, NULL);
  v->fd = openat (s->dirfd, path, O_RDWR | O_CLOEXEC);
  if (v->fd == -1) {
    r = error_set (err, errno, "%s", errno == ENOENT ? "data file missing"
                   : strerror (errno));
    free (v);
    return r;
  }
  if (fstat (v->fd, &st) == -1 || !S_ISREG (st.st_mode) ||
      (uint64_t) st.st_size < m->size) {
    close (v->fd);
    free (v);
    return error_set (err, EBADMSG,
                      "data file size does not match the metadata");
  }
  if ((uint64_t) st.st_size > m->size) {
    /* An interrupted resize (a grow sizes the data file before its
     * metadata commits, a shrink cuts it after): the metadata says what
     * the volume is.
     */
    char a[32], b[32];
    log_warn ("volume %s: data file is %s, larger than the volume's %s "
              "(an interrupted resize?); cut back", m->name,
              format_size (st.st_size, a, sizeof a),
              format_size (m->size, b, sizeof b));
    if (ftruncate (v->fd, m->size) == -1 || fdatasync (v->fd) == -1) {
      r = error_set (err, errno, "cutting the data file back: %s",
                     strerror (errno));
      close (v->fd);
      free (v);
      return r;
    }
  }
  r = vol_dirty_open (s, v, fresh, err);
  if (r < 0) {
    close (v->fd);
    free (v);
    return r;
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
  s->dirty_mem += store_dirty_mem_bytes (m->size);
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
      s->dirty_mem -= store_dirty_mem_bytes (v->meta.size);
      return;
    }
}

/* Remove every file of volume name (an interrupted or failed create;
 * none of them is missing on purpose).
 */
static void
vol_unlink_files (struct store *s, const char *name)
{
  static const char *const suffixes[] = { ".meta", ".dirty", ".data" };
  char path[STORE_PATH_MAX], tmp[STORE_PATH_MAX];

  for (size_t i = 0; i < ARRAY_SIZE (suffixes); i++) {
    store_file_names (name, suffixes[i], path, tmp);
    unlinkat (s->dirfd, path, 0);
    unlinkat (s->dirfd, tmp, 0);
  }
  if (fsync (s->dirfd) == -1)
    log_warn ("create %s: fsync %s: %m", name, s->dir);
}

int
store_size_bounds (struct store *s, uint64_t size, uint64_t old_size,
                   uint64_t reserve, struct error *err)
{
  char a[32], b[32], c[32], d[32];
  struct statvfs vfs;
  uint64_t need, had, avail;

  if (size > STORE_MAX_SIZE)
    return error_set (err, EFBIG, "volume size %s exceeds this server's "
                      "maximum of %s", format_size (size, a, sizeof a),
                      format_size (STORE_MAX_SIZE, b, sizeof b));
  need = store_dirty_mem_bytes (size);
  had = old_size ? store_dirty_mem_bytes (old_size) : 0;
  if (need > had && s->dirty_mem + (need - had) > s->dirty_budget)
    return error_set (err, EFBIG, "volume size %s needs %s of dirty map; "
                      "this server has %s of its %s dirty-map memory left",
                      format_size (size, a, sizeof a),
                      format_size (need - had, b, sizeof b),
                      format_size (s->dirty_budget - MIN (s->dirty_mem,
                                   s->dirty_budget), c, sizeof c),
                      format_size (s->dirty_budget, d, sizeof d));
  if (!reserve)
    return 0;
  if (fstatvfs (s->dirfd, &vfs) == -1)
    return error_set (err, errno, "statvfs %s: %s", s->dir, strerror (errno));
  avail = (uint64_t) vfs.f_bavail * vfs.f_frsize;
  if (reserve > avail || avail - reserve < s->reserve_margin)
    return error_set (err, ENOSPC, "reserving %s would leave less than the "
                      "reserve margin of %s free in %s (%s available)",
                      format_size (reserve, a, sizeof a),
                      format_size (s->reserve_margin, b, sizeof b), s->dir,
                      format_size (avail, c, sizeof c));
  return 0;
}

int
store_create (struct store *s, const char *name, uint64_t size,
              uint32_t block_size, uint32_t flags, uint64_t epoch,
              struct store_vol **out, struct error *err)
{
  char path[STORE_PATH_MAX];
  struct store_meta m = { 0 };
  int fd, r;

  if (strlen (name) >= STORE_NAME_MAX)
    return error_set (err, EINVAL, "volume name too long");
  strcpy (m.name, name);
  m.size = size;
  m.block_size = block_size;
  m.flags = flags;
  m.epoch = epoch;
  m.created = time (NULL);
  if (getrandom (m.uuid, sizeof m.uuid, 0) != sizeof m.uuid)
    memset (m.uuid, 0, sizeof m.uuid);
  r = store_size_bounds (s, size, 0, flags & STORE_F_RESERVED ? size : 0, err);
  if (r == 0)
    r = store_meta_check (&m, err);
  if (r < 0)
    return r;
  if (store_lookup (s, name))
    return error_set (err, EEXIST, "volume exists");
  /* A metadata file we refused at start-up still guards its volume: an
   * operator may yet repair it, so never create over it.
   */
  store_file_names (name, ".meta", path, NULL);
  if (faccessat (s->dirfd, path, F_OK, 0) == 0)
    return error_set (err, EEXIST, "%s/%s exists (refused at start-up?)",
                      s->dir, path);

  /* No .meta means no volume: files left by an interrupted create are
   * ours to remove (and to make again, owner-only).
   */
  vol_unlink_files (s, name);
  store_file_names (name, ".data", path, NULL);
  fd = openat (s->dirfd, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd == -1)
    return error_set (err, errno, "%s: %s", path, strerror (errno));
  r = 0;
  if (ftruncate (fd, size) == -1)
    r = error_set (err, errno, "%s: %s", path, strerror (errno));
  else if ((flags & STORE_F_RESERVED) && fallocate (fd, 0, 0, size) == -1)
    r = error_set (err, errno, "%s: %s", path, errno == EOPNOTSUPP
                   ? "the filesystem cannot reserve space (fallocate)"
                   : strerror (errno));
  else if (fsync (fd) == -1)
    r = error_set (err, errno, "%s: fsync: %s", path, strerror (errno));
  close (fd);
  if (r == 0 && (r = store_dirty_create (s->dirfd, name, size)) < 0)
    error_set (err, -r, "%s.dirty: %s", name, strerror (-r));
  if (r == 0 && (r = store_meta_write (s->dirfd, &m)) < 0)
    error_set (err, -r, "%s.meta: %s", name, strerror (-r));
  if (r == 0)
    r = vol_open (s, &m, true, out, err);
  if (r < 0) {
    vol_unlink_files (s, name);
    return r;
  }
  log_info ("created volume %s: %" PRIu64 " bytes, block size %u%s, epoch %"
            PRIu64, name, size, block_size,
            flags & STORE_F_RESERVED ? ", reserved" : "", epoch);
  return 0;
}

int
store_delete (struct store *s, struct store_vol *v)
{
  char path[STORE_PATH_MAX];

  if (v->deleted)
    return -ENOENT;
  /* Metadata first: from here on the volume does not exist, whatever
   * happens to the data file.
   */
  store_file_names (v->meta.name, ".meta", path, NULL);
  if (unlinkat (s->dirfd, path, 0) == -1)
    return -errno;
  store_file_names (v->meta.name, ".data", path, NULL);
  if (unlinkat (s->dirfd, path, 0) == -1)
    log_warn ("delete %s: removing %s: %m", v->meta.name, path);
  store_file_names (v->meta.name, ".dirty", path, NULL);
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
  if (epoch <= v->meta.epoch)
    return 0;
  return store_vol_reset_epoch (v, epoch);
}

int
store_vol_reset_epoch (struct store_vol *v, uint64_t epoch)
{
  struct store_meta m = v->meta;
  int err;

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
  int fd = dup (s->dirfd);
  DIR *d = fd >= 0 ? fdopendir (fd) : NULL;
  struct dirent *de;

  if (!d) {
    log_error ("%s: %m", s->dir);
    if (fd >= 0)
      close (fd);
    return;
  }
  while ((de = readdir (d)) != NULL) {
    char name[STORE_NAME_MAX];
    struct store_meta m;
    struct store_vol *v;
    struct error e = { 0 };
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
      char meta[STORE_PATH_MAX];
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
    err = store_meta_read (s->dirfd, name, &m, &e);
    if (err == 0)
      err = vol_open (s, &m, false, &v, &e);
    if (err < 0) {
      /* Not fatal: the other volumes load. */
      log_error ("%s/%s: %s; volume refused", s->dir, de->d_name,
                 error_msg (&e));
      ++*refused;
      continue;
    }
    log_debug ("loaded volume %s (%" PRIu64 " bytes, epoch %" PRIu64 ")",
               m.name, m.size, m.epoch);
  }
  closedir (d);
}

/* The memory all volumes' dirty maps may use together: a quarter of
 * the machine's (docs/DESIGN.md 3.7).
 */
static uint64_t
dirty_budget (void)
{
  long pages = sysconf (_SC_PHYS_PAGES), psize = sysconf (_SC_PAGESIZE);

  if (pages <= 0 || psize <= 0)
    return UINT64_C (1) << 30;
  return (uint64_t) pages * (uint64_t) psize / 4;
}

struct store *
store_open (struct loop *loop, const char *dir, const char *engine,
            enum store_cache cache, struct error *err)
{
  struct store *s = calloc (1, sizeof *s);
  size_t refused = 0;

  if (!s) {
    error_set (err, ENOMEM, "out of memory");
    return NULL;
  }
  s->loop = loop;
  s->cache = cache;
  s->dirfd = -1;
  s->reserve_margin = STORE_RESERVE_MARGIN_DEFAULT;
  s->dirty_budget = dirty_budget ();
  s->dir = strdup (dir);
  if (!s->dir) {
    error_set (err, ENOMEM, "out of memory");
    goto fail;
  }
  s->dirfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (s->dirfd == -1) {
    error_set (err, errno, "data directory %s: %s", dir, strerror (errno));
    goto fail;
  }
  if (faccessat (s->dirfd, ".", W_OK, AT_EACCESS) == -1) {
    error_set (err, errno, "data directory %s: not writable: %s", dir,
               strerror (errno));
    goto fail;
  }
  if (posix_memalign (&s->zero_buf, DIO_ALIGN, ZERO_BUF_SIZE) != 0) {
    s->zero_buf = NULL;
    error_set (err, ENOMEM, "out of memory");
    goto fail;
  }
  memset (s->zero_buf, 0, ZERO_BUF_SIZE);
  s->eng = io_engine_new (loop, engine, ENGINE_DEPTH, err);
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
  store_sio_run_failed (s);
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
  freelist_fini (&s->sio_free);
  free (s->zero_buf);
  free (s->dir);
  free (s);
}
