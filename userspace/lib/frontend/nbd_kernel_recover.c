/* nbd_kernel_recover.c - kernel NBD that outlives its attach: the state
 * file naming the device that serves a volume, and taking a device over
 * from an attach that died.
 *
 * When the attach process dies, the kernel sees our end of the
 * socketpair close and marks the device's only connection dead, but
 * keeps the device: it was connected over netlink (the configuration
 * holds a reference until NBD_CMD_DISCONNECT) with neither
 * DISCONNECT_ON_CLOSE nor DESTROY_ON_DISCONNECT.  Requests that arrive
 * then wait in the driver for the dead-connection timeout
 * (NBD_ATTR_DEAD_CONN_TIMEOUT) for a live connection; requests already
 * sent on the dead socket stay in flight and, the request timeout being
 * 0, are sent again on the new socket at their next timer tick (every
 * 30 s) once the socket has been replaced.  Only when the timeout
 * passes with no connection does the kernel fail them, and everything
 * after, with EIO.
 *
 * The next attach of the volume finds the device (the one it was told,
 * or with "auto" the one RUN_DIR/VOLUME.nbd names), checks that it is
 * this volume's (the backend identifier "repvol:VOLUME" we gave at
 * connect, which the kernel also checks), of its size and block size,
 * and that nothing alive serves it, then sends NBD_CMD_RECONFIGURE with
 * one end of a fresh socketpair.  The kernel puts it in place of the
 * dead socket (nbd_reconnect_socket: only a socket marked dead is
 * replaced, and our one socket must be that one); held requests go out
 * on it, and the filesystem sees no error.
 *
 * The kernel answers RECONFIGURE with success even when it had no dead
 * socket to replace (the old attach's socket not yet seen closed): it
 * then drops our socket, which shows as a hang-up on our end, and we
 * try again for a few seconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/nbd-netlink.h>

#include "core/util.h"
#include "core/fsutil.h"
#include "frontend/nbd_kernel_internal.h"

#define RECOVER_POLL_MS         100
#define RECOVER_WAIT_MS         5000  /* for the old socket to be seen dead */

/* ---- the state file: RUN_DIR/VOLUME.nbd, "INDEX PID" ---- */

void
nk_state_init (struct nbd_kernel *nk, const char *name)
{
  int err = 0;
  const char *dir = run_dir (&err);

  if (err < 0)
    log_warn ("nbd-kernel: %s: %s: %s; attach --nbd-device auto will not "
              "find this device if the attach dies", name, dir,
              strerror (-err));
  snprintf (nk->state_path, sizeof nk->state_path, "%s/%s.nbd", dir, name);
  snprintf (nk->backend, sizeof nk->backend, "repvol:%s", name);
}

/* The device and the pid of its attach the state file names: 0, or a
 * negative errno (-ENOENT: there is none).
 */
static int
state_read (const struct nbd_kernel *nk, int *index, long *pid)
{
  char buf[64] = "";
  int n = read_small_file (nk->state_path, buf, sizeof buf);

  if (n < 0)
    return n;
  if (sscanf (buf, "%d %ld", index, pid) != 2 || *index < 0) {
    log_warn ("nbd-kernel: ignoring %s: not \"INDEX PID\"", nk->state_path);
    return -EINVAL;
  }
  return 0;
}

/* Written once the device serves, so that the next attach can find it
 * if this one dies; a crash before that leaves only what
 * --nbd-device /dev/nbdN (or repvol detach) can find.
 */
void
nk_state_write (const struct nbd_kernel *nk)
{
  char tmp[sizeof nk->state_path + 8], buf[64];
  int n, r;

  snprintf (tmp, sizeof tmp, "%s.tmp", nk->state_path);
  n = snprintf (buf, sizeof buf, "%d %ld\n", nk->index, (long) getpid ());
  r = atomic_replace (AT_FDCWD, nk->state_path, tmp, buf, n, 0600);
  if (r < 0)
    log_warn ("nbd-kernel: cannot write %s: %s; if this attach dies, only "
              "attach --nbd-device /dev/nbd%d recovers the device",
              nk->state_path, strerror (-r), nk->index);
}

