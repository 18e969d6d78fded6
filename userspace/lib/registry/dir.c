/* dir.c - the embedded registry backend: a directory of small JSON files.
 *
 *   DIR/.lock                  taken with flock(LOCK_EX) by every writer
 *   DIR/VOLNAME.json           one volume (the document of codec.c)
 *   DIR/.VOLNAME.json.tmp      the next version, while it is being written
 *   DIR/VOLNAME.KIND.blob      a blob (registry_blob_put), replaced the
 *   DIR/.VOLNAME.KIND.blob.tmp   same way but without the lock: one
 *                              attach owns a volume's blobs; remove
 *                              takes them with the record
 *   DIR/servers/NAME.json      a server of the pool (codec.c's server
 *                              record), rewritten by its repvold at
 *                              every heartbeat (atomic_replace, no lock:
 *                              one server owns its file); it is down
 *                              when its "heartbeat" is more than "ttl"
 *                              seconds old, or marked "down" by a clean
 *                              shutdown
 *
 * Writers (create, update, remove) take the lock, read the current
 * file, write the new version to the temp file, fsync it, rename it over
 * the old one and fsync the directory (atomic_replace, core/fsutil.h),
 * so a crash at any point leaves either the old or the new version,
 * never a mix.  Readers (get, list) take no lock: rename() makes each
 * file change atomically.
 *
 * The lock file is opened afresh for every operation.  flock() locks
 * belong to the open file description, so a descriptor kept open across
 * fork() would let parent and child "both hold" the lock; opening per
 * operation also lets a long-lived process (repvol attach) hold the
 * registry open without ever blocking anyone.
 *
 * Errors follow registry.h: 0 or -errno, and the reason, naming the
 * file, in the caller's struct error; nothing here logs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "core/fsutil.h"
#include "registry/registry.h"
#include "registry/backends.h"

#define REG_FILE_MAX      (1 << 20)     /* a volume file is ~1-2 KiB */

struct dir_registry {
  struct registry r;
  char *path;
};

static struct dir_registry *
to_dir (struct registry *r)
{
  return r->priv;
}

/* ---- files ----------------------------------------------------------- */

/* DIR/PREFIX NAME SUFFIX into buf.  registry.c has checked the name with
 * valid_name(), which admits no '/' and no leading '.', so a name can
 * never escape the directory or collide with the lock and temp files;
 * the check here is for a caller inside this file.
 */
static int
vol_path (struct dir_registry *d, const char *name, const char *prefix,
          const char *suffix, char *buf, size_t size, struct error *err)
{
  if (!valid_name (name))
    return error_set (err, EINVAL, "registry %s: invalid volume name '%s'",
                      d->path, name);
  int n = snprintf (buf, size, "%s/%s%s%s", d->path, prefix, name, suffix);
  if (n < 0 || (size_t) n >= size)
    return error_set (err, ENAMETOOLONG, "registry %s: path too long",
                      d->path);
  return 0;
}

/* Take the registry's write lock: the lock's fd, or -errno.  With
 * create_dir the registry directory is made first (mode 0700: volume
 * files name hosts and pids and nothing else needs to read them).
 * Without it, a missing directory means there is no volume: -ENOENT.
 */
static int
lock_registry (struct dir_registry *d, bool create_dir, struct error *err)
{
  char lockpath[PATH_MAX];

  if (create_dir && mkdir (d->path, 0700) == -1 && errno != EEXIST)
    return error_set (err, errno, "registry %s: cannot create directory: %s",
                      d->path, strerror (errno));
  if (snprintf (lockpath, sizeof lockpath, "%s/.lock", d->path)
      >= (int) sizeof lockpath)
    return error_set (err, ENAMETOOLONG, "registry %s: path too long",
                      d->path);
  int fd = open (lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd == -1) {
    if (errno == ENOENT && !create_dir)
      return error_set (err, ENOENT, "registry %s: no such directory",
                        d->path);
    return error_set (err, errno, "registry %s: cannot open the lock file: "
                      "%s", lockpath, strerror (errno));
  }
  while (flock (fd, LOCK_EX) == -1) {
    if (errno != EINTR) {
      int r = error_set (err, errno, "registry %s: flock: %s", lockpath,
                         strerror (errno));
      close (fd);
      return r;
    }
  }
  return fd;
}

static void
unlock_registry (int fd)
{
  close (fd);                   /* releases the flock */
}

