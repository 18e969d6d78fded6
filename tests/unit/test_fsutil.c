/* test_fsutil.c - core/fsutil.c: full reads and writes, atomic replace
 * (old or new content, never a mix; temp removed on failure; unique
 * temp names), fsync_parent, pid_alive, run_dir; and the struct error helpers
 * of core/util.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "core/util.h"
#include "core/fsutil.h"

static char dir[64];

static int
setup (void **state)
{
  snprintf (dir, sizeof dir, "/tmp/test_fsutil.XXXXXX");
  return mkdtemp (dir) ? 0 : -1;
}

static int
teardown (void **state)
{
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system (cmd) == 0 ? 0 : -1;
}

/* Number of entries in dir other than . and .. */
static int
entries (const char *d)
{
  DIR *dp = opendir (d);
  struct dirent *de;
  int n = 0;

  assert_non_null (dp);
  while ((de = readdir (dp)) != NULL)
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, ".."))
      n++;
  closedir (dp);
  return n;
}

static void
slurp (const char *path, char *buf, size_t len, size_t *got)
{
  int fd = open (path, O_RDONLY);
  ssize_t n;

  assert_true (fd >= 0);
  n = read (fd, buf, len);
  assert_true (n >= 0);
  *got = n;
  close (fd);
}

static void
test_full_io (void **state)
{
  char path[128], buf[8192], in[8192];
  int fd;

  snprintf (path, sizeof path, "%s/f", dir);
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (char) (i * 7);
  fd = open (path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (write_full (fd, buf, sizeof buf), 0);
  assert_int_equal (pread_full (fd, in, sizeof in, 0), 0);
  assert_memory_equal (in, buf, sizeof buf);
  assert_int_equal (pwrite_full (fd, "abcd", 4, 100), 0);
  assert_int_equal (pread_full (fd, in, 4, 100), 0);
  assert_memory_equal (in, "abcd", 4);
  /* Past the end: a short file is -ENODATA, not a silent short read. */
  assert_int_equal (pread_full (fd, in, 16, sizeof buf - 8), -ENODATA);
  assert_int_equal (lseek (fd, sizeof buf - 8, SEEK_SET), sizeof buf - 8);
  assert_int_equal (read_full (fd, in, 16), -ECONNRESET);
  close (fd);
  unlink (path);
  /* A closed descriptor: the errno, negated. */
  assert_int_equal (write_full (fd, buf, 1), -EBADF);
  assert_int_equal (pread_full (fd, in, 1, 0), -EBADF);
}

static void
test_atomic_replace (void **state)
{
  char path[128], got[64];
  size_t n;
  int dfd;

  snprintf (path, sizeof path, "%s/rec", dir);
  assert_int_equal (atomic_replace (AT_FDCWD, path, NULL, "one", 3, 0640), 0);
  slurp (path, got, sizeof got, &n);
  assert_int_equal (n, 3);
  assert_memory_equal (got, "one", 3);
  struct stat st;
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (st.st_mode & 0777, 0640);
  assert_int_equal (entries (dir), 1);      /* no temp left behind */

  assert_int_equal (atomic_replace (AT_FDCWD, path, NULL, "second", 6, 0640), 0);
  slurp (path, got, sizeof got, &n);
  assert_int_equal (n, 6);
  assert_memory_equal (got, "second", 6);
  assert_int_equal (entries (dir), 1);

  /* Relative to a directory fd, with a named temp. */
  dfd = open (dir, O_RDONLY | O_DIRECTORY);
  assert_true (dfd >= 0);
  assert_int_equal (atomic_replace (dfd, "m", ".m.tmp", "xyz", 3, 0644), 0);
  assert_int_equal (entries (dir), 2);
  assert_int_equal (faccessat (dfd, ".m.tmp", F_OK, 0), -1);

  /* A unique temp needs a path, not a dirfd. */
  assert_int_equal (atomic_replace (dfd, "m", NULL, "x", 1, 0644), -EINVAL);

  /* Abort leaves the old content and no temp. */
  struct atomic_file af;
  assert_int_equal (atomic_file_begin (&af, dfd, "m", ".m.tmp", 0644), 0);
  assert_int_equal (write_full (af.fd, "garbage", 7), 0);
  atomic_file_abort (&af);
  assert_int_equal (faccessat (dfd, ".m.tmp", F_OK, 0), -1);
  snprintf (path, sizeof path, "%s/m", dir);
  slurp (path, got, sizeof got, &n);
  assert_int_equal (n, 3);
  assert_memory_equal (got, "xyz", 3);

  /* Failure to rename (the target is a non-empty directory): the old
   * entry stays, the temp goes, the errno comes back.
   */
  assert_int_equal (mkdirat (dfd, "d", 0755), 0);
  assert_int_equal (mkdirat (dfd, "d/sub", 0755), 0);
  assert_true (atomic_replace (dfd, "d", ".d.tmp", "x", 1, 0644) < 0);
  assert_int_equal (faccessat (dfd, ".d.tmp", F_OK, 0), -1);
  assert_int_equal (faccessat (dfd, "d/sub", F_OK, 0), 0);

  /* A directory that does not exist. */
  snprintf (path, sizeof path, "%s/nodir/x", dir);
  assert_int_equal (atomic_replace (AT_FDCWD, path, NULL, "x", 1, 0644),
                    -ENOENT);
  assert_int_equal (fsync_parent (AT_FDCWD, path), -ENOENT);
  assert_int_equal (fsync_parent (dfd, "m"), 0);
  assert_int_equal (fsync_parent (AT_FDCWD, "/etc"), 0);
  close (dfd);
}

static void
test_pid_alive (void **state)
{
  pid_t child = fork ();
  int st;

  assert_true (child >= 0);
  if (child == 0)
    _exit (0);
  assert_int_equal (waitpid (child, &st, 0), child);
  assert_true (pid_alive (getpid ()));
  assert_true (pid_alive (1));              /* someone else's: EPERM or ours */
  assert_false (pid_alive (child));         /* reaped */
  assert_false (pid_alive (0));
  assert_false (pid_alive (-1));
}

static void
test_run_dir (void **state)
{
  char want[128];
  struct stat st;
  int err = 1;

  snprintf (want, sizeof want, "%s/run", dir);
  setenv ("REPVOL_RUN_DIR", want, 1);
  assert_string_equal (run_dir (&err), want);
  assert_int_equal (err, 0);
  assert_int_equal (stat (want, &st), 0);
  assert_true (S_ISDIR (st.st_mode));
  assert_int_equal (st.st_mode & 0777, 0700);
  assert_string_equal (run_dir (&err), want);   /* exists: fine */
  assert_int_equal (err, 0);
  rmdir (want);

  setenv ("REPVOL_RUN_DIR", "/proc/no/such", 1);
  assert_string_equal (run_dir (&err), "/proc/no/such");
  assert_true (err < 0);
  unsetenv ("REPVOL_RUN_DIR");
}

static void
test_error (void **state)
{
  struct error e = { 0 };

  assert_int_equal (error_set (&e, ENOSPC, "volume %s: no room", "v1"),
                    -ENOSPC);
  assert_int_equal (e.code, ENOSPC);
  assert_string_equal (error_msg (&e), "volume v1: no room");
  error_prefix (&e, "server %s: ", "alpha");
  assert_string_equal (error_msg (&e), "server alpha: volume v1: no room");

  /* No message: the errno's text; prefixing keeps it. */
  struct error f = { .code = EACCES };
  assert_string_equal (error_msg (&f), strerror (EACCES));
  error_prefix (&f, "open x: ");
  char want[128];
  snprintf (want, sizeof want, "open x: %s", strerror (EACCES));
  assert_string_equal (error_msg (&f), want);

  /* NULL is allowed (the caller does not want the reason); a code <= 0
   * is a programming error reported as EIO rather than as success.
   */
  assert_int_equal (error_set (NULL, EINVAL, "x"), -EINVAL);
  assert_int_equal (error_set (&e, 0, "zero"), -EIO);

  /* A long context keeps its head. */
  char big[sizeof e.msg + 144];
  memset (big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  error_prefix (&e, "%s", big);
  assert_int_equal (strlen (e.msg), sizeof e.msg - 1);
  assert_int_equal (e.msg[0], 'a');
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_full_io),
    cmocka_unit_test (test_atomic_replace),
    cmocka_unit_test (test_pid_alive),
    cmocka_unit_test (test_run_dir),
    cmocka_unit_test (test_error),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
