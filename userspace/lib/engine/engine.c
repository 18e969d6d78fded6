/* engine.c - the engine layer: fans each write out to the replicas,
 * keeps overlapping writes in order, reads from the replica that answers
 * fastest, goes on without a replica that fails, and catches it up by
 * difference when it comes back.
 *
 * Ack (DESIGN.md rule 1): a write, trim or write-zeroes completes only
 * when every in-sync replica has completed it; a flush or FUA request
 * only when every in-sync replica has made it stable.
 *
 * Degrade (rule 2): when a replica fails, the owner records it out of
 * sync in the registry (hooks->mark_out_of_sync) before any write it
 * missed is acknowledged.  From then on every write to the survivors
 * carries BDEV_DIRTY, so they record durably which regions the lost
 * replica misses; a write that was in flight when it failed is marked
 * with BDEV_MARK_DIRTY before its ack, and so are the regions written
 * since the last completed flush, which the lost replica may not have
 * made stable.  With no in-sync replica left, I/O fails with EIO.
 *
 * Resync (rule 5): every reconnect_ms the engine tries to reach lost
 * replicas.  One that answers is fed every new write at once and copied
 * the regions in the survivors' dirty map, at resync_rate, each copy
 * ordered against client writes like a write of its own; once done it
 * is flushed, recorded in sync, and the maps are cleared.
 *
 * Ordering (rule 6): two writes whose ranges overlap are never in flight
 * at the same time.  A write that overlaps one in flight waits, and
 * waiting writes start strictly in arrival order relative to the writes
 * they overlap, so every replica applies overlapping writes in the same
 * order whatever the network or the replica's disk does.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "replica/proto.h"
#include "core/util.h"

#define REGION            RV_DIRTY_REGION
#define RESYNC_DEPTH      4
#define RESYNC_TICK_MS    100
#define DEFAULT_RATE      (64ull << 20)
#define DEFAULT_RECONNECT 1000

enum req_kind { REQ_READ, REQ_WRITE, REQ_FLUSH, REQ_MARK, REQ_COPY,
                REQ_VERIFY };

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
  void (*internal_done) (struct eng_req *r);
  struct bdev_io child[ENGINE_MAX_REPLICAS];
};

struct resync {
  uint8_t *map;                 /* dirty bitmap from a survivor */
  uint64_t nregions, next;      /* next region to look at */
  uint64_t total, done;         /* bytes */
  uint64_t done_last;           /* for the rate */
  int inflight;
  bool have_map, finishing, failed;
  bool discard;                 /* get_io in flight is for a replaced replica */
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

  /* Regions written since the last completed flush (a lost replica
   * may not have made them stable), as two generations: writes go to
   * cur; a flush moves cur into flushing and clears flushing when it
   * completes with no later flush issued.
   */
  uint64_t nregions;
  struct region_set unflushed_cur, unflushed_flushing;
  uint64_t flush_seq;

  struct eng_req *active;       /* writes in flight (unordered) */
  struct eng_req *wait_head, *wait_tail;  /* overlapping writes, FIFO */
  struct eng_req *parked;       /* acks held until marks are durable */
  int marks_pending;            /* MARK_DIRTY barriers in flight */
  int inflight;                 /* client requests, for drain */
  int copies;                   /* resync copies in flight, for drain */
  bool releasing, release_again;

  void (*drain_done) (void *);
  void *drain_opaque;
};

static void start_write (struct engine *e, struct eng_req *r);
static void submit_read (struct engine *e, struct eng_req *r);
static void complete_write (struct engine *e, struct eng_req *r);
static void resync_pump (struct engine *e, int i);

static bool
overlaps (const struct eng_req *a, const struct eng_req *b)
{
  return a->start < b->end && b->start < a->end;
}

static uint32_t
mask_of (const struct engine *e, enum engine_rep_state s)
{
  uint32_t m = 0;
  for (int i = 0; i < e->n; i++)
    if (e->state[i] == s)
      m |= 1u << i;
  return m;
}

static bool
degraded (const struct engine *e)
{
  return mask_of (e, ENGINE_IN_SYNC) != (1u << e->n) - 1;
}

static void
list_remove (struct eng_req **head, struct eng_req **tail, struct eng_req *r)
{
  if (r->prev)
    r->prev->next = r->next;
  else
    *head = r->next;
  if (r->next)
    r->next->prev = r->prev;
  else if (tail)
    *tail = r->prev;
  r->prev = r->next = NULL;
}

static void
list_push (struct eng_req **head, struct eng_req *r)
{
  r->prev = NULL;
  r->next = *head;
  if (*head)
    (*head)->prev = r;
  *head = r;
}

static void
maybe_drained (struct engine *e)
{
  if (e->drain_done && e->inflight == 0 && e->copies == 0) {
    void (*done) (void *) = e->drain_done;
    e->drain_done = NULL;
    done (e->drain_opaque);
  }
}

static void
finish (struct engine *e, struct eng_req *r)
{
  struct bdev_io *parent = r->parent;
  int err = r->err;

  if (r->internal_done) {
    r->internal_done (r);
    return;
  }
  free (r);
  e->inflight--;
  parent->done (parent, err);
  maybe_drained (e);
}

static void
set_bits (uint8_t *map, uint64_t start, uint64_t end)
{
  for (uint64_t r = start / REGION; r * REGION < end; r++)
    map[r / 8] |= 1u << (r % 8);
}

