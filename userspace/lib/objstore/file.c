/* file.c - the file:///DIR object store: one file per object at DIR/KEY.
 *
 * Every request runs to completion inside submit (local file I/O is
 * quick and the callers keep only a few dozen in flight), and its
 * completion waits in a queue for poll.  The queue has a mutex because
 * objstore_wakeup may come from any thread; the eventfd is what a poll
 * with nothing queued sleeps on.
 *
 * PUT is atomic and durable: the body goes to a temp file in the key's
 * directory (".tmp-" names, never listed, never valid keys), which is
 * fsynced, renamed over the key, and the directory fsynced.  A crash
 * leaves either the old object or the new one, plus perhaps a stray
 * temp file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include "core/util.h"
#include "core/fsutil.h"
#include "objstore/objstore_backend.h"

#define TMP_PREFIX ".tmp-"

struct file_store {
  char *root;                   /* absolute, no trailing '/' (unless "/") */
  int efd;                      /* eventfd: wakeups */
  pthread_mutex_t lock;         /* protects head/tail */
  struct obj_req *head, *tail;  /* completed, linked through backend_priv */
  bool root_made;               /* root exists (else the first PUT makes it) */
};

/* objstore.c has checked the key rules (objstore_key_valid); what is
 * left is ours: no component may be taken for one of our temp files.
 */
static bool
names_tmp (const char *k)
{
  for (const char *p = k; *p; p++)
    if ((p == k || p[-1] == '/') &&
        strncmp (p, TMP_PREFIX, strlen (TMP_PREFIX)) == 0)
      return true;
  return false;
}

static bool
key_valid (const char *k)
{
  return objstore_key_valid (k) && !names_tmp (k);
}

static void
fail (struct obj_req *r, int e, const char *what)
{
  if (e == ENOENT && what == NULL)
    error_set (&r->err, e, "%s %s: no such object", objstore_op_name (r->op),
               r->key);
  else
    error_set (&r->err, e, "%s %s: %s%s%s", objstore_op_name (r->op), r->key,
               what ? what : "", what ? ": " : "", strerror (e));
}

/* mkdir -p of path's directories up to (not including) its last
 * component.  A directory we create is made durable by fsyncing its
 * parent, so a PUT that returned stays reachable after a crash.
 * 0 or a negative errno.
 */
static int
make_parents (char *path, size_t keep)
{
  for (char *p = path + keep + 1; (p = strchr (p, '/')) != NULL; p++) {
    *p = '\0';
    int r = mkdir (path, 0700) == 0 ? fsync_parent (AT_FDCWD, path)
            : errno == EEXIST ? 0 : -errno;
    *p = '/';
    if (r < 0)
      return r;
  }
  return 0;
}

static void
do_put (struct file_store *fs, struct obj_req *r, char *path)
{
  /* The first PUT makes the store's directory too (open does not). */
  bool made = __atomic_load_n (&fs->root_made, __ATOMIC_ACQUIRE);
  int e = make_parents (path, made ? strlen (fs->root) : 0);
  if (e == 0 && !made)
    __atomic_store_n (&fs->root_made, true, __ATOMIC_RELEASE);
  if (e < 0) {
    fail (r, -e, "cannot create directory");
    return;
  }

  /* A unique temp name (atomic_replace's ".tmp-XXXXXX", TMP_PREFIX):
   * two uploads may put the same content-addressed chunk at once.
   */
  /* Owner only, like the replicas' files: chunks are volume data. */
  e = atomic_replace (AT_FDCWD, path, NULL, r->data, r->len, 0600);
  if (e < 0)
    fail (r, -e, "write");
}

static void
do_get (struct obj_req *r, const char *path, bool body)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd == -1 || fstat (fd, &st) == -1) {
    int e = errno;
    if (fd != -1)
      close (fd);
    fail (r, e == ENOTDIR ? ENOENT : e, NULL);
    return;
  }
  /* A directory is only a key prefix, not an object. */
  if (!S_ISREG (st.st_mode)) {
    close (fd);
    fail (r, ENOENT, NULL);
    return;
  }
  r->out_len = st.st_size;
  if (body) {
    r->out = malloc (st.st_size ? st.st_size : 1);
    if (r->out == NULL) {
      close (fd);
      fail (r, ENOMEM, NULL);
      return;
    }
    /* read_full reports a short file (truncated under us) as ECONNRESET. */
    int e = -read_full (fd, r->out, st.st_size);
    if (e) {
      e = e == ECONNRESET ? EIO : e;
      free (r->out);
      r->out = NULL;
      r->out_len = 0;
      close (fd);
      fail (r, e, "read");
      return;
    }
  }
  close (fd);
}

