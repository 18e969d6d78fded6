/* fake_bdev.h - an in-memory replica and the bdev that reaches it, for
 * unit tests of the layers above the bdev table (the engine first).
 *
 * A fake_replica is what a replica server holds and keeps across
 * connections: the data image and a dirty map of rv_dirty_region-byte
 * regions, handled as the store does (BDEV_MARK_DIRTY and BDEV_DIRTY
 * mark, BDEV_DIRTY_GET returns RV_DIRTY_HDR_SIZE header + bitmap,
 * BDEV_DIRTY_CLEAR forgets, BDEV_CHECKSUM is the crc32c of the range as
 * stored, BDEV_RESIZE grows or shrinks the image, the new space
 * zero), plus a log of every data write it applied, so a test can
 * count what reached it.
 *
 * A fake_bdev is one connection to it, the bdev a test hands to the
 * layer under test, which owns it and closes it: closing fails what is
 * still in flight with EIO and frees the fake_bdev, as the replica
 * client does; the replica stays.  A request takes effect when it
 * completes (a read copies the image then, a write changes it then).
 * It completes:
 *   - held, when its op is in hold_ops: it waits in the held list until
 *     the test completes it (fake_bdev_complete, fake_bdev_release);
 *   - else, with a loop, at the end of the loop iteration, in batches,
 *     in the order the test chose (FIFO, reversed, shuffled);
 *   - else at once, inside the submit.
 * Faults: the nth request, or every request of some ops, fails; while
 * `failing`, every request fails when it completes (a dying disk);
 * fake_bdev_kill() is a lost connection (what is in flight fails, and
 * every later request fails at once).
 */
#ifndef REPVOL_TEST_FAKE_BDEV_H
#define REPVOL_TEST_FAKE_BDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bdev.h"
#include "core/loop.h"

#define FAKE_NOPS     (BDEV_RESIZE + 1)
#define FAKE_OP(op)   (1u << (op))
#define FAKE_ALL_OPS  0xffffffffu
#define FAKE_DATA_OPS (FAKE_OP (BDEV_WRITE) | FAKE_OP (BDEV_TRIM) | \
                       FAKE_OP (BDEV_WRITE_ZEROES))

/* One data write (WRITE, TRIM, WRITE_ZEROES) the replica applied. */
struct fake_range {
  enum bdev_op op;
  uint64_t offset;
  uint32_t len;
  uint32_t flags;
};

struct fake_replica {
  uint64_t size;
  uint8_t *data;                /* the image */
  uint8_t *dirty;               /* bit r % 8 of byte r / 8: region r */
  uint32_t region;               /* rv_dirty_region (size), as a store */
  uint64_t nregions;
  /* What completed successfully on it, over every connection. */
  uint64_t done[FAKE_NOPS];     /* requests, per op */
  uint64_t bytes_written;       /* by data writes */
  struct fake_range *writes;    /* the data writes, in the order applied */
  size_t nwrites, writes_cap;
  int open;                     /* connections not closed yet */
  struct fake_bdev *conn;       /* the newest one, NULL once it closed */
};

struct fake_replica *fake_replica_new (uint64_t size);
void fake_replica_free (struct fake_replica *r);
bool fake_replica_dirty (const struct fake_replica *r, uint64_t region);
uint64_t fake_replica_dirty_count (const struct fake_replica *r);
/* Forget the counters and the write log (not the data or the map). */
void fake_replica_forget_log (struct fake_replica *r);

enum fake_order { FAKE_FIFO, FAKE_REVERSE, FAKE_SHUFFLE };

struct fake_req {
  struct bdev_io *io;
  int err;                      /* decided at submit (0: none yet) */
};

struct fake_bdev {
  struct bdev bdev;
  struct fake_replica *rep;
  struct loop *loop;            /* NULL: complete inside the submit */

  /* Faults and timing: the test sets these at any time. */
  uint64_t fail_nth;            /* the nth request submitted fails (1-based) */
  uint32_t fail_ops;            /* FAKE_OP mask: every such request fails */
  int fail_err;                 /* their errno (0: EIO) */
  bool failing;                 /* every request fails as it completes */
  uint32_t hold_ops;            /* FAKE_OP mask: held until released */
  enum fake_order order;        /* how a batch completes */
  unsigned seed;                /* for FAKE_SHUFFLE */
  uint64_t latency_ns;          /* what health reports */

  /* What it saw. */
  uint64_t submitted;
  uint64_t count[FAKE_NOPS];    /* submitted, per op */
  int overlap_seen;             /* data writes overlapping one in flight */
  bool dead;                    /* killed: requests fail at submit */

  /* Requests waiting: held ones for the test, the rest for the loop.
   * Completing held[k] moves the last one into k.
   */
  struct fake_req *held, *queue;
  int nheld, nqueue, held_cap, queue_cap;
  struct loop_defer defer;
  bool closed;                  /* freed once nothing here uses it */
  int busy;                     /* completions under way */
  void (*drain_done) (void *);
  void *drain_opaque;
};

/* A new connection to r; info NULL: r's size, 512-byte blocks, 32 MiB
 * requests at most.
 */
struct fake_bdev *fake_bdev_new (struct fake_replica *r, struct loop *loop,
                                 const struct bdev_info *info);
/* Held request k. */
struct bdev_io *fake_bdev_held (struct fake_bdev *f, int k);
/* Complete held request k now (its effect, then its done). */
void fake_bdev_complete (struct fake_bdev *f, int k);
/* Complete every request held now, in f->order. */
void fake_bdev_release (struct fake_bdev *f);
/* The connection is lost: everything in flight fails with EIO now and
 * every later request fails at once.
 */
void fake_bdev_kill (struct fake_bdev *f);

/* Run loop until cond(opaque) is true (checked every millisecond) or
 * timeout_ms passes.  Returns cond's last value.
 */
bool fake_run_until (struct loop *loop, bool (*cond) (void *), void *opaque,
                     unsigned timeout_ms);
/* Run loop for about ms milliseconds. */
void fake_run_for (struct loop *loop, unsigned ms);
/* Run loop until f holds at least n requests; false on timeout. */
bool fake_run_until_held (struct loop *loop, struct fake_bdev *f, int n,
                          unsigned timeout_ms);

#endif