static void
rset_add (struct region_set *rs, uint64_t start, uint64_t end)
{
  uint64_t first = start / REGION / 8, last = (end - 1) / REGION / 8 + 1;

  set_bits (rs->bits, start, end);
  if (rs->lo >= rs->hi) {
    rs->lo = first;
    rs->hi = last;
  }
  rs->lo = MIN (rs->lo, first);
  rs->hi = MAX (rs->hi, last);
}

static void
rset_merge (struct region_set *dst, const struct region_set *src)
{
  if (src->lo >= src->hi)
    return;
  for (uint64_t k = src->lo; k < src->hi; k++)
    dst->bits[k] |= src->bits[k];
  if (dst->lo >= dst->hi) {
    dst->lo = src->lo;
    dst->hi = src->hi;
  }
  dst->lo = MIN (dst->lo, src->lo);
  dst->hi = MAX (dst->hi, src->hi);
}

static void
rset_clear (struct region_set *rs)
{
  if (rs->lo < rs->hi)
    memset (rs->bits + rs->lo, 0, rs->hi - rs->lo);
  rs->lo = rs->hi = 0;
}

/* ---- ordering: active and waiting writes ---------------------------- */

static void
release_waiters (struct engine *e)
{
  /* Starting a write can complete it at once (a dead replica fails
   * synchronously) and re-enter here: the outer call rescans instead.
   */
  if (e->releasing) {
    e->release_again = true;
    return;
  }
  e->releasing = true;
  do {
    e->release_again = false;
    for (struct eng_req *w = e->wait_head; w; w = w->next) {
      bool blocked = false;
      for (struct eng_req *a = e->active; a && !blocked; a = a->next)
        blocked = overlaps (a, w);
      for (struct eng_req *p = e->wait_head; p != w && !blocked; p = p->next)
        blocked = overlaps (p, w);
      if (!blocked) {
        list_remove (&e->wait_head, &e->wait_tail, w);
        start_write (e, w);
        e->release_again = true;
        break;
      }
    }
  } while (e->release_again);
  e->releasing = false;
}

/* Start r now, or queue it behind an overlapping write. */
static void
order_write (struct engine *e, struct eng_req *r)
{
  for (struct eng_req *a = e->active; a; a = a->next)
    if (overlaps (a, r))
      goto wait;
  for (struct eng_req *w = e->wait_head; w; w = w->next)
    if (overlaps (w, r))
      goto wait;
  start_write (e, r);
  return;

 wait:
  r->prev = e->wait_tail;
  r->next = NULL;
  if (e->wait_tail)
    e->wait_tail->next = r;
  else
    e->wait_head = r;
  e->wait_tail = r;
}

static void
leave_active (struct engine *e, struct eng_req *r)
{
  list_remove (&e->active, NULL, r);
  release_waiters (e);
}

/* ---- losing a replica ----------------------------------------------- */

static void
close_failed_replicas (struct engine *e)
{
  for (int i = 0; i < e->n; i++)
    if (e->closing[i]) {
      struct bdev *b = e->closing[i];
      e->closing[i] = NULL;
      bdev_close (b);
    }
}

static void
close_failed (struct loop_defer *d)
{
  close_failed_replicas (d->opaque);
}

static void mark_barrier (struct engine *e, uint8_t *map, uint8_t *map2);

static void
replica_failed (struct engine *e, int i, int err)
{
  enum engine_rep_state was = e->state[i];

  if (was == ENGINE_OUT)
    return;
  e->state[i] = ENGINE_OUT;
  e->rs[i].failed = true;
  /* Closing fails its in-flight requests, which land back here: not
   * from inside one of its own completions.
   */
  e->closing[i] = e->rep[i];
  e->rep[i] = NULL;
  if (e->loop)
    loop_defer (e->loop, &e->close_defer, close_failed, e);

  if (!e->have_hooks) {
    /* Nobody to record it: writes it misses must fail. */
    log_error ("replica %s failed (%s)", e->name[i], strerror (err));
    e->broken = true;
    return;
  }
  if (was == ENGINE_IN_SYNC) {
    int r = e->hooks.mark_out_of_sync (e->hooks.opaque, i);
    if (r) {
      log_error ("replica %s failed (%s) and the registry cannot record "
                 "it (%s): failing writes", e->name[i], strerror (err),
                 strerror (r));
      e->broken = true;
      return;
    }
    log_error ("replica %s failed (%s): recorded out of sync; going on "
               "with the others", e->name[i], strerror (err));
    /* Writes since the last flush may not be stable on it. */
    mark_barrier (e, e->unflushed_cur.bits, e->unflushed_flushing.bits);
  }
  else
    log_error ("replica %s failed again during catch-up (%s)", e->name[i],
               strerror (err));
  if (mask_of (e, ENGINE_IN_SYNC) == 0)
    log_error ("no replica of the volume is in sync: failing I/O");
}

/* ---- dirty marks: MARK_DIRTY barriers ------------------------------- */

static void
release_parked (struct engine *e)
{
  while (e->marks_pending == 0 && e->parked) {
    struct eng_req *r = e->parked;
    e->parked = r->park_next;
    complete_write (e, r);
  }
}

/* Account for one child of a fanned-out request; a failure takes its
 * replica out.  True when it was the last child.
 */