static void
do_delete (struct obj_req *r, const char *path)
{
  /* No directory fsync: a delete lost in a crash leaves an object that
   * the next delete or collection removes again.
   */
  if (unlink (path) == -1 && errno != ENOENT && errno != ENOTDIR &&
      errno != EISDIR)
    fail (r, errno, NULL);
}

static void
file_submit (struct objstore *os, struct obj_req *r)
{
  struct file_store *fs = os->priv;
  char path[PATH_MAX];

  if (names_tmp (r->key)) {
    error_set (&r->err, EINVAL, "%s %.300s: invalid object key",
               objstore_op_name (r->op), r->key);
  }
  else if ((size_t) snprintf (path, sizeof path, "%s/%s", fs->root, r->key)
           >= sizeof path)
    fail (r, ENAMETOOLONG, NULL);
  else {
    switch (r->op) {
    case OBJ_PUT: do_put (fs, r, path); break;
    case OBJ_GET: do_get (r, path, true); break;
    case OBJ_HEAD: do_get (r, path, false); break;
    case OBJ_DELETE: do_delete (r, path); break;
    }
  }

  r->backend_priv = NULL;
  pthread_mutex_lock (&fs->lock);
  if (fs->tail)
    fs->tail->backend_priv = r;
  else
    fs->head = r;
  fs->tail = r;
  pthread_mutex_unlock (&fs->lock);
}

static struct obj_req *
dequeue (struct file_store *fs)
{
  pthread_mutex_lock (&fs->lock);
  struct obj_req *r = fs->head;
  if (r) {
    fs->head = r->backend_priv;
    if (fs->head == NULL)
      fs->tail = NULL;
    r->backend_priv = NULL;
  }
  pthread_mutex_unlock (&fs->lock);
  return r;
}

static struct obj_req *
file_poll (struct objstore *os, int timeout_ms)
{
  struct file_store *fs = os->priv;
  struct obj_req *r = dequeue (fs);
  if (r)
    return r;

  struct pollfd pfd = { .fd = fs->efd, .events = POLLIN };
  if (poll (&pfd, 1, timeout_ms) > 0) {
    uint64_t v;
    if (read (fs->efd, &v, sizeof v) == -1) {
      /* EAGAIN: another reader drained it; nothing to do. */
    }
  }
  return dequeue (fs);
}

static void
file_wakeup (struct objstore *os)
{
  struct file_store *fs = os->priv;
  uint64_t one = 1;
  if (write (fs->efd, &one, sizeof one) == -1) {
    /* EAGAIN: the counter is saturated, so a wakeup is pending anyway. */
  }
}

struct walk {
  const char *prefix;
  int (*fn) (void *opaque, const struct obj_entry *e);
  void *opaque;
  struct error *err;
  const char *root;
};

/* The listing failed at key with errno e: -e, with the message. */
static int
walk_fail (struct walk *w, const char *key, int e)
{
  return error_set (w->err, e, "list %s/%s: %s", w->root, key, strerror (e));
}

/* Walk directory dfd, whose key prefix is key[0..klen) ("" or ending
 * in '/'), calling fn for every regular file whose key starts with
 * w->prefix.  0, fn's non-zero return, or a negative errno.
 */
