/* ublk_internal.h - what the two halves of the ublk frontend share:
 * ublk_ctrl.c (the control device, the device's life, the state file,
 * the frontend ops) and ublk_queue.c (the I/O queues: fetch, serve
 * through the bdev, commit).  Only for frontend/ublk*.c.
 */
#ifndef REPVOL_UBLK_INTERNAL_H
#define REPVOL_UBLK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <liburing.h>

#include "core/bdev.h"
#include "core/loop.h"
#include "frontend/frontend.h"
#include "frontend/ublk_abi.h"

#define UBLK_WAIT_MS            10000       /* start: device node, old owner's exit */
#define UBLK_POLL_MS            20

enum ublk_state {
  UBLK_STARTING,                /* START_DEV / END_USER_RECOVERY in flight */
  UBLK_LIVE,
  UBLK_STOPPING,                /* STOP_DEV in flight */
  UBLK_DELETING,                /* queues gone, DEL_DEV in flight */
  UBLK_DONE,
};

struct ublk_dev;
struct ublk_queue;

struct ublk_tag {
  struct ublk_queue *q;
  uint16_t tag;
  bool active;                  /* the kernel holds a command for it */
  bool busy;                    /* its request is with the bdev */
  uint8_t op;                   /* UBLK_IO_OP_* */
  uint32_t flags;               /* BDEV_* for the request's pieces */
  uint64_t offset, len, done_bytes;
  struct bdev_io io;
  char *buf;
};

struct ublk_queue {
  struct ublk_dev *u;
  uint16_t id;
  struct io_uring ring;
  bool ring_ok;
  unsigned unsubmitted;
  struct ublksrv_io_desc *descs;  /* the kernel's, read-only */
  size_t descs_len;
  char *bufs;
  size_t bufs_len;
  struct ublk_tag *tags;
};

struct ublk_dev {
  struct frontend *fe;
  struct loop *loop;
  struct bdev *dev;
  const char *name;

  int ctrl_fd;
  struct io_uring ctrl;
  bool ctrl_ok;
  bool legacy;                  /* kernel predates ioctl-encoded commands */
  uint64_t features;            /* GET_FEATURES, 0 if unknown */
  uint64_t ctrl_seq;

  int efd;                      /* every ring signals it */
  struct loop_watch ewatch;
  bool watching;
  int cdev_fd;

  struct ublksrv_ctrl_dev_info info;    /* as the driver reports it */
  uint32_t dev_id;
  bool have_dev;
  bool created;                 /* by us in this start, not recovered */
  bool recovering;
  uint64_t dev_sectors;
  uint32_t block_size;
  uint32_t max_io;              /* largest read / write (tag buffer) */
  uint32_t bdev_max_io;         /* split discards / write-zeroes to this */
  bool volatile_cache;

  struct ublk_queue *queues;
  unsigned nr_queues, depth;
  unsigned busy;                /* tags whose request is with the bdev */

  enum ublk_state state;
  bool stop_wanted;
  bool stop_dev_done;
  bool warned;
  struct loop_defer kick;
  struct loop_timer del_timer;  /* says why DEL_DEV takes long */
  void (*stopped) (void *opaque);
  void *stopped_opaque;

  char state_path[256];
};

static inline void
ublk_sleep_ms (unsigned ms)
{
  usleep (ms * 1000);
}

/* ublk_ctrl.c: run the deferred work (submit what the queues have
 * queued, move the device's life on) at the end of this iteration.
 */
void ublk_kick (struct ublk_dev *u);

/* ublk_queue.c: the queues' shape.  spec is "queues=N,depth=N" (either
 * may be left out); geometry sets u's block size, sectors and request
 * limits from the bdev.  0 or a negative errno (logged, but for running
 * out of memory).
 */
int ublk_parse_spec (const char *spec, unsigned *queues, unsigned *depth);
int ublk_geometry (struct ublk_dev *u);
/* Open /dev/ublkcN and set up u->info's queues with a
 * FETCH_REQ on every tag.  0 or a negative errno, after logging why;
 * ublk_queues_free undoes a partial setup.
 */
int ublk_queues_setup (struct ublk_dev *u);
/* Close every queue (cancelling the kernel's commands) and /dev/ublkcN. */
void ublk_queues_free (struct ublk_dev *u);
/* Serve the requests the kernel has completed FETCH_REQs for. */
void ublk_queues_reap (struct ublk_dev *u);
/* Submit the commands queued since the last kick. */
void ublk_queues_submit (struct ublk_dev *u);

#endif