void
nk_state_remove (const struct nbd_kernel *nk)
{
  int index;
  long pid;

  if (state_read (nk, &index, &pid) == 0 && index == nk->index)
    unlink (nk->state_path);
}

/* ---- what the kernel shows of /dev/nbdN ---- */

/* The first line of /sys/block/nbdN/NAME into buf: 0 or -errno. */
static int
sys_read (int index, const char *name, char *buf, size_t len)
{
  char path[96];
  FILE *f;
  int r = 0;

  snprintf (path, sizeof path, "/sys/block/nbd%d/%s", index, name);
  if ((f = fopen (path, "re")) == NULL)
    return -errno;
  if (!fgets (buf, len, f))
    r = -ENODATA;
  fclose (f);
  buf[strcspn (buf, "\n")] = '\0';
  return r;
}

static bool
backend_is_ours (const struct nbd_kernel *nk, int index)
{
  char buf[sizeof nk->backend + 8];

  return sys_read (index, "backend", buf, sizeof buf) == 0 &&
         strcmp (buf, nk->backend) == 0;
}

/* pid is a process that may still hold its end: alive and not a zombie
 * (whose descriptors are closed already).
 */
static bool
serving_alive (long pid)
{
  char path[64], buf[512], *p;
  FILE *f;
  bool zombie = false;

  if (!pid_alive (pid))
    return false;
  snprintf (path, sizeof path, "/proc/%ld/stat", pid);
  if ((f = fopen (path, "re")) != NULL) {
    if (fgets (buf, sizeof buf, f) && (p = strrchr (buf, ')')) != NULL)
      zombie = p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
    fclose (f);
  }
  return !zombie;
}

/* A pid serving /dev/nbdN that is still alive, else 0: the state
 * file's, then the kernel's (a reconnect keeps the first attach's).
 */
static long
live_server (const struct nbd_kernel *nk, int index)
{
  long kpid = nk_device_pid (index), spid = 0;
  int sindex;

  if (state_read (nk, &sindex, &spid) == 0 && sindex == index &&
      spid != getpid () && serving_alive (spid))
    return spid;
  if (kpid != getpid () && serving_alive (kpid))
    return kpid;
  return 0;
}

bool
nk_abandoned (const struct nbd_kernel *nk)
{
  return backend_is_ours (nk, nk->index) && live_server (nk, nk->index) == 0;
}

/* ---- taking the device over ---- */

static void
sleep_ms (int ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

  while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
    ;
}

/* Our end of a socketpair whose other end we closed: hung up if the
 * kernel did not keep a reference to the other end.
 */
static bool
peer_gone (int fd)
{
  struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

  return poll (&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP));
}

/* NBD_CMD_RECONFIGURE of /dev/nbd<index> with a new socket: 1 with our
 * end in *fd, 0 if the kernel did not take it (no dead socket to
 * replace), or a negative errno.
 */
static int
reconnect (struct nbd_kernel *nk, int index, uint64_t size, int *fd)
{
  struct nlmsg m;
  int sv[2], err;

  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
    return -errno;
  nk_msg_init (&m, nk->family, NBD_CMD_RECONFIGURE);
  nk_put_u32 (&m, NBD_ATTR_INDEX, index);
  nk_put_str (&m, NBD_ATTR_BACKEND_IDENTIFIER, nk->backend);
  nk_put_u64 (&m, NBD_ATTR_TIMEOUT, NBD_KERNEL_TIMEOUT_S);
  nk_put_u64 (&m, NBD_ATTR_DEAD_CONN_TIMEOUT, nk->dead_timeout);
  if (size)
    nk_put_u64 (&m, NBD_ATTR_SIZE_BYTES, size);
  nk_put_socket (&m, sv[0]);
  err = nk_talk (nk->nl_fd, &nk->seq, &m, 0, NULL);
  close (sv[0]);
  if (err == 0 && !peer_gone (sv[1])) {
    *fd = sv[1];
    return 1;
  }
  close (sv[1]);
  return err;
}

