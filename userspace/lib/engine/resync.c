/* resync.c - catching a replica up: reconnecting lost replicas, copying
 * them the regions in the survivors' dirty map, replacing a replica by
 * a new one that gets a full copy.  Regions that read as zeroes are
 * sent as WRITE_ZEROES, so thin replicas stay thin.
 *
 * Resync (docs/DESIGN.md rule 5): every reconnect_ms the engine tries to
 * reach lost replicas.  One that answers is fed every new write at once
 * and copied the regions in the survivors' dirty map, at resync_rate,
 * each copy ordered against client writes like a write of its own; once
 * done it is flushed, recorded in sync, and the maps are cleared.
 * Copies follow the survivor's region size (docs/DESIGN.md 3.4): runs of
 * dirty regions, at most RESYNC_COPY_MAX bytes each.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "core/util.h"
#include "core/wire.h"

static void resync_pump (struct engine *e, int i);

static bool
map_bit (const struct resync *rs, uint64_t r)
{
  return rs->map[r / 8] & (1u << (r % 8));
}

/* ---- copying one region --------------------------------------------- */

static void copy_step (struct eng_req *r);

static void
copy_child_done (struct bdev_io *child, int err)
{
  struct eng_req *r = child->opaque;

  if (err == EPERM)             /* fenced: the source (read) or the target */
    eng_replica_failed (r->e, r->pending == 1 ? r->read_from : (int) r->tried,
                        err);
  if (err)
    r->err = err;
  copy_step (r);
}

static void
copy_finish (struct engine *e, struct eng_req *r, int i)
{
  struct resync *rs = &e->rs[i];

  eng_leave_active (e, r);
  rs->inflight_bytes -= r->end - r->start;
  free (r->buf);
  free (r);
  rs->inflight--;
  e->copies--;
  resync_pump (e, i);
  eng_maybe_drained (e);
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
    /* The target failed its write; unless the slot holds another bdev
     * by now (engine_replace), whose replica did not fail (rule 2).
     */
    if (r->err && e->state[i] == ENGINE_RESYNC && r->pending == 2 &&
        r->to[i] == e->rep[i])
      eng_replica_failed (e, i, r->err);
    rs->failed = rs->failed || r->err;
    copy_finish (e, r, i);
    return;
  }
  switch (r->pending++) {
  case 0: {                     /* read from a survivor */
    int src = eng_pick_reader (e, 0);
    if (src < 0) {
      r->err = EIO;
      copy_step (r);
      return;
    }
    r->read_from = src;
    r->child[0] = (struct bdev_io) { .done = copy_child_done, .opaque = r };
    bdev_read (e->rep[src], &r->child[0], r->start, len, r->buf, 0);
    return;
  }
  case 1:                       /* write to the replica */
    /* state[i] is ENGINE_RESYNC (checked above), which a slot has only
     * while its bdev is in it.
     */
    r->child[1] = (struct bdev_io) { .done = copy_child_done, .opaque = r };
    /* A region that reads as zeroes is written as zeroes, which the
     * store keeps as a hole (a reserved volume keeps its blocks): a
     * thin volume's new or caught-up replica stays as thin as the
     * survivors.  The bytes are the same either way (rule 5).
     */
    r->to[i] = e->rep[i];
    if (mem_is_zero (r->buf, len))
      bdev_zero (e->rep[i], &r->child[1], r->start, len, 0);
    else
      bdev_write (e->rep[i], &r->child[1], r->start, len, r->buf, 0);
    return;
  default:                      /* done */
    rs->done += len;
    copy_finish (e, r, i);
  }
}

/* ---- finishing a catch-up ------------------------------------------- */

