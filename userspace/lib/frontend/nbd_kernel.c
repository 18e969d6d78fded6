/* nbd_kernel.c - the kernel NBD frontend: /dev/nbdN served by this
 * process.
 *
 * As nbd-client does in netlink mode, but with no network in between:
 * one end of a socketpair goes to the kernel's nbd driver with
 * NBD_CMD_CONNECT over generic netlink (family "nbd"), and nbd.c serves
 * the other end on our event loop, in transmission phase from the
 * first byte (the kernel does no handshake and wants simple replies).
 * Detach sends NBD_CMD_DISCONNECT; the kernel then sends NBD_CMD_DISC
 * and shuts its end down, and nbd.c finishes what it had already taken
 * before we report stopped.
 *
 * If this process dies instead, the kernel keeps the device and holds
 * its I/O for the dead-connection timeout; the next attach of the
 * volume reconnects it (nbd_kernel_recover.c).
 *
 * Raw generic netlink, no libnl: four small messages do not justify a
 * dependency.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/nbd-netlink.h>

#include "core/util.h"
#include "core/fsutil.h"
#include "core/loop.h"
#include "frontend/frontend.h"
#include "frontend/nbd.h"
#include "frontend/nbd_kernel_internal.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57    /* Linux 5.6 */
#endif

#define NL_BUF 8192

/* ---- generic netlink ---- */

void
nk_msg_init (struct nlmsg *m, uint16_t type, uint8_t cmd)
{
  struct genlmsghdr *g;

  memset (m->buf, 0, sizeof m->buf);
  m->n = (struct nlmsghdr *) m->buf;
  m->n->nlmsg_len = NLMSG_LENGTH (GENL_HDRLEN);
  m->n->nlmsg_type = type;
  m->n->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  g = NLMSG_DATA (m->n);
  g->cmd = cmd;
  g->version = type == GENL_ID_CTRL ? 1 : NBD_GENL_VERSION;
}

static struct nlattr *
put_attr (struct nlmsg *m, uint16_t type, const void *data, size_t len)
{
  struct nlattr *a = (struct nlattr *) (m->buf + NLMSG_ALIGN (m->n->nlmsg_len));

  /* Our messages are a handful of small attributes; overflowing is a bug. */
  if (NLMSG_ALIGN (m->n->nlmsg_len) + NLA_ALIGN (NLA_HDRLEN + len) > sizeof m->buf)
    abort ();
  a->nla_type = type;
  a->nla_len = NLA_HDRLEN + len;
  if (len)
    memcpy ((char *) a + NLA_HDRLEN, data, len);
  m->n->nlmsg_len = NLMSG_ALIGN (m->n->nlmsg_len) + NLA_ALIGN (a->nla_len);
  return a;
}

void
nk_put_u32 (struct nlmsg *m, uint16_t type, uint32_t v)
{
  put_attr (m, type, &v, sizeof v);
}

void
nk_put_u64 (struct nlmsg *m, uint16_t type, uint64_t v)
{
  put_attr (m, type, &v, sizeof v);
}

void
nk_put_str (struct nlmsg *m, uint16_t type, const char *s)
{
  put_attr (m, type, s, strlen (s) + 1);
}

static struct nlattr *
nest_start (struct nlmsg *m, uint16_t type)
{
  return put_attr (m, type | NLA_F_NESTED, NULL, 0);
}

static void
nest_end (struct nlmsg *m, struct nlattr *a)
{
  a->nla_len = (char *) m->buf + m->n->nlmsg_len - (char *) a;
}

void
nk_put_socket (struct nlmsg *m, int fd)
{
  struct nlattr *socks = nest_start (m, NBD_ATTR_SOCKETS);
  struct nlattr *item = nest_start (m, NBD_SOCK_ITEM);

  nk_put_u32 (m, NBD_SOCK_FD, fd);
  nest_end (m, item);
  nest_end (m, socks);
}

