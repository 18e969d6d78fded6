/* kmod-hostile.c - repvol.ko against bad input, through the real module
 * (run as root in the kernel tier's VM by tests/kernel/053-kmod-hostile.sh).
 *
 * Every bad call the contract (kmod/repvol_uapi.h) names must fail with
 * the errno it says and change nothing: a wrong uapi version, nonzero
 * reserved fields, every ADD field out of range, ioctls on a device that
 * does not exist, an unknown ioctl, a second opener of the channel, a
 * read() too small for one descriptor, completions with bogus tags,
 * results or lengths, pread/pwrite at tags not in flight, beyond a
 * request's length or in the wrong direction.  Between the bad calls the
 * program serves its device from a small RAM disk, and a child process
 * checks with O_DIRECT reads and writes of /dev/repvolN that the device
 * still works: the data comes back, an error we complete a read with
 * reaches the reader as EIO.  Then the device is stopped and deleted
 * while we serve, and the channel must answer ENODEV / EPOLLHUP.  Last,
 * recovery (kmod-hostile-recovery.c): the server closes the channel
 * holding a write, which a RECOVER on a new channel gets again; with
 * nobody recovering a device of a 4 s window, reads fail with EIO, until
 * a RECOVER from FAILING.  kmod-hostile.h is what the two files share.
 *
 * Prints "ok NAME" / "FAIL NAME: ..." per check and a summary; exits 0
 * only if every check passed (77 without the module: the test script
 * loads it first, so that means it is missing).
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "repvol_uapi.h"
#include "kmod-hostile.h"


static int npass, nfail;
int ctrl = -1;
uint8_t *ram;                   /* the RAM disk behind the device */

void
check (bool ok, const char *name, const char *fmt, ...)
{
  va_list ap;

  if (ok) {
    npass++;
    printf ("ok %s\n", name);
    return;
  }
  nfail++;
  printf ("FAIL %s: ", name);
  va_start (ap, fmt);
  vprintf (fmt, ap);
  va_end (ap);
  printf ("\n");
}

/* got: 0 or -errno of a call; want likewise. */
void
expect (const char *name, int got, int want)
{
  check (got == want, name, "got %d (%s), want %d (%s)", got,
         got ? strerror (-got) : "success", want,
         want ? strerror (-want) : "success");
}

int
ctl (unsigned long ioc, struct repvol_ctrl *c)
{
  return ioctl (ctrl, ioc, c) == -1 ? -errno : 0;
}

struct repvol_ctrl
good_add (void)
{
  return (struct repvol_ctrl) {
    .version = REPVOL_UAPI_VERSION,
    .dev_id = REPVOL_DEV_ANY,
    .size = DISK_SIZE,
    .logical_block_size = 512,
    .physical_block_size = 4096,
    .nr_queues = 1,
    .queue_depth = DEPTH,
    .max_io_bytes = 1u << 20,
    .features = REPVOL_F_WRITE_CACHE | REPVOL_F_FUA | REPVOL_F_DISCARD |
                REPVOL_F_WRITE_ZEROES,
  };
}

struct repvol_ctrl
on_dev (uint32_t id)
{
  return (struct repvol_ctrl) { .version = REPVOL_UAPI_VERSION, .dev_id = id };
}

static int
count_channels (void)
{
  glob_t g;
  int n;

  if (glob ("/dev/" REPVOL_CHAN_PREFIX "*", 0, NULL, &g) != 0)
    return 0;
  n = (int) g.gl_pathc;
  globfree (&g);
  return n;
}

double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- control: every ADD field, every ioctl on no device ---- */

static void
bad_add (const char *name, struct repvol_ctrl c, int want)
{
  int before = count_channels ();
  int r = ctl (REPVOL_IOC_ADD, &c);

  if (r == 0) {
    /* Taken: remove it again so the next check starts clean. */
    struct repvol_ctrl d = on_dev (c.dev_id);
    ctl (REPVOL_IOC_DEL, &d);
  }
  expect (name, r, want);
  check (count_channels () == before, name, "a channel appeared");
}

