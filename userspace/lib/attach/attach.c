/* attach.c - "repvol attach": claim the volume in the registry with a
 * new epoch (docs/DESIGN.md rule 3), connect to every replica presenting it,
 * stack engine over replica clients (and the snapshot layers over the
 * engine), and serve the top through a frontend until SIGTERM / SIGINT
 * ("repvol detach" sends SIGTERM).  While it runs it records each
 * replica's state in the registry for the engine.  Its control channel
 * (verify, replace, detach, ...) is attach_control.c; snapshots, the
 * change map and restores attach_snapshot.c; reconnection
 * attach_reconnect.c.
 *
 * Detach order: the frontend stops taking requests and finishes what it
 * has, the engine drains, one last flush makes everything stable on
 * every replica, and only then is the attachment cleared.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "attach/attach_internal.h"
#include "core/fsutil.h"
#include "core/util.h"
#include "replica/client.h"
#include "snapshot/snapshot.h"

bool
attach_owns (const struct reg_volume *v, const struct attach *a)
{
  const struct reg_attachment *at = &v->attachment;

  return at->attached && at->pid == getpid () && at->epoch == a->epoch &&
         strcmp (at->host, a->host) == 0;
}

/* ---- the attachment in the registry ------------------------------------ */

static int
claim (struct reg_volume *v, void *arg)
{
  struct attach *a = arg;
  struct reg_attachment *at = &v->attachment;

  if (at->attached && attach_is_hold (at))
    return EBUSY;               /* delete or epoch --reset holds it */
  a->took_over = false;
  /* A fenced attachment that stopped by itself leaves its epoch as the
   * record's (nobody has attached since): it may have left writes on
   * some replicas and not on others, as a crash does.
   */
  a->unclean = at->attached ||
    (v->fenced.attached && v->fenced.epoch == v->epoch);
  a->lease_expired = false;
  a->fenced_other = false;
  if (at->attached) {
    bool local = strcmp (at->host, a->host) == 0;
    bool stale = local && !attach_alive (at, v->name);
    long left = reg_attachment_lease_left (at, time (NULL));
    if (local && !stale && !a->o->force)
      return EALREADY;          /* a running attach on this host */
    if (a->o->no_takeover && !stale)
      return EBUSY;
    /* Another host's attach with its lease alive is running, as far as
     * anyone can tell: only --force takes the volume from it.
     */
    if (!local && left > 0 && !a->o->force) {
      a->lease_left = left;
      return EADDRINUSE;
    }
    a->lease_expired = !local && left <= 0;
    a->fenced_other = true;
    /* The new epoch fences the former attachment at every replica
     * (docs/DESIGN.md rule 3); remember whom and why, for status.
     */
    v->fenced = *at;
    if (stale)
      snprintf (v->fenced.reason, sizeof v->fenced.reason,
                "replaced: its process was gone");
    else if (a->lease_expired)
      snprintf (v->fenced.reason, sizeof v->fenced.reason,
                "taken over by host %s, pid %d: its lease had expired",
                a->host, (int) getpid ());
    else
      snprintf (v->fenced.reason, sizeof v->fenced.reason,
                "taken over by host %s, pid %d", a->host, (int) getpid ());
    a->took_over = !stale;
  }
  /* Catch-ups start afresh in this attach: figures a former one left
   * are not progress.
   */
  for (int i = 0; i < v->nreplicas; i++)
    v->replicas[i].resync_total = v->replicas[i].resync_done =
      v->replicas[i].resync_rate = 0;
  v->epoch++;
  a->epoch = v->epoch;
  memset (at, 0, sizeof *at);
  at->attached = true;
  snprintf (at->host, sizeof at->host, "%s", a->host);
  at->pid = getpid ();
  if (a->o->job == ATTACH_SERVE)
    snprintf (at->frontend, sizeof at->frontend, "%s %s", a->o->frontend,
              a->o->spec);
  else                          /* no frontend: one job, then detach */
    snprintf (at->frontend, sizeof at->frontend, "%s", a->o->job ==
              ATTACH_SNAPSHOT ? "snapshot" : a->o->job == ATTACH_HEAL
              ? "heal" : "restore");
  at->epoch = v->epoch;
  at->since = time (NULL);
  at->heartbeat = at->since;
  at->lease_ttl = a->lease_ttl;
  return 0;
}