/* Find attribute type in the payload of a generic netlink reply. */
static const struct nlattr *
find_attr (const struct nlmsghdr *n, uint16_t type)
{
  const char *p = (const char *) NLMSG_DATA (n) + GENL_HDRLEN;
  const char *end = (const char *) n + n->nlmsg_len;

  while (p + NLA_HDRLEN <= end) {
    const struct nlattr *a = (const struct nlattr *) p;
    if (a->nla_len < NLA_HDRLEN || p + a->nla_len > end)
      break;
    if ((a->nla_type & NLA_TYPE_MASK) == type)
      return a;
    p += NLA_ALIGN (a->nla_len);
  }
  return NULL;
}

/* Send m and wait for the kernel's answer.  Returns 0 or a negative
 * errno.  With want_type, the first message of that type that carries
 * attribute want_attr has its u32 (or u16) value put in *value.
 */
int
nk_talk (int fd, uint32_t *seq, struct nlmsg *m, uint16_t want_attr,
         uint32_t *value)
{
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  char buf[NL_BUF] __attribute__ ((aligned (NLMSG_ALIGNTO)));
  ssize_t n;

  m->n->nlmsg_seq = ++*seq;
  if (sendto (fd, m->n, m->n->nlmsg_len, 0, (struct sockaddr *) &kernel,
              sizeof kernel) == -1)
    return -errno;

  for (;;) {
    n = recv (fd, buf, sizeof buf, 0);
    if (n == -1) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *) buf; NLMSG_OK (h, (size_t) n);
         h = NLMSG_NEXT (h, n)) {
      if (h->nlmsg_seq != *seq)
        continue;               /* a stale answer to an earlier request */
      if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA (h);
        return e->error;        /* 0: the ACK, after any reply */
      }
      if (h->nlmsg_type == NLMSG_DONE)
        return 0;
      if (want_attr && value) {
        const struct nlattr *a = find_attr (h, want_attr);
        if (a && a->nla_len == NLA_HDRLEN + 2)
          *value = *(const uint16_t *) ((const char *) a + NLA_HDRLEN);
        else if (a && a->nla_len >= NLA_HDRLEN + 4)
          *value = *(const uint32_t *) ((const char *) a + NLA_HDRLEN);
      }
    }
  }
}

/* A generic netlink socket and the id of family "nbd".  Returns the
 * socket, or a negative errno (-ENOENT: no such family).
 */
