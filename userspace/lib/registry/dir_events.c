/* dir_events.c - the event stream of a directory registry:
 *
 *   DIR/events.jsonl   one event per line (events.c's JSON), appended
 *                      under an flock of DIR/.events.lock, each with its
 *                      revision (the last line's + 1); mode 0600
 *
 * An append reads only the file's tail (the last revision, and an
 * estimate of how many events there are).  The file is trimmed, under
 * the same lock and atomically (write a new one, rename it over), to the
 * newest reg_events_max() events once it holds about twice that many;
 * revisions stay as they were.  A torn
 * last line (a crash mid-append) or any line that does not parse is
 * skipped by readers and never numbered from.  Followers poll the
 * file's size.
 */
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

#include "core/fsutil.h"
#include "core/util.h"
#include "registry/registry.h"
#include "registry/backends.h"

#define EVENT_LINE_MAX 2048         /* an event's JSON is well below */

static int
events_path (struct registry *r, const char *name, char *buf, size_t size,
             struct error *err)
{
  const char *dir = registry_dir_path (r);
  if (snprintf (buf, size, "%s/%s", dir, name) >= (int) size)
    return error_set (err, ENAMETOOLONG, "registry %s: path too long", dir);
  return 0;
}

/* The whole file, malloc'd with a NUL after it (*len 0 and NULL when it
 * does not exist).
 */
static int
read_events (const char *path, char **text, size_t *len, struct error *err)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat st;

  *text = NULL;
  *len = 0;
  if (fd == -1)
    return errno == ENOENT ? 0
      : error_set (err, errno, "registry %s: %s", path, strerror (errno));
  if (fstat (fd, &st) == -1 || st.st_size > (off_t) (256u << 20)) {
    int e = errno ? errno : EFBIG;
    close (fd);
    return error_set (err, e, "registry %s: %s", path, strerror (e));
  }
  char *buf = malloc ((size_t) st.st_size + 1);
  if (buf == NULL) {
    close (fd);
    return error_set (err, ENOMEM, "registry %s: out of memory", path);
  }
  ssize_t n = pread (fd, buf, (size_t) st.st_size, 0);
  close (fd);
  if (n < 0) {
    free (buf);
    return error_set (err, errno, "registry %s: %s", path, strerror (errno));
  }
  buf[n] = '\0';
  *text = buf;
  *len = (size_t) n;
  return 0;
}

/* Call fn on each good line with revision > since; the number of good
 * lines in *count and the last revision in *last (either may be NULL).
 */
static int
each_event (char *text, size_t len, uint64_t since,
            int (*fn) (const struct reg_event *ev, void *arg), void *arg,
            size_t *count, uint64_t *last)
{
  size_t n = 0;
  uint64_t rev = 0;
  char *p = text, *end = text + len;

  while (p < end) {
    char *nl = memchr (p, '\n', (size_t) (end - p));
    if (nl == NULL)
      break;                    /* torn: not an event yet */
    struct reg_event ev;
    if (reg_event_from_text (p, (size_t) (nl - p), &ev, NULL) == 0 &&
        ev.revision > rev) {
      n++;
      rev = ev.revision;
      if (fn && ev.revision > since) {
        int r = fn (&ev, arg);
        if (r)
          return r;
      }
    }
    p = nl + 1;
  }
  if (count)
    *count = n;
  if (last)
    *last = rev;
  return 0;
}

#define TAIL_BYTES (16u << 10)

/* From the file's last TAIL_BYTES (all of it when smaller, or when no
 * good line is there): the last good revision, whether the last line is
 * torn, and about how many events the file holds (its size over the
 * tail's bytes per event), so an append reads a few KiB, not the file.
 */
static int
tail_info (const char *path, uint64_t *last, bool *torn, size_t *est,
           struct error *err)
{
  char *buf = NULL;
  struct stat st;
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  *last = 0, *torn = false, *est = 0;
  if (fd == -1)
    return errno == ENOENT ? 0
      : error_set (err, errno, "registry %s: %s", path, strerror (errno));
  if (fstat (fd, &st) == -1 || (buf = malloc (TAIL_BYTES + 1)) == NULL) {
    int e = errno ? errno : ENOMEM;
    close (fd);
    return error_set (err, e, "registry %s: %s", path, strerror (e));
  }
  off_t off = st.st_size > TAIL_BYTES ? st.st_size - TAIL_BYTES : 0;
  ssize_t n = pread (fd, buf, (size_t) (st.st_size - off), off);
  close (fd);
  if (n < 0) {
    free (buf);
    return error_set (err, errno, "registry %s: %s", path, strerror (errno));
  }
  buf[n] = '\0';
  *torn = n > 0 && buf[n - 1] != '\n';
  /* The first line of a tail may be cut: start after it. */
  char *p = buf, *nl;
  if (off > 0 && (nl = memchr (buf, '\n', (size_t) n)) != NULL)
    p = nl + 1;
  size_t count, span = (size_t) (buf + n - p);   /* bytes of whole lines */
  each_event (p, span, 0, NULL, NULL, &count, last);
  free (buf);
  if (*last == 0 && off > 0) {  /* no good line near the end: all of it */
    char *text;
    size_t len;
    int ret = read_events (path, &text, &len, err);
    if (ret < 0)
      return ret;
    each_event (text, len, 0, NULL, NULL, est, last);
    free (text);
    return 0;
  }
  *est = count && off > 0 ? (size_t) ((uint64_t) st.st_size * count /
                                      (uint64_t) span)
    : count;
  return 0;
}

