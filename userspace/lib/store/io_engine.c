/* io_engine.c - what the io_uring and libaio back ends share.
 *
 * Flow of one request: io_engine_submit() preps it into the back end
 * (no system call) and queues the end-of-iteration kick; the kick hands
 * every prepared request to the kernel in one call, then reaps what
 * already finished (buffered I/O often completes inside the submit
 * call), so the common case needs no second trip through epoll.  What
 * finishes later is announced on the eventfd.  More than `depth`
 * requests wait in a backlog and are prepped as slots free up.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/uio.h>

#include "core/util.h"
#include "store/io_engine.h"

static void engine_kick_cb (struct loop_defer *d);

const char *
io_engine_name (const struct io_engine *e)
{
  return e->ops->name;
}

unsigned
io_engine_pending (const struct io_engine *e)
{
  unsigned n = e->inflight + e->prepared;
  for (struct io_req *r = e->backlog; r; r = r->next) n++;
  for (struct io_req *r = e->ready; r; r = r->next) n++;
  return n;
}

static void
list_append (struct io_req **head, struct io_req **tail, struct io_req *r)
{
  r->next = NULL;
  if (*tail) (*tail)->next = r; else *head = r;
  *tail = r;
}

/* The operations no back end can do asynchronously here (fallocate on
 * libaio) run synchronously; their completion is still deferred to the
 * kick so callers never see re-entrant completions.
 */
static int
sync_op (struct io_req *r)
{
  ssize_t n;

  switch (r->op) {
  case IO_READ:
    n = pread (r->fd, r->buf, r->len, r->off);
    return n < 0 ? -errno : (int) n;
  case IO_WRITE:
    n = pwritev2 (r->fd, &(struct iovec) { r->buf, r->len }, 1, r->off,
                  r->rw_flags);
    return n < 0 ? -errno : (int) n;
  case IO_FDATASYNC:
    return fdatasync (r->fd) == -1 ? -errno : 0;
  case IO_FALLOCATE:
    return fallocate (r->fd, r->mode, r->off, r->len) == -1 ? -errno : 0;
  }
  return -EINVAL;
}

static void
queue_kick (struct io_engine *e)
{
  loop_defer (e->loop, &e->kick, engine_kick_cb, e);
}

/* Prep r, or park it.  Returns true if it went to the back end. */
static bool
prep_one (struct io_engine *e, struct io_req *r)
{
  int rc;

  if (e->inflight + e->prepared >= e->depth)
    return false;
  rc = e->ops->prep (e, r);
  if (rc == -EAGAIN)
    return false;
  if (rc == -ENOTSUP) {
    r->res = sync_op (r);
    list_append (&e->ready, &e->ready_tail, r);
  }
  else if (rc < 0) {
    r->res = rc;
    list_append (&e->ready, &e->ready_tail, r);
  }
  else
    e->prepared++;
  return true;
}

void
io_engine_submit (struct io_engine *e, struct io_req *r)
{
  r->next = NULL;
  if (r->inline_ok) {
    r->res = sync_op (r);
    list_append (&e->ready, &e->ready_tail, r);
  }
  else if (e->backlog || !prep_one (e, r))
    list_append (&e->backlog, &e->backlog_tail, r);
  queue_kick (e);
}

void
io_engine_complete (struct io_engine *e, struct io_req *r, int res)
{
  e->inflight--;
  r->done (r, res);
}

static void
drain_eventfd (struct io_engine *e)
{
  uint64_t v;
  if (read (e->efd, &v, sizeof v) == -1 && errno != EAGAIN)
    log_debug ("io engine: eventfd read: %m");
}

/* One round of: submit prepared, reap, run synchronous completions,
 * refill from the backlog.  Completions may submit more; keep going a
 * bounded number of rounds so one busy volume cannot starve the loop
 * (anything left re-queues the kick).
 */
static void
engine_pump (struct io_engine *e)
{
  for (int round = 0; round < 8; round++) {
    bool did = false;

    while (e->backlog && prep_one (e, e->backlog)) {
      e->backlog = e->backlog->next;
      if (!e->backlog) e->backlog_tail = NULL;
    }
    if (e->prepared) {
      unsigned n = e->prepared;
      e->inflight += n;
      e->prepared = 0;
      e->ops->submit (e);
      /* Clear the eventfd before reaping: every completion posted after
       * this read signals again, everything before it is reaped now.
       */
      drain_eventfd (e);
      did = true;
    }
    if (e->inflight) e->ops->reap (e);
    while (e->ready) {
      struct io_req *r = e->ready;
      e->ready = r->next;
      if (!e->ready) e->ready_tail = NULL;
      r->done (r, r->res);
      did = true;
    }
    if (!did && !e->prepared && !e->ready)
      return;
  }
  if (e->prepared || e->ready || (e->backlog && e->inflight < e->depth))
    queue_kick (e);
}