static void
control_checks (void)
{
  struct repvol_ctrl c;
  static const unsigned long per_dev[] = {
    REPVOL_IOC_START, REPVOL_IOC_STOP, REPVOL_IOC_DEL, REPVOL_IOC_RECOVER,
    REPVOL_IOC_INFO, REPVOL_IOC_RESIZE,
  };
  static const char *const per_dev_name[] = {
    "START", "STOP", "DEL", "RECOVER", "INFO", "RESIZE",
  };
  char name[80];

  c = good_add (); c.version = 0;              bad_add ("add version 0", c, -EINVAL);
  c = good_add (); c.version = 2;              bad_add ("add version 2", c, -EINVAL);
  c = good_add (); c.reserved[0] = 1;          bad_add ("add reserved[0]", c, -EINVAL);
  c = good_add (); c.reserved[1] = 1ull << 63; bad_add ("add reserved[1]", c, -EINVAL);
  c = good_add (); c.reserved0 = 1;            bad_add ("add reserved0", c, -EINVAL);
  c = good_add (); c.server_pid = 1;           bad_add ("add server_pid nonzero", c, -EINVAL);
  c = good_add (); c.size = 0;                 bad_add ("add size 0", c, -EINVAL);
  c = good_add (); c.size = DISK_SIZE + 1;     bad_add ("add size not a block multiple", c, -EINVAL);
  c = good_add (); c.logical_block_size = 4096; c.size = DISK_SIZE + 512;
  bad_add ("add size not a 4k multiple", c, -EINVAL);
  c = good_add (); c.logical_block_size = 0;   bad_add ("add lbs 0", c, -EINVAL);
  c = good_add (); c.logical_block_size = 256; bad_add ("add lbs 256", c, -EINVAL);
  c = good_add (); c.logical_block_size = 1000; bad_add ("add lbs 1000", c, -EINVAL);
  c = good_add (); c.logical_block_size = 8192; c.physical_block_size = 8192;
  bad_add ("add lbs 8192", c, -EINVAL);
  c = good_add (); c.physical_block_size = 0;  bad_add ("add pbs 0", c, -EINVAL);
  c = good_add (); c.logical_block_size = 4096; c.physical_block_size = 512;
  bad_add ("add pbs below lbs", c, -EINVAL);
  c = good_add (); c.physical_block_size = 3072; bad_add ("add pbs 3072", c, -EINVAL);
  c = good_add (); c.physical_block_size = 131072; bad_add ("add pbs 128k", c, -EINVAL);
  c = good_add (); c.nr_queues = 0;            bad_add ("add queues 0", c, -EINVAL);
  c = good_add (); c.nr_queues = REPVOL_MAX_QUEUES + 1; bad_add ("add queues max+1", c, -EINVAL);
  c = good_add (); c.queue_depth = 0;          bad_add ("add depth 0", c, -EINVAL);
  c = good_add (); c.queue_depth = REPVOL_MAX_DEPTH + 1; bad_add ("add depth max+1", c, -EINVAL);
  c = good_add (); c.max_io_bytes = 0;         bad_add ("add max_io 0", c, -EINVAL);
  c = good_add (); c.max_io_bytes = REPVOL_MIN_IO_BYTES - 512; bad_add ("add max_io below min", c, -EINVAL);
  c = good_add (); c.max_io_bytes = REPVOL_MAX_IO_BYTES + 4096; bad_add ("add max_io above max", c, -EINVAL);
  c = good_add (); c.logical_block_size = 4096; c.max_io_bytes = 6144;
  bad_add ("add max_io not an lbs multiple", c, -EINVAL);
  c = good_add (); c.features = 1u << 5;       bad_add ("add unknown feature", c, -EINVAL);
  c = good_add (); c.features = 1u << 31;      bad_add ("add feature bit 31", c, -EINVAL);
  c = good_add (); c.features = REPVOL_F_FUA;  bad_add ("add FUA without WRITE_CACHE", c, -EINVAL);
  c = good_add (); c.dev_id = REPVOL_MAX_DEVICES; bad_add ("add dev_id max", c, -EINVAL);
  c = good_add (); c.dev_id = REPVOL_DEV_ANY - 1; bad_add ("add dev_id huge", c, -EINVAL);
  c = good_add (); c.recovery_timeout_s = REPVOL_MAX_RECOVERY_S + 1;
  bad_add ("add recovery_timeout max+1", c, -EINVAL);
  c = good_add (); c.state = 1;                bad_add ("add state nonzero", c, -EINVAL);
  c = good_add (); c.arg = 1;                  bad_add ("add arg nonzero", c, -EINVAL);

  /* No device REPVOL_MAX_DEVICES - 1 (the test makes one at the low end). */
  for (size_t i = 0; i < sizeof per_dev / sizeof per_dev[0]; i++) {
    c = on_dev (REPVOL_MAX_DEVICES - 1);
    if (per_dev[i] == REPVOL_IOC_RESIZE)
      c.arg = DISK_SIZE;
    snprintf (name, sizeof name, "%s on no device", per_dev_name[i]);
    expect (name, ctl (per_dev[i], &c), -ENODEV);
  }
  c = on_dev (REPVOL_MAX_DEVICES - 1); c.version = 7;
  expect ("INFO version 7", ctl (REPVOL_IOC_INFO, &c), -EINVAL);

  /* Unknown numbers, and a known number with another size. */
  c = on_dev (0);
  expect ("unknown ioctl 0x7f",
          ioctl (ctrl, _IOWR (REPVOL_IOC_MAGIC, 0x7f, struct repvol_ctrl), &c)
          == -1 ? -errno : 0, -ENOTTY);
  {
    uint32_t small = 0;
    expect ("ADD with a 4-byte argument",
            ioctl (ctrl, _IOWR (REPVOL_IOC_MAGIC, 0x00, uint32_t), &small)
            == -1 ? -errno : 0, -ENOTTY);
  }
  expect ("ioctl of another magic",
          ioctl (ctrl, _IOWR (0x12, 0x00, struct repvol_ctrl), &c) == -1
          ? -errno : 0, -ENOTTY);
}

