/* attach_lease.c - the attach's lease in the registry, and its watch on
 * the registry (docs/DESIGN.md, "Attach leases").
 *
 * Once a second a thread of its own reads the volume's record: if it no
 * longer names this attachment (another attach took the volume over, or
 * it was cleared), the loop is told and fences this attach; an attach
 * that sends no I/O would never hear of a takeover from the replicas.
 * Every third of the lease's TTL the read is an update instead, which
 * refreshes the attachment's heartbeat: another host may take the
 * volume over without --force only once the heartbeat is older than the
 * TTL (the holder is dead, or cut off from the registry, and is fenced
 * by the new epoch at every replica all the same).
 *
 * Both may block for seconds (etcd failing over, or away), and I/O must
 * go on meanwhile, so they run on a thread (core/periodic.h) with a
 * registry handle of its own and touch none of the attach's state: the
 * attachment is known by host and pid, which no other attachment shares
 * while this process lives.  What the thread finds reaches the loop
 * thread through a pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach_internal.h"
#include "core/fsutil.h"
#include "core/periodic.h"
#include "core/util.h"

struct lease_keeper {
  struct registry *reg;
  char volume[REG_NAME_MAX];
  char host[REG_NAME_MAX];
  pid_t pid;
  unsigned ttl;
  time_t last_beat;             /* monotonic seconds of the last refresh */
  bool lost;                    /* told the loop: stop looking */
  bool failing;                 /* the last refresh failed */
  int pipe[2];                  /* thread -> loop: why it was fenced */
  struct loop_watch watch;
  struct periodic *tick;
};

#define WHY_MAX 256

static bool
ours (const struct lease_keeper *k, const struct reg_attachment *at)
{
  return at->attached && at->pid == k->pid && strcmp (at->host, k->host) == 0;
}

static int
beat (struct reg_volume *v, void *arg)
{
  if (!ours (arg, &v->attachment))
    return ESTALE;
  v->attachment.heartbeat = time (NULL);
  return 0;
}

static time_t
mono_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec;
}

/* The record names someone else (or no one): tell the loop, once. */
static void
lost (struct lease_keeper *k, const struct reg_volume *v)
{
  char why[WHY_MAX];
  const struct reg_attachment *at = &v->attachment;

  if (at->attached)
    snprintf (why, sizeof why, "the registry names a newer attachment (host "
              "%s, pid %d, epoch %llu)", at->host, (int) at->pid,
              (unsigned long long) at->epoch);
  else
    snprintf (why, sizeof why, "the registry no longer names this "
              "attachment");
  k->lost = true;
  write_full (k->pipe[1], why, sizeof why);
}

static void
tick (void *arg)
{
  struct lease_keeper *k = arg;
  struct reg_volume v;
  struct error err = { 0 };
  int r;

  if (k->lost)
    return;
  if (mono_s () - k->last_beat >= (time_t) (k->ttl / 3 ? k->ttl / 3 : 1)) {
    r = registry_update (k->reg, k->volume, beat, k, &err);
    if (r == 0) {
      k->last_beat = mono_s ();
      if (k->failing)
        log_info ("%s: the registry answers again; attach lease refreshed",
                  k->volume);
      k->failing = false;
      return;
    }
    if (r != -ESTALE && r != -ENOENT) {
      if (!k->failing)
        log_warn ("%s: cannot refresh the attach lease (I/O goes on; another "
                  "host may take the volume over once it expires): %s",
                  k->volume, error_msg (&err));
      k->failing = true;
      return;
    }
  }
  r = registry_get (k->reg, k->volume, &v, NULL);
  if (r == -ENOENT) {
    memset (&v, 0, sizeof v);
    lost (k, &v);
  }
  else if (r == 0 && !ours (k, &v.attachment))
    lost (k, &v);
}

static void
lease_message (struct loop_watch *w, uint32_t revents)
{
  struct attach *a = w->opaque;
  struct lease_keeper *k = a->lease;
  char why[WHY_MAX];

  if (read (k->pipe[0], why, sizeof why) == (ssize_t) sizeof why &&
      !a->fenced && !a->detaching) {
    why[sizeof why - 1] = '\0';
    attach_fenced (a, "%s", why);
  }
}

void
attach_lease_start (struct attach *a)
{
  struct lease_keeper *k = calloc (1, sizeof *k);
  struct error err = { 0 };

  if (k == NULL) {
    log_warn ("%s: out of memory: no attach lease refresh", a->vol.name);
    return;
  }
  k->pipe[0] = k->pipe[1] = -1;
  if ((k->reg = registry_open_again (a->reg, &err)) == NULL ||
      pipe2 (k->pipe, O_CLOEXEC) == -1) {
    log_warn ("%s: no attach lease refresh (%s): the lease expires and "
              "another host may take the volume over", a->vol.name,
              k->reg ? strerror (errno) : error_msg (&err));
    goto fail;
  }
  set_nonblock (k->pipe[0]);
  snprintf (k->volume, sizeof k->volume, "%s", a->vol.name);
  snprintf (k->host, sizeof k->host, "%s", a->host);
  k->pid = getpid ();
  k->ttl = a->lease_ttl;
  k->last_beat = mono_s ();     /* the claim wrote the first heartbeat */
  a->lease = k;
  loop_add (a->loop, &k->watch, k->pipe[0], EPOLLIN, lease_message, a);
  k->tick = periodic_start (1000, tick, NULL, k, &err);
  if (k->tick == NULL) {
    log_warn ("%s: no attach lease refresh: %s", a->vol.name,
              error_msg (&err));
    loop_del (a->loop, &k->watch);
    a->lease = NULL;
    goto fail;
  }
  return;

 fail:
  if (k->reg)
    registry_close (k->reg);
  if (k->pipe[0] >= 0) {
    close (k->pipe[0]);
    close (k->pipe[1]);
  }
  free (k);
}

void
attach_lease_stop (struct attach *a)
{
  struct lease_keeper *k = a->lease;

  if (k == NULL)
    return;
  periodic_stop (k->tick);
  if (a->loop)
    loop_del (a->loop, &k->watch);
  registry_close (k->reg);
  close (k->pipe[0]);
  close (k->pipe[1]);
  free (k);
  a->lease = NULL;
}