static int
release (struct reg_volume *v, void *arg)
{
  struct attach *a = arg;

  /* Only clear our own claim; a newer attachment is not ours to touch. */
  if (!attach_owns (v, a))
    return ESTALE;
  if (a->fenced) {
    /* Fenced, yet the registry still names us (a replica holds an epoch
     * the registry never gave out): record that in the attachment's
     * place, so status shows it fenced, not attached.
     */
    v->fenced = v->attachment;
    snprintf (v->fenced.reason, sizeof v->fenced.reason, "%s", a->fence_why);
  }
  memset (&v->attachment, 0, sizeof v->attachment);
  return 0;
}

/* ---- detach: frontend stop -> engine drain -> flush -> loop stop -------- */

/* The exit status the process will have once the loop has stopped. */
static int
exit_status (const struct attach *a)
{
  if (a->fenced)
    return ATTACH_EXIT_FENCED;
  if (a->final_err)
    return 1;
  return a->job_err ? 1 : 0;
}

/* The detach is over: tell every "repvol detach" waiting on the control
 * channel how it ended (the lines leave at the end of this iteration,
 * before the loop stops), then stop the loop.
 */
static void
detach_over (struct attach *a)
{
  int rc = exit_status (a);
  char *line = a->detach_answer;
  size_t size = sizeof a->detach_answer;

  if (rc == 0)
    snprintf (line, size, "ok detached");
  else if (a->fenced)
    snprintf (line, size, "error: fenced by a newer attachment (exit %d)", rc);
  else if (a->final_err)
    snprintf (line, size, "error: the final flush failed (%s): not "
              "everything written is stable (exit %d)",
              strerror (a->final_err), rc);
  else
    snprintf (line, size, "error: the job failed (%s) (exit %d)",
              strerror (a->job_err), rc);
  for (int k = 0; k < a->ndetach_req; k++)
    control_finish (a->detach_req[k], line);
  a->ndetach_req = 0;
  loop_stop (a->loop);
}

static void
flushed (struct bdev_io *io, int err)
{
  struct attach *a = io->opaque;

  if (err) {
    log_error ("final flush failed: %s", strerror (err));
    a->final_err = err;
  }
  detach_over (a);
}

static void
drained (void *opaque)
{
  struct attach *a = opaque;

  if (a->fenced) {              /* nothing to make stable: it would fail */
    detach_over (a);
    return;
  }
  a->flush_io = (struct bdev_io) { .done = flushed, .opaque = a };
  bdev_flush (a->cow, &a->flush_io);
}

static void
frontend_stopped (void *opaque)
{
  struct attach *a = opaque;

  bdev_drain (a->cow, drained, a);
}

void
attach_begin_detach (struct attach *a)
{
  if (a->detaching)
    return;
  a->detaching = true;
  if (a->fe)
    frontend_stop (a->fe, frontend_stopped, a);
  else
    frontend_stopped (a);
}

/* Asked to stop, by a signal or "repvol detach" (why). */
void
attach_stop_requested (struct attach *a, const char *why)
{
  if (!a->detaching)
    log_info ("%s: detaching (%s): finishing in-flight I/O", a->o->volume,
              why);
  if (a->o->job != ATTACH_SERVE && !a->detaching)
    a->job_err = EINTR;
  attach_begin_detach (a);
}

static void
on_signal (struct loop *loop, int signo, void *opaque)
{
  char why[32];

  snprintf (why, sizeof why, "signal %d", signo);
  attach_stop_requested (opaque, why);
}

int
attach_check_size (struct replica_admin *ra, uint64_t size,
                   uint32_t block_size, bool may_grow, bool reserve,
                   struct error *err)
{
  const struct rv_welcome *w = &ra->welcome;

