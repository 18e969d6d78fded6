/* kmod_internal.h - what the two halves of the kmod frontend share:
 * kmod.c (the control device, the device's life, recovery and its
 * state file, the frontend ops) and kmod_queue.c (the request channel:
 * descriptors in, payloads through pread/pwrite, completions out).
 * Only for frontend/kmod*.c.
 */
#ifndef REPVOL_KMOD_INTERNAL_H
#define REPVOL_KMOD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include "repvol_uapi.h"
#include "core/bdev.h"
#include "core/loop.h"
#include "core/mailbox.h"
#include "frontend/frontend.h"

#define KMOD_BATCH              64          /* descriptors per read() */

enum kmod_state {
  KMOD_LIVE,                    /* serving the channel */
  KMOD_STOPPING,                /* STOP + DEL on their thread */
  KMOD_DRAINING,                /* DEL returned; bdev finishing ours */
  KMOD_DONE,
};

struct kmod_dev;

/* One request the kernel handed us, by tag (queue * depth + tag). */
struct kmod_slot {
  struct kmod_dev *k;
  uint32_t tag;                 /* as the kernel names it */
  bool busy;                    /* read from the channel, not completed */
  uint8_t op;                   /* REPVOL_OP_* */
  uint32_t flags;               /* BDEV_* */
  uint64_t offset;
  uint32_t len, done_bytes;
  struct bdev_io io;
  char *buf;                    /* max_io bytes, in k->bufs */
};

struct kmod_dev {
  struct frontend *fe;
  struct loop *loop;
  struct bdev *dev;
  const char *name;

  int ctrl_fd;                  /* /dev/repvol-control */
  int chan_fd;                  /* /dev/repvolcN, non-blocking */
  struct loop_watch watch;
  bool watching;

  struct repvol_ctrl p;         /* the device's parameters, as taken */
  uint32_t dev_id;
  bool have_dev;
  bool created;                 /* by this start, not recovered */
  bool recovering;
  int64_t recover;              /* the spec's recover=: a device id, or */
#define KMOD_RECOVER_ANY   (-2)  /* not given: the state file decides */
#define KMOD_RECOVER_NONE  (-1)  /* no dead attach served one */
  uint32_t bdev_max_io;         /* split discards / write-zeroes to this */

  struct kmod_slot *slots;      /* nr_queues * depth */
  size_t nslots;
  char *bufs;
  size_t bufs_len;
  unsigned busy;                /* slots busy */
  unsigned with_bdev;           /* slots whose bdev_io is in flight */

  struct repvol_done *done;     /* completions not yet written, nslots */
  unsigned ndone;
  struct loop_defer flush;      /* writes them at the end of the pass */
  bool warned_chan;             /* logged a failed pread/pwrite/write */
  bool warned_req;              /* logged a request we refused */

  enum kmod_state state;
  pthread_t stopper;
  bool stopper_running;
  struct mailbox mb;
  bool mb_ok;
  struct loop_defer kick;
  void (*stopped) (void *opaque);
  void *stopped_opaque;

  char state_path[256];
};

/* kmod.c: "queues=N,depth=N,recover=/dev/repvolN|none" (any may be
 * left out; defaults 1, 128 and KMOD_RECOVER_ANY).  recover= is which
 * device the volume's dead predecessor on this host served, as attach
 * knows it from the registry (frontend_start_spec).  0, -EINVAL
 * (logged) or -ENOMEM.
 */
int kmod_parse_spec (const char *spec, unsigned *queues, unsigned *depth,
                     int64_t *recover);
/* kmod.c: ADD's parameters for k->dev into k->p (size, block sizes,
 * max I/O, features) and k->bdev_max_io.  0 or -EINVAL (logged).
 */
int kmod_geometry (struct kmod_dev *k, unsigned queues, unsigned depth);
/* The owner value the devices of volume carry (never 0). */
uint64_t kmod_owner (const char *volume);

/* kmod_ctrl.c: the control device and the state file. */
/* "live", "waiting for recovery"...: a REPVOL_STATE_* for messages. */
const char *kmod_state_name (uint32_t state);
/* One control ioctl on dev_id (c may carry ADD's or RESIZE's fields
 * and gets INFO's / ADD's answer; NULL: none).  0 or a negative errno.
 */
int kmod_ctrl_ioctl (int fd, unsigned long ioc, uint32_t dev_id,
                     struct repvol_ctrl *c);
/* Open /dev/repvol-control, after modprobe repvol if it is missing and
 * modprobe is set.  The fd, or a negative errno with why in err.
 */
int kmod_ctrl_open (bool modprobe, struct error *err);
int kmod_sleep_ms (unsigned ms);
/* RUN_DIR/VOL.kmod: k->state_path from k->name; the device id it names
 * (0, or a negative errno: -ENOENT, none); written after ADD (a warning
 * if it cannot be); removed.
 */
void kmod_state_path (struct kmod_dev *k);
int kmod_state_read (struct kmod_dev *k, uint32_t *dev_id);
void kmod_state_write (struct kmod_dev *k);
void kmod_state_remove (struct kmod_dev *k);

/* kmod.c: run the deferred life work (finish a stop) at the end of this
 * iteration.
 */
void kmod_kick (struct kmod_dev *k);

/* kmod_queue.c: slots and buffers for k->p's queues x depth.  0 or
 * -ENOMEM (logged).
 */
int kmod_slots_setup (struct kmod_dev *k);
void kmod_slots_free (struct kmod_dev *k);
/* Watch the channel on the loop; 0 or a negative errno (logged). */
int kmod_chan_watch (struct kmod_dev *k);
void kmod_chan_unwatch (struct kmod_dev *k);

#endif
