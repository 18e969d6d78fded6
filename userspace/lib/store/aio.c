/* aio.c - the Linux AIO back end (libaio), for hosts where io_uring is
 * barred (seccomp profiles of container runtimes, kernel.io_uring_disabled).
 *
 * Kernel AIO is only asynchronous for O_DIRECT; on buffered files
 * io_submit completes the I/O before returning, which the engine's
 * reap-after-submit turns into a cheap inline completion.  AIO has no
 * fallocate: prep() returns -ENOTSUP and io_engine.c runs it
 * synchronously, completing it through the same deferred path.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <libaio.h>

#include "core/util.h"
#include "store/io_engine.h"

struct aio {
  io_context_t ctx;
  int efd;
  unsigned depth;
  struct iocb *iocbs;           /* depth slots */
  unsigned *free_slots, nfree;
  struct iocb **pending;        /* prepped, not yet io_submit()ted */
  unsigned npending;
  struct io_event *events;
  bool no_fdsync;               /* kernel < 4.18: IOCB_CMD_FDSYNC refused */
};

static void
aio_free_priv (struct aio *a)
{
  free (a->iocbs);
  free (a->free_slots);
  free (a->pending);
  free (a->events);
  free (a);
}

static int
aio_init (struct io_engine *e, unsigned depth, int efd)
{
  struct aio *a = calloc (1, sizeof *a);
  int rc;

  if (!a) return -ENOMEM;
  a->efd = efd;
  a->depth = depth;
  a->iocbs = calloc (depth, sizeof *a->iocbs);
  a->free_slots = calloc (depth, sizeof *a->free_slots);
  a->pending = calloc (depth, sizeof *a->pending);
  a->events = calloc (depth, sizeof *a->events);
  if (!a->iocbs || !a->free_slots || !a->pending || !a->events) {
    aio_free_priv (a);
    return -ENOMEM;
  }
  for (unsigned i = 0; i < depth; i++)
    a->free_slots[a->nfree++] = depth - 1 - i;
  rc = io_setup (depth, &a->ctx);      /* returns -errno */
  if (rc < 0) {
    aio_free_priv (a);
    return rc;
  }
  e->priv = a;
  return 0;
}

static int
aio_prep (struct io_engine *e, struct io_req *r)
{
  struct aio *a = e->priv;
  struct iocb *cb;

  if (r->op == IO_FALLOCATE || (r->op == IO_FDATASYNC && a->no_fdsync))
    return -ENOTSUP;
  if (a->nfree == 0)
    return -EAGAIN;
  cb = &a->iocbs[a->free_slots[--a->nfree]];
  switch (r->op) {
  case IO_READ:
    io_prep_pread (cb, r->fd, r->buf, r->len, r->off);
    break;
  case IO_WRITE:
    io_prep_pwrite (cb, r->fd, r->buf, r->len, r->off);
    cb->aio_rw_flags = r->rw_flags;
    break;
  case IO_FDATASYNC:
    io_prep_fdsync (cb, r->fd);
    break;
  default:
    abort ();
  }
  io_set_eventfd (cb, a->efd);
  cb->data = r;
  a->pending[a->npending++] = cb;
  return 0;
}

static void
put_slot (struct aio *a, struct iocb *cb)
{
  a->free_slots[a->nfree++] = cb - a->iocbs;
}

static int
aio_submit (struct io_engine *e)
{
  struct aio *a = e->priv;
  struct io_req *failed = NULL, **tail = &failed;
  unsigned i = 0, n = a->npending;
  int rc = 0;

  while (i < n) {
    rc = io_submit (a->ctx, n - i, &a->pending[i]);
    if (rc > 0) {
      i += rc;
      continue;
    }
    if (rc == -EINTR)
      continue;
    /* The first iocb was refused: fail it alone and go on. */
    struct iocb *cb = a->pending[i++];
    struct io_req *r = cb->data;
    put_slot (a, cb);
    if (r->op == IO_FDATASYNC && rc == -EINVAL && !a->no_fdsync) {
      log_info ("libaio: kernel refuses IOCB_CMD_FDSYNC; "
                "fdatasync runs synchronously");
      a->no_fdsync = true;
    }
    r->res = rc;
    r->next = NULL;
    *tail = r;
    tail = &r->next;
  }
  a->npending = 0;

  /* Complete refusals after the array is consistent again: callbacks
   * may prep new requests.  An fdsync refused for lack of kernel support
   * is redone synchronously rather than failed.
   */
  while (failed) {
    struct io_req *r = failed;
    failed = r->next;
    int res = r->res;
    if (r->op == IO_FDATASYNC && res == -EINVAL && a->no_fdsync)
      res = fdatasync (r->fd) == -1 ? -errno : 0;
    io_engine_complete (e, r, res);
  }
  return 0;
}

static void
aio_reap (struct io_engine *e)
{
  struct aio *a = e->priv;
  struct timespec zero = { 0, 0 };
  int n;

  do {
    n = io_getevents (a->ctx, 0, a->depth, a->events, &zero);
    if (n < 0) {
      if (n != -EINTR)
        log_error ("io_getevents: %s", strerror (-n));
      return;
    }
    /* Free the slots first so completion callbacks can prep again. */
    for (int i = 0; i < n; i++)
      put_slot (a, a->events[i].obj);
    for (int i = 0; i < n; i++) {
      struct io_req *r = a->events[i].data;
      long res = (long) a->events[i].res;
      io_engine_complete (e, r, (int) res);
    }
  } while (n == (int) a->depth);
}

static void
aio_close (struct io_engine *e)
{
  struct aio *a = e->priv;
  if (!a) return;
  io_destroy (a->ctx);
  aio_free_priv (a);
  e->priv = NULL;
}

const struct io_engine_ops io_aio_engine_ops = {
  .name = "libaio",
  .init = aio_init,
  .prep = aio_prep,
  .submit = aio_submit,
  .reap = aio_reap,
  .close = aio_close,
};
