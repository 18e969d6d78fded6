/* io_engine.h - asynchronous file I/O for the replica store.
 *
 * Two back ends implement one small table: io_uring (uring.c, the
 * default) and Linux AIO (aio.c, for hosts where io_uring is barred by
 * seccomp or kernel.io_uring_disabled).  io_engine.c holds what they
 * share: choosing one at start-up, the eventfd watched by the event
 * loop, a backlog for requests beyond the queue depth, synchronous
 * fallbacks for operations a back end cannot do asynchronously, and
 * batching: requests queued while handling one loop wakeup are handed
 * to the kernel in one system call at the end of that iteration.
 *
 * Completions therefore never run inside io_engine_submit(): they run
 * from the loop (the eventfd watch or the end-of-iteration kick), so a
 * caller may submit while holding any state it likes.
 */
#ifndef REPVOL_STORE_IO_ENGINE_H
#define REPVOL_STORE_IO_ENGINE_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include "core/loop.h"

enum io_op {
  IO_READ,
  IO_WRITE,
  IO_FDATASYNC,
  IO_FALLOCATE,
};

struct io_req;
/* res: bytes transferred (READ/WRITE), 0 (others), or -errno. */
typedef void (*io_done_fn) (struct io_req *r, int res);

struct io_req {
  enum io_op op;
  int fd;
  void *buf;
  size_t len;
  uint64_t off;
  int rw_flags;                 /* RWF_DSYNC for a FUA write */
  int mode;                     /* fallocate mode */
  /* Do it inline with a plain system call.  For page-cache writes:
   * ext4 cannot start a buffered write without blocking, so io_uring
   * would hand each one to a kernel worker thread, two extra context
   * switches for what is a memory copy.  Completion is still deferred.
   */
  bool inline_ok;
  io_done_fn done;
  void *opaque;

  /* engine private */
  struct io_req *next;          /* backlog / deferred completion list */
  int res;
};

struct io_engine;

/* One back end.  prep() readies r for the kernel without a system call
 * (or returns -EAGAIN when full, -ENOTSUP for an operation it cannot do
 * asynchronously); submit() hands everything prepared to the kernel;
 * reap() calls io_engine_complete() for every finished request.
 */
struct io_engine_ops {
  const char *name;
  int (*init) (struct io_engine *e, unsigned depth, int efd);
  int (*prep) (struct io_engine *e, struct io_req *r);
  int (*submit) (struct io_engine *e);
  void (*reap) (struct io_engine *e);
  void (*close) (struct io_engine *e);
};

extern const struct io_engine_ops io_uring_engine_ops;
extern const struct io_engine_ops io_aio_engine_ops;

struct io_engine {
  const struct io_engine_ops *ops;
  void *priv;                   /* the back end's */
  struct loop *loop;
  struct loop_watch watch;      /* eventfd */
  struct loop_defer kick;
  int efd;
  unsigned depth;
  unsigned inflight;            /* handed to the back end, not yet reaped */
  unsigned prepared;            /* prepped, not yet submitted */
  struct io_req *backlog, *backlog_tail;   /* waiting for a slot */
  struct io_req *ready, *ready_tail;       /* done synchronously */
  bool kick_queued;
};

/* which: "auto", "io_uring" or "libaio".  auto tries io_uring and falls
 * back to libaio, saying why in an info line.  Returns NULL with the
 * reason in *err when no engine can start.
 */
struct error;
struct io_engine *io_engine_new (struct loop *loop, const char *which,
                                 unsigned depth, struct error *err);
void io_engine_free (struct io_engine *e);
const char *io_engine_name (const struct io_engine *e);

/* Queue r; r->done runs later from the event loop, exactly once. */
void io_engine_submit (struct io_engine *e, struct io_req *r);

/* Requests not yet completed (in the kernel, backlogged or ready). */
unsigned io_engine_pending (const struct io_engine *e);

/* For back ends: report a finished request. */
void io_engine_complete (struct io_engine *e, struct io_req *r, int res);

/* Wait (blocking, bounded by timeout_ms) until nothing is pending,
 * running completions as they arrive.  For shutdown only.
 */
int io_engine_drain_sync (struct io_engine *e, int timeout_ms);

#endif
