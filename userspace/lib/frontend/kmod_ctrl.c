/* kmod_ctrl.c - the kmod frontend's dealings with /dev/repvol-control
 * outside the data path: the control ioctls and loading the module
 * (modprobe), the probe --device auto asks, the run-dir state file that
 * names the device serving a volume (RUN_DIR/VOL.kmod, read by the next
 * attach when one dies), and the CLI's release of a device a dead
 * attach left.  kmod.c is the device's life and the frontend ops,
 * kmod_queue.c the request channel.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/util.h"
#include "core/fsutil.h"
#include "frontend/frontend.h"
#include "frontend/kmod_internal.h"

#define KMOD_CONTROL            "/dev/" REPVOL_CONTROL_NAME

const char *
kmod_state_name (uint32_t state)
{
  switch (state) {
  case REPVOL_STATE_ADDED: return "added";
  case REPVOL_STATE_LIVE: return "live";
  case REPVOL_STATE_WAITING: return "waiting for recovery";
  case REPVOL_STATE_FAILING: return "failing (recovery window over)";
  case REPVOL_STATE_STOPPED: return "stopped";
  }
  return "in an unknown state";
}

/* ---- control ioctls ---- */

/* One control ioctl on dev_id (c may carry ADD's or RESIZE's fields and
 * gets INFO's / ADD's answer).  0 or a negative errno.
 */
int
kmod_ctrl_ioctl (int fd, unsigned long ioc, uint32_t dev_id, struct repvol_ctrl *c)
{
  struct repvol_ctrl tmp = { 0 };

  if (!c)
    c = &tmp;
  c->version = REPVOL_UAPI_VERSION;
  c->dev_id = dev_id;
  while (ioctl (fd, ioc, c) == -1)
    if (errno != EINTR)
      return -errno;
  return 0;
}

int
kmod_sleep_ms (unsigned ms)
{
  return usleep (ms * 1000);
}

/* Load repvol.ko if it is not: modprobe, bounded by its own exit. */
static void
try_modprobe (void)
{
  pid_t pid = fork ();
  int st;

  if (pid == 0) {
    int null = open ("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2 (null, 1);
      dup2 (null, 2);
    }
    execlp ("modprobe", "modprobe", "-q", "repvol", (char *) NULL);
    _exit (127);
  }
  if (pid > 0)
    while (waitpid (pid, &st, 0) == -1 && errno == EINTR)
      ;
}

/* Open /dev/repvol-control (loading the module first if modprobe can).
 * The fd, or a negative errno with what is missing in err.
 */
int
kmod_ctrl_open (bool modprobe, struct error *err)
{
  struct stat st;
  int fd;

  if (stat (KMOD_CONTROL, &st) == -1 && errno == ENOENT && modprobe &&
      geteuid () == 0) {
    try_modprobe ();
    /* devtmpfs has the node once misc_register returned. */
  }
  if (stat (KMOD_CONTROL, &st) == -1) {
    if (errno == ENOENT)
      return error_set (err, ENOENT, "repvol.ko is not loaded (no %s: "
                        "modprobe repvol / insmod kmod/repvol.ko)",
                        KMOD_CONTROL);
    return error_set (err, errno, "%s: %s", KMOD_CONTROL, strerror (errno));
  }
  if (geteuid () != 0)
    return error_set (err, EPERM, "not root (%s is root only)", KMOD_CONTROL);
  fd = open (KMOD_CONTROL, O_RDWR | O_CLOEXEC);
  if (fd == -1)
    return error_set (err, errno, "cannot open %s: %s", KMOD_CONTROL,
                      strerror (errno));
  return fd;
}

int
kmod_probe (struct error *err)
{
  int fd = kmod_ctrl_open (true, err);

  if (fd < 0)
    return fd;
  close (fd);
  return 0;
}

/* ---- the state file: which device serves this volume ---- */

