/* attach_lease.c - the attach's lease in the registry (docs/DESIGN.md,
 * "Attach leases"): the attachment's heartbeat, refreshed every third
 * of its TTL for as long as the attach runs.  Another host may take the
 * volume over without --force only once the heartbeat is older than the
 * TTL: the holder is dead, or cut off from the registry (and is fenced
 * by the new epoch at every replica all the same).
 *
 * The refresh may block for seconds (etcd failing over, or away), so it
 * runs on a thread of its own (core/periodic.h) with a registry handle
 * of its own, and touches none of the attach's state: it knows the
 * attachment by host and pid, which no other attachment shares while
 * this process lives.  A refresh that finds another attachment stops
 * refreshing; the loop thread's watch (attach_fence.c) learns of the
 * takeover and fences this attach.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach_internal.h"
#include "core/periodic.h"
#include "core/util.h"

struct lease_keeper {
  struct registry *reg;
  char volume[REG_NAME_MAX];
  char host[REG_NAME_MAX];
  pid_t pid;
  bool lost;                    /* another attachment holds it now */
  bool failing;                 /* the last refresh failed */
  struct periodic *tick;
};

static int
beat (struct reg_volume *v, void *arg)
{
  struct lease_keeper *k = arg;
  struct reg_attachment *at = &v->attachment;

  if (!at->attached || at->pid != k->pid || strcmp (at->host, k->host) != 0)
    return ESTALE;
  at->heartbeat = time (NULL);
  return 0;
}

static void
refresh (void *arg)
{
  struct lease_keeper *k = arg;
  struct error err = { 0 };

  if (k->lost)
    return;
  if (registry_update (k->reg, k->volume, beat, k, &err) == 0) {
    if (k->failing)
      log_info ("%s: attach lease refreshed again", k->volume);
    k->failing = false;
    return;
  }
  if (err.code == ESTALE || err.code == ENOENT) {
    k->lost = true;             /* the watch on the loop thread acts */
    return;
  }
  if (!k->failing)
    log_warn ("%s: cannot refresh the attach lease (I/O goes on; another "
              "host may take the volume over once it expires): %s",
              k->volume, error_msg (&err));
  k->failing = true;
}

void
attach_lease_start (struct attach *a)
{
  struct lease_keeper *k = calloc (1, sizeof *k);
  struct error err = { 0 };

  if (k == NULL || (k->reg = registry_open_again (a->reg, &err)) == NULL) {
    log_warn ("%s: no attach lease refresh (%s): the lease expires and "
              "another host may take the volume over", a->vol.name,
              k ? error_msg (&err) : "out of memory");
    free (k);
    return;
  }
  snprintf (k->volume, sizeof k->volume, "%s", a->vol.name);
  snprintf (k->host, sizeof k->host, "%s", a->host);
  k->pid = getpid ();
  k->tick = periodic_start (a->lease_ttl * 1000 / 3, refresh, NULL, k, &err);
  if (k->tick == NULL) {
    log_warn ("%s: no attach lease refresh: %s", a->vol.name,
              error_msg (&err));
    registry_close (k->reg);
    free (k);
    return;
  }
  a->lease = k;
}

void
attach_lease_stop (struct attach *a)
{
  struct lease_keeper *k = a->lease;

  if (k == NULL)
    return;
  periodic_stop (k->tick);
  registry_close (k->reg);
  free (k);
  a->lease = NULL;
}