/* ---- serving the device from RAM ---- */

/* Serve one request normally; result override: complete with it. */
int
serve (struct dev *d, const struct repvol_io *io, int result)
{
  uint64_t off = io->sector << 9;
  struct repvol_done done = { .tag = io->tag, .result = 0 };
  ssize_t n;

  if (result) {
    done.result = result;
  }
  else if (io->op != REPVOL_OP_FLUSH &&
           (off > DISK_SIZE || io->len > DISK_SIZE - off)) {
    done.result = -EIO;
  }
  else {
    switch (io->op) {
    case REPVOL_OP_WRITE:
      n = pread (d->chan, ram + off, io->len, REPVOL_DATA_OFF (io->tag, 0));
      if (n != (ssize_t) io->len)
        done.result = -EIO;
      break;
    case REPVOL_OP_READ:
      n = pwrite (d->chan, ram + off, io->len, REPVOL_DATA_OFF (io->tag, 0));
      if (n != (ssize_t) io->len)
        done.result = -EIO;
      break;
    case REPVOL_OP_DISCARD:
    case REPVOL_OP_WRITE_ZEROES:
      memset (ram + off, 0, io->len);
      break;
    case REPVOL_OP_FLUSH:
      break;
    default:
      done.result = -EOPNOTSUPP;
    }
  }
  d->served++;
  n = write (d->chan, &done, sizeof done);
  if (n != sizeof done) {
    check (false, "complete a request", "write: %s",
           n < 0 ? strerror (errno) : "short");
    return -1;
  }
  return 0;
}