int
nk_open_nbd (uint16_t *family, uint32_t *seq)
{
  struct sockaddr_nl local = { .nl_family = AF_NETLINK };
  struct nlmsg m;
  uint32_t id = 0;
  int fd, r;

  fd = socket (AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (fd == -1 || bind (fd, (struct sockaddr *) &local, sizeof local) == -1) {
    r = -errno;
    if (fd != -1)
      close (fd);
    return r;
  }
  nk_msg_init (&m, GENL_ID_CTRL, CTRL_CMD_GETFAMILY);
  put_attr (&m, CTRL_ATTR_FAMILY_NAME, NBD_GENL_FAMILY_NAME,
            sizeof NBD_GENL_FAMILY_NAME);
  r = nk_talk (fd, seq, &m, CTRL_ATTR_FAMILY_ID, &id);
  if (r == 0 && id == 0)
    r = -ENOENT;
  if (r < 0) {
    close (fd);
    return r;
  }
  *family = id;
  return fd;
}

/* ---- support checks ---- */

static bool
have_nbd_module (void)
{
  struct stat st;

  /* Also there when nbd is built in (it has parameters). */
  return stat ("/sys/module/nbd", &st) == 0;
}

int
nbd_kernel_probe (struct error *e)
{
  uint16_t family;
  uint32_t seq = 0;
  int fd, err;

  if (!have_nbd_module ())
    return error_set (e, ENOENT,
                      "the nbd kernel module is not loaded (modprobe nbd)");
  fd = nk_open_nbd (&family, &seq);
  if (fd < 0) {
    err = -fd;
    if (err == ENOENT)
      return error_set (e, err, "the kernel has no generic netlink family "
                        "\"nbd\" (its nbd driver predates netlink "
                        "configuration, Linux 4.12)");
    return error_set (e, err, "cannot talk generic netlink: %s",
                      strerror (err));
  }
  close (fd);
  if (geteuid () != 0)
    return error_set (e, EPERM, "not root (configuring /dev/nbdN needs "
                      "CAP_SYS_ADMIN)");
  return 0;
}

long
nk_device_pid (int index)
{
  char path[64];
  long pid = 0;
  FILE *f;

  snprintf (path, sizeof path, "/sys/block/nbd%d/pid", index);
  if ((f = fopen (path, "re")) == NULL)
    return 0;
  if (fscanf (f, "%ld", &pid) != 1)
    pid = 0;
  fclose (f);
  return pid;
}

void
nk_say_busy (int index)
{
  long pid = nk_device_pid (index);

  if (pid > 0 && !pid_alive (pid))
    log_error ("nbd-kernel: /dev/nbd%d is busy: connected by pid %ld, which "
               "has exited (repvol detach of its volume, or nbd-client -d "
               "/dev/nbd%d, frees it)", index, pid, index);
  else if (pid > 0)
    log_error ("nbd-kernel: /dev/nbd%d is busy: connected by pid %ld", index,
               pid);
  else
    log_error ("nbd-kernel: /dev/nbd%d is busy", index);
}

/* Warn when the device is still mounted at detach: whatever the
 * kernel still holds for it (in flight, or cached by the filesystem)
 * is lost when it goes.  Only reads /proc: opening the device here
 * could wait on I/O that only this thread serves.
 */
static void
warn_if_mounted (int index)
{
  char path[64], dev[32], line[4096];
  FILE *f;

  snprintf (path, sizeof path, "/sys/block/nbd%d/dev", index);
  if ((f = fopen (path, "re")) == NULL)
    return;
  if (!fgets (dev, sizeof dev, f)) {
    fclose (f);
    return;
  }
  fclose (f);
  dev[strcspn (dev, "\n")] = '\0';
  if ((f = fopen ("/proc/self/mountinfo", "re")) == NULL)
    return;
  while (fgets (line, sizeof line, f)) {
    char mdev[32], where[2048];
    if (sscanf (line, "%*s %*s %31s %*s %2047s", mdev, where) == 2 &&
        strcmp (mdev, dev) == 0) {
      log_warn ("nbd-kernel: /dev/nbd%d is still mounted on %s: "
                "disconnecting it anyway; unwritten data there is lost",
                index, where);
      break;
    }
  }
  fclose (f);
}

/* ---- connect / disconnect ---- */

/* Hand sock to the kernel as /dev/nbdN (nk->index, or one it picks).
 * 0 or a negative errno.
 */
static int
nbd_connect (struct nbd_kernel *nk, int sock, uint64_t size, uint32_t bs)
{
  struct nlmsg m;
  uint32_t index = UINT32_MAX;
  int err;

  nk_msg_init (&m, nk->family, NBD_CMD_CONNECT);
  /* Without an index the kernel takes a free device (or makes one)
   * and says which in its reply.
   */
  if (nk->index >= 0)
    nk_put_u32 (&m, NBD_ATTR_INDEX, nk->index);
  nk_put_u64 (&m, NBD_ATTR_SIZE_BYTES, size);
  nk_put_u64 (&m, NBD_ATTR_BLOCK_SIZE_BYTES, bs);
  nk_put_u64 (&m, NBD_ATTR_SERVER_FLAGS, NBD_KERNEL_FLAGS);
  nk_put_u64 (&m, NBD_ATTR_TIMEOUT, NBD_KERNEL_TIMEOUT_S);
  nk_put_u64 (&m, NBD_ATTR_DEAD_CONN_TIMEOUT, nk->dead_timeout);
  /* No client flags: neither DISCONNECT_ON_CLOSE (the device would go
   * when its last opener closes it) nor DESTROY_ON_DISCONNECT.
   */
  nk_put_str (&m, NBD_ATTR_BACKEND_IDENTIFIER, nk->backend);
  nk_put_socket (&m, sock);

  /* The kernel only sets the device up here (its I/O starts later, on
   * its own threads), so waiting for the answer on the loop thread is
   * safe.
   */
  err = nk_talk (nk->nl_fd, &nk->seq, &m, NBD_ATTR_INDEX, &index);
  if (err < 0)
    return err;
  if (nk->index < 0) {
    if (index == UINT32_MAX)
      return -EPROTO;           /* connected, but we cannot say where */
    nk->index = index;
  }
  return 0;
}

/* The volume grew: our server takes requests up to the new end first
 * (the kernel's connection too), then NBD_CMD_RECONFIGURE with the new
 * size changes the device's capacity in place (the kernel notifies
 * udev; its I/O comes later on its own threads, as after CONNECT).
 */
static int
nk_resized (struct frontend *f, const char **when)
{
  struct nbd_kernel *nk = f->priv;
  struct nlmsg m;
  int err;

  nbd_server_resized (nk->srv, true);
  nk_msg_init (&m, nk->family, NBD_CMD_RECONFIGURE);
  nk_put_u32 (&m, NBD_ATTR_INDEX, nk->index);
  nk_put_str (&m, NBD_ATTR_BACKEND_IDENTIFIER, nk->backend);
  nk_put_u64 (&m, NBD_ATTR_SIZE_BYTES, f->dev->info.size);
  err = nk_talk (nk->nl_fd, &nk->seq, &m, 0, NULL);
  if (err < 0) {
    log_error ("nbd-kernel: NBD_CMD_RECONFIGURE of %s to %" PRIu64
               " bytes: %s", f->where, f->dev->info.size, strerror (-err));
    return err;
  }
  *when = "now";
  return 0;
}

int
nk_disconnect (struct nbd_kernel *nk)
{
  struct nlmsg m;

  nk_msg_init (&m, nk->family, NBD_CMD_DISCONNECT);
  nk_put_u32 (&m, NBD_ATTR_INDEX, nk->index);
  return nk_talk (nk->nl_fd, &nk->seq, &m, 0, NULL);
}

int
nbd_kernel_disconnect_stale (const char *dev, const char *vol, long pid,
                             struct error *e)
{
  struct nbd_kernel nk = { .nl_fd = -1 };
  unsigned dt = 0;
  long kpid;
  int err;

  if (nk_parse_spec (dev, &nk.index, &dt) < 0 || nk.index < 0)
    return error_set (e, EINVAL, "'%s' is not /dev/nbdN", dev);
  if (vol)
    nk_state_init (&nk, vol);
  /* Only a device the kernel still shows as that process's, or (after
   * a recovery, where the kernel keeps the first attach's pid) as this
   * volume's with no live attach serving it.
   */
  kpid = nk_device_pid (nk.index);
  if (kpid <= 0) {
    if (vol)
      nk_state_remove (&nk);    /* gone already */
    return 0;
  }
  if (kpid != pid && !(vol && nk_abandoned (&nk)))
    return 0;
  nk.nl_fd = nk_open_nbd (&nk.family, &nk.seq);
  err = nk.nl_fd < 0 ? nk.nl_fd : nk_disconnect (&nk);
  if (err < 0) {
    if (nk.nl_fd >= 0)
      close (nk.nl_fd);
    return error_set (e, -err, "NBD_CMD_DISCONNECT %s: %s", dev,
                      strerror (-err));
  }
  close (nk.nl_fd);
  if (vol)
    nk_state_remove (&nk);
  return 1;
}

/* ---- frontend_ops ---- */

int
nk_parse_spec (const char *spec, int *index, unsigned *dead_timeout)
{
  static const char dt[] = ",dead-timeout=";
  const char *comma = strchr (spec, ',');
  size_t len = comma ? (size_t) (comma - spec) : strlen (spec);
  uint64_t t;
  char *end;
  long n;

  if (comma) {
    if (strncmp (comma, dt, sizeof dt - 1) != 0 ||
        parse_uint (comma + sizeof dt - 1, 0, 3600, &t) < 0)
      return -EINVAL;
    *dead_timeout = t;
  }
  if (len == 4 && strncmp (spec, "auto", 4) == 0) {
    *index = -1;
    return 0;
  }
  if (strncmp (spec, "/dev/nbd", 8) != 0 || spec[8] < '0' || spec[8] > '9')
    return -EINVAL;
  errno = 0;
  n = strtol (spec + 8, &end, 10);
  if (errno || end != spec + len || n < 0 || n > INT32_MAX)
    return -EINVAL;
  *index = n;
  return 0;
}

static int
nk_start (struct frontend *f, const char *spec)
{
  struct nbd_kernel *nk = calloc (1, sizeof *nk);
  const struct bdev_info *info = &f->dev->info;
  uint32_t bs = MAX (info->block_size, 512u);
  long page = sysconf (_SC_PAGESIZE);
  struct error why = { 0 };
  int sv[2], fd, err;

  if (!nk) {
    log_error ("nbd-kernel: out of memory");
    return -ENOMEM;
  }
  f->priv = nk;
  nk->fe = f;
  nk->nl_fd = -1;
  nk->disc_efd = -1;
  nk->dead_timeout = NBD_KERNEL_DEAD_CONN_S;

  if (nk_parse_spec (spec, &nk->index, &nk->dead_timeout) < 0) {
    log_error ("nbd-kernel: cannot parse '%s': expected /dev/nbdN or auto, "
               "then optionally ,dead-timeout=SECONDS (0 to 3600)", spec);
    return -EINVAL;
  }
  if (bs & (bs - 1) || bs > page) {
    log_error ("nbd-kernel: block size %" PRIu32 " is not a power of two "
               "from 512 to %ld, which the nbd driver needs", bs, page);
    return -EINVAL;
  }
  if ((err = nbd_kernel_probe (&why)) < 0) {
    log_error ("nbd-kernel: cannot serve %s: %s", spec, error_msg (&why));
    return err;
  }
  if ((err = nk_open_nbd (&nk->family, &nk->seq)) < 0) {
    log_error ("nbd-kernel: generic netlink family \"nbd\": %s",
               strerror (-err));
    return err;
  }
  nk->nl_fd = err;
  nk_state_init (nk, f->export_name);

  /* The kernel may write back through this process's own device under
   * memory pressure; without this, reclaim in our allocations could
   * wait on that writeback, which only we can complete.
   */
  if (prctl (PR_SET_IO_FLUSHER, 1, 0, 0, 0) == -1)
    log_warn ("nbd-kernel: prctl(PR_SET_IO_FLUSHER): %s: under memory "
              "pressure, reclaim may deadlock on %s", strerror (errno), spec);

  /* A device a dead attach of this volume left, held for us? */
  if ((err = nk_try_recover (nk, info->size, bs, &fd)) < 0)
    return err;
  nk->recovered = err == 1;
  if (!nk->recovered) {
    if (nk->index >= 0 && nk_device_pid (nk->index) > 0) {
      nk_say_busy (nk->index);
      return -EBUSY;
    }
    if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
      err = -errno;
      log_error ("nbd-kernel: socketpair: %s", strerror (-err));
      return err;
    }
    err = nbd_connect (nk, sv[0], info->size, bs);
    close (sv[0]);              /* the kernel holds its own reference */
    if (err < 0) {
      close (sv[1]);
      if (err == -EBUSY && nk->index >= 0)
        nk_say_busy (nk->index);
      else if (err == -EBUSY)
        log_error ("nbd-kernel: no free /dev/nbdN (all busy; modprobe nbd "
                   "nbds_max=N makes more)");
      else if (err == -EPERM)
        log_error ("nbd-kernel: NBD_CMD_CONNECT refused: not permitted "
                   "(needs CAP_SYS_ADMIN)");
      else
        log_error ("nbd-kernel: NBD_CMD_CONNECT for %s: %s", spec,
                   strerror (-err));
      return err;
    }
    fd = sv[1];
  }
  nk->connected = true;
  snprintf (f->where, sizeof f->where, "/dev/nbd%d", nk->index);

  set_nonblock (fd);
  nk->srv = nbd_serve_connected_fd (f, fd, NBD_KERNEL_FLAGS);
  if (!nk->srv) {
    /* Nothing serves the device.  A new one goes at once; one we took
     * over waits, as it did, for the next attach.
     */
    if (!nk->recovered && (err = nk_disconnect (nk)) < 0)
      log_warn ("nbd-kernel: NBD_CMD_DISCONNECT %s: %s", f->where,
                strerror (-err));
    nk->connected = false;
    return -EIO;
  }
  nk_state_write (nk);
  log_info ("nbd-kernel: serving '%s' as %s (%" PRIu64 " bytes, block %"
            PRIu32 "%s, dead-connection timeout %u s)", f->export_name,
            f->where, info->size, bs, nk->recovered ? ", recovered" : "",
            nk->dead_timeout);
  return 0;
}

