/* kmod-hostile-recovery.c - kmod-hostile's recovery checks, through
 * the real module: the server closes the channel holding a write, which
 * a RECOVER on a new channel gets again (RECOVER without the channel:
 * ENOTCONN); with nobody recovering a device of a 4 s window, reads
 * fail with EIO, until a RECOVER from FAILING serves again.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "kmod-hostile.h"

/* One O_DIRECT 4 KiB write (want_err 0) or read (want_err EIO) at off. */
static int
child_one (const char *disk, bool write_it, uint64_t off, int want_err)
{
  void *buf;
  int fd = open (disk, O_RDWR | O_DIRECT);
  ssize_t n;

  if (fd == -1 || posix_memalign (&buf, 4096, 4096))
    return 2;
  memset (buf, 0x5a, 4096);
  errno = 0;
  n = write_it ? pwrite (fd, buf, 4096, off) : pread (fd, buf, 4096, off);
  if (want_err ? (n != -1 || errno != want_err) : n != 4096) {
    fprintf (stderr, "child: %s at %llu: got %zd (%s), want %s\n",
             write_it ? "write" : "read", (unsigned long long) off, n,
             strerror (errno), want_err ? strerror (want_err) : "4096");
    return 3;
  }
  return 0;
}

static int
info_state (uint32_t id, struct repvol_ctrl *c)
{
  *c = on_dev (id);
  return ctl (REPVOL_IOC_INFO, c) < 0 ? -1 : (int) c->state;
}

/* Wait (bounded) for INFO to show state. */
static bool
wait_state (uint32_t id, uint32_t state, struct repvol_ctrl *c)
{
  double deadline = now_s () + WAIT_S;

  while (info_state (id, c) != (int) state) {
    if (now_s () > deadline)
      return false;
    usleep (20000);
  }
  return true;
}

/* Read one descriptor (bounded), serving any other requests first. */
static bool
next_request (struct dev *d, uint8_t op, uint64_t off, struct repvol_io *out)
{
  double deadline = now_s () + WAIT_S;
  struct repvol_io io;

  while (now_s () < deadline) {
    struct pollfd p = { .fd = d->chan, .events = POLLIN };
    if (poll (&p, 1, 50) <= 0 || !(p.revents & POLLIN))
      continue;
    if (read (d->chan, &io, sizeof io) != sizeof io)
      continue;
    if (io.op == op && (io.sector << 9) == off) {
      *out = io;
      return true;
    }
    serve (d, &io, 0);
  }
  return false;
}

static int
open_chan_wait (const char *path)
{
  int fd;

  for (int waited = 0; (fd = open (path, O_RDWR | O_NONBLOCK)) == -1 &&
       (errno == ENOENT || errno == EBUSY) && waited < WAIT_S * 50; waited++)
    usleep (20000);
  return fd;
}