static bool
child_done (struct bdev_io *child, int err)
{
  struct eng_req *r = child->opaque;
  int i = child - r->child;

  if (err) {
    r->failed |= 1u << i;
    replica_failed (r->e, i, err);
  }
  return --r->pending == 0;
}

static void
mark_child_done (struct bdev_io *child, int err)
{
  struct eng_req *r = child->opaque;
  struct engine *e = r->e;

  if (!child_done (child, err))
    return;
  /* A mark counts once every in-sync survivor holds it. */
  if (r->failed & mask_of (e, ENGINE_IN_SYNC))
    r->err = EIO;
  finish (e, r);
}

/* Send MARK_DIRTY for [start, end) to every in-sync replica; r's
 * internal_done runs when all have answered.
 */
static void
send_mark (struct engine *e, struct eng_req *r)
{
  uint32_t to = mask_of (e, ENGINE_IN_SYNC);

  r->kind = REQ_MARK;
  r->pending = __builtin_popcount (to);
  if (r->pending == 0) {
    r->err = EIO;
    finish (e, r);
    return;
  }
  for (int i = 0; i < e->n; i++)
    if (to & (1u << i))
      r->child[i] = (struct bdev_io) {
        .op = BDEV_MARK_DIRTY, .offset = r->start,
        .len = (uint32_t) (r->end - r->start),
        .done = mark_child_done, .opaque = r,
      };
  for (int i = 0; i < e->n; i++)
    if (to & (1u << i))
      bdev_submit (e->rep[i], &r->child[i]);
}

static void
barrier_mark_done (struct eng_req *r)
{
  struct engine *e = r->e;

  if (r->err) {
    log_error ("cannot record dirty regions on the survivors: failing writes");
    e->broken = true;
  }
  free (r);
  e->marks_pending--;
  release_parked (e);
}

/* Mark every region set in map (or map2) dirty on the survivors; write
 * acks wait until it is durable.  Runs of regions go as one request.
 */
static void
mark_barrier (struct engine *e, uint8_t *map, uint8_t *map2)
{
  uint64_t r = 0;

  while (r < e->nregions) {
    uint64_t s, len_max = (1ull << 32) - REGION;
    if (!((map[r / 8] | map2[r / 8]) & (1u << (r % 8)))) {
      r++;
      continue;
    }
    for (s = r; r < e->nregions && (r - s) * REGION < len_max &&
           ((map[r / 8] | map2[r / 8]) & (1u << (r % 8))); r++)
      ;
    struct eng_req *m = calloc (1, sizeof *m);
    if (!m) {
      e->broken = true;
      return;
    }
    m->e = e;
    m->start = s * REGION;
    m->end = MIN (r * REGION, e->bdev.info.size);
    m->internal_done = barrier_mark_done;
    e->marks_pending++;
    send_mark (e, m);
  }
}

/* ---- writes and flushes ------------------------------------------- */

/* All children of r are done: decide, maybe mark, then ack. */
static void
complete_write (struct engine *e, struct eng_req *r)
{
  uint32_t in_sync = mask_of (e, ENGINE_IN_SYNC);

  if (r->kind == REQ_WRITE && e->marks_pending > 0 && !r->err) {
    r->park_next = e->parked;       /* acked after the barrier */
    e->parked = r;
    return;
  }
  if (in_sync == 0 || e->broken || (r->failed & in_sync))
    r->err = EIO;
  if (r->kind == REQ_FLUSH && !r->err) {
    /* Writes that completed before this flush are now stable. */
    if (r->start == e->flush_seq)
      rset_clear (&e->unflushed_flushing);
  }
  if (r->kind == REQ_WRITE)
    leave_active (e, r);
  finish (e, r);
}

static void
mark_missed_done (struct eng_req *m)
{
  struct eng_req *r = m->buf;   /* the write waiting for its mark */
  struct engine *e = m->e;

  if (m->err)
    r->err = EIO;
  free (m);
  complete_write (e, r);
}

static void
write_child_done (struct bdev_io *child, int err)
{
  struct eng_req *r = child->opaque;
  struct engine *e = r->e;

  if (!child_done (child, err))
    return;

  /* A replica missed this write and the survivors were not told to
   * track it: mark it dirty on them before the ack.
   */
  if (r->kind == REQ_WRITE && (r->failed & ~mask_of (e, ENGINE_IN_SYNC)) &&
      !r->dirty_sent && !(r->failed & mask_of (e, ENGINE_IN_SYNC)) &&
      e->have_hooks) {
    struct eng_req *m = calloc (1, sizeof *m);
    if (m) {
      m->e = e;
      m->start = r->start;
      m->end = r->end;
      m->buf = r;
      m->internal_done = mark_missed_done;
      send_mark (e, m);
      return;
    }
    r->err = EIO;
  }
  complete_write (e, r);
}