/* Read and validate NAME.json: 0, -ENOENT, -EBADMSG (corrupt) or the
 * system's -errno.
 */
static int
read_volume (struct dir_registry *d, const char *name, struct reg_volume *v,
             struct error *err)
{
  char path[PATH_MAX];
  int r = vol_path (d, name, "", ".json", path, sizeof path, err);
  if (r < 0)
    return r;

  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    if (errno == ENOENT)
      return error_set (err, ENOENT, "registry %s: no volume '%s'", d->path,
                        name);
    return error_set (err, errno, "registry %s: %s", path, strerror (errno));
  }

  char *buf = malloc (REG_FILE_MAX + 1);
  size_t len = 0;
  ssize_t n;
  if (buf == NULL) {
    close (fd);
    return error_set (err, ENOMEM, "registry %s: out of memory", path);
  }
  while (len <= REG_FILE_MAX &&
         (n = read (fd, buf + len, REG_FILE_MAX + 1 - len)) != 0) {
    if (n == -1) {
      if (errno == EINTR)
        continue;
      r = error_set (err, errno, "registry %s: read: %s", path,
                     strerror (errno));
      free (buf);
      close (fd);
      return r;
    }
    len += n;
  }
  close (fd);
  if (len > REG_FILE_MAX) {
    free (buf);
    return error_set (err, EBADMSG, "registry %s: corrupt: larger than %d "
                      "bytes", path, REG_FILE_MAX);
  }
  buf[len] = '\0';

  r = reg_volume_from_json (buf, len, v, err);
  free (buf);
  if (r < 0) {
    error_prefix (err, "registry %s: corrupt: ", path);
    return -EBADMSG;
  }
  if (strcmp (v->name, name) != 0)
    return error_set (err, EBADMSG, "registry %s: corrupt: holds volume "
                      "\"%s\"", path, v->name);
  return 0;
}

/* Write V as NAME.json (atomic_replace: temp file, fsync, rename, fsync
 * directory).  The caller holds the lock.
 */
static int
write_volume (struct dir_registry *d, const struct reg_volume *v,
              struct error *err)
{
  char path[PATH_MAX], tmp[PATH_MAX];
  int r;

  r = reg_volume_check (v, err);
  if (r < 0) {
    error_prefix (err, "registry %s: refusing to write volume \"%.*s\": ",
                  d->path, REG_NAME_MAX, v->name);
    return r;
  }
  if ((r = vol_path (d, v->name, "", ".json", path, sizeof path, err)) < 0 ||
      (r = vol_path (d, v->name, ".", ".json.tmp", tmp, sizeof tmp, err)) < 0)
    return r;

  char *text = reg_volume_to_json (v);
  if (text == NULL)
    return error_set (err, ENOMEM, "registry %s: out of memory", path);
  r = atomic_replace (AT_FDCWD, path, tmp, text, strlen (text), 0600);
  free (text);
  if (r < 0)
    return error_set (err, -r, "registry %s: cannot write: %s", path,
                      strerror (-r));
  return 0;
}

/* ---- operations ------------------------------------------------------ */

static int
dir_create (struct registry *r, const struct reg_volume *v, struct error *err)
{
  struct dir_registry *d = to_dir (r);
  char path[PATH_MAX];
  struct stat st;
  int ret;

  ret = vol_path (d, v->name, "", ".json", path, sizeof path, err);
  if (ret < 0)
    return ret;
  int lk = lock_registry (d, true, err);
  if (lk < 0)
    return lk;
  if (lstat (path, &st) == 0)
    ret = error_set (err, EEXIST, "registry %s: volume '%s' exists", d->path,
                     v->name);
  else if (errno != ENOENT)
    ret = error_set (err, errno, "registry %s: %s", path, strerror (errno));
  else
    ret = write_volume (d, v, err);
  unlock_registry (lk);
  return ret;
}

static int
dir_get (struct registry *r, const char *name, struct reg_volume *v,
         struct error *err)
{
  return read_volume (to_dir (r), name, v, err);
}

static int
dir_update (struct registry *r, const char *name,
            int (*fn) (struct reg_volume *v, void *arg), void *arg,
            struct error *err)
{
  struct dir_registry *d = to_dir (r);
  struct reg_volume v;
  int ret;