void
recovery_checks (void)
{
  struct repvol_ctrl c = good_add ();
  struct dev d = { .chan = -1 };
  struct repvol_io io, again;
  pid_t pid;
  bool ok;
  int r;

  c.recovery_timeout_s = 4;
  r = ctl (REPVOL_IOC_ADD, &c);
  expect ("recovery: add with a 4 s window", r, 0);
  if (r < 0)
    return;
  check (c.recovery_timeout_s == 4, "recovery: the window as taken",
         "%u s", c.recovery_timeout_s);
  d.id = c.dev_id;
  snprintf (d.disk, sizeof d.disk, "/dev/" REPVOL_DISK_PREFIX "%" PRIu32, d.id);
  snprintf (d.chan_path, sizeof d.chan_path, "/dev/" REPVOL_CHAN_PREFIX "%"
            PRIu32, d.id);
  d.chan = open_chan_wait (d.chan_path);
  check (d.chan >= 0, "recovery: open the channel", "%s", strerror (errno));
  if (d.chan < 0)
    return;
  c = on_dev (d.id);
  expect ("recovery: START", ctl (REPVOL_IOC_START, &c), 0);
  expect ("recovery: the disk appears", wait_disk (d.disk), 0);

  /* The server "dies" holding the child's write. */
  fflush (stdout);
  pid = fork ();
  if (pid == 0) {
    close (d.chan);             /* only the parent serves it */
    _exit (child_one (d.disk, true, OFF_HOSTILE, 0));
  }
  check (next_request (&d, REPVOL_OP_WRITE, OFF_HOSTILE, &io),
         "recovery: the write comes", "no request within %d s", WAIT_S);
  close (d.chan);
  d.chan = -1;
  ok = wait_state (d.id, REPVOL_STATE_WAITING, &c);
  check (ok, "recovery: WAITING once the channel closed", "state %u",
         c.state);
  check (c.held + c.in_flight >= 1, "recovery: the write is held",
         "held %u in flight %u", c.held, c.in_flight);
  c = on_dev (d.id);
  expect ("recovery: RECOVER without the channel",
          ctl (REPVOL_IOC_RECOVER, &c), -ENOTCONN);

  d.chan = open_chan_wait (d.chan_path);
  check (d.chan >= 0, "recovery: reopen the channel", "%s", strerror (errno));
  if (d.chan < 0)
    return;
  c = on_dev (d.id);
  expect ("recovery: RECOVER", ctl (REPVOL_IOC_RECOVER, &c), 0);
  check (next_request (&d, REPVOL_OP_WRITE, OFF_HOSTILE, &again),
         "recovery: the write comes again", "not re-issued");
  check (again.len == io.len, "recovery: the same write", "len %u, was %u",
         again.len, io.len);
  serve (&d, &again, 0);
  expect ("recovery: the child's write completes",
          serve_until_exit (&d, pid, false), 0);
  check (ram[OFF_HOSTILE] == 0x5a, "recovery: its payload arrived",
         "byte %#x", ram[OFF_HOSTILE]);

  /* Nobody recovers it: after the window, EIO at once. */
  close (d.chan);
  d.chan = -1;
  ok = wait_state (d.id, REPVOL_STATE_FAILING, &c);
  check (ok, "recovery: FAILING after the window", "state %u", c.state);
  fflush (stdout);
  pid = fork ();
  if (pid == 0) {
    close (d.chan);             /* only the parent serves it */
    _exit (child_one (d.disk, false, OFF_HOSTILE, EIO));
  }
  {
    int st = 0;
    double deadline = now_s () + WAIT_S;
    pid_t w;
    while ((w = waitpid (pid, &st, WNOHANG)) == 0 && now_s () < deadline)
      usleep (20000);
    if (w == 0) {
      kill (pid, SIGKILL);
      waitpid (pid, &st, 0);
    }
    check (w == pid && WIFEXITED (st) && WEXITSTATUS (st) == 0,
           "recovery: a read while FAILING gets EIO", "child status %#x", st);
  }

  /* A RECOVER from FAILING serves again. */
  d.chan = open_chan_wait (d.chan_path);
  check (d.chan >= 0, "recovery: open the channel again", "%s",
         strerror (errno));
  if (d.chan < 0)
    return;
  c = on_dev (d.id);
  expect ("recovery: RECOVER from FAILING", ctl (REPVOL_IOC_RECOVER, &c), 0);
  fflush (stdout);
  pid = fork ();
  if (pid == 0) {
    close (d.chan);             /* only the parent serves it */
    _exit (child_one (d.disk, false, OFF_HOSTILE, 0));
  }
  expect ("recovery: a read after RECOVER", serve_until_exit (&d, pid, false),
          0);

  /* DEL while served (nothing is in flight: it waits on nothing). */
  c = on_dev (d.id);
  expect ("recovery: DEL", ctl (REPVOL_IOC_DEL, &c), 0);
  close (d.chan);
}

