/* engine.c - the engine's frame: building it over its replicas, the
 * replica states and the owner's hooks, losing a replica, drain and
 * close.  The data path is in datapath.c, catch-up in resync.c, verify
 * and reconcile in verify.c (engine_internal.h lists the pieces).
 *
 * Degrade (docs/DESIGN.md rule 2): when a replica fails, the owner records
 * it out of sync in the registry (hooks->mark_out_of_sync) before any
 * write it missed is acknowledged.  From then on every write to the survivors
 * carries BDEV_DIRTY, so they record durably which regions the lost
 * replica misses; a write that was in flight when it failed is marked
 * with BDEV_MARK_DIRTY before its ack, and so are the regions written
 * since the last completed flush, which the lost replica may not have
 * made stable.  With no in-sync replica left, I/O fails with EIO.
 *
 * Fenced (a replica answers EPERM: a newer attachment holds the volume):
 * every request fails with EIO from then on, nothing is recorded, and
 * the owner is told (hooks->fenced) so it can stop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "core/freelist.h"
#include "core/util.h"

void
eng_maybe_drained (struct engine *e)
{
  if (e->drain_done && e->inflight == 0 && e->copies == 0) {
    void (*done) (void *) = e->drain_done;
    e->drain_done = NULL;
    done (e->drain_opaque);
  }
}

/* Client requests come and go at the I/O rate: a finished one is kept
 * for the next instead of going back to the allocator.
 */
struct eng_req *
eng_req_new (struct engine *e)
{
  return freelist_get (&e->req_free, sizeof (struct eng_req));
}

void
eng_req_free (struct engine *e, struct eng_req *r)
{
  freelist_put (&e->req_free, r);
}