  int lk = lock_registry (d, false, err);
  if (lk < 0)
    return lk;
  ret = read_volume (d, name, &v, err);
  if (ret < 0)
    goto out;
  int fe = fn (&v, arg);
  if (fe != 0) {
    ret = error_set (err, fe, "%s", strerror (fe));
    goto out;
  }
  /* The name is the file name: a callback may not rename a volume. */
  snprintf (v.name, sizeof v.name, "%s", name);
  ret = write_volume (d, &v, err);
 out:
  unlock_registry (lk);
  return ret;
}

/* Every NAME.KIND.blob of a volume being removed. */
static int
remove_blobs (struct dir_registry *d, const char *name, struct error *err)
{
  size_t nl = strlen (name);
  DIR *dp = opendir (d->path);
  if (dp == NULL)
    return error_set (err, errno, "registry %s: %s", d->path,
                      strerror (errno));
  struct dirent *de;
  int ret = 0;
  while ((de = readdir (dp)) != NULL) {
    size_t len = strlen (de->d_name);
    char kind[REG_NAME_MAX + 1];
    if (len <= nl + 6 || strncmp (de->d_name, name, nl) != 0 ||
        de->d_name[nl] != '.' || strcmp (de->d_name + len - 5, ".blob") != 0 ||
        len - nl - 6 >= sizeof kind)
      continue;
    memcpy (kind, de->d_name + nl + 1, len - nl - 6);
    kind[len - nl - 6] = '\0';
    if (!valid_name (kind))
      continue;
    if (unlinkat (dirfd (dp), de->d_name, 0) == -1 && errno != ENOENT &&
        ret == 0)
      ret = error_set (err, errno, "registry %s/%s: unlink: %s", d->path,
                       de->d_name, strerror (errno));
  }
  closedir (dp);
  return ret;
}

static int
dir_remove (struct registry *r, const char *name, struct error *err)
{
  struct dir_registry *d = to_dir (r);
  char path[PATH_MAX];
  int ret;

  ret = vol_path (d, name, "", ".json", path, sizeof path, err);
  if (ret < 0)
    return ret;
  int lk = lock_registry (d, false, err);
  if (lk < 0)
    return lk;
  if (unlink (path) == -1) {
    if (errno == ENOENT)
      ret = error_set (err, ENOENT, "registry %s: no volume '%s'", d->path,
                       name);
    else
      ret = error_set (err, errno, "registry %s: unlink: %s", path,
                       strerror (errno));
  }
  else if ((ret = remove_blobs (d, name, err)) == 0 &&
           (ret = fsync_parent (AT_FDCWD, path)) < 0)
    error_set (err, -ret, "registry %s: fsync of the directory: %s",
               d->path, strerror (-ret));
  unlock_registry (lk);
  return ret;
}

/* ---- blobs: NAME.KIND.blob beside NAME.json ---------------------------- */

static int
blob_path (struct dir_registry *d, const char *name, const char *kind,
           const char *tmp, char *buf, size_t size, struct error *err)
{
  char suffix[64];
  if (!valid_name (kind))
    return error_set (err, EINVAL, "registry %s: invalid blob kind '%s'",
                      d->path, kind);
  snprintf (suffix, sizeof suffix, ".%s.blob%s", kind, tmp);
  return vol_path (d, name, tmp[0] ? "." : "", suffix, buf, size, err);
}

static int
dir_blob_put (struct registry *r, const char *name, const char *kind,
              const void *data, size_t len, struct error *err)
{
  struct dir_registry *d = to_dir (r);
  char path[PATH_MAX], tmp[PATH_MAX];
  int ret;

  if ((ret = blob_path (d, name, kind, "", path, sizeof path, err)) < 0 ||
      (ret = blob_path (d, name, kind, ".tmp", tmp, sizeof tmp, err)) < 0)
    return ret;
  /* No registry lock: one attach owns a volume's blobs, and rename
   * makes each put atomic for readers.
   */
  ret = atomic_replace (AT_FDCWD, path, tmp, data, len, 0600);
  if (ret < 0)
    return error_set (err, -ret, "registry %s: cannot write: %s", path,
                      strerror (-ret));
  return 0;
}

