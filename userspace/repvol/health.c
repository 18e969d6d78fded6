/* health.c - see health.h. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "core/util.h"
#include "health.h"
#include "repvol.h"

const char *
health_state_name (enum health_state s)
{
  switch (s) {
  case HEALTH_HEALTHY: return "healthy";
  case HEALTH_DEGRADED: return "degraded";
  case HEALTH_RESYNCING: return "resyncing";
  case HEALTH_FENCED: return "fenced";
  case HEALTH_RESTORING: return "restoring";
  }
  return "?";
}

/* The pool shows the replica's server down (not: unknown to the pool). */
static bool
server_down (const struct reg_replica *rp, const struct reg_server *pool,
             int n)
{
  for (int i = 0; pool && i < n; i++)
    if (strcmp (pool[i].name, rp->server) == 0)
      return !pool[i].up;
  return false;
}

void
volume_health (const struct reg_volume *v, const struct reg_server *pool,
               int n, struct health *h)
{
  uint64_t total = 0, done = 0;
  bool copying = false;
  char eta[32] = "", dur[24];

  memset (h, 0, sizeof *h);
  h->replicas = v->nreplicas;
  h->percent = -1;
  h->eta_seconds = -1;
  for (int i = 0; i < v->nreplicas; i++) {
    const struct reg_replica *rp = &v->replicas[i];
    if (rp->state == REG_IN_SYNC) {
      h->in_sync += !server_down (rp, pool, n);
      continue;
    }
    /* Progress the attach published; an attach that is gone copies
     * nothing, whatever its last figures said.
     */
    if (rp->resync_total == 0 || !attachment_live (v))
      continue;
    uint64_t d = MIN (rp->resync_done, rp->resync_total);
    copying = true;
    total += rp->resync_total;
    done += d;
    if (rp->resync_rate) {
      int64_t s = (int64_t) ((rp->resync_total - d + rp->resync_rate - 1) /
                             rp->resync_rate);
      h->eta_seconds = MAX (h->eta_seconds, s);
    }
  }

  if (v->fenced.attached && v->fenced.epoch == v->epoch &&
      !v->attachment.attached)
    h->state = HEALTH_FENCED;
  else if (copying) {
    h->state = HEALTH_RESYNCING;
    h->percent = (int) (done * 100 / total);
  }
  else if (h->in_sync < h->replicas)
    h->state = HEALTH_DEGRADED;
  else if (v->restore.active) {
    h->state = HEALTH_RESTORING;
    h->percent = v->restore.chunks_total ?
      (int) (v->restore.chunks_hydrated * 100 / v->restore.chunks_total) : 0;
  }
  else
    h->state = HEALTH_HEALTHY;

  if (h->state == HEALTH_RESYNCING && h->eta_seconds >= 0)
    snprintf (eta, sizeof eta, " eta %s",
              duration_text ((uint64_t) h->eta_seconds, dur, sizeof dur));
  if (h->state == HEALTH_DEGRADED)
    snprintf (h->text, sizeof h->text, "degraded %d/%d", h->in_sync,
              h->replicas);
  else if (h->percent >= 0)
    snprintf (h->text, sizeof h->text, "%s %d%%%s",
              health_state_name (h->state), h->percent, eta);
  else
    snprintf (h->text, sizeof h->text, "%s", health_state_name (h->state));
}

json_object *
health_json (const struct health *h)
{
  json_object *o = json_object_new_object ();

  json_object_object_add (o, "state",
                          json_object_new_string (health_state_name (h->state)));
  json_object_object_add (o, "text", json_object_new_string (h->text));
  json_object_object_add (o, "in_sync", json_object_new_int (h->in_sync));
  json_object_object_add (o, "replicas", json_object_new_int (h->replicas));
  json_object_object_add (o, "percent", h->percent < 0 ? NULL
                          : json_object_new_int (h->percent));
  json_object_object_add (o, "eta_seconds", h->eta_seconds < 0 ? NULL
                          : json_object_new_int64 (h->eta_seconds));
  return o;
}
