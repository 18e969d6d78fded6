/* fsutil.c - full reads and writes, atomic file replacement, pid checks.
 * See fsutil.h; errors are negative errnos (core/util.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "core/fsutil.h"

int
read_full (int fd, void *buf, size_t len)
{
  char *p = buf;

  while (len > 0) {
    ssize_t r = read (fd, p, len);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return -errno;
    if (r == 0)
      return -ECONNRESET;
    p += r;
    len -= r;
  }
  return 0;
}

int
write_full (int fd, const void *buf, size_t len)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t r = write (fd, p, len);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return -errno;
    p += r;
    len -= r;
  }
  return 0;
}

int
pread_full (int fd, void *buf, size_t len, off_t off)
{
  char *p = buf;

  while (len > 0) {
    ssize_t r = pread (fd, p, len, off);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return -errno;
    if (r == 0)
      return -ENODATA;
    p += r;
    off += r;
    len -= r;
  }
  return 0;
}

int
pwrite_full (int fd, const void *buf, size_t len, off_t off)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t r = pwrite (fd, p, len, off);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return -errno;
    if (r == 0)
      return -EIO;
    p += r;
    off += r;
    len -= r;
  }
  return 0;
}

int
fsync_parent (int dirfd, const char *path)
{
  const char *slash = strrchr (path, '/');
  char dir[PATH_MAX];
  int fd, r = 0;

  if (slash == NULL && dirfd != AT_FDCWD)
    return fsync (dirfd) == -1 ? -errno : 0;
  if (slash == NULL)
    snprintf (dir, sizeof dir, ".");
  else if (slash == path)
    snprintf (dir, sizeof dir, "/");
  else if ((size_t) (slash - path) >= sizeof dir)
    return -ENAMETOOLONG;
  else
    snprintf (dir, sizeof dir, "%.*s", (int) (slash - path), path);
  fd = openat (dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1)
    return -errno;
  if (fsync (fd) == -1)
    r = -errno;
  close (fd);
  return r;
}

int
atomic_file_begin (struct atomic_file *af, int dirfd, const char *path,
                   const char *tmp, mode_t mode)
{
  int n;

  af->dirfd = dirfd;
  af->fd = -1;
  n = snprintf (af->path, sizeof af->path, "%s", path);
  if (n < 0 || (size_t) n >= sizeof af->path)
    return -ENAMETOOLONG;
  if (tmp) {
    n = snprintf (af->tmp, sizeof af->tmp, "%s", tmp);
    if (n < 0 || (size_t) n >= sizeof af->tmp)
      return -ENAMETOOLONG;
    af->fd = openat (dirfd, af->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                     mode);
    return af->fd == -1 ? -errno : 0;
  }
  if (dirfd != AT_FDCWD)
    return -EINVAL;
  const char *slash = strrchr (path, '/');
  n = slash ? snprintf (af->tmp, sizeof af->tmp, "%.*s/.tmp-XXXXXX",
                        (int) (slash - path), path)
            : snprintf (af->tmp, sizeof af->tmp, ".tmp-XXXXXX");
  if (n < 0 || (size_t) n >= sizeof af->tmp)
    return -ENAMETOOLONG;
  af->fd = mkostemp (af->tmp, O_CLOEXEC);
  if (af->fd == -1)
    return -errno;
  if (fchmod (af->fd, mode) == -1) {
    int e = errno;
    atomic_file_abort (af);
    return -e;
  }
  return 0;
}

void
atomic_file_abort (struct atomic_file *af)
{
  if (af->fd >= 0) {
    close (af->fd);
    unlinkat (af->dirfd, af->tmp, 0);
  }
  af->fd = -1;
}

int
atomic_file_commit (struct atomic_file *af)
{
  int fd = af->fd, e;

  af->fd = -1;
  if (fsync (fd) == -1) {
    e = errno;
    close (fd);
    goto fail;
  }
  if (close (fd) == -1) {
    e = errno;
    goto fail;
  }
  if (renameat (af->dirfd, af->tmp, af->dirfd, af->path) == -1) {
    e = errno;
    goto fail;
  }
  return fsync_parent (af->dirfd, af->path);

 fail:
  unlinkat (af->dirfd, af->tmp, 0);
  return -e;
}

int
atomic_replace (int dirfd, const char *path, const char *tmp,
                const void *data, size_t len, mode_t mode)
{
  struct atomic_file af;
  int r = atomic_file_begin (&af, dirfd, path, tmp, mode);

  if (r < 0)
    return r;
  r = write_full (af.fd, data, len);
  if (r < 0) {
    atomic_file_abort (&af);
    return r;
  }
  return atomic_file_commit (&af);
}

const char *
run_dir (int *err)
{
  const char *dir = getenv ("REPVOL_RUN_DIR");

  if (dir == NULL)
    dir = "/run/repvol";
  *err = mkdir (dir, 0700) == -1 && errno != EEXIST ? -errno : 0;
  return dir;
}

bool
pid_alive (pid_t pid)
{
  return pid > 0 && (kill (pid, 0) == 0 || errno == EPERM);
}

int
read_small_file (const char *path, char *buf, size_t size)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  ssize_t n;

  buf[0] = '\0';
  if (fd == -1)
    return -errno;
  do
    n = read (fd, buf, size - 1);
  while (n == -1 && errno == EINTR);
  if (n == -1)
    n = -errno;
  close (fd);
  if (n <= 0)
    return n < 0 ? (int) n : -ENODATA;
  buf[n] = '\0';
  return (int) n;
}
