/* engine_internal.h - the state the engine's files share: the engine
 * itself, its requests, and the calls between the pieces.
 *
 *   engine.c    construction, replica states, the owner's hooks, losing
 *               a replica (degrade, MARK_DIRTY barriers), drain, close
 *   datapath.c  client I/O: write fan-out, overlap ordering, acks,
 *               the read replica choice
 *   resync.c    catching a replica up from the dirty map, reconnecting
 *               lost replicas, replacing one; the timer, and on it the
 *               background flush (docs/DESIGN.md 2.11)
 *   verify.c    online verify and repair, reconcile after a crash
 *   resize.c    growing the volume online
 *
 * Nothing outside engine/ includes this file.
 */
#ifndef REPVOL_ENGINE_INTERNAL_H
#define REPVOL_ENGINE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/freelist.h"
#include "engine/engine.h"
#include "replica/proto.h"

/* A catch-up copies runs of adjacent dirty regions as one request of at
 * most RESYNC_COPY_MAX bytes (a region larger than that goes whole), with
 * at most RESYNC_DEPTH * RESYNC_COPY_MAX bytes and RESYNC_DEPTH_MAX
 * copies in flight: four 64 KiB copies of a dense map, as before issue
 * 15, or up to 64 small ones of a sparse map, which are latency-bound.
 */
#define RESYNC_DEPTH      4
#define RESYNC_DEPTH_MAX  64
#define RESYNC_COPY_MAX   (64u * 1024)
#define DEFAULT_FLUSH_INTERVAL 1000     /* ms; docs/DESIGN.md 2.x */
#define RESYNC_TICK_MS    100
#define DEFAULT_RATE      (64ull << 20)
#define DEFAULT_RECONNECT 1000

enum req_kind { REQ_READ, REQ_WRITE, REQ_FLUSH, REQ_MARK, REQ_COPY,
                REQ_VERIFY, REQ_RESIZE };

struct eng_req {
  struct engine *e;
  struct bdev_io *parent;       /* NULL for internal requests */
  enum req_kind kind;
  int pending;                  /* child ios outstanding */
  int err;
  uint32_t sent;                /* replicas a child went to (mask) */
  uint32_t failed;              /* replicas whose child failed (mask) */
  bool dirty_sent;              /* survivors got BDEV_DIRTY */
  int read_from;                /* READ: replica; COPY: source */
  uint32_t tried;               /* READ: replicas already tried (mask) */
  uint64_t start, end;          /* byte range, for the overlap check */
  struct eng_req *prev, *next;  /* active or waiting list */
  struct eng_req *park_next;    /* parked list (a parked write stays active) */
  void *buf;                    /* COPY: the region */
  uint32_t stale;               /* RESIZE: replicas already larger than
                                   the volume, whose tail is zeroed */
  uint64_t old_size;            /* RESIZE: the size before */
  void (*internal_done) (struct eng_req *r);
  struct bdev_io child[ENGINE_MAX_REPLICAS];
  struct bdev *to[ENGINE_MAX_REPLICAS];   /* the bdev each child went to */
};

struct resync {
  uint8_t *map;                 /* dirty bitmap from a survivor */
  uint32_t region;              /* its region size, as the survivor said */
  uint64_t nregions, next;      /* next region to look at */
  uint64_t start_ns;            /* when the map came, for the log */
  uint64_t total, done;         /* bytes */
  uint64_t done_last;           /* for the rate */
  int inflight;
  uint64_t inflight_bytes;      /* of the copies in flight */
  bool have_map, finishing, failed;
  bool discard;                 /* get_io in flight is for a replaced replica */
  bool shown;                   /* progress published and not yet withdrawn */
  struct bdev_io get_io;
  void *get_buf;
};

/* A bitmap of regions and the byte range that holds its set bits, so
 * merging and clearing on every flush cost what was written, not the
 * size of the volume.
 */
struct region_set {
  uint8_t *bits;
  uint64_t lo, hi;              /* set bits only in bytes [lo, hi) */
};

struct verify {
  bool running, repair;
  uint64_t next, differing, repaired;
  int outstanding, err;
  uint32_t crc[ENGINE_MAX_REPLICAS];
  uint32_t asked, bad;          /* replicas asked; replicas that differ */
  int source;
  int pinned;                   /* repair only from this replica (-1: vote) */
  void (*report) (void *, const char *);
  void (*done) (void *, uint64_t, uint64_t, int);
  void *opaque;
};