static void
start_write (struct engine *e, struct eng_req *r)
{
  uint32_t to = mask_of (e, ENGINE_IN_SYNC) | mask_of (e, ENGINE_RESYNC);
  bool track = degraded (e) && e->have_hooks;

  if (r->kind == REQ_COPY || r->kind == REQ_VERIFY) {
    list_push (&e->active, r);
    r->internal_done (r);       /* its own state machine */
    return;
  }
  if (r->kind == REQ_WRITE)
    list_push (&e->active, r);
  if (mask_of (e, ENGINE_IN_SYNC) == 0 || e->broken) {
    r->err = EIO;
    if (r->kind == REQ_WRITE)
      leave_active (e, r);
    finish (e, r);
    return;
  }
  if (r->kind == REQ_WRITE) {
    /* One wire checksum for every replica (rule 7), not one each. */
    if (r->parent->op == BDEV_WRITE && !(r->parent->flags & BDEV_HAS_CRC)) {
      r->parent->crc = crc32c (0, r->parent->buf, r->parent->len);
      r->parent->flags |= BDEV_HAS_CRC;
    }
    rset_add (&e->unflushed_cur, r->start, r->end);
    r->dirty_sent = track;
  }
  else {                        /* FLUSH: cur becomes what it covers */
    rset_merge (&e->unflushed_flushing, &e->unflushed_cur);
    rset_clear (&e->unflushed_cur);
    r->start = ++e->flush_seq;
  }
  r->sent = to;
  r->pending = __builtin_popcount (to);
  /* Children may complete synchronously: count them all first. */
  for (int i = 0; i < e->n; i++) {
    if (!(to & (1u << i)))
      continue;
    r->child[i] = *r->parent;
    r->child[i].done = write_child_done;
    r->child[i].opaque = r;
    r->child[i].layer_priv = NULL;
    if (track && r->kind == REQ_WRITE && e->state[i] == ENGINE_IN_SYNC)
      r->child[i].flags |= BDEV_DIRTY;
  }
  for (int i = 0; i < e->n; i++)
    if (to & (1u << i))
      bdev_submit (e->rep[i], &r->child[i]);
}

/* ---- reads ---------------------------------------------------------- */

/* Pick the in-sync replica that answers fastest.  Every 32nd read goes
 * round robin so a replica that got faster is noticed.
 */
static int
pick_reader (struct engine *e, uint32_t tried)
{
  int best = -1;
  uint64_t best_lat = UINT64_MAX;
  bool explore = (++e->reads % 32) == 0;

  /* While replicas may disagree (after a host died mid-write), every
   * read goes to the one they are being made equal to.
   */
  if (e->read_pin >= 0 && !(tried & (1u << e->read_pin)) &&
      e->state[e->read_pin] == ENGINE_IN_SYNC)
    return e->read_pin;

  for (int k = 0; k < e->n; k++) {
    int i = explore ? (int) ((e->reads / 32 + k) % e->n) : k;
    struct bdev_health h = { .up = 1 };
    if ((tried & (1u << i)) || e->state[i] != ENGINE_IN_SYNC)
      continue;
    bdev_health (e->rep[i], &h);
    if (!h.up)
      continue;
    if (explore)
      return i;
    if (h.latency_ns < best_lat) {
      best = i;
      best_lat = h.latency_ns;
    }
  }
  return best;
}

static void
read_done (struct bdev_io *child, int err)
{
  struct eng_req *r = child->opaque;
  struct engine *e = r->e;

  if (err && err != EINVAL) {
    log_warn ("replica %s: read at offset %llu failed (%s), trying another",
              e->name[r->read_from], (unsigned long long) child->offset,
              strerror (err));
    submit_read (e, r);
    return;
  }
  r->err = err;
  finish (e, r);
}

static void
submit_read (struct engine *e, struct eng_req *r)
{
  int i = pick_reader (e, r->tried);

  if (i < 0) {
    r->err = EIO;
    finish (e, r);
    return;
  }
  r->tried |= 1u << i;
  r->read_from = i;
  r->child[0] = *r->parent;
  r->child[0].done = read_done;
  r->child[0].opaque = r;
  r->child[0].layer_priv = NULL;
  bdev_submit (e->rep[i], &r->child[0]);
}

/* ---- the bdev table ----------------------------------------------- */

static void
engine_submit (struct bdev *b, struct bdev_io *io)
{
  struct engine *e = b->priv;
  struct eng_req *r = calloc (1, sizeof *r);

  if (!r) {
    io->done (io, ENOMEM);
    return;
  }
  r->e = e;
  r->parent = io;
  e->inflight++;

  switch (io->op) {
  case BDEV_READ:
    r->kind = REQ_READ;
    submit_read (e, r);
    return;
  case BDEV_FLUSH:
    r->kind = REQ_FLUSH;
    start_write (e, r);
    return;
  case BDEV_WRITE:
  case BDEV_TRIM:
  case BDEV_WRITE_ZEROES:
    r->kind = REQ_WRITE;
    r->start = io->offset;
    r->end = io->offset + io->len;
    order_write (e, r);
    return;
  default:
    break;
  }
  e->inflight--;
  free (r);
  io->done (io, EINVAL);
}

/* ---- resync --------------------------------------------------------- */

static bool
map_bit (const struct resync *rs, uint64_t r)
{
  return rs->map[r / 8] & (1u << (r % 8));
}

static int
pick_source (struct engine *e)
{
  uint32_t tried = 0;
  return pick_reader (e, tried);
}

static void copy_step (struct eng_req *r);

static void
copy_child_done (struct bdev_io *child, int err)
{
  struct eng_req *r = child->opaque;

  if (err)
    r->err = err;
  copy_step (r);
}

static void
copy_finish (struct engine *e, struct eng_req *r, int i)
{
  struct resync *rs = &e->rs[i];

  leave_active (e, r);
  free (r->buf);
  free (r);
  rs->inflight--;
  e->copies--;
  resync_pump (e, i);
  maybe_drained (e);
}