static int
dir_blob_get (struct registry *r, const char *name, const char *kind,
              void **data, size_t *len, struct error *err)
{
  struct dir_registry *d = to_dir (r);
  char path[PATH_MAX];
  struct stat st;
  int ret;

  ret = blob_path (d, name, kind, "", path, sizeof path, err);
  if (ret < 0)
    return ret;
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return error_set (err, errno, "registry %s: %s", path, strerror (errno));
  if (fstat (fd, &st) == -1) {
    ret = error_set (err, errno, "registry %s: %s", path, strerror (errno));
    close (fd);
    return ret;
  }
  void *buf = malloc (st.st_size ? st.st_size : 1);
  if (buf == NULL) {
    close (fd);
    return error_set (err, ENOMEM, "registry %s: out of memory", path);
  }
  ret = pread_full (fd, buf, st.st_size, 0);
  close (fd);
  if (ret < 0) {
    free (buf);
    /* Shorter than it was a moment ago: not the blob we measured. */
    if (ret == -ENODATA)
      ret = -EIO;
    return error_set (err, -ret, "registry %s: read: %s", path,
                      strerror (-ret));
  }
  *data = buf;
  *len = st.st_size;
  return 0;
}

static int
dir_blob_remove (struct registry *r, const char *name, const char *kind,
                 struct error *err)
{
  struct dir_registry *d = to_dir (r);
  char path[PATH_MAX];
  int ret;

  ret = blob_path (d, name, kind, "", path, sizeof path, err);
  if (ret < 0)
    return ret;
  if (unlink (path) == -1 && errno != ENOENT)
    return error_set (err, errno, "registry %s: unlink: %s", path,
                      strerror (errno));
  return 0;
}

/* ---- listing --------------------------------------------------------- */

static int
cmp_names (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static int
dir_list (struct registry *r, char ***names_out, int *n_out,
          struct error *err)
{
  struct dir_registry *d = to_dir (r);
  char **names = NULL;
  int n = 0, cap = 0;

  *names_out = NULL;
  *n_out = 0;
  DIR *dp = opendir (d->path);
  if (dp == NULL) {
    if (errno == ENOENT)        /* no registry yet: no volumes */
      return 0;
    return error_set (err, errno, "registry %s: %s", d->path,
                      strerror (errno));
  }
  struct dirent *de;
  while ((de = readdir (dp)) != NULL) {
    size_t len = strlen (de->d_name);
    if (len <= 5 || strcmp (de->d_name + len - 5, ".json") != 0)
      continue;
    char stem[REG_NAME_MAX + 1];
    if (len - 5 >= sizeof stem)
      continue;
    memcpy (stem, de->d_name, len - 5);
    stem[len - 5] = '\0';
    if (!valid_name (stem))     /* skips .lock, temp files, strays */
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      char **nn = realloc (names, cap * sizeof *names);
      if (nn == NULL)
        goto nomem;
      names = nn;
    }
    if ((names[n] = strdup (stem)) == NULL)
      goto nomem;
    n++;
  }
  closedir (dp);
  if (n > 0)
    qsort (names, n, sizeof *names, cmp_names);
  *names_out = names;
  *n_out = n;
  return 0;

 nomem:
  closedir (dp);
  registry_free_names (names, n);
  return error_set (err, ENOMEM, "registry %s: out of memory", d->path);
}

/* ---- the server pool: DIR/servers/NAME.json ---------------------------- */

static int
server_file (struct dir_registry *d, const char *name, const char *suffix,
             char *buf, size_t size, struct error *err)
{
  if (!valid_name (name))
    return error_set (err, EINVAL, "registry %s: invalid server name '%s'",
                      d->path, name);
  int n = snprintf (buf, size, "%s/servers/%s%s%s", d->path,
                    strcmp (suffix, ".json.tmp") == 0 ? "." : "", name,
                    suffix);
  if (n < 0 || (size_t) n >= size)
    return error_set (err, ENAMETOOLONG, "registry %s: path too long",
                      d->path);
  return 0;
}

static int
write_server (struct dir_registry *d, const struct reg_server *s,
              struct error *err)
{
  char path[PATH_MAX], tmp[PATH_MAX], dir[PATH_MAX];
  int ret;

  if ((ret = server_file (d, s->name, ".json", path, sizeof path, err)) < 0 ||
      (ret = server_file (d, s->name, ".json.tmp", tmp, sizeof tmp, err)) < 0)
    return ret;
  snprintf (dir, sizeof dir, "%s/servers", d->path);
  if ((mkdir (d->path, 0700) == -1 && errno != EEXIST) ||
      (mkdir (dir, 0700) == -1 && errno != EEXIST))
    return error_set (err, errno, "registry %s: cannot create directory: %s",
                      dir, strerror (errno));
  char *text = reg_server_to_json (s);
  if (text == NULL)
    return error_set (err, ENOMEM, "registry %s: out of memory", path);
  ret = atomic_replace (AT_FDCWD, path, tmp, text, strlen (text), 0600);
  free (text);
  if (ret < 0)
    return error_set (err, -ret, "registry %s: cannot write: %s", path,
                      strerror (-ret));
  return 0;
}