struct engine {
  struct bdev bdev;
  struct loop *loop;
  int n;
  struct bdev *rep[ENGINE_MAX_REPLICAS];
  char *name[ENGINE_MAX_REPLICAS];
  enum engine_rep_state state[ENGINE_MAX_REPLICAS];
  struct resync rs[ENGINE_MAX_REPLICAS];
  struct verify vf;
  struct bdev *closing[ENGINE_MAX_REPLICAS];   /* failed, to close */
  struct loop_defer close_defer;
  struct engine_hooks hooks;
  bool have_hooks;
  uint64_t rate;
  unsigned reconnect_ms;
  uint64_t tokens;              /* resync bytes allowed now */
  unsigned ticks;
  struct loop_timer timer;
  unsigned reads;
  int read_pin;                 /* while reconciling: read only this one */
  bool broken;                  /* the registry could not be updated */
  bool fenced;                  /* a newer attachment exists: fail all I/O */

  /* Regions written since the last completed flush (a lost replica
   * may not have made them stable), as two generations: writes go to
   * cur; a flush moves cur into flushing and clears flushing when it
   * completes with no later flush issued.  Regions of region bytes
   * (rv_dirty_region of the size, coarser after a grow across a size
   * boundary).  A background flush (flush_interval_ms after the first
   * unflushed write, 0: never) bounds what they hold.
   */
  uint32_t region;
  uint64_t nregions;
  struct region_set unflushed_cur, unflushed_flushing;
  uint64_t flush_seq;
  unsigned flush_interval_ms;
  unsigned unflushed_ticks;     /* ticks cur has held writes */
  bool bg_flushing;             /* a background flush in flight */
  uint64_t bg_flushes;          /* background flushes issued */

  struct eng_req *active;       /* writes in flight (unordered) */
  struct eng_req *wait_head, *wait_tail;  /* overlapping writes, FIFO */
  struct eng_req *parked;       /* acks held until marks are durable */
  int marks_pending;            /* MARK_DIRTY barriers in flight */
  int records_pending;          /* degrades the registry has not recorded */
  int inflight;                 /* client requests, for drain */
  int copies;                   /* resync copies in flight, for drain */
  bool releasing, release_again;

  void (*drain_done) (void *);
  void *drain_opaque;

  struct freelist req_free;     /* finished client requests, for reuse */
};

static inline bool
overlaps (const struct eng_req *a, const struct eng_req *b)
{
  return a->start < b->end && b->start < a->end;
}

/* The replicas in state s, as a mask. */
static inline uint32_t
mask_of (const struct engine *e, enum engine_rep_state s)
{
  uint32_t m = 0;
  for (int i = 0; i < e->n; i++)
    if (e->state[i] == s)
      m |= 1u << i;
  return m;
}

/* Submit io to replica slot i.  A mask of slots taken a moment ago may
 * name a slot whose bdev is gone by now: in a fan-out, an earlier child
 * can fail inside its submit (a dead connection answers at once), and
 * degrading that replica (docs/DESIGN.md rule 2) sends MARK_DIRTY to
 * the others, which may fail and be taken out of their slots in turn.
 * Such a slot fails the request with EIO, as its replica would have, so
 * the caller's count of children stays exact.  Returns the bdev it
 * went to (NULL: none).
 */
static inline struct bdev *
eng_submit_slot (const struct engine *e, int i, struct bdev_io *io)
{
  struct bdev *b = e->rep[i];

  if (b)
    bdev_submit (b, io);
  else
    io->done (io, EIO);
  return b;
}

static inline bool
degraded (const struct engine *e)
{
  return mask_of (e, ENGINE_IN_SYNC) != (1u << e->n) - 1;
}

/* engine.c */
/* A zeroed request (NULL: out of memory), and back when it is over. */
struct eng_req *eng_req_new (struct engine *e);
void eng_req_free (struct engine *e, struct eng_req *r);
void eng_finish (struct engine *e, struct eng_req *r);
void eng_maybe_drained (struct engine *e);
void eng_close_replica (struct engine *e, int i);
void eng_replica_failed (struct engine *e, int i, int err);
bool eng_child_done (struct bdev_io *child, int err);
void eng_send_mark (struct engine *e, struct eng_req *r);
void eng_mark_barrier (struct engine *e, uint8_t *map, uint8_t *map2);

/* datapath.c */
void eng_submit (struct bdev *b, struct bdev_io *io);
void eng_order_write (struct engine *e, struct eng_req *r);
void eng_complete_write (struct engine *e, struct eng_req *r);
void eng_leave_active (struct engine *e, struct eng_req *r);
void eng_release_parked (struct engine *e);
int eng_pick_reader (struct engine *e, uint32_t tried);

/* resync.c */
void eng_tick (struct loop_timer *t);

/* resize.c */
void eng_resize_start (struct engine *e, struct eng_req *r);
/* Grow the region maps for size bytes (kept on failure: larger maps
 * are harmless).  0 or -ENOMEM.
 */
int eng_grow_maps (struct engine *e, uint64_t size);

#endif