/* The device the state file names, if it is still this volume's. */
static int
auto_candidate (struct nbd_kernel *nk, long *pid)
{
  int index;

  if (state_read (nk, &index, pid) < 0)
    return -1;
  if (nk_device_pid (index) > 0 && backend_is_ours (nk, index))
    return index;
  unlink (nk->state_path);      /* gone, or since reused by another */
  return -1;
}

/* Free a leftover of this volume that cannot serve it as it is now. */
static void
drop_leftover (struct nbd_kernel *nk, int index)
{
  int keep = nk->index, err;

  nk->index = index;
  if ((err = nk_disconnect (nk)) < 0)
    log_warn ("nbd-kernel: NBD_CMD_DISCONNECT /dev/nbd%d: %s", index,
              strerror (-err));
  else
    nk_state_remove (nk);
  nk->index = keep;
}

int
nk_try_recover (struct nbd_kernel *nk, uint64_t size, uint32_t bs, int *fd)
{
  const char *name = nk->fe->export_name;
  char buf[32];
  uint64_t sectors = 0, lbs = 0;
  long pid = 0, server;
  int index = nk->index, sindex = -1, r, waited;

  if (index < 0 && (index = auto_candidate (nk, &pid)) < 0)
    return 0;
  if (nk_device_pid (index) <= 0 || !backend_is_ours (nk, index))
    return 0;                   /* free, or another's: nk_start decides */
  if ((server = live_server (nk, index)) > 0 && nk->index < 0) {
    /* A live attach we are taking the volume over from (--force): it
     * is fenced, and its device goes when it exits.
     */
    log_info ("nbd-kernel: %s: /dev/nbd%d is still served by pid %ld; "
              "connecting another device", name, index, server);
    return 0;
  }
  if (server > 0) {
    log_error ("nbd-kernel: %s: /dev/nbd%d already serves this volume "
               "(pid %ld); detach that first", name, index, server);
    return -EBUSY;
  }
  if (pid <= 0 && (state_read (nk, &sindex, &pid) < 0 || sindex != index))
    pid = nk_device_pid (index);  /* the first attach's, if none since */

  /* The same shape, or larger (the volume grew while nothing served
   * it): a filesystem on the device must find its blocks where they
   * were.
   */
  if (sys_read (index, "size", buf, sizeof buf) == 0)
    parse_uint (buf, 0, UINT64_MAX, &sectors);
  if (sys_read (index, "queue/logical_block_size", buf, sizeof buf) == 0)
    parse_uint (buf, 0, UINT32_MAX, &lbs);
  if (sectors << 9 > size || (lbs && lbs != bs)) {
    log_warn ("nbd-kernel: %s: /dev/nbd%d, left by the attach that died "
              "(pid %ld), is %" PRIu64 " bytes with %" PRIu64 "-byte "
              "blocks, not the volume's %" PRIu64 " and %" PRIu32 ": "
              "disconnecting it instead of recovering it", name, index, pid,
              sectors << 9, lbs, size, bs);
    drop_leftover (nk, index);
    return 0;
  }
  if (sectors << 9 == size)
    size = 0;                   /* unchanged: leave the capacity alone */
  else
    log_info ("nbd-kernel: %s: /dev/nbd%d grows from %" PRIu64 " to %"
              PRIu64 " bytes as it is recovered", name, index, sectors << 9,
              size);

  log_info ("nbd-kernel: %s: recovering /dev/nbd%d from the attach that "
            "died (pid %ld)", name, index, pid);
  for (waited = 0;; waited += RECOVER_POLL_MS) {
    r = reconnect (nk, index, size, fd);
    if (r == 1)
      break;
    if (r < 0) {
      log_error ("nbd-kernel: %s: NBD_CMD_RECONFIGURE of /dev/nbd%d: %s",
                 name, index, strerror (-r));
      return r;
    }
    if (waited >= RECOVER_WAIT_MS) {
      log_error ("nbd-kernel: %s: /dev/nbd%d still has a live connection "
                 "after %d s (is its attach still exiting?); try again",
                 name, index, RECOVER_WAIT_MS / 1000);
      return -EBUSY;
    }
    sleep_ms (RECOVER_POLL_MS);
  }
  nk->index = index;
  return 1;
}