static void
server_stopped (void *opaque)
{
  struct nbd_kernel *nk = opaque;
  void (*cb) (void *) = nk->stopped;

  nk->stopped = NULL;
  log_info ("nbd-kernel: %s: disconnected", nk->fe->where);
  cb (nk->stopped_opaque);      /* may free nk: touch nothing after */
}

static void *
disc_thread (void *opaque)
{
  struct nbd_kernel *nk = opaque;
  uint64_t one = 1;

  nk->disc_err = nk_disconnect (nk);
  if (write (nk->disc_efd, &one, sizeof one) != sizeof one)
    abort ();                   /* an eventfd write of 1 cannot fail */
  return NULL;
}

static void
on_disconnected (struct loop_watch *w, uint32_t revents)
{
  struct nbd_kernel *nk = w->opaque;
  uint64_t v;

  if (read (nk->disc_efd, &v, sizeof v) != sizeof v)
    return;
  loop_del (nk->fe->loop, &nk->disc_watch);
  pthread_join (nk->disc_thread, NULL);
  nk->disc_running = false;
  nk->connected = false;
  if (nk->disc_err < 0)
    log_warn ("nbd-kernel: NBD_CMD_DISCONNECT %s: %s", nk->fe->where,
              strerror (-nk->disc_err));
  else
    nk_state_remove (nk);       /* detached: nothing left to recover */
  /* The kernel has failed whatever it had not had answered; what we
   * already took still completes in the engine before stopped runs.
   */
  nbd_server_stop (nk->srv, server_stopped, nk);
}