/* A copy of one region: read it from an in-sync replica, write it to
 * the replica being caught up.  It sits in the active list the whole
 * time, so no client write to the region can slip in between.
 */
static void
copy_step (struct eng_req *r)
{
  struct engine *e = r->e;
  int i = r->tried;             /* the target replica */
  struct resync *rs = &e->rs[i];
  uint32_t len = (uint32_t) (r->end - r->start);

  if (r->err || e->state[i] != ENGINE_RESYNC) {
    if (r->err && e->state[i] == ENGINE_RESYNC && r->pending == 2)
      replica_failed (e, i, r->err);    /* the target failed its write */
    rs->failed = rs->failed || r->err;
    copy_finish (e, r, i);
    return;
  }
  switch (r->pending++) {
  case 0: {                     /* read from a survivor */
    int src = pick_source (e);
    if (src < 0) {
      r->err = EIO;
      copy_step (r);
      return;
    }
    r->child[0] = (struct bdev_io) {
      .op = BDEV_READ, .offset = r->start, .len = len, .buf = r->buf,
      .done = copy_child_done, .opaque = r,
    };
    bdev_submit (e->rep[src], &r->child[0]);
    return;
  }
  case 1:                       /* write to the replica */
    r->child[1] = (struct bdev_io) {
      .op = BDEV_WRITE, .offset = r->start, .len = len, .buf = r->buf,
      .done = copy_child_done, .opaque = r,
    };
    bdev_submit (e->rep[i], &r->child[1]);
    return;
  default:                      /* done */
    rs->done += len;
    copy_finish (e, r, i);
  }
}

static void
resync_done_clear (struct bdev_io *io, int err)
{
  struct eng_req *r = io->opaque;
  if (err)
    log_warn ("clearing a dirty map failed: %s (it will be copied again)",
              strerror (err));
  if (--r->pending == 0)
    free (r);
}

static void
resync_flushed (struct bdev_io *io, int err)
{
  struct engine *e = io->opaque;
  struct resync *rs = container_of (io, struct resync, get_io);
  int i = rs - e->rs;

  if (rs->discard) {
    rs->discard = false;
    return;
  }
  rs->finishing = false;
  if (err || e->state[i] != ENGINE_RESYNC) {
    if (err)
      replica_failed (e, i, err);
    return;
  }
  if (e->hooks.mark_in_sync (e->hooks.opaque, i) != 0) {
    log_error ("replica %s caught up but the registry cannot record it; "
               "will retry", e->name[i]);
    rs->have_map = false;
    return;
  }
  e->state[i] = ENGINE_IN_SYNC;
  log_info ("replica %s: caught up (%" PRIu64 " bytes copied), in sync",
            e->name[i], rs->done);
  e->hooks.progress (e->hooks.opaque, i, rs->done, rs->total, 0);
  free (rs->map);
  rs->map = NULL;

  if (degraded (e))
    return;                     /* the map still serves another replica */
  struct eng_req *c = calloc (1, sizeof *c);
  if (!c)
    return;
  for (int k = 0; k < e->n; k++)
    c->child[k] = (struct bdev_io) { .op = BDEV_DIRTY_CLEAR,
                                     .done = resync_done_clear, .opaque = c };
  c->pending = e->n;
  for (int k = 0; k < e->n; k++)
    bdev_submit (e->rep[k], &c->child[k]);
}

/* Start copies while the budget and depth allow; finish when done. */
static void
resync_pump (struct engine *e, int i)
{
  struct resync *rs = &e->rs[i];

  if (e->state[i] != ENGINE_RESYNC || !rs->have_map || rs->finishing)
    return;
  if (rs->failed) {
    /* A copy failed on the source side: fetch the map again later. */
    if (rs->inflight == 0) {
      rs->have_map = false;
      rs->failed = false;
    }
    return;
  }
  while (rs->inflight < RESYNC_DEPTH && e->tokens >= REGION &&
         !e->drain_done) {
    while (rs->next < rs->nregions && !map_bit (rs, rs->next))
      rs->next++;
    if (rs->next >= rs->nregions)
      break;
    struct eng_req *r = calloc (1, sizeof *r);
    if (!r || posix_memalign (&r->buf, 4096, REGION) != 0) {
      free (r);
      return;
    }
    r->e = e;
    r->kind = REQ_COPY;
    r->tried = i;
    r->start = rs->next * REGION;
    r->end = MIN (r->start + REGION, e->bdev.info.size);
    r->internal_done = copy_step;
    rs->next++;
    rs->inflight++;
    e->copies++;
    e->tokens -= REGION;
    order_write (e, r);
  }
  if (rs->next >= rs->nregions && rs->inflight == 0) {
    rs->finishing = true;
    rs->get_io = (struct bdev_io) { .op = BDEV_FLUSH, .done = resync_flushed,
                                    .opaque = e };
    bdev_submit (e->rep[i], &rs->get_io);
  }
}