static int
walk_dir (struct walk *w, int dfd, char *key, size_t klen)
{
  DIR *d = fdopendir (dfd);
  if (d == NULL) {
    int e = walk_fail (w, key, errno);
    close (dfd);
    return e;
  }
  int ret = 0;
  struct dirent *de;
  errno = 0;
  while (ret == 0 && (de = readdir (d)) != NULL) {
    const char *n = de->d_name;
    if (strcmp (n, ".") == 0 || strcmp (n, "..") == 0 ||
        strncmp (n, TMP_PREFIX, strlen (TMP_PREFIX)) == 0)
      continue;
    size_t nlen = strlen (n);
    if (klen + nlen + 1 >= OBJ_KEY_MAX)
      continue;                 /* cannot be a key of ours */
    memcpy (key + klen, n, nlen + 1);
    /* Only descend where keys under the prefix can be: the directory's
     * key must be a prefix of w->prefix or start with it.
     */
    size_t plen = strlen (w->prefix);
    size_t cmp = MIN (plen, klen + nlen);

    struct stat st;
    if (fstatat (dirfd (d), n, &st, AT_SYMLINK_NOFOLLOW) == -1) {
      if (errno == ENOENT)
        continue;               /* deleted while we walked */
      ret = walk_fail (w, key, errno);
      break;
    }
    if (S_ISDIR (st.st_mode)) {
      key[klen + nlen] = '/';
      key[klen + nlen + 1] = '\0';
      cmp = MIN (plen, klen + nlen + 1);
      if (strncmp (key, w->prefix, cmp) != 0)
        continue;
      int sub = openat (dirfd (d), n, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (sub == -1) {
        if (errno == ENOENT)
          continue;
        ret = walk_fail (w, key, errno);
        break;
      }
      ret = walk_dir (w, sub, key, klen + nlen + 1);
    }
    else if (S_ISREG (st.st_mode) && klen + nlen >= plen &&
             strncmp (key, w->prefix, cmp) == 0 && key_valid (key)) {
      struct obj_entry e = {
        .key = key, .size = st.st_size, .mtime = st.st_mtime,
      };
      ret = w->fn (w->opaque, &e);
    }
    key[klen] = '\0';
    errno = 0;
  }
  if (ret == 0 && errno != 0)
    ret = walk_fail (w, key, errno);
  closedir (d);
  return ret;
}

static int
file_list (struct objstore *os, const char *prefix,
           int (*fn) (void *opaque, const struct obj_entry *e),
           void *opaque, struct error *err)
{
  struct file_store *fs = os->priv;
  if (names_tmp (prefix))
    return error_set (err, EINVAL, "list %.300s: invalid key prefix", prefix);
  int dfd = open (fs->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd == -1 && errno == ENOENT)
    return error_set (err, ENOENT, "%s: no such directory (nothing has "
                      "been stored there)", os->url);
  if (dfd == -1) {
    int e = errno;
    return error_set (err, e, "list %s: %s", fs->root, strerror (e));
  }
  struct walk w = {
    .prefix = prefix, .fn = fn, .opaque = opaque, .err = err,
    .root = fs->root,
  };
  char key[OBJ_KEY_MAX + 2] = "";
  return walk_dir (&w, dfd, key, 0);
}

static int
file_open (struct objstore *os, const char *rest, struct error *err)
{
  /* file:///DIR, or file://localhost/DIR. */
  if (strncmp (rest, "localhost/", 10) == 0)
    rest += 9;
  if (rest[0] != '/')
    return error_set (err, EINVAL,
                      "%s: expected file:///DIR with an absolute DIR",
                      os->url);
  size_t n = strlen (rest);
  while (n > 1 && rest[n - 1] == '/')
    n--;
  if (n >= PATH_MAX - OBJ_KEY_MAX - 16)
    return error_set (err, ENAMETOOLONG, "%s: directory name too long",
                      os->url);

  struct file_store *fs = calloc (1, sizeof *fs);
  if (fs == NULL || (fs->root = strndup (rest, n)) == NULL) {
    free (fs);
    return error_set (err, ENOMEM, "%s: out of memory", os->url);
  }
  fs->efd = -1;

  /* DIR is made (0700) by the first PUT, not here: listing or reading
   * a store that does not exist must not create it.  If it exists, it
   * must be a directory we can use.
   */
  struct stat st;
  int e = 0;
  if (stat (fs->root, &st) == -1) {
    if (errno == ENOENT)
      goto usable;              /* root_made false */
    e = -errno;
    error_set (err, -e, "%s: cannot use directory %s: %s", os->url,
               fs->root, strerror (-e));
    goto fail;
  }
  if (!S_ISDIR (st.st_mode)) {
    e = error_set (err, ENOTDIR, "%s: %s is not a directory", os->url,
                   fs->root);
    goto fail;
  }
  if (access (fs->root, R_OK | W_OK | X_OK) == -1) {
    e = -errno;
    error_set (err, -e, "%s: cannot use directory %s: %s", os->url,
               fs->root, strerror (-e));
    goto fail;
  }
  fs->root_made = true;
usable:
  fs->efd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fs->efd == -1) {
    e = -errno;
    error_set (err, -e, "%s: eventfd: %s", os->url, strerror (-e));
    goto fail;
  }
  pthread_mutex_init (&fs->lock, NULL);
  os->priv = fs;
  return 0;

 fail:
  free (fs->root);
  free (fs);
  return e;
}

static void
file_close (struct objstore *os)
{
  struct file_store *fs = os->priv;
  if (fs == NULL)
    return;
  /* Completions nobody collected stay the caller's (they own the
   * requests); we only drop our links to them.
   */
  while (dequeue (fs) != NULL)
    ;
  close (fs->efd);
  pthread_mutex_destroy (&fs->lock);
  free (fs->root);
  free (fs);
  os->priv = NULL;
}

const struct objstore_ops file_objstore_ops = {
  .scheme = "file",
  .open = file_open,
  .submit = file_submit,
  .poll = file_poll,
  .wakeup = file_wakeup,
  .list = file_list,
  .close = file_close,
};