void
kmod_state_path (struct kmod_dev *k)
{
  int err = 0;
  const char *dir = run_dir (&err);

  if (err < 0)
    log_warn ("kmod: %s: %s: %s; a crashed attach will not be recovered",
              k->name, dir, strerror (-err));
  snprintf (k->state_path, sizeof k->state_path, "%s/%s.kmod", dir, k->name);
}

/* The device id the state file names: 0, or a negative errno
 * (-ENOENT: there is none).
 */
int
kmod_state_read (struct kmod_dev *k, uint32_t *dev_id)
{
  char buf[32] = "";
  uint64_t id;
  int n = read_small_file (k->state_path, buf, sizeof buf);

  if (n < 0)
    return n;
  buf[strcspn (buf, "\n")] = '\0';
  if (parse_uint (buf, 0, REPVOL_MAX_DEVICES - 1, &id) < 0) {
    log_warn ("kmod: %s: ignoring %s: not a device id", k->name,
              k->state_path);
    return -EINVAL;
  }
  *dev_id = id;
  return 0;
}

/* Written before the disk appears, so that a crash at any later point
 * leaves a name the next attach can recover or clean up.
 */
void
kmod_state_write (struct kmod_dev *k)
{
  char tmp[sizeof k->state_path + 8], buf[32];
  int n, r;

  snprintf (tmp, sizeof tmp, "%s.tmp", k->state_path);
  n = snprintf (buf, sizeof buf, "%" PRIu32 "\n", k->dev_id);
  r = atomic_replace (AT_FDCWD, k->state_path, tmp, buf, n, 0600);
  if (r < 0)
    log_warn ("kmod: %s: cannot write %s: %s; a crashed attach will not "
              "be recovered", k->name, k->state_path, strerror (-r));
}

void
kmod_state_remove (struct kmod_dev *k)
{
  uint32_t id;

  /* Only if it still names our device. */
  if (kmod_state_read (k, &id) == 0 && id == k->dev_id)
    unlink (k->state_path);
}

/* ---- for the CLI: a device a dead attach left ---- */

int
kmod_release_stale (const char *dev, const char *vol, long pid,
                    struct error *err)
{
  struct repvol_ctrl info = { 0 };
  uint64_t id;
  int fd, r;

  if (strncmp (dev, "/dev/" REPVOL_DISK_PREFIX, 11) != 0 ||
      parse_uint (dev + 11, 0, REPVOL_MAX_DEVICES - 1, &id) < 0)
    return error_set (err, EINVAL, "not a repvol.ko device");
  if (pid_alive (pid))
    return 0;                     /* its server lives: not stale */
  if ((fd = kmod_ctrl_open (false, err)) < 0)
    return fd == -ENOENT ? 0 : fd;  /* no module: no device */
  r = kmod_ctrl_ioctl (fd, REPVOL_IOC_INFO, id, &info);
  if (r == -ENODEV || r == -ENOENT) {
    close (fd);
    return 0;
  }
  if (r < 0) {
    close (fd);
    return error_set (err, -r, "INFO: %s", strerror (-r));
  }
  if (info.state == REPVOL_STATE_LIVE ||
      (vol && info.owner != kmod_owner (vol))) {
    close (fd);
    return 0;                     /* someone serves it now, or not ours */
  }
  /* Nobody holds the channel: DEL fails what it holds and waits on no
   * one.
   */
  r = kmod_ctrl_ioctl (fd, REPVOL_IOC_DEL, id, NULL);
  close (fd);
  if (r < 0 && r != -ENODEV && r != -ENOENT)
    return error_set (err, -r, "DEL (it was %s): %s",
                      kmod_state_name (info.state), strerror (-r));
  if (vol) {
    /* Its number is free now, and may be another volume's next: the
     * state file must not name it any more.
     */
    struct kmod_dev k = { .name = vol };
    uint32_t named;
    kmod_state_path (&k);
    if (kmod_state_read (&k, &named) == 0 && named == id)
      unlink (k.state_path);
  }
  return r < 0 ? 0 : 1;
}
