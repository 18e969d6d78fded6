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
 * Raw generic netlink, no libnl: three small messages do not justify a
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
#include "frontend/nbd_proto.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57    /* Linux 5.6 */
#endif

/* What the kernel is told the server does.  No CAN_MULTI_CONN: there
 * is one socket.  Kernels older than NBD_FLAG_SEND_WRITE_ZEROES (6.1)
 * ignore the bit and never send the command.
 */
#define NBD_KERNEL_FLAGS \
  (NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | \
   NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES)

/* 0 = the kernel never gives up on a slow request (it only logs
 * "possible stuck request" and waits).  With a nonzero timeout and a
 * single socket it would shut our socket down for good; the engine
 * already bounds every request by the replica --timeout.
 */
#define NBD_KERNEL_TIMEOUT_S    0
/* If our end dies (attach killed), new I/O waits this long for a
 * reconnect (NBD_CMD_RECONFIGURE, which nothing sends yet), then fails.
 */
#define NBD_KERNEL_DEAD_CONN_S  10

#define NL_BUF 8192

struct nbd_kernel {
  struct frontend *fe;
  struct nbd_server *srv;
  int nl_fd;
  uint16_t family;
  uint32_t seq;
  int index;                    /* /dev/nbdN, or -1 for auto until connected */
  bool connected;

  /* Detach: NBD_CMD_DISCONNECT runs on its own thread, because the
   * kernel sends NBD_CMD_DISC and may wait on the socket while it
   * does, and only this loop reads that socket.
   */
  pthread_t disc_thread;
  bool disc_running;
  int disc_err;                 /* NBD_CMD_DISCONNECT: 0 or -errno */
  int disc_efd;
  struct loop_watch disc_watch;
  void (*stopped) (void *opaque);
  void *stopped_opaque;
};

static int parse_spec (const char *spec, int *index);

/* ---- generic netlink ---- */

struct nlmsg {
  struct nlmsghdr *n;
  char buf[1024] __attribute__ ((aligned (NLMSG_ALIGNTO)));
};

