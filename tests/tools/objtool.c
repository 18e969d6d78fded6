/* objtool - drive an object store (objstore.h) from the shell, for the
 * integration tests.
 *
 *   objtool URL put KEY FILE       store FILE's bytes under KEY
 *   objtool URL get KEY FILE       fetch KEY into FILE
 *   objtool URL head KEY           print KEY's size
 *   objtool URL delete KEY...      all submitted at once
 *   objtool URL list [PREFIX]      print "KEY SIZE MTIME" per key, sorted
 *   objtool URL putmany N SIZE     N objects "many/NNNNNN" of SIZE bytes,
 *                                  all submitted at once
 *   objtool URL getmany N SIZE     GET those N objects back, all at once,
 *                                  and check every byte
 *   objtool URL wakeup             poll with no timeout while another
 *                                  thread calls objstore_wakeup(): must
 *                                  return (prints "woken")
 *
 * Exit 0, or 1 with the store's one-line error (and the errno's name in
 * brackets, e.g. "[ENOENT]") on stderr.  put and get also print their
 * rate on stderr.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "objstore/objstore.h"
#include "core/util.h"
#include "core/fsutil.h"

static const char *url;

static int
fail (int e, const char *msg)
{
  fprintf (stderr, "objtool: %s [%s]\n", msg, strerrorname_np (e) ?: "?");
  return 1;
}

static double
secs_since (uint64_t t0)
{
  return (now_ns () - t0) / 1e9;
}

static void
rate (const char *what, const char *key, size_t n, uint64_t t0)
{
  double s = secs_since (t0);
  fprintf (stderr, "objtool: %s %s: %zu bytes in %.3f s (%.1f MiB/s)\n",
           what, key, n, s, s > 0 ? n / s / (1 << 20) : 0.0);
}

/* The whole of FILE, read to its end (a FIFO works too: the tests
 * feed one to decide when the request is made).
 */
static void *
slurp (const char *path, size_t *len)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  size_t cap = 1 << 20, n = 0;
  char *buf = malloc (cap);
  ssize_t r = 0;
  if (fd == -1 || buf == NULL)
    goto fail;
  while ((r = read (fd, buf + n, cap - n)) > 0) {
    n += r;
    if (n == cap) {
      char *p = realloc (buf, cap *= 2);
      if (p == NULL)
        goto fail;
      buf = p;
    }
  }
  if (r == -1)
    goto fail;
  close (fd);
  *len = n;
  return buf;
 fail:
  perror (path);
  if (fd != -1)
    close (fd);
  free (buf);
  return NULL;
}

static int
cmd_put (struct objstore *os, const char *key, const char *path)
{
  struct error err = { 0 };
  size_t len;
  void *buf = slurp (path, &len);
  if (buf == NULL)
    return 1;
  uint64_t t0 = now_ns ();
  int e = objstore_put (os, key, buf, len, &err);
  if (e == 0)
    rate ("PUT", key, len, t0);
  free (buf);
  return e ? fail (-e, error_msg (&err)) : 0;
}

static int
cmd_get (struct objstore *os, const char *key, const char *path)
{
  struct error err = { 0 };
  void *data;
  size_t len;
  uint64_t t0 = now_ns ();
  int e = objstore_get (os, key, &data, &len, &err);
  if (e)
    return fail (-e, error_msg (&err));
  rate ("GET", key, len, t0);
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd == -1 || (errno = -write_full (fd, data, len)) != 0 || close (fd) == -1) {
    perror (path);
    return 1;
  }
  free (data);
  return 0;
}

struct listing {
  char **lines;
  size_t n, cap;
};

static int
add_entry (void *opaque, const struct obj_entry *e)
{
  struct listing *l = opaque;
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 256;
    l->lines = realloc (l->lines, l->cap * sizeof *l->lines);
    if (l->lines == NULL)
      return -ENOMEM;
  }
  if (asprintf (&l->lines[l->n], "%s %llu %lld", e->key,
                (unsigned long long) e->size, (long long) e->mtime) == -1)
    return -ENOMEM;
  l->n++;
  return 0;
}

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static int
cmd_list (struct objstore *os, const char *prefix)
{
  struct error err = { 0 };
  struct listing l = { 0 };
  int r = objstore_list (os, prefix, add_entry, &l, &err);
  if (r == 0)
    qsort (l.lines, l.n, sizeof *l.lines, cmp_str);
  for (size_t i = 0; i < l.n; i++) {
    if (r == 0)
      puts (l.lines[i]);
    free (l.lines[i]);
  }
  free (l.lines);
  /* add_entry's -ENOMEM comes back without a message. */
  if (r < 0)
    return fail (-r, err.msg[0] ? err.msg : "out of memory");
  return 0;
}