static void
nk_stop (struct frontend *f, void (*stopped) (void *), void *opaque)
{
  struct nbd_kernel *nk = f->priv;
  int err;

  if (nk->stopped || nk->disc_running)
    return;
  nk->stopped = stopped;
  nk->stopped_opaque = opaque;
  log_info ("nbd-kernel: %s: disconnecting", f->where);
  warn_if_mounted (nk->index);

  /* Without the thread we could only block the loop: instead stop
   * serving, and the kernel sees the socket close and fails the
   * device's I/O.
   */
  nk->disc_efd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (nk->disc_efd == -1 ||
      loop_add (f->loop, &nk->disc_watch, nk->disc_efd, EPOLLIN,
                on_disconnected, nk) == -1) {
    log_error ("nbd-kernel: %s: cannot start the disconnect: %s", f->where,
               strerror (errno));
    nbd_server_stop (nk->srv, server_stopped, nk);
    return;
  }
  if ((err = pthread_create (&nk->disc_thread, NULL, disc_thread, nk)) != 0) {
    log_error ("nbd-kernel: %s: cannot start the disconnect: %s", f->where,
               strerror (err));
    loop_del (f->loop, &nk->disc_watch);
    nbd_server_stop (nk->srv, server_stopped, nk);
    return;
  }
  nk->disc_running = true;
}

static void
nk_free (struct frontend *f)
{
  struct nbd_kernel *nk = f->priv;

  if (!nk)
    return;
  if (nk->disc_running) {
    /* Only if freed without waiting for stopped. */
    pthread_join (nk->disc_thread, NULL);
    loop_del (f->loop, &nk->disc_watch);
  }
  nbd_server_free (nk->srv);
  if (nk->disc_efd >= 0)
    close (nk->disc_efd);
  if (nk->nl_fd >= 0)
    close (nk->nl_fd);
  free (nk);
  f->priv = NULL;
}

const struct frontend_ops nbd_kernel_frontend_ops = {
  .name = "nbd-kernel",
  .start = nk_start,
  .stop = nk_stop,
  .free = nk_free,
  .resized = nk_resized,
};