static void
resync_got_map (struct bdev_io *io, int err)
{
  struct engine *e = io->opaque;
  struct resync *rs = container_of (io, struct resync, get_io);
  int i = rs - e->rs;
  uint8_t *p = rs->get_buf;

  rs->get_buf = NULL;
  if (rs->discard) {
    rs->discard = false;
    free (p);
    return;
  }
  if (err || e->state[i] != ENGINE_RESYNC) {
    if (err)
      log_warn ("replica %s: cannot read the survivors' dirty map (%s); "
                "will retry", e->name[i], strerror (err));
    free (p);
    return;
  }
  free (rs->map);
  rs->map = malloc ((e->nregions + 7) / 8);
  if (!rs->map) {
    free (p);
    return;
  }
  memcpy (rs->map, p + RV_DIRTY_HDR_SIZE, (e->nregions + 7) / 8);
  free (p);
  rs->nregions = e->nregions;
  rs->next = 0;
  rs->total = 0;
  rs->done = rs->done_last = 0;
  for (uint64_t r = 0; r < rs->nregions; r++)
    if (map_bit (rs, r))
      rs->total += MIN ((uint64_t) REGION, e->bdev.info.size - r * REGION);
  rs->have_map = true;
  log_info ("replica %s: catching up %" PRIu64 " bytes of changed regions",
            e->name[i], rs->total);
  resync_pump (e, i);
}

static void
resync_fetch_map (struct engine *e, int i)
{
  struct resync *rs = &e->rs[i];
  size_t len = RV_DIRTY_HDR_SIZE + (e->nregions + 7) / 8;
  int src = pick_source (e);

  /* A full-copy mark still on its way would be missing from the map. */
  if (src < 0 || rs->get_buf || rs->discard || e->marks_pending)
    return;
  rs->get_buf = malloc (len);
  if (!rs->get_buf)
    return;
  rs->get_io = (struct bdev_io) {
    .op = BDEV_DIRTY_GET, .len = (uint32_t) len, .buf = rs->get_buf,
    .done = resync_got_map, .opaque = e,
  };
  bdev_submit (e->rep[src], &rs->get_io);
}

static void
tick (struct loop_timer *t)
{
  struct engine *e = t->opaque;
  bool second = (++e->ticks % (1000 / RESYNC_TICK_MS)) == 0;

  e->tokens = MIN (e->tokens + e->rate * RESYNC_TICK_MS / 1000,
                   MAX (e->rate, (uint64_t) REGION * RESYNC_DEPTH));
  for (int i = 0; i < e->n; i++) {
    struct resync *rs = &e->rs[i];
    if (e->state[i] == ENGINE_OUT && !e->closing[i] && !e->drain_done &&
        e->ticks % MAX (e->reconnect_ms / RESYNC_TICK_MS, 1u) == 0 &&
        mask_of (e, ENGINE_IN_SYNC) && !e->broken) {
      struct bdev *b = e->hooks.reconnect (e->hooks.opaque, i);
      if (b)
        engine_replica_back (&e->bdev, i, b);
    }
    if (e->state[i] != ENGINE_RESYNC)
      continue;
    if (!rs->have_map)
      resync_fetch_map (e, i);
    else
      resync_pump (e, i);
    if (second && rs->have_map) {
      e->hooks.progress (e->hooks.opaque, i, rs->done, rs->total,
                         rs->done - rs->done_last);
      rs->done_last = rs->done;
    }
  }
  loop_timer_arm (e->loop, &e->timer, RESYNC_TICK_MS, tick, e);
}

void
engine_mark_all_dirty (struct bdev *b)
{
  struct engine *e = b->priv;
  size_t len = (e->nregions + 7) / 8 + 1;
  uint8_t *all = malloc (len), *none = calloc (1, len);

  if (all && none) {
    memset (all, 0xff, len);
    mark_barrier (e, all, none);
  }
  else
    e->broken = true;
  free (all);
  free (none);
}

/* Start a replica's catch-up from scratch.  A DIRTY_GET or final flush
 * still in flight belongs to the previous attempt: its answer is
 * dropped (get_io itself must stay untouched until it comes).
 */
static void
resync_reset (struct resync *rs)
{
  rs->discard = rs->discard || rs->get_buf != NULL || rs->finishing;
  free (rs->map);
  rs->map = NULL;
  rs->have_map = rs->finishing = rs->failed = false;
  rs->next = rs->total = rs->done = rs->done_last = 0;
}

void
engine_replica_back (struct bdev *b, int i, struct bdev *nb)
{
  struct engine *e = b->priv;

  if (e->state[i] != ENGINE_OUT || e->rep[i] || e->broken) {
    bdev_close (nb);        /* replaced or detaching meanwhile */
    return;
  }
  log_info ("replica %s is back: catching it up", e->name[i]);
  e->rep[i] = nb;
  e->state[i] = ENGINE_RESYNC;
  resync_reset (&e->rs[i]);
}

void
engine_replace (struct bdev *b, int i, struct bdev *nb, const char *name)
{
  struct engine *e = b->priv;

  if (e->rep[i]) {
    e->closing[i] = e->rep[i];
    e->rep[i] = NULL;
    if (e->loop)
      loop_defer (e->loop, &e->close_defer, close_failed, e);
  }
  free (e->name[i]);
  e->name[i] = strdup (name);
  resync_reset (&e->rs[i]);
  e->rep[i] = nb;
  e->state[i] = nb ? ENGINE_RESYNC : ENGINE_OUT;
  log_info ("replica slot %d is now %s: copying the whole volume to it",
            i, name);
  engine_mark_all_dirty (b);
}

/* ---- online verify -------------------------------------------------- */

static void verify_next (struct engine *e);
static void verify_step (struct eng_req *r);

static void
verify_child_done (struct bdev_io *child, int err)
{
  struct eng_req *r = child->opaque;
  struct verify *vf = &r->e->vf;

  if (err && !vf->err)
    vf->err = err;
  if (--vf->outstanding == 0)
    verify_step (r);
}