static void
fill_pattern (uint8_t *data, uint64_t size)
{
  for (uint64_t i = 0; i < size; i++)
    data[i] = (uint8_t) (i * 131 + 7);
}

/* Every request submitted before the first poll: the backend queues
 * what it cannot run at once.
 */
static int
cmd_putmany (struct objstore *os, const char *ns, const char *ssize)
{
  uint64_t n, size;
  if (parse_uint (ns, 1, 1000000, &n) == -1 || parse_size (ssize, &size) == -1) {
    fprintf (stderr, "objtool: putmany N SIZE: bad number\n");
    return 2;
  }
  struct obj_req *reqs = calloc (n, sizeof *reqs);
  uint8_t *data = malloc (size ? size : 1);
  if (reqs == NULL || data == NULL) {
    fprintf (stderr, "objtool: out of memory\n");
    return 1;
  }
  fill_pattern (data, size);
  uint64_t t0 = now_ns ();
  for (uint64_t i = 0; i < n; i++) {
    reqs[i].op = OBJ_PUT;
    reqs[i].data = data;
    reqs[i].len = size;
    snprintf (reqs[i].key, sizeof reqs[i].key, "many/%06llu",
              (unsigned long long) i);
    objstore_submit (os, &reqs[i]);
  }
  uint64_t done = 0, failed = 0;
  while (done < n) {
    struct obj_req *r = objstore_poll (os, 1000);
    if (r == NULL)
      continue;
    done++;
    if (r->err.code && failed++ < 5)
      fprintf (stderr, "objtool: %s\n", error_msg (&r->err));
  }
  double s = secs_since (t0);
  fprintf (stderr, "objtool: putmany: %llu objects of %llu bytes in %.3f s "
           "(%.1f MiB/s), %llu failed\n", (unsigned long long) n,
           (unsigned long long) size, s,
           s > 0 ? n * (double) size / s / (1 << 20) : 0.0,
           (unsigned long long) failed);
  free (reqs);
  free (data);
  return failed ? 1 : 0;
}

static int
cmd_delete (struct objstore *os, int n, char **keys)
{
  struct obj_req *reqs = calloc (n, sizeof *reqs);
  int left = n, failed = 0;
  if (reqs == NULL) {
    fprintf (stderr, "objtool: out of memory\n");
    return 1;
  }
  for (int i = 0; i < n; i++) {
    reqs[i].op = OBJ_DELETE;
    if (snprintf (reqs[i].key, sizeof reqs[i].key, "%s", keys[i])
        >= (int) sizeof reqs[i].key) {
      fprintf (stderr, "objtool: %.64s...: key too long\n", keys[i]);
      return 1;
    }
    objstore_submit (os, &reqs[i]);
  }
  while (left > 0) {
    struct obj_req *r = objstore_poll (os, 1000);
    if (r == NULL)
      continue;
    left--;
    if (r->err.code && failed++ < 5)
      fail (r->err.code, error_msg (&r->err));
  }
  free (reqs);
  return failed ? 1 : 0;
}