/* Read a server file; s->up is the record's claim (not marked down). */
static int
read_server (struct dir_registry *d, const char *path, struct reg_server *s,
             struct error *err)
{
  char buf[8192];
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    if (errno == ENOENT)
      return error_set (err, ENOENT, "registry %s: no server file %s",
                        d->path, path);
    return error_set (err, errno, "registry %s: %s", path, strerror (errno));
  }
  ssize_t n, len = 0;
  while ((n = read (fd, buf + len, sizeof buf - 1 - len)) != 0) {
    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1) {
      int e = errno;
      close (fd);
      return error_set (err, e, "registry %s: read: %s", path, strerror (e));
    }
    len += n;
    if ((size_t) len == sizeof buf - 1) {
      close (fd);
      return error_set (err, EBADMSG, "registry %s: corrupt: too large",
                        path);
    }
  }
  close (fd);
  n = len;
  if (reg_server_from_json (buf, (size_t) n, s, err) < 0) {
    error_prefix (err, "registry %s: corrupt: ", path);
    return -EBADMSG;
  }
  return 0;
}

static int
dir_server_put (struct registry *r, const struct reg_server *s, unsigned ttl,
                struct error *err)
{
  struct reg_server copy = *s;
  copy.heartbeat = time (NULL);
  copy.ttl = ttl;
  copy.up = true;
  return write_server (to_dir (r), &copy, err);
}

static int
dir_server_down (struct registry *r, const char *name, struct error *err)
{
  struct dir_registry *d = to_dir (r);
  char path[PATH_MAX];
  struct reg_server s;
  int ret;

  if ((ret = server_file (d, name, ".json", path, sizeof path, err)) < 0 ||
      (ret = read_server (d, path, &s, err)) < 0)
    return ret;
  s.up = false;
  return write_server (d, &s, err);
}

/* The drain mark: DIR/servers/NAME.drain, empty; its presence is the mark. */
static int
dir_server_drain (struct registry *r, const char *name, bool on,
                  struct error *err)
{
  struct dir_registry *d = to_dir (r);
  char path[PATH_MAX];
  int ret;

  if ((ret = server_file (d, name, ".drain", path, sizeof path, err)) < 0)
    return ret;
  if (on)
    ret = atomic_replace (AT_FDCWD, path, NULL, "", 0, 0600);
  else
    ret = unlink (path) == -1 && errno != ENOENT ? -errno : 0;
  if (ret < 0)
    return error_set (err, -ret, "registry %s: %s", path, strerror (-ret));
  return 0;
}

static int
dir_server_list (struct registry *r, struct reg_server **out, int *n_out,
                 struct error *err)
{
  struct dir_registry *d = to_dir (r);
  char dir[PATH_MAX];
  struct reg_server *all = NULL;
  int n = 0, cap = 0;
  time_t now = time (NULL);

  snprintf (dir, sizeof dir, "%s/servers", d->path);
  DIR *dp = opendir (dir);
  if (dp == NULL) {
    if (errno == ENOENT)
      return 0;
    return error_set (err, errno, "registry %s: %s", dir, strerror (errno));
  }
  struct dirent *de;
  while ((de = readdir (dp)) != NULL) {
    size_t len = strlen (de->d_name);
    char stem[REG_NAME_MAX + 1], path[PATH_MAX];
    if (len <= 5 || strcmp (de->d_name + len - 5, ".json") != 0 ||
        len - 5 >= sizeof stem)
      continue;
    memcpy (stem, de->d_name, len - 5);
    stem[len - 5] = '\0';
    if (!valid_name (stem))
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 8;
      struct reg_server *na = realloc (all, cap * sizeof *all);
      if (na == NULL) {
        closedir (dp);
        free (all);
        return error_set (err, ENOMEM, "registry %s: out of memory", dir);
      }
      all = na;
    }
    struct error e2 = { 0 };
    int ret = server_file (d, stem, ".json", path, sizeof path, &e2);
    if (ret == 0)
      ret = read_server (d, path, &all[n], &e2);
    if (ret == -ENOENT)
      continue;
    if (ret < 0 || strcmp (all[n].name, stem) != 0) {
      if (ret == 0)
        ret = error_set (&e2, EBADMSG, "registry %s: corrupt: holds server "
                         "\"%s\"", path, all[n].name);
      closedir (dp);
      free (all);
      if (err)
        *err = e2;
      return ret;
    }
    struct reg_server *s = &all[n];
    s->up = s->up && now - s->heartbeat <= (time_t) s->ttl &&
      s->heartbeat <= now + 1;
    if (server_file (d, stem, ".drain", path, sizeof path, NULL) == 0)
      s->draining = access (path, F_OK) == 0;
    n++;
  }
  closedir (dp);
  if (n > 1)
    qsort (all, n, sizeof *all, reg_server_cmp);
  if (n == 0) {
    free (all);
    all = NULL;
  }
  *out = all;
  *n_out = n;
  return 0;
}

