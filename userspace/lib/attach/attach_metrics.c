/* attach_metrics.c - what "repvol attach --metrics" counts
 * (docs/DESIGN.md 2.9): the requests the frontend makes of the volume
 * (a counting bdev between the frontend and cow: counts, bytes,
 * errors, latency from arrival to completion), the requests the NBD
 * server refused, and per replica its state, whether it is connected,
 * its lag, its catch-up progress and its reconnections.
 *
 * The replica gauges are copied from the engine by a loop timer every
 * SAMPLE_MS (the engine is the loop's, and the HTTP thread must not
 * touch it); progress comes from the engine's progress hook.  Lag is
 * what the attach can know without asking the servers: while a replica
 * is out of sync, the bytes written, trimmed and zeroed since it left
 * (counted from the engine's degrade hook, which runs before any write
 * the replica missed is acknowledged; overwrites are counted again: an
 * upper bound on its dirty data); while it is caught up, the bytes of
 * dirty regions still to copy; 0 in sync.
 */
#include <stdlib.h>
#include <string.h>

#include "attach/attach_internal.h"
#include "metrics/metrics.h"

#define SAMPLE_MS 500           /* states copied from the engine this often */

static const char *const state_name[] = {
  [ENGINE_IN_SYNC] = "in_sync", [ENGINE_OUT] = "out_of_sync",
  [ENGINE_RESYNC] = "resyncing",
};
#define NSTATES ARRAY_SIZE (state_name)

struct rep_metrics {
  struct metric *state[NSTATES], *up, *lag, *rs_done, *rs_total;
  struct metric *reconnects;
  /* Behind since out_mark: set by the degrade hook (or, for a replica
   * out from the start, the first sample), cleared by the in-sync
   * hook.  Not by samples: the engine may show a replica in sync a
   * moment after its degrade hook ran.
   */
  bool out;
  uint64_t out_mark;            /* bytes changed when it was first seen out */
  uint64_t done, total;         /* the last progress of a catch-up */
};

struct attach_metrics {
  struct metrics_io io;
  struct bdev *layer;
  struct metric *refused;
  struct metric *unflushed, *bg_flushes;
  struct rep_metrics rep[ENGINE_MAX_REPLICAS];
  struct loop_timer timer;
};

/* Bytes the volume has been asked to change, so far. */
static uint64_t
changed_bytes (const struct attach_metrics *am)
{
  return (uint64_t) metric_value (am->io.bytes[MOP_WRITE]) +
         (uint64_t) metric_value (am->io.bytes[MOP_TRIM]) +
         (uint64_t) metric_value (am->io.bytes[MOP_ZERO]);
}

/* Replica i left: what is changed from now on is its lag. */
static void
mark_out (struct attach_metrics *am, int i)
{
  struct rep_metrics *r = &am->rep[i];

  r->out = true;
  r->out_mark = changed_bytes (am);
  r->done = r->total = 0;         /* the next catch-up's, once it reports */
}

static void
sample_replica (struct attach *a, int i)
{
  struct attach_metrics *am = a->metrics;
  struct rep_metrics *r = &am->rep[i];
  enum engine_rep_state st = engine_replica_state (a->dev, i);
  uint64_t lag = 0;

  for (size_t s = 0; s < NSTATES; s++)
    metric_set (r->state[s], s == st);
  metric_set (r->up, st != ENGINE_OUT);
  if (st != ENGINE_IN_SYNC && !r->out)
    mark_out (am, i);             /* out from the start: no degrade hook */
  if (st == ENGINE_RESYNC && r->total)
    lag = r->total - MIN (r->done, r->total);
  else if (st != ENGINE_IN_SYNC)
    lag = changed_bytes (am) - r->out_mark;
  metric_set (r->lag, (int64_t) lag);
}

static void
sample (struct loop_timer *t)
{
  struct attach *a = t->opaque;

  for (int i = 0; i < a->vol.nreplicas; i++)
    sample_replica (a, i);
  metric_set (a->metrics->refused, (int64_t) frontend_refused_count ());
  metric_set (a->metrics->unflushed, engine_unflushed (a->dev));
  metric_set (a->metrics->bg_flushes,
              (int64_t) engine_background_flushes (a->dev));
  loop_timer_arm (a->loop, &a->metrics->timer, SAMPLE_MS, sample, a);
}