static void
resync_done_clear (struct bdev_io *io, int err)
{
  struct eng_req *r = io->opaque;
  if (err == EPERM)             /* a newer attachment: fenced */
    eng_replica_failed (r->e, (int) (io - r->child), EPERM);
  else if (err)
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
      eng_replica_failed (e, i, err);
    return;
  }
  if (e->hooks.mark_in_sync (e->hooks.opaque, i) != 0) {
    log_error ("replica %s caught up but the registry cannot record it; "
               "will retry", e->name[i]);
    rs->have_map = false;
    return;
  }
  e->state[i] = ENGINE_IN_SYNC;
  log_info ("replica %s: caught up (%" PRIu64 " bytes copied in %.3f s), "
            "in sync", e->name[i], rs->done,
            (double) (now_ns () - rs->start_ns) / 1e9);
  e->hooks.progress (e->hooks.opaque, i, rs->done, rs->total, 0);
  rs->shown = false;            /* in sync: the record drops the figures */
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
  c->e = e;
  c->pending = e->n;
  /* Every slot is in sync now, but a clear that fails inside its submit
   * leaves the slots as they are; eng_submit_slot keeps to the rule
   * anyway that no request goes to a slot whose bdev is gone.
   */
  for (int k = 0; k < e->n; k++)
    eng_submit_slot (e, k, &c->child[k]);
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
  while (rs->inflight < RESYNC_DEPTH_MAX &&
         rs->inflight_bytes + rs->region <=
         (uint64_t) RESYNC_DEPTH * MAX (RESYNC_COPY_MAX, rs->region) &&
         e->tokens >= rs->region && !e->drain_done) {
    while (rs->next < rs->nregions && !map_bit (rs, rs->next))
      rs->next++;
    if (rs->next >= rs->nregions)
      break;
    /* A run of dirty regions goes as one copy, as far as the budget and
     * RESYNC_COPY_MAX allow (at least one region).
     */
    uint64_t budget = MIN (MIN (MAX ((uint64_t) RESYNC_COPY_MAX, rs->region),
                                e->tokens),
                           (uint64_t) RESYNC_DEPTH *
                           MAX (RESYNC_COPY_MAX, rs->region) -
                           rs->inflight_bytes);
    uint64_t k = rs->next + 1;
    while (k < rs->nregions && map_bit (rs, k) &&
           (k + 1 - rs->next) * rs->region <= budget)
      k++;
    struct eng_req *r = calloc (1, sizeof *r);
    if (!r || posix_memalign (&r->buf, 4096,
                              (k - rs->next) * rs->region) != 0) {
      free (r);
      return;
    }
    r->e = e;
    r->kind = REQ_COPY;
    r->tried = i;
    r->start = rs->next * rs->region;
    r->end = MIN (k * rs->region, e->bdev.info.size);
    r->internal_done = copy_step;
    rs->next = k;
    rs->inflight++;
    rs->inflight_bytes += r->end - r->start;
    e->copies++;
    e->tokens -= MIN (e->tokens, r->end - r->start);
    eng_order_write (e, r);
  }
  if (rs->next >= rs->nregions && rs->inflight == 0) {
    rs->finishing = true;
    rs->get_io = (struct bdev_io) { .done = resync_flushed, .opaque = e };
    bdev_flush (e->rep[i], &rs->get_io);
  }
}

/* ---- the dirty map -------------------------------------------------- */

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
  /* The survivor's region size, not ours (docs/DESIGN.md 3.4): a power
   * of two a copy can carry, and a map that covers the volume.
   */
  uint32_t region = getle32 (p);
  uint64_t count = getle64 (p + 8), need = 0;
  bool ok = region >= RV_DIRTY_REGION_MIN && region <= (1u << 20) &&
            !(region & (region - 1));
  if (ok) {
    need = (e->bdev.info.size + region - 1) / region;
    ok = count >= need && RV_DIRTY_HDR_SIZE + (need + 7) / 8 <= io->len;
  }
  if (!ok) {
    log_warn ("replica %s: the survivor's dirty map does not fit the volume "
              "(region %u, %" PRIu64 " regions); will retry", e->name[i],
              region, count);
    free (p);
    return;
  }
  free (rs->map);
  rs->map = malloc ((need + 7) / 8 + 1);
  if (!rs->map) {
    free (p);
    return;
  }
  memcpy (rs->map, p + RV_DIRTY_HDR_SIZE, (need + 7) / 8);
  free (p);
  rs->region = region;
  rs->nregions = need;
  rs->next = 0;
  rs->total = 0;
  rs->done = rs->done_last = 0;
  rs->start_ns = now_ns ();
  for (uint64_t r = 0; r < rs->nregions; r++)
    if (map_bit (rs, r))
      rs->total += MIN ((uint64_t) region, e->bdev.info.size - r * region);
  rs->have_map = true;
  log_info ("replica %s: catching up %" PRIu64 " bytes of changed regions",
            e->name[i], rs->total);
  resync_pump (e, i);
}

static void
resync_fetch_map (struct engine *e, int i)
{
  struct resync *rs = &e->rs[i];
  uint64_t size = e->bdev.info.size, region = rv_dirty_region (size);
  size_t len = RV_DIRTY_HDR_SIZE + ((size + region - 1) / region + 7) / 8;
  int src = eng_pick_reader (e, 0);

  /* A full-copy mark still on its way would be missing from the map. */
  if (src < 0 || rs->get_buf || rs->discard || e->marks_pending)
    return;
  rs->get_buf = calloc (1, len);  /* a shorter reply leaves zeroes */
  if (!rs->get_buf)
    return;
  rs->get_io = (struct bdev_io) {
    .op = BDEV_DIRTY_GET, .len = (uint32_t) len, .buf = rs->get_buf,
    .done = resync_got_map, .opaque = e,
  };
  bdev_submit (e->rep[src], &rs->get_io);
}

/* ---- the background flush ------------------------------------------ */

static void
bg_flush_done (struct bdev_io *io, int err)
{
  struct engine *e = io->opaque;

  e->bg_flushing = false;
  if (err)
    log_debug ("background flush failed: %s", strerror (err));
  free (io);
}