/* ---- settings: DIR/settings/KEY, the value as text ----------------------- */

static int
dir_setting_get (struct registry *r, const char *key, char *value,
                 size_t len, struct error *err)
{
  struct dir_registry *d = to_dir (r);
  char path[PATH_MAX];

  snprintf (path, sizeof path, "%s/settings/%s", d->path, key);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return error_set (err, errno, "registry %s: %s", path, strerror (errno));
  ssize_t n = pread (fd, value, len - 1, 0);
  int e = errno;
  close (fd);
  if (n < 0)
    return error_set (err, e, "registry %s: %s", path, strerror (e));
  value[n] = '\0';
  return 0;
}

static int
dir_setting_put (struct registry *r, const char *key, const char *value,
                 struct error *err)
{
  struct dir_registry *d = to_dir (r);
  char dir[PATH_MAX], path[PATH_MAX];
  int ret = 0;

  snprintf (dir, sizeof dir, "%s/settings", d->path);
  snprintf (path, sizeof path, "%s/settings/%s", d->path, key);
  if (value == NULL)
    ret = unlink (path) == -1 && errno != ENOENT ? -errno : 0;
  else if ((mkdir (d->path, 0700) == -1 && errno != EEXIST) ||
           (mkdir (dir, 0700) == -1 && errno != EEXIST))
    ret = -errno;
  else
    ret = atomic_replace (AT_FDCWD, path, NULL, value, strlen (value), 0600);
  if (ret < 0)
    return error_set (err, -ret, "registry %s: %s", path, strerror (-ret));
  return 0;
}

const char *
registry_dir_path (struct registry *r)
{
  return to_dir (r)->path;
}

static void
dir_close (struct registry *r)
{
  struct dir_registry *d = to_dir (r);
  free (d->path);
  free (d);
}

static const struct registry_ops dir_ops = {
  .name = "dir",
  .create = dir_create,
  .get = dir_get,
  .update = dir_update,
  .remove = dir_remove,
  .list = dir_list,
  .blob_put = dir_blob_put,
  .blob_get = dir_blob_get,
  .blob_remove = dir_blob_remove,
  .server_put = dir_server_put,
  .server_down = dir_server_down,
  .server_list = dir_server_list,
  .server_drain = dir_server_drain,
  .setting_get = dir_setting_get,
  .setting_put = dir_setting_put,
  .event_append = dir_event_append,
  .event_list = dir_event_list,
  .event_wait = dir_event_wait,
  .close = dir_close,
};

struct registry *
registry_dir_open (const char *path, struct error *err)
{
  struct stat st;

  /* A path that exists must be a directory; one that does not yet is
   * made by the first create.
   */
  if (stat (path, &st) == 0 && !S_ISDIR (st.st_mode)) {
    error_set (err, ENOTDIR, "registry %s: not a directory", path);
    return NULL;
  }
  struct dir_registry *d = calloc (1, sizeof *d);
  if (d == NULL || (d->path = strdup (path)) == NULL) {
    free (d);
    error_set (err, ENOMEM, "registry %s: out of memory", path);
    return NULL;
  }
  /* Strip trailing slashes so messages read "DIR/vol.json". */
  size_t len = strlen (d->path);
  while (len > 1 && d->path[len - 1] == '/')
    d->path[--len] = '\0';
  d->r.ops = &dir_ops;
  d->r.priv = d;
  return &d->r;
}