static void
engine_kick_cb (struct loop_defer *d)
{
  engine_pump (d->opaque);
}

static void
engine_eventfd_cb (struct loop_watch *w, uint32_t revents)
{
  struct io_engine *e = w->opaque;
  drain_eventfd (e);
  e->ops->reap (e);
  engine_pump (e);
}

static int
try_engine (struct io_engine *e, const struct io_engine_ops *ops,
            unsigned depth)
{
  int rc;
  e->ops = ops;
  rc = ops->init (e, depth, e->efd);
  if (rc < 0) {
    e->ops = NULL;
    return rc;
  }
  return 0;
}

static bool
io_uring_sysctl_disabled (void)
{
  char buf[16] = "";
  int fd = open ("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);
  if (fd == -1) return false;
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  return n > 0 && buf[0] != '0';
}

struct io_engine *
io_engine_new (struct loop *loop, const char *which, unsigned depth,
               struct error *err)
{
  struct io_engine *e = calloc (1, sizeof *e);
  int rc = -EINVAL;

  if (!e) {
    error_set (err, ENOMEM, "io engine: out of memory");
    return NULL;
  }
  e->loop = loop;
  e->depth = depth;
  e->efd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (e->efd == -1) {
    error_set (err, errno, "eventfd: %s", strerror (errno));
    free (e);
    return NULL;
  }

  if (!which || !strcmp (which, "auto")) {
    if (io_uring_sysctl_disabled ())
      log_info ("io_uring disabled by kernel.io_uring_disabled; using libaio");
    else if ((rc = try_engine (e, &io_uring_engine_ops, depth)) == 0)
      goto ok;
    else
      log_info ("io_uring unavailable (%s); using libaio", strerror (-rc));
    rc = try_engine (e, &io_aio_engine_ops, depth);
    if (rc < 0)
      error_set (err, -rc, "libaio: io_setup: %s", strerror (-rc));
  }
  else if (!strcmp (which, "io_uring")) {
    rc = try_engine (e, &io_uring_engine_ops, depth);
    if (rc < 0)
      error_set (err, -rc, "io_uring: io_uring_queue_init: %s",
                 strerror (-rc));
  }
  else if (!strcmp (which, "libaio")) {
    rc = try_engine (e, &io_aio_engine_ops, depth);
    if (rc < 0)
      error_set (err, -rc, "libaio: io_setup: %s", strerror (-rc));
  }
  else
    error_set (err, EINVAL, "unknown I/O engine '%s' (auto, io_uring or "
               "libaio)", which);
  if (rc < 0) {
    close (e->efd);
    free (e);
    return NULL;
  }

 ok:
  if (loop_add (loop, &e->watch, e->efd, EPOLLIN, engine_eventfd_cb, e) == -1) {
    error_set (err, errno, "io engine: loop_add: %s", strerror (errno));
    e->ops->close (e);
    close (e->efd);
    free (e);
    return NULL;
  }
  return e;
}

int
io_engine_drain_sync (struct io_engine *e, int timeout_ms)
{
  uint64_t deadline = now_ns () + (uint64_t) timeout_ms * 1000000;

  engine_pump (e);
  while (io_engine_pending (e)) {
    uint64_t now = now_ns ();
    if (now >= deadline) return -ETIMEDOUT;
    struct pollfd p = { .fd = e->efd, .events = POLLIN };
    int ms = (int) ((deadline - now) / 1000000) + 1;
    if (poll (&p, 1, MIN (ms, 100)) == -1 && errno != EINTR)
      return -errno;
    drain_eventfd (e);
    if (e->inflight) e->ops->reap (e);
    engine_pump (e);
  }
  return 0;
}

void
io_engine_free (struct io_engine *e)
{
  if (!e) return;
  if (io_engine_pending (e))
    log_warn ("io engine: closing with %u requests pending",
              io_engine_pending (e));
  loop_del (e->loop, &e->watch);
  e->ops->close (e);
  close (e->efd);
  free (e);
}