  if (w->block_size != block_size)
    return error_set (err, EINVAL, "holds %u-byte blocks, the registry "
                      "says %u", w->block_size, block_size);
  /* Larger: a resize that stopped before the registry recorded it
   * (docs/DESIGN.md 3.10); the volume is the registry's size.
   */
  if (w->size >= size)
    return 0;
  if (!may_grow)
    return error_set (err, EINVAL, "holds %llu bytes, the registry says "
                      "%llu, and it is listed in sync (a shrink that "
                      "stopped half way? run repvol resize again)",
                      (unsigned long long) w->size,
                      (unsigned long long) size);
  /* Out of sync while the volume grew: grow it before its catch-up,
   * which copies what was written in the new range too.
   */
  int r = replica_admin_resize (ra, size, reserve ? RV_F_RESERVE : 0, err);
  if (r < 0) {
    error_prefix (err, "holds %llu bytes, the volume %llu: ",
                  (unsigned long long) w->size, (unsigned long long) size);
    return r;
  }
  ra->welcome.size = size;
  return 0;
}

/* Connect to replica i at our epoch and check it is the volume we
 * expect (a replica out of sync is grown to the volume's size).  NULL
 * with err set otherwise.
 */
struct bdev *
attach_connect_replica (struct attach *a, int i, int timeout_ms,
                        struct error *err)
{
  const struct reg_replica *r = &a->vol.replicas[i];
  struct replica_admin ra;
  struct bdev *b;

  if (replica_client_connect (r->addr, a->vol.name, a->epoch, timeout_ms,
                              &ra, err) < 0)
    return NULL;
  if (r->server[0] && strcmp (ra.welcome.server, r->server) != 0) {
    error_set (err, EINVAL, "answers as server '%s', not '%s' (another "
               "server at that address?)", ra.welcome.server, r->server);
    replica_admin_close (&ra);
    return NULL;
  }
  if (attach_check_size (&ra, a->vol.size, a->vol.block_size,
                         r->state != REG_IN_SYNC, a->vol.reserved, err) < 0) {
    replica_admin_close (&ra);
    return NULL;
  }
  b = replica_client_adopt (a->loop, &ra, r->addr, timeout_ms);
  if (b == NULL)
    error_set (err, ENOMEM, "out of memory");
  return b;
}

/* ---- names, not addresses ---------------------------------------------- */

struct new_addr {
  const struct attach *a;
  const struct reg_replica *rep;
};

static int
record_addr (struct reg_volume *v, void *arg)
{
  const struct new_addr *na = arg;

  if (!attach_owns (v, na->a))
    return ESTALE;
  for (int i = 0; i < v->nreplicas; i++)
    if (strcmp (v->replicas[i].server, na->rep->server) == 0)
      snprintf (v->replicas[i].addr, sizeof v->replicas[i].addr, "%s",
                na->rep->addr);
  return 0;
}

void
attach_record_addr (struct attach *a, int i, const char *addr)
{
  struct reg_replica *rep = &a->vol.replicas[i];
  struct new_addr na = { .a = a, .rep = rep };
  struct error err = { 0 };

  log_info ("%s: replica server %s moved from %s to %s", a->vol.name,
            rep->server, rep->addr, addr);
  snprintf (rep->addr, sizeof rep->addr, "%s", addr);
  if (registry_update (a->reg, a->vol.name, record_addr, &na, &err) < 0 &&
      err.code != ESTALE)
    log_warn ("%s: cannot record server %s's new address: %s", a->vol.name,
              rep->server, error_msg (&err));
}

/* Before connecting: each replica at its server's current address in
 * the pool (a server that came back elsewhere keeps its volumes, the
 * elastic-address case).  Without a pool, or with the registry away,
 * the recorded addresses are all there is.
 */
