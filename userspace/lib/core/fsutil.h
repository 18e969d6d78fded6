/* fsutil.h - files and processes: full reads and writes, atomic and
 * durable file replacement, directory fsync, whether a pid lives.
 *
 * Every function here follows the error convention of core/util.h:
 * 0 (or a count) on success, a negative errno on failure; none logs.
 * The caller, which knows what the file is for, says what went wrong.
 */
#ifndef REPVOL_FSUTIL_H
#define REPVOL_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <limits.h>
#include <sys/types.h>

/* Read / write all of buf on a blocking fd, retrying EINTR and short
 * transfers.  read_full fails with -ECONNRESET at end of file (a peer
 * that hung up, a file truncated under us); pread_full with -ENODATA.
 */
int read_full (int fd, void *buf, size_t len);
int write_full (int fd, const void *buf, size_t len);
int pread_full (int fd, void *buf, size_t len, off_t off);
int pwrite_full (int fd, const void *buf, size_t len, off_t off);

/* fsync the directory that holds path (relative to dirfd, which may be
 * AT_FDCWD): a rename or a create in it is durable only then.
 */
int fsync_parent (int dirfd, const char *path);

/* Replacing a file atomically and durably (docs/DESIGN.md, "On-disk
 * formats"): write a temp file beside it, fsync it, rename it over the
 * file, fsync the directory.  A crash at any point leaves the old
 * version or the new one, never a mix, and a replace that returned 0
 * survives a crash.
 *
 *     struct atomic_file af;
 *     r = atomic_file_begin (&af, dirfd, "vol.meta", ".vol.meta.tmp", 0644);
 *     ... write to af.fd ...
 *     r = atomic_file_commit (&af);      (or atomic_file_abort (&af))
 *
 * tmp names the temp file (beside path, relative to dirfd) so that the
 * owner's start-up can recognise and remove leftovers; NULL picks a
 * unique ".tmp-XXXXXX" in path's directory (needs dirfd == AT_FDCWD),
 * for files that several processes may write at once.  commit and
 * abort close the fd and, on any failure, remove the temp file.
 */
struct atomic_file {
  int dirfd;
  int fd;
  char path[PATH_MAX];
  char tmp[PATH_MAX];
};

int atomic_file_begin (struct atomic_file *af, int dirfd, const char *path,
                       const char *tmp, mode_t mode);
int atomic_file_commit (struct atomic_file *af);
void atomic_file_abort (struct atomic_file *af);

/* The whole dance for len bytes of data. */
int atomic_replace (int dirfd, const char *path, const char *tmp,
                    const void *data, size_t len, mode_t mode);

/* A small text file (a state file of a few numbers) into buf, NUL
 * terminated: its length (at most size - 1 bytes are read), -ENODATA
 * if it is empty, or a negative errno (-ENOENT: there is none).
 */
int read_small_file (const char *path, char *buf, size_t size);

/* The directory for an attach's run-time files (control socket, ublk
 * state): $REPVOL_RUN_DIR, else /run/repvol, created 0700 if missing.
 * *err is 0, or the negative errno of a failed mkdir.
 */
const char *run_dir (int *err);

/* Whether a process with this pid exists (it may belong to another
 * user: EPERM counts as alive).  pid <= 0 is never alive.
 */
bool pid_alive (pid_t pid);

#endif
