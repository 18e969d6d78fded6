/* uring.c - the io_uring back end (liburing).
 *
 * One ring per process, sized to the engine's depth with a completion
 * queue twice that, so the CQ cannot overflow while at most `depth`
 * requests are in flight.  The eventfd registered on the ring wakes the
 * event loop for completions that arrive after the submit call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <liburing.h>

#include "core/util.h"
#include "store/io_engine.h"

struct uring {
  struct io_uring ring;
  bool has_fallocate;           /* IORING_OP_FALLOCATE (5.6+) */
  bool unsubmitted;             /* last submit failed as a whole */
};

static int
uring_init (struct io_engine *e, unsigned depth, int efd)
{
  struct uring *u = calloc (1, sizeof *u);
  struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE,
                               .cq_entries = depth * 2 };
  struct io_uring_probe *probe;
  int rc;

  if (!u) return -ENOMEM;
  rc = io_uring_queue_init_params (depth, &u->ring, &p);
  if (rc < 0) {
    free (u);
    return rc;
  }
  rc = io_uring_register_eventfd (&u->ring, efd);
  if (rc < 0) {
    io_uring_queue_exit (&u->ring);
    free (u);
    return rc;
  }
  probe = io_uring_get_probe_ring (&u->ring);
  if (probe) {
    u->has_fallocate = io_uring_opcode_supported (probe, IORING_OP_FALLOCATE);
    io_uring_free_probe (probe);
  }
  e->priv = u;
  return 0;
}

static int
uring_prep (struct io_engine *e, struct io_req *r)
{
  struct uring *u = e->priv;
  struct io_uring_sqe *sqe;

  if (r->op == IO_FALLOCATE && !u->has_fallocate)
    return -ENOTSUP;
  sqe = io_uring_get_sqe (&u->ring);
  if (!sqe)
    return -EAGAIN;
  switch (r->op) {
  case IO_READ:
    io_uring_prep_read (sqe, r->fd, r->buf, r->len, r->off);
    break;
  case IO_WRITE:
    io_uring_prep_write (sqe, r->fd, r->buf, r->len, r->off);
    sqe->rw_flags = r->rw_flags;
    break;
  case IO_FDATASYNC:
    io_uring_prep_fsync (sqe, r->fd, IORING_FSYNC_DATASYNC);
    break;
  case IO_FALLOCATE:
    io_uring_prep_fallocate (sqe, r->fd, r->mode, r->off, r->len);
    break;
  }
  io_uring_sqe_set_data (sqe, r);
  return 0;
}

static int
uring_submit (struct io_engine *e)
{
  struct uring *u = e->priv;
  int rc;

  /* io_uring_submit only fails as a whole (EAGAIN/EBUSY under memory
   * or CQ pressure, EINTR); the SQEs stay queued, so retrying on the
   * next kick or completion is correct.
   */
  do
    rc = io_uring_submit (&u->ring);
  while (rc == -EINTR);
  u->unsubmitted = rc < 0;
  if (rc < 0)
    log_warn ("io_uring_submit: %s (will retry)", strerror (-rc));
  return rc;
}

static void
uring_reap (struct io_engine *e)
{
  struct uring *u = e->priv;
  struct io_uring_cqe *cqe;
  struct io_req *batch[64];
  unsigned head, n;

  if (u->unsubmitted)
    uring_submit (e);
  /* Collect first, then complete: a completion callback may prep new
   * SQEs and must not see a CQ we are still iterating.
   */
  do {
    n = 0;
    io_uring_for_each_cqe (&u->ring, head, cqe) {
      struct io_req *r = io_uring_cqe_get_data (cqe);
      r->res = cqe->res;
      batch[n++] = r;
      if (n == ARRAY_SIZE (batch))
        break;
    }
    io_uring_cq_advance (&u->ring, n);
    for (unsigned i = 0; i < n; i++)
      io_engine_complete (e, batch[i], batch[i]->res);
  } while (n == ARRAY_SIZE (batch));
}

static void
uring_close (struct io_engine *e)
{
  struct uring *u = e->priv;
  if (!u) return;
  io_uring_queue_exit (&u->ring);
  free (u);
  e->priv = NULL;
}

const struct io_engine_ops io_uring_engine_ops = {
  .name = "io_uring",
  .init = uring_init,
  .prep = uring_prep,
  .submit = uring_submit,
  .reap = uring_reap,
  .close = uring_close,
};