void
attach_follow_servers (struct attach *a)
{
  struct reg_volume now = a->vol;
  struct error err = { 0 };

  if (registry_resolve_replicas (a->reg, &now, &err) < 0) {
    log_warn ("%s: the server pool cannot be read, using the recorded "
              "addresses: %s", a->vol.name, error_msg (&err));
    return;
  }
  for (int i = 0; i < a->vol.nreplicas; i++)
    if (strcmp (now.replicas[i].addr, a->vol.replicas[i].addr) != 0)
      attach_record_addr (a, i, now.replicas[i].addr);
}

/* Serve only current data (docs/DESIGN.md rule 4): connect every replica;
 * at least one the registry lists in sync must answer, or the operator
 * must name a stale one with --force-stale.  In-sync replicas that do
 * not answer are recorded out of sync; out-of-sync ones that answer are
 * caught up by the engine.
 */
static struct bdev *
open_engine (struct attach *a)
{
  const struct reg_volume *v = &a->vol;
  struct bdev *reps[ENGINE_MAX_REPLICAS] = { NULL };
  const char *names[ENGINE_MAX_REPLICAS];
  enum engine_rep_state states[ENGINE_MAX_REPLICAS];
  struct error errs[ENGINE_MAX_REPLICAS] = { { 0 } };
  struct bdev_info info = {
    .size = v->size, .block_size = v->block_size,
    .max_io = RV_MAX_PAYLOAD, .volatile_cache = 1,
  };
  struct engine_hooks hooks;
  struct engine_config cfg = { .resync_rate = a->o->resync_rate,
                               .flush_interval_ms = a->o->flush_interval_ms };

  attach_engine_hooks (a, &hooks);
  int in_sync = 0, forced = -1;
  struct bdev *dev;

  for (int i = 0; i < v->nreplicas; i++) {
    const struct reg_replica *r = &v->replicas[i];
    bool was_in_sync = r->state == REG_IN_SYNC;

    names[i] = r->addr;
    reps[i] = attach_connect_replica (a, i, was_in_sync ? a->o->timeout_ms
                               : MIN (a->o->timeout_ms, 2000), &errs[i]);
    states[i] = !reps[i] ? ENGINE_OUT
      : was_in_sync ? ENGINE_IN_SYNC : ENGINE_RESYNC;
    in_sync += states[i] == ENGINE_IN_SYNC;
    if (a->o->force_stale && strcmp (a->o->force_stale, r->addr) == 0)
      forced = i;
  }
  /* A replica that refuses our brand-new epoch holds a newer one: some
   * other attachment (or a wrong epoch, see "repvol epoch") owns it.
   */
  for (int i = 0; i < v->nreplicas; i++)
    if (errs[i].code == EPERM) {
      attach_fenced (a, "replica %s: %s", v->replicas[i].addr,
                     error_msg (&errs[i]));
      goto fail;
    }

  if (in_sync == 0) {
    if (forced < 0 || !reps[forced]) {
      log_error ("%s: no replica that is in sync can be reached; refusing "
                 "to serve possibly stale data:", v->name);
      for (int i = 0; i < v->nreplicas; i++) {
        const struct reg_replica *r = &v->replicas[i];
        if (r->state == REG_IN_SYNC)
          log_error ("  %s (in sync): %s", r->addr, error_msg (&errs[i]));
        else
          log_error ("  %s: out of sync since epoch %llu%s", r->addr,
                     (unsigned long long) r->out_of_sync_epoch,
                     reps[i] ? "" : " (and unreachable)");
      }
      if (forced >= 0)
        log_error ("  --force-stale %s: %s", a->o->force_stale,
                   error_msg (&errs[forced]));
      else
        log_error ("  (--force-stale ADDR:PORT serves from an out-of-sync "
                   "replica anyway)");
      goto fail;
    }
    const struct reg_replica *r = &v->replicas[forced];
    char when[64];
    time_t t = r->out_of_sync_since;
    strftime (when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime (&t));
    log_warn ("%s: FORCING stale replica %s: it fell out of sync at epoch "
              "%llu (%s); every write acknowledged after that, by that "
              "attachment or later ones, may be lost", v->name, r->addr,
              (unsigned long long) r->out_of_sync_epoch, when);
    struct state_change c = { .replica = -1, .keep = forced };
    int e = attach_record (a, &c);
    if (e < 0) {
      log_error ("%s: cannot update the registry: %s", v->name, strerror (-e));
      goto fail;
    }
    for (int i = 0; i < v->nreplicas; i++)
      if (reps[i])
        states[i] = i == forced ? ENGINE_IN_SYNC : ENGINE_RESYNC;
  }
  else
    for (int i = 0; i < v->nreplicas; i++)
      if (!reps[i] && v->replicas[i].state == REG_IN_SYNC) {
        struct state_change c = { .replica = i, .state = REG_OUT_OF_SYNC };
        log_warn ("%s: replica %s: %s; recording it out of sync", v->name,
                  v->replicas[i].addr, error_msg (&errs[i]));
        int e = attach_record (a, &c);
        if (e < 0) {
          log_error ("%s: cannot update the registry: %s", v->name,
                     strerror (-e));
          goto fail;
        }
      }

  for (int i = 0; i < v->nreplicas; i++)
    if (states[i] == ENGINE_RESYNC)
      attach_event (a, "resync-started", "replica %s (%s) is behind",
                    v->replicas[i].server, v->replicas[i].addr);
  dev = engine_new (a->loop, reps, names, states, v->nreplicas, &info,
                    &hooks, &cfg);
  if (!dev) {
    log_error ("%s: cannot create the engine: %s", v->name, strerror (errno));
    goto fail;
  }
  bool full_copy = forced >= 0 && in_sync == 0;   /* the others from it */
  for (int i = 0; i < v->nreplicas; i++)
    full_copy |= v->replicas[i].full_copy && v->replicas[i].state != REG_IN_SYNC;
  if (full_copy)
    engine_mark_all_dirty (dev);
  return dev;

 fail:
  for (int i = 0; i < v->nreplicas; i++)
    if (reps[i])
      bdev_close (reps[i]);
  return NULL;
}

