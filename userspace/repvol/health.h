/* health.h - one word on a volume's state, for list, status and heal.
 *
 * Computed from the registry record and the server pool only, so that
 * list (which asks no server) and status say the same thing.  The
 * states, first match wins (docs/DESIGN.md, "Volume health"):
 *
 *   fenced     the last attachment was fenced and nothing has attached
 *              since (the record's fenced attachment holds its epoch);
 *   resyncing  a replica is out of sync and a live attach is catching
 *              it up: percent of the bytes to copy, and eta;
 *   degraded   N of the M replicas are usable: in sync in the record
 *              and on a server the pool does not show down;
 *   restoring  a restore from a snapshot is not finished: percent of
 *              the chunks written;
 *   healthy    every replica in sync, on a server that is not down.
 */
#ifndef REPVOL_HEALTH_H
#define REPVOL_HEALTH_H

#include <stdint.h>

#include "registry/registry.h"

struct json_object;

enum health_state {
  HEALTH_HEALTHY, HEALTH_DEGRADED, HEALTH_RESYNCING, HEALTH_FENCED,
  HEALTH_RESTORING,
};

struct health {
  enum health_state state;
  int in_sync, replicas;        /* usable replicas, of how many */
  int percent;                  /* resyncing, restoring; else -1 */
  int64_t eta_seconds;          /* resyncing at a known rate; else -1 */
  char text[64];                /* "resyncing 42% eta 12s" */
};

/* v's health; pool (n servers) as registry_server_list gives it, or
 * NULL when it cannot be read (then only the record counts).
 */
void volume_health (const struct reg_volume *v, const struct reg_server *pool,
                    int n, struct health *h);

/* "health": {"state", "text", "in_sync", "replicas", "percent",
 * "eta_seconds"} (percent and eta_seconds null when they do not apply).
 */
struct json_object *health_json (const struct health *h);

const char *health_state_name (enum health_state s);

#endif