static void
verify_region_done (struct engine *e, struct eng_req *r)
{
  struct verify *vf = &e->vf;

  leave_active (e, r);
  free (r->buf);
  free (r);
  if (vf->err || e->broken) {
    vf->running = false;
    vf->done (vf->opaque, vf->differing, vf->repaired, vf->err ? vf->err : EIO);
    return;
  }
  verify_next (e);
}

/* The replica whose checksum most others share: the source of truth. */
static int
majority (const struct engine *e, uint32_t asked)
{
  int best = -1, best_votes = 0;

  for (int i = 0; i < e->n; i++) {
    int votes = 0;
    if (!(asked & (1u << i)))
      continue;
    for (int k = 0; k < e->n; k++)
      votes += (asked & (1u << k)) && e->vf.crc[k] == e->vf.crc[i];
    if (votes > best_votes) {
      best = i;
      best_votes = votes;
    }
  }
  return best;
}

/* Phases (r->pending): 0 ask every in-sync replica for the checksum;
 * 1 compare; 2 repair: the source's data has been read, write it to the
 * others; 3 done.
 */
static void
verify_step (struct eng_req *r)
{
  struct engine *e = r->e;
  struct verify *vf = &e->vf;
  uint32_t len = (uint32_t) (r->end - r->start);
  char line[256];

  if (vf->err) {
    verify_region_done (e, r);
    return;
  }
  switch (r->pending++) {
  case 0:
    vf->asked = mask_of (e, ENGINE_IN_SYNC);
    vf->outstanding = __builtin_popcount (vf->asked);
    if (vf->outstanding < 1) {
      vf->err = EIO;
      verify_region_done (e, r);
      return;
    }
    for (int i = 0; i < e->n; i++)
      if (vf->asked & (1u << i))
        r->child[i] = (struct bdev_io) {
          .op = BDEV_CHECKSUM, .offset = r->start, .len = len,
          .buf = &vf->crc[i], .done = verify_child_done, .opaque = r,
        };
    for (int i = 0; i < e->n; i++)
      if (vf->asked & (1u << i))
        bdev_submit (e->rep[i], &r->child[i]);
    return;
  case 1: {
    int src = vf->pinned >= 0 && (vf->asked & (1u << vf->pinned))
      ? vf->pinned : majority (e, vf->asked);
    vf->bad = 0;
    for (int i = 0; i < e->n; i++)
      if ((vf->asked & (1u << i)) && vf->crc[i] != vf->crc[src])
        vf->bad |= 1u << i;
    if (!vf->bad) {
      verify_region_done (e, r);
      return;
    }
    vf->differing++;
    int n = snprintf (line, sizeof line, "region %llu+%u differs:",
                      (unsigned long long) r->start, len);
    for (int i = 0; i < e->n && n < (int) sizeof line; i++)
      if (vf->asked & (1u << i))
        n += snprintf (line + n, sizeof line - n, " %s=%08x%s", e->name[i],
                       vf->crc[i], vf->bad & (1u << i) ? "*" : "");
    vf->report (vf->opaque, line);
    if (!vf->repair) {
      verify_region_done (e, r);
      return;
    }
    vf->source = src;
    if (posix_memalign (&r->buf, 4096, len) != 0) {
      vf->err = ENOMEM;
      verify_region_done (e, r);
      return;
    }
    vf->outstanding = 1;
    r->child[src] = (struct bdev_io) {
      .op = BDEV_READ, .offset = r->start, .len = len, .buf = r->buf,
      .done = verify_child_done, .opaque = r,
    };
    bdev_submit (e->rep[src], &r->child[src]);
    return;
  }
  case 2:
    vf->outstanding = __builtin_popcount (vf->bad);
    for (int i = 0; i < e->n; i++)
      if (vf->bad & (1u << i))
        r->child[i] = (struct bdev_io) {
          .op = BDEV_WRITE, .flags = BDEV_FUA, .offset = r->start,
          .len = len, .buf = r->buf, .done = verify_child_done, .opaque = r,
        };
    for (int i = 0; i < e->n; i++)
      if (vf->bad & (1u << i))
        bdev_submit (e->rep[i], &r->child[i]);
    return;
  default:
    vf->repaired++;
    snprintf (line, sizeof line, "region %llu+%u repaired from %s",
              (unsigned long long) r->start, len, e->name[vf->source]);
    vf->report (vf->opaque, line);
    verify_region_done (e, r);
  }
}

static void
verify_next (struct engine *e)
{
  struct verify *vf = &e->vf;
  struct eng_req *r;

  if (vf->next >= e->bdev.info.size || e->drain_done) {
    vf->running = false;
    vf->done (vf->opaque, vf->differing, vf->repaired,
              vf->next >= e->bdev.info.size ? 0 : ECANCELED);
    return;
  }
  r = calloc (1, sizeof *r);
  if (!r) {
    vf->running = false;
    vf->done (vf->opaque, vf->differing, vf->repaired, ENOMEM);
    return;
  }
  r->e = e;
  r->kind = REQ_VERIFY;
  r->start = vf->next;
  r->end = MIN (vf->next + ENGINE_VERIFY_REGION, e->bdev.info.size);
  r->internal_done = verify_step;
  vf->next = r->end;
  order_write (e, r);
}