/* r is over: run its internal continuation, or ack the client. */
void
eng_finish (struct engine *e, struct eng_req *r)
{
  struct bdev_io *parent = r->parent;
  int err = r->err;

  if (r->internal_done) {
    r->internal_done (r);
    return;
  }
  eng_req_free (e, r);
  e->inflight--;
  parent->done (parent, err);
  eng_maybe_drained (e);
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

/* Take replica i's bdev out of its slot and close it at the end of
 * this loop iteration: closing fails its in-flight requests, which land
 * back in the engine, so not from inside one of its own completions.
 */
void
eng_close_replica (struct engine *e, int i)
{
  e->closing[i] = e->rep[i];
  e->rep[i] = NULL;
  if (e->loop)
    loop_defer (e->loop, &e->close_defer, close_failed, e);
}

void
engine_fence (struct bdev *b)
{
  struct engine *e = b->priv;

  e->fenced = true;
  e->broken = true;             /* writes and flushes fail with EIO */
}

void
eng_replica_failed (struct engine *e, int i, int err)
{
  enum engine_rep_state was = e->state[i];

  if (err == EPERM) {
    /* The replica holds a newer epoch than ours: some other attachment
     * owns the volume now.  Not a replica failure to record: degrading
     * would change the registry on behalf of an attachment that no
     * longer speaks for the volume (docs/DESIGN.md rule 3).
     */
    if (e->fenced)
      return;
    engine_fence (&e->bdev);
    log_error ("replica %s refused this attachment's epoch: a newer "
               "attachment has fenced it; failing I/O", e->name[i]);
    if (e->have_hooks && e->hooks.fenced)
      e->hooks.fenced (e->hooks.opaque, i);
    return;
  }
  if (was == ENGINE_OUT)
    return;
  e->state[i] = ENGINE_OUT;
  e->rs[i].failed = true;
  eng_close_replica (e, i);

  if (e->fenced)
    return;                     /* nothing to record: not ours any more */
  if (!e->have_hooks) {
    /* Nobody to record it: writes it misses must fail. */
    log_error ("replica %s failed (%s)", e->name[i], strerror (err));
    e->broken = true;
    return;
  }
  if (was == ENGINE_IN_SYNC) {
    int r = e->hooks.mark_out_of_sync (e->hooks.opaque, i);
    if (r == EINPROGRESS) {
      /* Nothing that depends on it is acknowledged until it is
       * recorded (docs/DESIGN.md rule 2); engine_out_of_sync_recorded.
       */
      e->records_pending++;
      log_warn ("replica %s failed (%s): recording it out of sync; "
                "holding write acknowledgements until the registry "
                "answers", e->name[i], strerror (err));
      if (mask_of (e, ENGINE_IN_SYNC) == 0)
        log_error ("no replica of the volume is in sync: failing I/O");
      return;
    }
    if (r && e->fenced)
      return;                   /* the owner learnt it was taken over */
    if (r) {
      log_error ("replica %s failed (%s) and the registry cannot record "
                 "it (%s): failing writes", e->name[i], strerror (err),
                 strerror (r));
      e->broken = true;
      return;
    }
    /* Expected, and handled: a warning, not an error. */
    log_warn ("replica %s failed (%s): recorded out of sync; going on "
              "with the others", e->name[i], strerror (err));
    /* Writes since the last flush may not be stable on it. */
    eng_mark_barrier (e, e->unflushed_cur.bits, e->unflushed_flushing.bits);
  }
  else
    log_warn ("replica %s failed again during catch-up (%s)", e->name[i],
              strerror (err));
  if (mask_of (e, ENGINE_IN_SYNC) == 0)
    log_error ("no replica of the volume is in sync: failing I/O");
}

void
engine_out_of_sync_recorded (struct bdev *dev, int i, int err)
{
  struct engine *e = dev->priv;

  if (e->records_pending == 0)
    return;
  e->records_pending--;
  if (err) {
    if (!e->fenced)
      log_error ("replica %s: the registry cannot record it out of sync "
                 "(%s): failing writes", e->name[i], strerror (err));
    e->broken = true;
  }
  else {
    log_warn ("replica %s: recorded out of sync; going on with the others",
              e->name[i]);
    /* Writes since the last flush may not be stable on it. */
    eng_mark_barrier (e, e->unflushed_cur.bits, e->unflushed_flushing.bits);
  }
  eng_release_parked (e);
}

/* Account for one child of a fanned-out request; a failure takes its
 * replica out.  True when it was the last child.
 */
bool
eng_child_done (struct bdev_io *child, int err)
{
  struct eng_req *r = child->opaque;
  int i = child - r->child;

  if (err) {
    r->failed |= 1u << i;
    /* Only the bdev in the slot now can fail the slot: a child that went
     * to one since closed (failed, or replaced by engine_replace) says
     * nothing about the replica there now (docs/DESIGN.md rule 2).
     */
    if (r->to[i] == r->e->rep[i])
      eng_replica_failed (r->e, i, err);
  }
  return --r->pending == 0;
}

/* ---- dirty marks: MARK_DIRTY barriers ------------------------------- */

static void
mark_child_done (struct bdev_io *child, int err)
{
  struct eng_req *r = child->opaque;
  struct engine *e = r->e;

  if (!eng_child_done (child, err))
    return;
  /* A mark counts once every in-sync survivor holds it. */
  if (r->failed & mask_of (e, ENGINE_IN_SYNC))
    r->err = EIO;
  eng_finish (e, r);
}

/* Send MARK_DIRTY for [start, end) to every in-sync replica; r's
 * internal_done runs when all have answered.
 */
void
eng_send_mark (struct engine *e, struct eng_req *r)
{
  uint32_t to = mask_of (e, ENGINE_IN_SYNC);

  r->kind = REQ_MARK;
  r->pending = __builtin_popcount (to);
  if (r->pending == 0) {
    r->err = EIO;
    eng_finish (e, r);
    return;
  }
  for (int i = 0; i < e->n; i++)
    if (to & (1u << i))
      r->child[i] = (struct bdev_io) {
        .op = BDEV_MARK_DIRTY, .offset = r->start,
        .len = (uint32_t) (r->end - r->start),
        .done = mark_child_done, .opaque = r,
      };
  /* A failing child can empty a later slot of to (as in start_write). */
  for (int i = 0; i < e->n; i++)
    r->to[i] = (to & (1u << i)) ? e->rep[i] : NULL;
  for (int i = 0; i < e->n; i++)
    if (to & (1u << i))
      eng_submit_slot (e, i, &r->child[i]);
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
  eng_release_parked (e);
}

/* Mark every region set in map (or map2) dirty on the survivors; write
 * acks wait until it is durable.  Runs of regions go as one request.
 */
void
eng_mark_barrier (struct engine *e, uint8_t *map, uint8_t *map2)
{
  uint64_t r = 0;

  while (r < e->nregions) {
    uint64_t s, len_max = (1ull << 32) - e->region;
    if (!((map[r / 8] | map2[r / 8]) & (1u << (r % 8)))) {
      r++;
      continue;
    }
    for (s = r; r < e->nregions && (r - s) * e->region < len_max &&
           ((map[r / 8] | map2[r / 8]) & (1u << (r % 8))); r++)
      ;
    struct eng_req *m = calloc (1, sizeof *m);
    if (!m) {
      e->broken = true;
      return;
    }
    m->e = e;
    m->start = s * e->region;
    m->end = MIN (r * e->region, e->bdev.info.size);
    m->internal_done = barrier_mark_done;
    e->marks_pending++;
    eng_send_mark (e, m);
  }
}

/* ---- the bdev table ----------------------------------------------- */

static void
engine_drain (struct bdev *b, void (*done) (void *), void *opaque)
{
  struct engine *e = b->priv;

  e->drain_done = done;
  e->drain_opaque = opaque;
  eng_maybe_drained (e);
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
  if (e->loop) {
    loop_timer_cancel (e->loop, &e->timer);
    /* Closed here and now: a close still queued would run on freed e. */
    loop_defer_cancel (e->loop, &e->close_defer);
  }
  close_failed_replicas (e);
  for (int i = 0; i < e->n; i++) {
    struct bdev *rb = e->rep[i];
    /* Out of its slot before it closes: what its close fails finds no
     * bdev there to submit to (every state is ENGINE_OUT already).
     */
    e->rep[i] = NULL;
    if (rb)
      bdev_close (rb);
    free (e->name[i]);
    free (e->rs[i].map);
    free (e->rs[i].get_buf);
  }
  free (e->unflushed_cur.bits);
  free (e->unflushed_flushing.bits);
  freelist_fini (&e->req_free);
  free (e);
}

static const struct bdev_ops engine_ops = {
  .name = "engine",
  .submit = eng_submit,
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
  e->region = rv_dirty_region (info->size);
  e->nregions = (info->size + e->region - 1) / e->region;
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
  e->flush_interval_ms = !cfg || cfg->flush_interval_ms == 0
    ? DEFAULT_FLUSH_INTERVAL
    : cfg->flush_interval_ms == ENGINE_FLUSH_NEVER ? 0 : cfg->flush_interval_ms;
  e->bdev.ops = &engine_ops;
  e->bdev.priv = e;
  e->bdev.info = *info;
  if (hooks && loop)
    loop_timer_arm (loop, &e->timer, RESYNC_TICK_MS, eng_tick, e);
  return &e->bdev;
}