/* Writes no flush covers have waited flush_interval_ms: flush them, as
 * a client FLUSH does (the same request, so its completion clears the
 * unflushed generation as a client flush's does, and a replica that
 * fails it degrades, rule 2).  A FLUSH is ordered against nothing: no
 * write waits for it and no ack changes.  What a replica lost later may
 * not have made stable is then at most about flush_interval_ms of
 * writes (rule 5, eng_mark_barrier).
 */
static void
background_flush (struct engine *e)
{
  struct bdev_io *io;

  if (e->flush_interval_ms == 0 || !e->have_hooks || e->bg_flushing ||
      e->drain_done || e->fenced || e->broken ||
      e->unflushed_cur.lo >= e->unflushed_cur.hi ||
      mask_of (e, ENGINE_IN_SYNC) == 0)
    return;
  if (++e->unflushed_ticks * RESYNC_TICK_MS < e->flush_interval_ms)
    return;
  io = calloc (1, sizeof *io);
  if (!io)
    return;
  io->op = BDEV_FLUSH;
  io->done = bg_flush_done;
  io->opaque = e;
  e->bg_flushing = true;
  e->bg_flushes++;
  eng_submit (&e->bdev, io);
}

bool
engine_unflushed (struct bdev *b)
{
  struct engine *e = b->priv;

  return e->unflushed_cur.lo < e->unflushed_cur.hi ||
         e->unflushed_flushing.lo < e->unflushed_flushing.hi;
}

uint64_t
engine_background_flushes (struct bdev *b)
{
  struct engine *e = b->priv;

  return e->bg_flushes;
}

/* ---- the timer: notice, reconnect, pump, report --------------------- */

void
eng_tick (struct loop_timer *t)
{
  struct engine *e = t->opaque;
  bool second = (++e->ticks % (1000 / RESYNC_TICK_MS)) == 0;

  e->tokens = MIN (e->tokens + e->rate * RESYNC_TICK_MS / 1000,
                   MAX (e->rate, (uint64_t) RESYNC_COPY_MAX * RESYNC_DEPTH));
  background_flush (e);
  for (int i = 0; i < e->n; i++) {
    struct resync *rs = &e->rs[i];
    /* A replica whose connection died while nothing was in flight (its
     * server was killed, or stopped answering PINGs) fails now, not at
     * the next write: an idle volume shows its health too, and its
     * catch-up clock starts.
     */
    if (e->state[i] != ENGINE_OUT && e->rep[i] && e->have_hooks &&
        !e->closing[i] && !e->drain_done && !e->fenced) {
      struct bdev_health h = { .up = 1 };
      bdev_health (e->rep[i], &h);
      if (h.fenced)
        eng_replica_failed (e, i, EPERM);
      else if (!h.up)
        eng_replica_failed (e, i, ECONNRESET);
    }
    if (e->state[i] == ENGINE_OUT && !e->closing[i] && !e->drain_done &&
        e->ticks % MAX (e->reconnect_ms / RESYNC_TICK_MS, 1u) == 0 &&
        mask_of (e, ENGINE_IN_SYNC) && !e->broken) {
      struct bdev *b = e->hooks.reconnect (e->hooks.opaque, i);
      if (b)
        engine_replica_back (&e->bdev, i, b);
    }
    /* A catch-up that stopped (the replica failed again) withdraws its
     * figures, or the registry would show it copying still.
     */
    if (rs->shown && e->state[i] == ENGINE_OUT && e->have_hooks &&
        !e->fenced) {
      e->hooks.progress (e->hooks.opaque, i, 0, 0, 0);
      rs->shown = false;
    }
    if (e->state[i] != ENGINE_RESYNC || e->fenced)
      continue;                 /* fenced: no more copies of ours */
    if (!rs->have_map)
      resync_fetch_map (e, i);
    else
      resync_pump (e, i);
    if (second && rs->have_map) {
      e->hooks.progress (e->hooks.opaque, i, rs->done, rs->total,
                         rs->done - rs->done_last);
      rs->done_last = rs->done;
      rs->shown = true;
    }
  }
  loop_timer_arm (e->loop, &e->timer, RESYNC_TICK_MS, eng_tick, e);
}

/* ---- the public calls ----------------------------------------------- */

void
engine_mark_all_dirty (struct bdev *b)
{
  struct engine *e = b->priv;
  size_t len = (e->nregions + 7) / 8 + 1;
  uint8_t *all = malloc (len), *none = calloc (1, len);

  if (all && none) {
    memset (all, 0xff, len);
    eng_mark_barrier (e, all, none);
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

enum engine_rep_state
engine_replica_state (struct bdev *b, int i)
{
  struct engine *e = b->priv;

  return i >= 0 && i < e->n ? e->state[i] : ENGINE_OUT;
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

  if (e->rep[i])
    eng_close_replica (e, i);
  free (e->name[i]);
  e->name[i] = strdup (name);
  resync_reset (&e->rs[i]);
  e->rep[i] = nb;
  e->state[i] = nb ? ENGINE_RESYNC : ENGINE_OUT;
  log_info ("replica slot %d is now %s: copying the whole volume to it",
            i, name);
  engine_mark_all_dirty (b);
}