static void
reconciled (void *opaque, uint64_t repaired, int err)
{
  struct attach *a = opaque;

  if (err)
    log_error ("%s: reconciling the replicas failed: %s (run repvol verify "
               "--repair)", a->vol.name, strerror (err));
  else
    log_info ("%s: reconciled after an unclean detach: %llu region(s) "
              "repaired", a->vol.name, (unsigned long long) repaired);
}

/* Once the frontend is up: record where it serves ("ublk /dev/ublkb0"). */
static int
record_where (struct reg_volume *v, void *arg)
{
  struct attach *a = arg;

  if (!attach_owns (v, a))
    return ESTALE;
  snprintf (v->attachment.frontend, sizeof v->attachment.frontend, "%s %s",
            a->fe->ops->name, a->fe->where);
  return 0;
}

void
attach_release_stale (const char *vol, const struct reg_attachment *at)
{
  struct error err = { 0 };
  char dev[64];
  int r = frontend_release_stale (at->frontend, vol, at->pid, dev,
                                  sizeof dev, &err);

  if (r == 1)
    log_warn ("%s: disconnected %s, left behind by attach process %d", vol,
              dev, (int) at->pid);
  else if (r < 0)
    log_warn ("%s: %s left behind by attach process %d: %s", vol, dev,
              (int) at->pid, error_msg (&err));
}