/* Keep the newest max lines: text is the whole file. */
static int
trim (const char *dir, const char *path, char *text, size_t len,
      size_t count, unsigned max, struct error *err)
{
  char tmp[PATH_MAX];
  size_t skip = count - max;
  char *p = text, *end = text + len;

  while (skip > 0 && p < end) {
    char *nl = memchr (p, '\n', (size_t) (end - p));
    if (nl == NULL)
      break;
    struct reg_event ev;
    if (reg_event_from_text (p, (size_t) (nl - p), &ev, NULL) == 0)
      skip--;
    p = nl + 1;
  }
  if (snprintf (tmp, sizeof tmp, "%s/.events.jsonl.tmp", dir) >= (int) sizeof tmp)
    return error_set (err, ENAMETOOLONG, "registry %s: path too long", dir);
  int r = atomic_replace (AT_FDCWD, path, tmp, p, (size_t) (end - p), 0600);
  if (r < 0)
    return error_set (err, -r, "registry %s: cannot trim: %s", path,
                      strerror (-r));
  return 0;
}

int
dir_event_append (struct registry *r, const struct reg_event *in,
                  struct error *err)
{
  const char *dir = registry_dir_path (r);
  char path[PATH_MAX], lockp[PATH_MAX];
  struct reg_event ev = *in;
  char *text = NULL, *line = NULL;
  size_t len, count;
  uint64_t last;
  bool torn;
  int ret, lk = -1, fd = -1;

  if ((ret = events_path (r, "events.jsonl", path, sizeof path, err)) < 0 ||
      (ret = events_path (r, ".events.lock", lockp, sizeof lockp, err)) < 0)
    return ret;
  if (mkdir (dir, 0700) == -1 && errno != EEXIST)
    return error_set (err, errno, "registry %s: %s", dir, strerror (errno));
  lk = open (lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lk == -1 || flock (lk, LOCK_EX) == -1) {
    ret = error_set (err, errno, "registry %s: %s", lockp, strerror (errno));
    goto out;
  }
  if ((ret = tail_info (path, &last, &torn, &count, err)) < 0)
    goto out;
  ev.revision = last + 1;
  line = reg_event_to_text (&ev);
  if (line == NULL) {
    ret = error_set (err, ENOMEM, "registry %s: out of memory", path);
    goto out;
  }
  /* A torn last line stays torn: start ours on a line of its own. */
  fd = open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd == -1 || (torn && write_full (fd, "\n", 1) < 0) ||
      write_full (fd, line, strlen (line)) < 0 ||
      write_full (fd, "\n", 1) < 0 || fdatasync (fd) == -1) {
    ret = error_set (err, errno, "registry %s: cannot append: %s", path,
                     strerror (errno));
    goto out;
  }
  unsigned max = reg_events_max ();
  if (count + 1 > 2 * (size_t) max) {       /* about; counted exactly now */
    if ((ret = read_events (path, &text, &len, err)) < 0)
      goto out;
    each_event (text, len, 0, NULL, NULL, &count, NULL);
    ret = count > max ? trim (dir, path, text, len, count, max, err) : 0;
  }
 out:
  if (fd >= 0)
    close (fd);
  if (lk >= 0)
    close (lk);                 /* and the lock */
  free (text);
  free (line);
  return ret;
}

int
dir_event_list (struct registry *r, uint64_t since,
                int (*fn) (const struct reg_event *ev, void *arg), void *arg,
                struct error *err)
{
  char path[PATH_MAX], *text;
  size_t len;
  int ret;

  if ((ret = events_path (r, "events.jsonl", path, sizeof path, err)) < 0 ||
      (ret = read_events (path, &text, &len, err)) < 0)
    return ret;
  if (text == NULL)
    return 0;
  ret = each_event (text, len, since, fn, arg, NULL, NULL);
  free (text);
  return ret;
}

int
dir_event_wait (struct registry *r, uint64_t since, int timeout_ms,
                struct error *err)
{
  char path[PATH_MAX];
  struct stat st0, st;
  int ret;

  if ((ret = events_path (r, "events.jsonl", path, sizeof path, err)) < 0)
    return ret;
  bool had = stat (path, &st0) == 0;
  for (int waited = 0; waited < timeout_ms; waited += 100) {
    struct timespec ts = { 0, 100 * 1000000 };
    nanosleep (&ts, NULL);
    bool has = stat (path, &st) == 0;
    if (has != had || (has && (st.st_size != st0.st_size ||
                               st.st_ino != st0.st_ino)))
      return 1;
  }
  return 0;
}