/* The hostile calls on a WRITE in flight, then serve it. */
static void
hostile_write (struct dev *d, const struct repvol_io *io)
{
  char buf[8192] = { 0 };
  struct repvol_done recs[2];
  uint64_t off = io->sector << 9;
  ssize_t n;

  d->write_tested = true;
  expect ("pwrite to a WRITE (wrong direction)",
          pwrite (d->chan, buf, 512, REPVOL_DATA_OFF (io->tag, 0)) == -1
          ? -errno : 0, -EINVAL);
  expect ("pread beyond a WRITE's length",
          pread (d->chan, buf, 1024, REPVOL_DATA_OFF (io->tag, io->len - 512))
          == -1 ? -errno : 0, -EINVAL);
  expect ("pread at a WRITE's end",
          pread (d->chan, buf, 1, REPVOL_DATA_OFF (io->tag, io->len)) == -1
          ? -errno : 0, -EINVAL);
  expect ("pread at a tag not in flight",
          pread (d->chan, buf, 512, REPVOL_DATA_OFF (io->tag ^ 1, 0)) == -1
          ? -errno : 0, -ENOENT);
  expect ("pread at a tag beyond the queues",
          pread (d->chan, buf, 512, REPVOL_DATA_OFF (0x3ff0000, 0)) == -1
          ? -errno : 0, -ENOENT);

  recs[0] = (struct repvol_done) { .tag = io->tag, .result = 1 };
  expect ("completion with result 1", write (d->chan, recs, sizeof recs[0])
          == -1 ? -errno : 0, -EINVAL);
  recs[0].result = -4096;
  expect ("completion with result -4096", write (d->chan, recs, sizeof recs[0])
          == -1 ? -errno : 0, -EINVAL);
  recs[0].result = INT_MIN;
  expect ("completion with result INT_MIN", write (d->chan, recs, sizeof recs[0])
          == -1 ? -errno : 0, -EINVAL);
  recs[0].result = 0;
  expect ("completion of 4 bytes", write (d->chan, recs, 4) == -1 ? -errno : 0,
          -EINVAL);
  expect ("completion of 12 bytes", write (d->chan, recs, 12) == -1 ? -errno : 0,
          -EINVAL);

  /* The payload, in two pieces (off within the request works). */
  if (off + io->len <= DISK_SIZE && io->len >= 1024 && io->len <= sizeof buf) {
    n = pread (d->chan, ram + off, 512, REPVOL_DATA_OFF (io->tag, 0));
    check (n == 512, "pread of a WRITE's first 512 bytes", "got %zd (%s)", n,
           strerror (errno));
    n = pread (d->chan, ram + off + 512, io->len - 512,
               REPVOL_DATA_OFF (io->tag, 512));
    check (n == (ssize_t) io->len - 512, "pread of a WRITE's rest",
           "got %zd (%s)", n, strerror (errno));
  }
  /* A good record, then a bogus one: only the good one is taken. */
  recs[0] = (struct repvol_done) { .tag = io->tag, .result = 0 };
  recs[1] = (struct repvol_done) { .tag = io->tag ^ 2, .result = 0 };
  n = write (d->chan, recs, sizeof recs);
  check (n == sizeof recs[0], "completions good then bogus",
         "write returned %zd (%s), want %zu", n, n < 0 ? strerror (errno) : "",
         sizeof recs[0]);
  d->served++;
  expect ("completion of a tag just completed",
          write (d->chan, recs, sizeof recs[0]) == -1 ? -errno : 0, -ENOENT);
  expect ("pread of a tag just completed",
          pread (d->chan, buf, 512, REPVOL_DATA_OFF (io->tag, 0)) == -1
          ? -errno : 0, -ENOENT);
}

static void
hostile_read (struct dev *d, const struct repvol_io *io)
{
  char buf[8192] = { 0 };

  d->read_tested = true;
  expect ("pread from a READ (wrong direction)",
          pread (d->chan, buf, 512, REPVOL_DATA_OFF (io->tag, 0)) == -1
          ? -errno : 0, -EINVAL);
  expect ("pwrite beyond a READ's length",
          pwrite (d->chan, buf, 1024, REPVOL_DATA_OFF (io->tag, io->len - 512))
          == -1 ? -errno : 0, -EINVAL);
  expect ("pwrite at a tag not in flight",
          pwrite (d->chan, buf, 512, REPVOL_DATA_OFF (io->tag ^ 1, 0)) == -1
          ? -errno : 0, -ENOENT);
  serve (d, io, 0);
}

/* The child's work, in order; the offsets tell the parent which request
 * is which.
 */
/* Away from where blkid probes (the start, 64 KiB, 1 MiB, the end);
 * OFF_HOSTILE is in kmod-hostile.h.
 */
#define OFF_EIO         (5u << 20 | 12288)      /* the parent fails it */
#define OFF_MORE        (8u << 20)              /* eight more, verified */