static void
add_replica (struct attach *a, struct metrics *m, int i)
{
  struct rep_metrics *r = &a->metrics->rep[i];
  const struct reg_replica *rr = &a->vol.replicas[i];
  const char *vol = a->vol.name, *rep = rr->server[0] ? rr->server : rr->addr;

  for (size_t s = 0; s < NSTATES; s++)
    r->state[s] = metrics_add (m, METRIC_GAUGE, "repvol_attach_replica_state",
                               "1 for the replica's state now, 0 for the "
                               "others.", "volume", vol, "replica", rep,
                               "state", state_name[s], NULL);
  r->up = metrics_add (m, METRIC_GAUGE, "repvol_attach_replica_up",
                       "1 while the replica is connected.", "volume", vol,
                       "replica", rep, NULL);
  r->lag = metrics_add (m, METRIC_GAUGE, "repvol_attach_replica_lag_bytes",
                        "Bytes the replica is behind: changed since it left "
                        "(out of sync), left to copy (resyncing), 0 in sync.",
                        "volume", vol, "replica", rep, NULL);
  r->rs_done = metrics_add (m, METRIC_GAUGE,
                            "repvol_attach_replica_resync_done_bytes",
                            "Bytes copied by the replica's current or last "
                            "catch-up.", "volume", vol, "replica", rep, NULL);
  r->rs_total = metrics_add (m, METRIC_GAUGE,
                             "repvol_attach_replica_resync_total_bytes",
                             "Bytes the replica's current or last catch-up "
                             "has to copy.", "volume", vol, "replica", rep,
                             NULL);
  r->reconnects = metrics_add (m, METRIC_COUNTER,
                               "repvol_attach_replica_reconnects_total",
                               "Times a lost replica was reached again.",
                               "volume", vol, "replica", rep, NULL);
}

struct bdev *
attach_metrics_start (struct attach *a, struct bdev *below)
{
  struct metrics *m = a->o->metrics;
  struct attach_metrics *am;

  if (!m)
    return below;
  if ((am = calloc (1, sizeof *am)) == NULL)
    return NULL;
  a->metrics = am;
  metrics_io_init (&am->io, m, "repvol_attach", "volume", a->vol.name);
  am->refused = metrics_add (m, METRIC_COUNTER, "repvol_attach_refused_total",
                             "Client requests the NBD server refused (out of "
                             "range, misaligned, bad flags).", "volume",
                             a->vol.name, NULL);
  am->unflushed = metrics_add (m, METRIC_GAUGE, "repvol_attach_unflushed",
                               "1 while some write is not covered by a "
                               "completed flush yet (a replica lost now "
                               "gets those regions copied), else 0.",
                               "volume", a->vol.name, NULL);
  am->bg_flushes = metrics_add (m, METRIC_COUNTER,
                                "repvol_attach_background_flushes_total",
                                "Flushes the attach issued itself for writes "
                                "no client flush covered (--flush-interval).",
                                "volume", a->vol.name, NULL);
  for (int i = 0; i < a->vol.nreplicas; i++)
    add_replica (a, m, i);
  if ((am->layer = metrics_bdev_new (below, &am->io)) == NULL) {
    free (am);
    a->metrics = NULL;
    return NULL;
  }
  loop_timer_arm (a->loop, &am->timer, 0, sample, a);
  return am->layer;
}

void
attach_metrics_progress (struct attach *a, int i, uint64_t done,
                         uint64_t total)
{
  struct attach_metrics *am = a->metrics;

  if (!am)
    return;
  am->rep[i].done = done;
  am->rep[i].total = total;
  metric_set (am->rep[i].rs_done, (int64_t) done);
  metric_set (am->rep[i].rs_total, (int64_t) total);
}

/* Every degrade, even one the sampler never saw end. */
void
attach_metrics_out (struct attach *a, int i)
{
  if (a->metrics)
    mark_out (a->metrics, i);
}

void
attach_metrics_in_sync (struct attach *a, int i)
{
  if (a->metrics)
    a->metrics->rep[i].out = false;
}

void
attach_metrics_reconnected (struct attach *a, int i)
{
  if (a->metrics)
    metric_inc (a->metrics->rep[i].reconnects);
}

void
attach_metrics_stop (struct attach *a)
{
  struct attach_metrics *am = a->metrics;

  if (!am)
    return;
  loop_timer_cancel (a->loop, &am->timer);
  bdev_close (am->layer);
  free (am);
  a->metrics = NULL;
}