int
attach_run (struct registry *reg, const struct attach_opts *o)
{
  static const int sigs[] = { SIGTERM, SIGINT };
  struct attach a = { .reg = reg, .o = o, .rc_pipe = { -1, -1 },
                      .dg_pipe = { -1, -1 } };
  struct reg_volume v;
  struct error rerr = { 0 };
  char size[32];
  int rc = 1, r;

  server_process_init ();
  snprintf (a.host, sizeof a.host, "%s", o->host ? o->host : this_host_name ());
  a.lease_ttl = o->lease_ttl ? o->lease_ttl : ATTACH_LEASE_TTL;

  if (registry_get (reg, o->volume, &v, &rerr) < 0 ||
      reg_volume_check_tls (&v, &rerr) < 0) {
    if (rerr.code == ENOENT)
      log_error ("no such volume: %s", o->volume);
    else
      log_error ("%s", error_msg (&rerr));
    return 1;
  }
  if (registry_update (reg, o->volume, claim, &a, &rerr) < 0) {
    if (rerr.code == EALREADY) {
      registry_get (reg, o->volume, &v, NULL);
      log_error ("volume %s is already attached on this host by a running "
                 "attach (pid %d, %s); detach it first, or --force to take "
                 "it over (that attach is then fenced and exits)", o->volume,
                 (int) v.attachment.pid, v.attachment.frontend);
    }
    else if (rerr.code == EADDRINUSE) {
      registry_get (reg, o->volume, &v, NULL);
      log_error ("volume %s is attached on %s (pid %d), lease alive (%ld s "
                 "left); use --force to fence it", o->volume,
                 v.attachment.host, (int) v.attachment.pid, a.lease_left);
    }
    else if (rerr.code == EBUSY) {
      registry_get (reg, o->volume, &v, NULL);
      log_error ("volume %s is already attached (host %s, pid %d, %s)%s",
                 o->volume, v.attachment.host, (int) v.attachment.pid,
                 v.attachment.frontend, o->no_takeover ?
                 "; without --no-takeover, attach takes it over" : "");
    }
    else
      log_error ("%s: cannot update the registry: %s", o->volume,
                 error_msg (&rerr));
    return 1;
  }
  registry_get (reg, o->volume, &v, NULL);
  a.vol = v;
  attach_follow_servers (&a);
  v = a.vol;
  if (a.fenced_other)
    attach_event (&a, "fenced", "host %s pid %d (epoch %llu) fenced by host "
                  "%s pid %d: %s", v.fenced.host, (int) v.fenced.pid,
                  (unsigned long long) v.fenced.epoch, a.host, (int) getpid (),
                  v.fenced.reason);
  if (a.took_over)
    log_warn ("%s: took over from host %s, pid %d (epoch %llu)%s: that "
              "attachment is fenced and can no longer write",
              o->volume, v.fenced.host, (int) v.fenced.pid,
              (unsigned long long) v.fenced.epoch, a.lease_expired ?
              ", whose lease expired" : "");

  a.loop = loop_new ();
  if (!a.loop || loop_signals (a.loop, sigs, 2, on_signal, &a) == -1) {
    log_error ("cannot set up the event loop: %s", strerror (errno));
    goto out;
  }
  attach_reconnect_init (&a);
  attach_lease_start (&a);      /* and the watch on the registry */
  attach_degrade_init (&a);
  a.dev = open_engine (&a);
  if (!a.dev) {
    if (a.fenced)
      rc = ATTACH_EXIT_FENCED;
    goto out;
  }
  attach_heal_start (&a);
  if (a.unclean) {
    /* The former attach may have died with writes on some replicas
     * and not others: make them equal (reads meanwhile come from one).
     */
    log_info ("%s: the last attachment did not detach cleanly: "
              "reconciling the replicas", v.name);
    engine_reconcile (a.dev, reconciled, &a);
  }
  /* Our own dead predecessor on this host: its kernel device, if it
   * had one, serves nothing now.  Free it (it may be the one we want),
   * unless our frontend may take it over as it is, with the requests
   * it holds (kernel NBD and repvol.ko recovery): then only if it
   * serves elsewhere.
   */
  bool recover_stale = a.unclean && !a.took_over && o->job == ATTACH_SERVE &&
    frontend_may_recover (o->frontend, o->spec, v.fenced.frontend);
  if (a.unclean && !a.took_over && !recover_stale)
    attach_release_stale (v.name, &v.fenced);
  struct bdev *below = a.dev;
  if (v.restore.active) {
    if ((below = attach_hydrate_open (&a)) == NULL)
      goto out;
  }
  else if (o->job == ATTACH_RESTORE) {
    log_info ("%s: nothing to restore: every chunk is in place", v.name);
    if (o->job_line)
      o->job_line (o->job_opaque, "ok restored 0 0");
    rc = 0;
    goto out;
  }
  a.cow = cow_new (a.loop, below, v.chunk_size, attach_cbt_load (&a));
  if (!a.cow) {
    log_error ("%s: out of memory", v.name);
    bdev_close (below);
    a.dev = NULL;
    goto out;
  }
  if (a.cbt_loaded)
    attach_cbt_journal (&a);
  attach_start_control (&a);          /* before clients: verify can find it */
  if (o->job == ATTACH_SERVE) {
    struct bdev *served = attach_metrics_start (&a, a.cow);
    if (!served) {
      log_error ("%s: out of memory", v.name);
      goto out;
    }
    /* kmod recovers a device only if our dead predecessor served it. */
    char spec[300];
    const char *fe_spec = frontend_start_spec (o->frontend, o->spec,
                                               a.unclean && !a.took_over
                                               ? v.fenced.frontend : NULL,
                                               spec, sizeof spec);
    a.fe = frontend_start (o->frontend, a.loop, served, v.name, fe_spec,
                           o->nbd_tls);
    if (!a.fe)
      goto out;
    if (recover_stale) {
      /* "nbd-kernel /dev/nbdN[,dead-timeout=S]", or "... auto" if it
       * died before it was connected.
       */
      const char *old = strchr (v.fenced.frontend, ' ') + 1;
      size_t len = strcspn (old, ",");
      if (strncmp (old, "auto", len) != 0 &&
          (strncmp (old, a.fe->where, len) != 0 || a.fe->where[len]))
        attach_release_stale (v.name, &v.fenced);
    }
    attach_event (&a, "attached", "host %s pid %d, epoch %llu, %s", a.host,
                  (int) getpid (), (unsigned long long) a.epoch, a.fe->where);
    log_info ("%s: attached (%s, %d replica%s, epoch %llu), serving %s",
              v.name, format_size (v.size, size, sizeof size), v.nreplicas,
              v.nreplicas == 1 ? "" : "s", (unsigned long long) a.epoch,
              a.fe->where);
    if (registry_update (reg, o->volume, record_where, &a, &rerr) < 0 &&
        rerr.code != ESTALE && rerr.code != ENOENT)
      log_error ("%s", error_msg (&rerr));
  }
  else if (o->job == ATTACH_SNAPSHOT &&
           (r = attach_snapshot_start (&a, NULL, o->snap_url, o->snap_name,
                                       NULL)) < 0) {
    log_error ("%s: cannot start the snapshot: %s", v.name, strerror (-r));
    goto out;
  }
  if (loop_run (a.loop) == -1)
    log_error ("event loop failed: %s", strerror (errno));
  else if (a.fenced) {
    log_error ("%s: stopped: fenced (exit %d)", v.name, ATTACH_EXIT_FENCED);
    rc = exit_status (&a);
  }
  else if (a.final_err == 0) {
    attach_cbt_save (&a);
    if (o->job == ATTACH_SERVE) {
      log_info ("%s: detached cleanly", v.name);
      attach_event (&a, "detached", "host %s pid %d, cleanly", a.host,
                    (int) getpid ());
    }
    rc = exit_status (&a);
  }

 out:
  a.detaching = true;           /* a stop still deferred finds nothing to do */
  control_stop (a.ctl);
  if (a.loop)
    attach_heal_stop (&a);
  attach_reconnect_fini (&a);
  if (a.loop)
    attach_degrade_fini (&a);
  attach_cbt_fini (&a);         /* before what its writes complete into */
  if (a.fe)
    frontend_free (a.fe);
  attach_metrics_stop (&a);
  if (a.cow)
    bdev_close (a.cow);  /* and what is below it */
  else if (a.dev)
    bdev_close (a.dev);
  attach_lease_stop (&a);
  loop_free (a.loop);
  if (registry_update (reg, o->volume, release, &a, &rerr) < 0 &&
      rerr.code != ESTALE)
    log_error ("%s: cannot clear the attachment in the registry: %s",
               o->volume, error_msg (&rerr));
  return rc;
}