static int
child_io (const char *disk)
{
  void *buf, *back;
  int fd = open (disk, O_RDWR | O_DIRECT);

  if (fd == -1) {
    fprintf (stderr, "child: open %s: %s\n", disk, strerror (errno));
    return 2;
  }
  if (posix_memalign (&buf, 4096, 65536) || posix_memalign (&back, 4096, 65536))
    return 2;
  memset (buf, 0xa5, 4096);
  if (pwrite (fd, buf, 4096, OFF_HOSTILE) != 4096 ||
      pread (fd, back, 4096, OFF_HOSTILE) != 4096 ||
      memcmp (buf, back, 4096) != 0) {
    fprintf (stderr, "child: hostile round-trip failed: %s\n", strerror (errno));
    return 3;
  }
  errno = 0;
  if (pread (fd, back, 4096, OFF_EIO) != -1 || errno != EIO) {
    fprintf (stderr, "child: read at %u: want EIO, got %s\n", OFF_EIO,
             strerror (errno));
    return 4;
  }
  for (int i = 0; i < 8; i++) {
    size_t len = 4096u << (i % 4);
    for (size_t j = 0; j < len; j++)
      ((uint8_t *) buf)[j] = (uint8_t) (i * 31 + j * 7);
    if (pwrite (fd, buf, len, OFF_MORE + i * 65536) != (ssize_t) len ||
        pread (fd, back, len, OFF_MORE + i * 65536) != (ssize_t) len ||
        memcmp (buf, back, len) != 0) {
      fprintf (stderr, "child: round-trip %d (%zu bytes) failed: %s\n", i,
               len, strerror (errno));
      return 5;
    }
  }
  if (fdatasync (fd) != 0) {
    fprintf (stderr, "child: fdatasync: %s\n", strerror (errno));
    return 6;
  }
  close (fd);
  return 0;
}

/* Serve until pid exits (or WAIT_S), with the hostile calls on the first
 * WRITE at OFF_HOSTILE and the READ after it.
 */
int
serve_until_exit (struct dev *d, pid_t pid, bool hostile)
{
  double deadline = now_s () + WAIT_S;
  struct repvol_io ios[DEPTH];
  int st;

  for (;;) {
    struct pollfd p = { .fd = d->chan, .events = POLLIN };
    pid_t w = waitpid (pid, &st, WNOHANG);
    if (w == pid)
      return WIFEXITED (st) ? WEXITSTATUS (st) : 128 + WTERMSIG (st);
    if (now_s () > deadline) {
      kill (pid, SIGKILL);
      waitpid (pid, &st, 0);
      return -ETIMEDOUT;
    }
    if (poll (&p, 1, 50) <= 0 || !(p.revents & POLLIN))
      continue;
    ssize_t n = read (d->chan, ios, sizeof ios);
    if (n == -1 && errno == EAGAIN)
      continue;
    if (n <= 0 || n % sizeof ios[0]) {
      check (false, "read descriptors", "read returned %zd (%s)", n,
             n < 0 ? strerror (errno) : "partial");
      return -EIO;
    }
    /* The others first: then the hostile one is the only request in
     * flight, and "a tag not in flight" is one.
     */
    struct repvol_io *h = NULL;
    for (size_t i = 0; i < (size_t) n / sizeof ios[0]; i++) {
      struct repvol_io *io = &ios[i];
      uint64_t off = io->sector << 9;
      if (hostile && !h && off == OFF_HOSTILE &&
          ((io->op == REPVOL_OP_WRITE && !d->write_tested) ||
           (io->op == REPVOL_OP_READ && d->write_tested && !d->read_tested)))
        h = io;
      else if (io->op == REPVOL_OP_READ && off == OFF_EIO && !d->eio_done) {
        d->eio_done = true;
        serve (d, io, -EIO);
      }
      else
        serve (d, io, 0);
    }
    if (h && h->op == REPVOL_OP_WRITE)
      hostile_write (d, h);
    else if (h)
      hostile_read (d, h);
  }
}

int
wait_disk (const char *disk)
{
  double deadline = now_s () + WAIT_S;
  struct stat st;

  while (stat (disk, &st) == -1 || !S_ISBLK (st.st_mode)) {
    if (now_s () > deadline)
      return -ETIMEDOUT;
    usleep (20000);
  }
  return 0;
}

struct stopper {
  uint32_t id;
  int stop_r, del_r;
  volatile bool done;
};

static void *
stop_thread (void *opaque)
{
  struct stopper *s = opaque;
  struct repvol_ctrl c = on_dev (s->id);

  s->stop_r = ctl (REPVOL_IOC_STOP, &c);
  c = on_dev (s->id);
  s->del_r = ctl (REPVOL_IOC_DEL, &c);
  s->done = true;
  return NULL;
}