static void
msg_init (struct nlmsg *m, uint16_t type, uint8_t cmd, uint8_t version)
{
  struct genlmsghdr *g;

  memset (m->buf, 0, sizeof m->buf);
  m->n = (struct nlmsghdr *) m->buf;
  m->n->nlmsg_len = NLMSG_LENGTH (GENL_HDRLEN);
  m->n->nlmsg_type = type;
  m->n->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  g = NLMSG_DATA (m->n);
  g->cmd = cmd;
  g->version = version;
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

static void
put_u32 (struct nlmsg *m, uint16_t type, uint32_t v)
{
  put_attr (m, type, &v, sizeof v);
}

static void
put_u64 (struct nlmsg *m, uint16_t type, uint64_t v)
{
  put_attr (m, type, &v, sizeof v);
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
static int
nl_talk (int fd, uint32_t *seq, struct nlmsg *m, uint16_t want_attr,
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
static int
nl_open_nbd (uint16_t *family, uint32_t *seq)
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
  msg_init (&m, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1);
  put_attr (&m, CTRL_ATTR_FAMILY_NAME, NBD_GENL_FAMILY_NAME,
            sizeof NBD_GENL_FAMILY_NAME);
  r = nl_talk (fd, seq, &m, CTRL_ATTR_FAMILY_ID, &id);
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
  fd = nl_open_nbd (&family, &seq);
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

/* The pid the kernel shows for a connected /dev/nbdN, or 0 if free. */
static long
device_pid (int index)
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

static void
say_busy (int index)
{
  long pid = device_pid (index);

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
  struct nlattr *socks, *item;
  uint32_t index = UINT32_MAX;
  int err;

  msg_init (&m, nk->family, NBD_CMD_CONNECT, NBD_GENL_VERSION);
  /* Without an index the kernel takes a free device (or makes one)
   * and says which in its reply.
   */
  if (nk->index >= 0)
    put_u32 (&m, NBD_ATTR_INDEX, nk->index);
  put_u64 (&m, NBD_ATTR_SIZE_BYTES, size);
  put_u64 (&m, NBD_ATTR_BLOCK_SIZE_BYTES, bs);
  put_u64 (&m, NBD_ATTR_SERVER_FLAGS, NBD_KERNEL_FLAGS);
  put_u64 (&m, NBD_ATTR_TIMEOUT, NBD_KERNEL_TIMEOUT_S);
  put_u64 (&m, NBD_ATTR_DEAD_CONN_TIMEOUT, NBD_KERNEL_DEAD_CONN_S);
  socks = nest_start (&m, NBD_ATTR_SOCKETS);
  item = nest_start (&m, NBD_SOCK_ITEM);
  put_u32 (&m, NBD_SOCK_FD, sock);
  nest_end (&m, item);
  nest_end (&m, socks);

  /* The kernel only sets the device up here (its I/O starts later, on
   * its own threads), so waiting for the answer on the loop thread is
   * safe.
   */
  err = nl_talk (nk->nl_fd, &nk->seq, &m, NBD_ATTR_INDEX, &index);
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
  msg_init (&m, nk->family, NBD_CMD_RECONFIGURE, NBD_GENL_VERSION);
  put_u32 (&m, NBD_ATTR_INDEX, nk->index);
  put_u64 (&m, NBD_ATTR_SIZE_BYTES, f->dev->info.size);
  err = nl_talk (nk->nl_fd, &nk->seq, &m, 0, NULL);
  if (err < 0) {
    log_error ("nbd-kernel: NBD_CMD_RECONFIGURE of %s to %" PRIu64
               " bytes: %s", f->where, f->dev->info.size, strerror (-err));
    return err;
  }
  *when = "now";
  return 0;
}

/* NBD_CMD_DISCONNECT of /dev/nbd<nk->index>.  0 or a negative errno. */
static int
nbd_disconnect (struct nbd_kernel *nk)
{
  struct nlmsg m;

  msg_init (&m, nk->family, NBD_CMD_DISCONNECT, NBD_GENL_VERSION);
  put_u32 (&m, NBD_ATTR_INDEX, nk->index);
  return nl_talk (nk->nl_fd, &nk->seq, &m, 0, NULL);
}

int
nbd_kernel_disconnect_stale (const char *dev, long pid, struct error *e)
{
  struct nbd_kernel nk = { .nl_fd = -1 };
  int err;

  if (parse_spec (dev, &nk.index) < 0 || nk.index < 0)
    return error_set (e, EINVAL, "'%s' is not /dev/nbdN", dev);
  /* Only a device the kernel still shows as that process's. */
  if (device_pid (nk.index) != pid)
    return 0;
  nk.nl_fd = nl_open_nbd (&nk.family, &nk.seq);
  err = nk.nl_fd < 0 ? nk.nl_fd : nbd_disconnect (&nk);
  if (err < 0) {
    if (nk.nl_fd >= 0)
      close (nk.nl_fd);
    return error_set (e, -err, "NBD_CMD_DISCONNECT %s: %s", dev,
                      strerror (-err));
  }
  close (nk.nl_fd);
  return 1;
}

/* ---- frontend_ops ---- */

/* "/dev/nbdN" (*index N) or "auto" (-1).  0 or -EINVAL. */
static int
parse_spec (const char *spec, int *index)
{
  char *end;
  long n;

  if (strcmp (spec, "auto") == 0) {
    *index = -1;
    return 0;
  }
  if (strncmp (spec, "/dev/nbd", 8) != 0 || spec[8] < '0' || spec[8] > '9')
    return -EINVAL;
  errno = 0;
  n = strtol (spec + 8, &end, 10);
  if (errno || *end || n < 0 || n > INT32_MAX)
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
  int sv[2], err;

  if (!nk) {
    log_error ("nbd-kernel: out of memory");
    return -ENOMEM;
  }
  f->priv = nk;
  nk->fe = f;
  nk->nl_fd = -1;
  nk->disc_efd = -1;

  if (parse_spec (spec, &nk->index) < 0) {
    log_error ("nbd-kernel: cannot parse '%s': expected /dev/nbdN or auto",
               spec);
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
  if (nk->index >= 0 && device_pid (nk->index) > 0) {
    say_busy (nk->index);
    return -EBUSY;
  }
  if ((err = nl_open_nbd (&nk->family, &nk->seq)) < 0) {
    log_error ("nbd-kernel: generic netlink family \"nbd\": %s",
               strerror (-err));
    return err;
  }
  nk->nl_fd = err;

  /* The kernel may write back through this process's own device under
   * memory pressure; without this, reclaim in our allocations could
   * wait on that writeback, which only we can complete.
   */
  if (prctl (PR_SET_IO_FLUSHER, 1, 0, 0, 0) == -1)
    log_warn ("nbd-kernel: prctl(PR_SET_IO_FLUSHER): %s: under memory "
              "pressure, reclaim may deadlock on %s", strerror (errno), spec);

  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
    err = -errno;
    log_error ("nbd-kernel: socketpair: %s", strerror (-err));
    return err;
  }
  err = nbd_connect (nk, sv[0], info->size, bs);
  close (sv[0]);                /* the kernel holds its own reference */
  if (err < 0) {
    close (sv[1]);
    if (err == -EBUSY && nk->index >= 0)
      say_busy (nk->index);
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
  nk->connected = true;
  snprintf (f->where, sizeof f->where, "/dev/nbd%d", nk->index);

  set_nonblock (sv[1]);
  nk->srv = nbd_serve_connected_fd (f, sv[1], NBD_KERNEL_FLAGS);
  if (!nk->srv) {
    /* Nothing serves the device: take it back at once. */
    if ((err = nbd_disconnect (nk)) < 0)
      log_warn ("nbd-kernel: NBD_CMD_DISCONNECT %s: %s", f->where,
                strerror (-err));
    nk->connected = false;
    return -EIO;
  }
  log_info ("nbd-kernel: serving '%s' as %s (%" PRIu64 " bytes, block %"
            PRIu32 ")", f->export_name, f->where, info->size, bs);
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

  nk->disc_err = nbd_disconnect (nk);
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