static int
cmd_getmany (struct objstore *os, const char *ns, const char *ssize)
{
  uint64_t n, size;
  if (parse_uint (ns, 1, 1000000, &n) == -1 || parse_size (ssize, &size) == -1) {
    fprintf (stderr, "objtool: getmany N SIZE: bad number\n");
    return 2;
  }
  struct obj_req *reqs = calloc (n, sizeof *reqs);
  uint8_t *want = malloc (size ? size : 1);
  if (reqs == NULL || want == NULL) {
    fprintf (stderr, "objtool: out of memory\n");
    return 1;
  }
  fill_pattern (want, size);
  uint64_t t0 = now_ns ();
  for (uint64_t i = 0; i < n; i++) {
    reqs[i].op = OBJ_GET;
    snprintf (reqs[i].key, sizeof reqs[i].key, "many/%06llu",
              (unsigned long long) i);
    objstore_submit (os, &reqs[i]);
  }
  uint64_t done = 0, failed = 0;
  while (done < n) {
    struct obj_req *r = objstore_poll (os, 1000);
    if (r == NULL)
      continue;
    done++;
    if (r->err.code) {
      if (failed++ < 5)
        fprintf (stderr, "objtool: %s\n", error_msg (&r->err));
    }
    else if (r->out_len != size || memcmp (r->out, want, size) != 0) {
      if (failed++ < 5)
        fprintf (stderr, "objtool: GET %s: %zu bytes, not the %llu written\n",
                 r->key, r->out_len, (unsigned long long) size);
    }
    free (r->out);
  }
  double s = secs_since (t0);
  fprintf (stderr, "objtool: getmany: %llu objects of %llu bytes in %.3f s "
           "(%.1f MiB/s), %llu failed\n", (unsigned long long) n,
           (unsigned long long) size, s,
           s > 0 ? n * (double) size / s / (1 << 20) : 0.0,
           (unsigned long long) failed);
  free (reqs);
  free (want);
  return failed ? 1 : 0;
}

static void *
waker (void *opaque)
{
  struct objstore *os = opaque;
  /* Before or during the poll, either way it must end the wait. */
  usleep (100 * 1000);
  objstore_wakeup (os);
  return NULL;
}

static int
cmd_wakeup (struct objstore *os)
{
  pthread_t t;
  if (pthread_create (&t, NULL, waker, os) != 0) {
    fprintf (stderr, "objtool: pthread_create failed\n");
    return 1;
  }
  struct obj_req *r = objstore_poll (os, -1);
  pthread_join (t, NULL);
  if (r != NULL) {
    fprintf (stderr, "objtool: poll returned a request nobody submitted\n");
    return 1;
  }
  puts ("woken");
  return 0;
}

static int
usage (void)
{
  fprintf (stderr, "usage: objtool URL put KEY FILE | get KEY FILE | head KEY "
           "| delete KEY... | list [PREFIX] | putmany N SIZE\n");
  return 2;
}

int
main (int argc, char **argv)
{
  struct error err = { 0 };
  if (argc < 3)
    return usage ();
  url = argv[1];
  const char *cmd = argv[2];
  int nargs = argc - 3;
  if (!((strcmp (cmd, "put") == 0 && nargs == 2) ||
        (strcmp (cmd, "get") == 0 && nargs == 2) ||
        (strcmp (cmd, "head") == 0 && nargs == 1) ||
        (strcmp (cmd, "delete") == 0 && nargs >= 1) ||
        (strcmp (cmd, "list") == 0 && nargs <= 1) ||
        (strcmp (cmd, "putmany") == 0 && nargs == 2) ||
        (strcmp (cmd, "getmany") == 0 && nargs == 2) ||
        (strcmp (cmd, "wakeup") == 0 && nargs == 0)))
    return usage ();

  log_init ("objtool");
  struct objstore *os = objstore_open (url, &err);
  if (os == NULL) {
    fprintf (stderr, "objtool: %s\n", error_msg (&err));
    return 1;
  }
  int r;
  if (strcmp (cmd, "put") == 0)
    r = cmd_put (os, argv[3], argv[4]);
  else if (strcmp (cmd, "get") == 0)
    r = cmd_get (os, argv[3], argv[4]);
  else if (strcmp (cmd, "head") == 0) {
    size_t len;
    int e = objstore_head (os, argv[3], &len, &err);
    r = e ? fail (-e, error_msg (&err)) : (printf ("%zu\n", len), 0);
  }
  else if (strcmp (cmd, "delete") == 0)
    r = cmd_delete (os, argc - 3, argv + 3);
  else if (strcmp (cmd, "list") == 0)
    r = cmd_list (os, nargs ? argv[3] : "");
  else if (strcmp (cmd, "wakeup") == 0)
    r = cmd_wakeup (os);
  else if (strcmp (cmd, "getmany") == 0)
    r = cmd_getmany (os, argv[3], argv[4]);
  else
    r = cmd_putmany (os, argv[3], argv[4]);
  objstore_close (os);
  return r;
}