static void
device_checks (void)
{
  struct repvol_ctrl c = good_add ();
  struct dev d = { .chan = -1 };
  struct repvol_io io;
  struct repvol_done rec;
  char buf[512] = { 0 };
  int r, fd2;
  pid_t pid;

  c.owner = 0x0123456789abcdefull;
  r = ctl (REPVOL_IOC_ADD, &c);
  expect ("add a good device", r, 0);
  if (r < 0)
    return;
  d.id = c.dev_id;
  snprintf (d.disk, sizeof d.disk, "/dev/" REPVOL_DISK_PREFIX "%" PRIu32, d.id);
  snprintf (d.chan_path, sizeof d.chan_path, "/dev/" REPVOL_CHAN_PREFIX "%"
            PRIu32, d.id);
  check (c.size == DISK_SIZE && c.queue_depth == DEPTH && c.nr_queues == 1,
         "add returns the parameters", "size %llu depth %u queues %u",
         (unsigned long long) c.size, c.queue_depth, c.nr_queues);

  c = on_dev (d.id);
  expect ("START with nobody on the channel", ctl (REPVOL_IOC_START, &c),
          -ENOTCONN);
  c = on_dev (d.id);
  c.size = 1;
  expect ("INFO with a nonzero size", ctl (REPVOL_IOC_INFO, &c), -EINVAL);
  c = on_dev (d.id);
  r = ctl (REPVOL_IOC_INFO, &c);
  expect ("INFO", r, 0);
  check (c.state == REPVOL_STATE_ADDED, "INFO says added", "state %u", c.state);
  check (c.owner == 0x0123456789abcdefull && c.server_pid == 0,
         "INFO gives ADD's owner and no server", "owner %llx server %u",
         (unsigned long long) c.owner, c.server_pid);
  c = on_dev (d.id);
  c.owner = 1;
  expect ("INFO with a nonzero owner", ctl (REPVOL_IOC_INFO, &c), -EINVAL);

  for (int waited = 0; (d.chan = open (d.chan_path, O_RDWR | O_NONBLOCK)) == -1
       && errno == ENOENT && waited < WAIT_S * 50; waited++)
    usleep (20000);
  check (d.chan >= 0, "open the channel", "%s: %s", d.chan_path,
         strerror (errno));
  if (d.chan < 0)
    return;
  c = on_dev (d.id);
  ctl (REPVOL_IOC_INFO, &c);
  check (c.server_pid == (uint32_t) getpid (), "INFO names the channel's holder",
         "server_pid %u, we are %d", c.server_pid, (int) getpid ());
  fd2 = open (d.chan_path, O_RDWR | O_NONBLOCK);
  expect ("second opener of the channel", fd2 == -1 ? -errno : 0, -EBUSY);
  if (fd2 >= 0)
    close (fd2);

  expect ("read of 1 byte", read (d.chan, &io, 1) == -1 ? -errno : 0, -EINVAL);
  expect ("read of sizeof - 1", read (d.chan, &io, sizeof io - 1) == -1
          ? -errno : 0, -EINVAL);
  expect ("read with nothing pending (O_NONBLOCK)",
          read (d.chan, &io, sizeof io) == -1 ? -errno : 0, -EAGAIN);
  rec = (struct repvol_done) { .tag = 0, .result = 0 };
  expect ("completion of tag 0, not in flight",
          write (d.chan, &rec, sizeof rec) == -1 ? -errno : 0, -ENOENT);
  rec.tag = 0x12345678;
  expect ("completion of a tag beyond the queues",
          write (d.chan, &rec, sizeof rec) == -1 ? -errno : 0, -ENOENT);
  expect ("pwrite at tag 0, not in flight",
          pwrite (d.chan, buf, 512, REPVOL_DATA_OFF (0, 0)) == -1 ? -errno : 0,
          -ENOENT);
  c = on_dev (d.id);
  expect ("RECOVER of a device not waiting", ctl (REPVOL_IOC_RECOVER, &c),
          -EBUSY);

  c = on_dev (d.id);
  expect ("START", ctl (REPVOL_IOC_START, &c), 0);
  expect ("the disk appears", wait_disk (d.disk), 0);
  c = on_dev (d.id);
  ctl (REPVOL_IOC_INFO, &c);
  check (c.state == REPVOL_STATE_LIVE, "INFO says live", "state %u", c.state);
  c = on_dev (d.id);
  expect ("RECOVER of a live device", ctl (REPVOL_IOC_RECOVER, &c), -EBUSY);

  /* The child's I/O, with the hostile calls on its requests. */
  fflush (stdout);
  pid = fork ();
  if (pid == 0) {
    close (d.chan);             /* only the parent serves it */
    _exit (child_io (d.disk));
  }
  r = serve_until_exit (&d, pid, true);
  expect ("the child's I/O through the hostile round", r, 0);
  check (d.write_tested && d.read_tested && d.eio_done,
         "the hostile requests came", "write %d read %d eio %d",
         d.write_tested, d.read_tested, d.eio_done);

  /* RESIZE: grow, and the disk shows it at once. */
  c = on_dev (d.id);
  c.arg = DISK_SIZE + 1;
  expect ("RESIZE to a size not a block multiple", ctl (REPVOL_IOC_RESIZE, &c),
          -EINVAL);
  c = on_dev (d.id);
  c.arg = DISK_SIZE;
  expect ("RESIZE to the same size", ctl (REPVOL_IOC_RESIZE, &c), 0);

  /* Again, after all that: the device still works. */
  d.eio_done = false;
  fflush (stdout);
  pid = fork ();
  if (pid == 0) {
    close (d.chan);             /* only the parent serves it */
    _exit (child_io (d.disk));
  }
  expect ("the child's I/O afterwards", serve_until_exit (&d, pid, false), 0);

  /* STOP and DEL on a thread while we serve what the disk sends going. */
  {
    struct stopper s = { .id = d.id };
    pthread_t t;
    double deadline = now_s () + WAIT_S;
    struct repvol_io ios[DEPTH];
    bool hup = false;

    pthread_create (&t, NULL, stop_thread, &s);
    while (!s.done && now_s () < deadline) {
      struct pollfd p = { .fd = d.chan, .events = POLLIN };
      if (poll (&p, 1, 50) > 0) {
        if (p.revents & POLLHUP)
          hup = true;
        if (p.revents & POLLIN) {
          ssize_t n = read (d.chan, ios, sizeof ios);
          for (ssize_t i = 0; n > 0 && i < n / (ssize_t) sizeof ios[0]; i++)
            serve (&d, &ios[i], 0);
        }
      }
    }
    check (s.done, "STOP and DEL return while served", "still waiting");
    if (!s.done)
      return;                     /* the thread holds s: leak it all */
    pthread_join (t, NULL);
    expect ("STOP", s.stop_r, 0);
    expect ("DEL", s.del_r, 0);
    {
      struct pollfd p = { .fd = d.chan, .events = POLLIN };
      poll (&p, 1, 1000);
      hup = hup || (p.revents & POLLHUP);
    }
    check (hup, "EPOLLHUP after DEL", "no hangup on the channel");
    expect ("read after DEL", read (d.chan, ios, sizeof ios) == -1 ? -errno : 0,
            -ENODEV);
    rec = (struct repvol_done) { .tag = 0, .result = 0 };
    expect ("write after DEL", write (d.chan, &rec, sizeof rec) == -1
            ? -errno : 0, -ENODEV);
    expect ("pread after DEL", pread (d.chan, buf, 512, REPVOL_DATA_OFF (0, 0))
            == -1 ? -errno : 0, -ENODEV);
    close (d.chan);
    c = on_dev (d.id);
    expect ("INFO after DEL", ctl (REPVOL_IOC_INFO, &c), -ENODEV);
    struct stat st;
    check (stat (d.disk, &st) == -1, "the disk is gone", "%s still there",
           d.disk);
  }
}

int
main (void)
{
  setvbuf (stdout, NULL, _IOLBF, 0);
  ctrl = open ("/dev/" REPVOL_CONTROL_NAME, O_RDWR | O_CLOEXEC);
  if (ctrl == -1) {
    printf ("SKIP: /dev/" REPVOL_CONTROL_NAME ": %s (load repvol.ko)\n",
            strerror (errno));
    return 77;
  }
  ram = calloc (1, DISK_SIZE);
  if (!ram)
    return 2;
  control_checks ();
  device_checks ();
  recovery_checks ();
  printf ("kmod-hostile: %d passed, %d failed\n", npass, nfail);
  return nfail ? 1 : 0;
}