static void
start_verify (struct engine *e, bool repair, int pinned,
              void (*report) (void *, const char *),
              void (*done) (void *, uint64_t, uint64_t, int), void *opaque)
{
  if (e->vf.running) {
    done (opaque, 0, 0, EBUSY);
    return;
  }
  e->vf = (struct verify) { .running = true, .repair = repair,
                            .pinned = pinned, .report = report,
                            .done = done, .opaque = opaque };
  verify_next (e);
}

void
engine_verify (struct bdev *b, bool repair,
               void (*report) (void *, const char *),
               void (*done) (void *, uint64_t, uint64_t, int), void *opaque)
{
  start_verify (b->priv, repair, -1, report, done, opaque);
}

/* Reconcile: after a host died with writes in flight, replicas may
 * differ where those writes went to some and not others.  Make every
 * replica equal to one of them, region by region, reading only from it
 * meanwhile so no client sees two versions.
 */
struct reconcile {
  struct engine *e;
  void (*done) (void *, uint64_t, int);
  void *opaque;
};

static void
reconcile_report (void *opaque, const char *line)
{
  log_debug ("reconcile: %s", line);
}

static void
reconcile_done (void *opaque, uint64_t differing, uint64_t repaired, int err)
{
  struct reconcile *rc = opaque;

  rc->e->read_pin = -1;
  rc->done (rc->opaque, repaired, err);
  free (rc);
}

void
engine_reconcile (struct bdev *b, void (*done) (void *, uint64_t, int),
                  void *opaque)
{
  struct engine *e = b->priv;
  struct reconcile *rc = calloc (1, sizeof *rc);
  int pin = -1;

  for (int i = 0; i < e->n && pin < 0; i++)
    if (e->state[i] == ENGINE_IN_SYNC)
      pin = i;
  if (!rc || pin < 0) {
    free (rc);
    done (opaque, 0, pin < 0 ? EIO : ENOMEM);
    return;
  }
  rc->e = e;
  rc->done = done;
  rc->opaque = opaque;
  e->read_pin = pin;
  start_verify (e, true, pin, reconcile_report, reconcile_done, rc);
}

/* ---- the rest of the table ---------------------------------------- */

static void
engine_drain (struct bdev *b, void (*done) (void *), void *opaque)
{
  struct engine *e = b->priv;

  e->drain_done = done;
  e->drain_opaque = opaque;
  maybe_drained (e);
}

static void
engine_health (struct bdev *b, struct bdev_health *h)
{
  struct engine *e = b->priv;

  h->up = mask_of (e, ENGINE_IN_SYNC) != 0 && !e->broken;
  h->latency_ns = 0;
}

static void
engine_close (struct bdev *b)
{
  struct engine *e = b->priv;

  /* Whatever completes while the replicas close finds nothing to do. */
  e->broken = true;
  for (int i = 0; i < e->n; i++)
    e->state[i] = ENGINE_OUT;
  if (e->loop)
    loop_timer_cancel (e->loop, &e->timer);
  close_failed_replicas (e);
  for (int i = 0; i < e->n; i++) {
    if (e->rep[i])
      bdev_close (e->rep[i]);
    free (e->name[i]);
    free (e->rs[i].map);
    free (e->rs[i].get_buf);
  }
  free (e->unflushed_cur.bits);
  free (e->unflushed_flushing.bits);
  free (e);
}

static const struct bdev_ops engine_ops = {
  .name = "engine",
  .submit = engine_submit,
  .drain = engine_drain,
  .health = engine_health,
  .close = engine_close,
};

struct bdev *
engine_new (struct loop *loop, struct bdev **replicas,
            const char *const *names, const enum engine_rep_state *states,
            int n, const struct bdev_info *info,
            const struct engine_hooks *hooks, const struct engine_config *cfg)
{
  struct engine *e;

  if (n < 1 || n > ENGINE_MAX_REPLICAS) {
    errno = EINVAL;
    return NULL;
  }
  e = calloc (1, sizeof *e);
  if (!e)
    return NULL;
  e->loop = loop;
  e->n = n;
  e->read_pin = -1;
  e->nregions = (info->size + REGION - 1) / REGION;
  e->unflushed_cur.bits = calloc (1, (e->nregions + 7) / 8 + 1);
  e->unflushed_flushing.bits = calloc (1, (e->nregions + 7) / 8 + 1);
  if (!e->unflushed_cur.bits || !e->unflushed_flushing.bits) {
    free (e->unflushed_cur.bits);
    free (e->unflushed_flushing.bits);
    free (e);
    return NULL;
  }
  for (int i = 0; i < n; i++) {
    e->rep[i] = replicas[i];
    e->state[i] = states ? states[i] : ENGINE_IN_SYNC;
    if (!e->rep[i])
      e->state[i] = ENGINE_OUT;
    e->name[i] = strdup (names[i]);
  }
  if (hooks) {
    e->hooks = *hooks;
    e->have_hooks = true;
  }
  e->rate = cfg && cfg->resync_rate ? cfg->resync_rate : DEFAULT_RATE;
  e->reconnect_ms = cfg && cfg->reconnect_ms ? cfg->reconnect_ms
    : DEFAULT_RECONNECT;
  e->bdev.ops = &engine_ops;
  e->bdev.priv = e;
  e->bdev.info = *info;
  if (hooks && loop)
    loop_timer_arm (loop, &e->timer, RESYNC_TICK_MS, tick, e);
  return &e->bdev;
}
