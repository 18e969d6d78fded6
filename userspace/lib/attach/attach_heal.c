/* attach_heal.c - self-healing and moving replicas, for a running attach
 * (docs/DESIGN.md, "Self-healing").
 *
 * Once a second, on the loop, every replica the engine holds out (not
 * connected) is checked: once it has been out longer than --heal-after,
 * counted from the registry's out_of_sync_since when the attach found
 * it out already, else from when this attach lost it, a heal job
 * replaces it by a spare.  "move SERVER" on the control channel (repvol
 * server drain) starts the same job for a replica that is in sync.
 *
 * A replica on a server marked draining (repvol server drain) is moved
 * the same way, one at a time and only while every other replica is in
 * sync, so a drain never costs more than that one copy's redundancy.
 *
 * A job runs on a thread of its own with its own registry handle (the
 * pool listing, the create on the spare and the registry update may
 * each block for seconds while I/O goes on).  It picks the spare by the
 * placement rules (up, not draining, not holding this volume, a zone
 * the volume lacks if one has room, else any), creates the replica
 * there (thin unless the volume is reserved), swaps it into the slot in
 * the record (out of sync, full copy) and lists the old copy as
 * retired, then connects to the spare.  Back on the loop the engine
 * gets the new replica (engine_replace) and copies the whole volume to
 * it; it is recorded in sync when caught up, like any catch-up.
 *
 * Every 2 s a watcher (a thread and a registry handle of its own) reads
 * the pool for draining servers, and deletes retired copies, which are
 * stale, once their servers answer (dropping them from the list);
 * repvol heal sweeps too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach_internal.h"
#include "core/fsutil.h"
#include "core/periodic.h"
#include "core/util.h"
#include "placement/placement.h"
#include "replica/admin.h"
#include "replica/client.h"

#define HEAL_TICK_MS   1000
#define HEAL_RETRY_S   30       /* after a job that failed */
#define WATCH_MS       2000

struct watcher {
  struct registry *reg;
  char volume[REG_NAME_MAX];
  int fd;                       /* to the loop: slots on draining servers */
};

struct attach_heal {
  time_t lost_since[ENGINE_MAX_REPLICAS];   /* 0: not lost */
  time_t next_try[ENGINE_MAX_REPLICAS];
  int job_slot;                 /* the replica a job is replacing, or -1:
                                 * one at a time (two would pick the same
                                 * spare) */
  pthread_t thread;
  int pipe[2];                  /* jobs -> loop */
  struct loop_watch watch;
  struct loop_timer timer;
  struct watcher wt;
  int drain_pipe[2];            /* watcher -> loop */
  struct loop_watch drain_watch;
  struct periodic *watching;
};

struct heal_job {
  int replica;
  bool move;                    /* a drain, not a loss */
  struct registry *reg;         /* the thread's own handle */
  char host[REG_NAME_MAX];
  pid_t pid;
  uint64_t epoch;
  int timeout_ms;
  long out_s;                   /* seconds the replica has been out */
  unsigned heal_after;
  struct reg_volume vol;        /* as the attach knows it */
  struct reg_volume now;        /* as the registry has it (pick_spare) */
  int fd;                       /* the pipe back */
  /* What it did. */
  bool swapped, ok;             /* recorded; connected (ra) */
  struct reg_replica fresh;
  struct replica_admin ra;
  struct error err;
};

/* ---- on the job's thread ------------------------------------------------ */

/* The spare for job's replica, by the placement rules; -ENOSPC with why. */
static int
pick_spare (struct heal_job *job, struct reg_server *out)
{
  const struct reg_volume *v = &job->vol;
  const char *xs[2 * REG_MAX_REPLICAS], *xz[REG_MAX_REPLICAS];
  int nxs = 0, nxz = 0, n, chosen, r;
  struct reg_server *pool;
  char why[256];

  if ((r = registry_server_list (job->reg, &pool, &n, &job->err)) < 0)
    return r;
  /* Not on a server of the volume nor of a stale copy of it, as the
   * record says now (an earlier heal of this attach may have retired
   * one), and not in a zone the other replicas use.
   */
  const struct reg_volume *now = &job->now;
  if (registry_get (job->reg, v->name, &job->now, NULL) < 0)
    now = v;
  for (int k = 0; k < now->nreplicas; k++) {
    if (now->replicas[k].server[0])
      xs[nxs++] = now->replicas[k].server;
    if (k != job->replica && now->replicas[k].zone[0])
      xz[nxz++] = now->replicas[k].zone;
  }
  for (int k = 0; k < now->nretired; k++)
    if (now->retired[k].server[0])
      xs[nxs++] = now->retired[k].server;
  struct placement_req req = {
    .want = 1, .size = v->size, .reserve = v->reserved,
    .allow_same_zone = v->allow_same_zone,
    .exclude_servers = xs, .nexclude_servers = nxs,
    .exclude_zones = xz, .nexclude_zones = nxz,
  };
  r = place_replicas (pool, n, &req, &chosen, why, sizeof why);
  if (r < 0 && !req.allow_same_zone) {
    req.allow_same_zone = true;         /* no new zone has room: any */
    r = place_replicas (pool, n, &req, &chosen, why, sizeof why);
  }
  if (r == 0)
    *out = pool[chosen];
  else
    error_set (&job->err, ENOSPC, "no spare in the pool: %s", why);
  free (pool);
  return r < 0 ? -ENOSPC : 0;
}

/* The registry update: the spare takes the slot, the old copy retires. */
static int
heal_swap (struct reg_volume *v, void *arg)
{
  struct heal_job *job = arg;
  const struct reg_attachment *at = &v->attachment;
  const struct reg_replica *old = &job->vol.replicas[job->replica];
  int i = job->replica;

  if (!at->attached || at->pid != job->pid || strcmp (at->host, job->host))
    return ESTALE;
  if (i >= v->nreplicas || strcmp (v->replicas[i].addr, old->addr) != 0 ||
      strcmp (v->replicas[i].server, old->server) != 0)
    return ECANCELED;           /* replaced meanwhile */
  if (v->nretired == REG_MAX_REPLICAS) {
    memmove (&v->retired[0], &v->retired[1],
             (REG_MAX_REPLICAS - 1) * sizeof v->retired[0]);
    v->nretired--;
  }
  struct reg_retired *rt = &v->retired[v->nretired++];
  snprintf (rt->server, sizeof rt->server, "%s", old->server);
  snprintf (rt->addr, sizeof rt->addr, "%s", old->addr);
  job->fresh.out_of_sync_epoch = v->epoch;
  job->fresh.out_of_sync_since = time (NULL);
  v->replicas[i] = job->fresh;
  return 0;
}

static void
drop_created (struct heal_job *job)
{
  struct replica_admin ra;

  if (replica_admin_open (&ra, job->fresh.addr, job->vol.name,
                          job->timeout_ms, NULL) == 0) {
    replica_admin_delete (&ra, NULL);
    replica_admin_close (&ra);
  }
}

static void *
heal_thread (void *arg)
{
  struct heal_job *job = arg;
  const struct reg_replica *old = &job->vol.replicas[job->replica];
  const char *vol = job->vol.name;
  struct replica_admin ra;
  struct reg_server spare;
  int wfd = job->fd;

  if (pick_spare (job, &spare) < 0)
    goto out;
  if (job->move)
    registry_event (job->reg, "heal-started", vol, spare.name, NULL,
                    "moving replica %s (%s) to %s (%s, zone %s): its server "
                    "is draining", old->server, old->addr, spare.name,
                    spare.addr, spare.zone[0] ? spare.zone : "-");
  else
    registry_event (job->reg, "heal-started", vol, spare.name, NULL,
                    "replica %s (%s) unreachable for %ld s (heal after %u "
                    "s): replacing it with %s (%s, zone %s)", old->server,
                    old->addr, job->out_s, job->heal_after, spare.name,
                    spare.addr, spare.zone[0] ? spare.zone : "-");
  if (replica_admin_open (&ra, spare.addr, vol, job->timeout_ms,
                          &job->err) < 0) {
    error_prefix (&job->err, "spare %s (%s): ", spare.name, spare.addr);
    goto out;
  }
  struct rv_create cr = {
    .size = job->vol.size, .block_size = job->vol.block_size,
    .epoch = job->epoch, .flags = job->vol.reserved ? RV_F_RESERVE : 0,
  };
  int r = replica_admin_create (&ra, &cr, &job->err);
  struct rv_welcome w = ra.welcome;
  replica_admin_close (&ra);
  if (r < 0) {
    error_prefix (&job->err, "spare %s (%s): create failed: ", spare.name,
                  spare.addr);
    goto out;
  }
  struct reg_replica *f = &job->fresh;
  snprintf (f->addr, sizeof f->addr, "%s", spare.addr);
  snprintf (f->server, sizeof f->server, "%s", w.server[0] ? w.server
            : spare.name);
  snprintf (f->zone, sizeof f->zone, "%s", w.zone);
  f->state = REG_OUT_OF_SYNC;
  f->full_copy = true;
  if (registry_update (job->reg, vol, heal_swap, job, &job->err) < 0) {
    drop_created (job);
    goto out;
  }
  job->swapped = true;
  registry_event (job->reg, "replica-replaced", vol, f->server, NULL,
                  "%s (%s) replaces %s (%s): %s; full copy", f->server,
                  f->addr, old->server, old->addr, job->move ? "drain"
                  : "heal");
  job->ok = replica_client_connect (f->addr, vol, job->epoch,
                                    job->timeout_ms, &job->ra,
                                    &job->err) == 0;
 out:
  write_full (wfd, &job, sizeof job);
  return NULL;
}

/* ---- on the loop ---------------------------------------------------------- */

static int
start_job (struct attach *a, int i, bool move)
{
  struct attach_heal *h = a->heal;
  struct heal_job *job = calloc (1, sizeof *job);

  if (job == NULL)
    return -ENOMEM;
  job->replica = i;
  job->move = move;
  snprintf (job->host, sizeof job->host, "%s", a->host);
  job->pid = getpid ();
  job->epoch = a->epoch;
  job->timeout_ms = a->o->timeout_ms;
  job->out_s = h->lost_since[i] ? (long) (time (NULL) - h->lost_since[i]) : 0;
  job->heal_after = a->o->heal_after;
  job->vol = a->vol;
  job->fd = h->pipe[1];
  if ((job->reg = registry_open_again (a->reg, &job->err)) == NULL) {
    log_warn ("%s: cannot heal replica %s: %s", a->vol.name,
              a->vol.replicas[i].addr, error_msg (&job->err));
    free (job);
    return -EIO;
  }
  if (pthread_create (&h->thread, NULL, heal_thread, job) != 0) {
    registry_close (job->reg);
    free (job);
    return -EAGAIN;
  }
  h->job_slot = i;
  log_info ("%s: %s replica %s (%s): looking for a spare", a->vol.name,
            move ? "moving" : "healing", a->vol.replicas[i].server,
            a->vol.replicas[i].addr);
  return 0;
}

/* How many replicas but i are in sync, and are they all.  A heal needs
 * one to copy from (with none it would put an empty copy where the
 * data was); a drain, all (it must not cost more than the one copy).
 */
static int
in_sync_besides (struct attach *a, int i, bool *all)
{
  int n = 0;

  *all = true;
  for (int j = 0; j < a->vol.nreplicas; j++) {
    if (j == i)
      continue;
    if (engine_replica_state (a->dev, j) == ENGINE_IN_SYNC)
      n++;
    else
      *all = false;
  }
  return n;
}

static bool
can_heal (struct attach *a, int i)
{
  bool all;
  return in_sync_besides (a, i, &all) > 0;
}

static bool
can_move (struct attach *a, int i)
{
  bool all;
  return in_sync_besides (a, i, &all) > 0 && all;
}

/* Out longer than heal-after, not waiting out a failed try, and with a
 * replica to copy from.
 */
static bool
heal_due (struct attach *a, int i, time_t now)
{
  struct attach_heal *h = a->heal;

  return a->o->heal_after && h->lost_since[i] &&
    now - h->lost_since[i] >= (time_t) a->o->heal_after &&
    now >= h->next_try[i] && can_heal (a, i);
}

static int
find_server (const struct attach *a, const char *server)
{
  for (int i = 0; i < a->vol.nreplicas; i++)
    if (strcmp (a->vol.replicas[i].server, server) == 0 ||
        strcmp (a->vol.replicas[i].addr, server) == 0)
      return i;
  return -1;
}

/* A line for the log and, in a job (repvol heal, a drain), its output. */
static void
tell (struct attach *a, bool warn, const char *fmt, ...)
{
  char line[480];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (line, sizeof line, fmt, ap);
  va_end (ap);
  if (warn)
    log_warn ("%s: %s", a->vol.name, line);
  else
    log_info ("%s: %s", a->vol.name, line);
  if (a->o->job_line) {
    char jl[560];
    snprintf (jl, sizeof jl, "%s: %s", a->vol.name, line);
    a->o->job_line (a->o->job_opaque, jl);
  }
}

static void job_check (struct attach *a);

static void
heal_done (struct loop_watch *w, uint32_t revents)
{
  struct attach *a = w->opaque;
  struct attach_heal *h = a->heal;
  struct heal_job *job;

  while (read (h->pipe[0], &job, sizeof job) == sizeof job) {
    int i = job->replica;
    const struct reg_replica *old = &job->vol.replicas[i];
    pthread_join (h->thread, NULL);
    h->job_slot = -1;
    registry_close (job->reg);
    if (job->swapped && a->dev && !a->detaching && !a->fenced) {
      struct bdev *b = NULL;
      a->vol.replicas[i] = job->fresh;
      if (job->ok)
        b = replica_client_adopt (a->loop, &job->ra, job->fresh.addr,
                                  a->o->timeout_ms);
      else
        log_warn ("%s: new replica %s: %s (will keep trying)", a->vol.name,
                  job->fresh.addr, error_msg (&job->err));
      engine_replace (a->dev, i, b, job->fresh.addr);
      h->lost_since[i] = 0;
      tell (a, false, "%s (%s) replaces %s (%s); copying the volume to it",
            job->fresh.server, job->fresh.addr, old->server, old->addr);
    }
    else {
      if (job->ok)
        replica_admin_close (&job->ra);
      if (!job->swapped) {
        tell (a, true, "cannot %s replica %s (%s): %s (trying again in %d "
              "s)", job->move ? "move" : "heal", old->server, old->addr,
              error_msg (&job->err), HEAL_RETRY_S);
        h->next_try[i] = time (NULL) + HEAL_RETRY_S;
      }
    }
    free (job);
  }
  job_check (a);
}

/* ATTACH_HEAL (repvol heal, a drain of a detached volume): once no job
 * runs and every replica is in sync, or out and not yet due to heal,
 * the job is done.
 */
static void
job_check (struct attach *a)
{
  struct attach_heal *h = a->heal;
  time_t now = time (NULL);
  char line[300];

  if (a->o->job != ATTACH_HEAL || a->detaching || !a->dev)
    return;
  for (int i = 0; i < a->vol.nreplicas; i++) {
    enum engine_rep_state st = engine_replica_state (a->dev, i);
    if (h->job_slot >= 0 || st == ENGINE_RESYNC ||
        (st == ENGINE_OUT && heal_due (a, i, now)))
      return;                   /* (the next tick starts a due heal) */
  }
  /* A drain's move: the watcher starts it (the server is marked). */
  int m = a->o->move_server ? find_server (a, a->o->move_server) : -1;
  bool others_ok = m >= 0 && can_move (a, m);
  if (m >= 0 && now >= h->next_try[m] && others_ok)
    return;
  for (int i = 0; a->o->job_line && i < a->vol.nreplicas; i++) {
    const struct reg_replica *r = &a->vol.replicas[i];
    if (i == m)
      snprintf (line, sizeof line, "%s: replica %s (%s) not moved: %s",
                a->vol.name, r->server, r->addr, others_ok ? "no spare "
                "could take it" : "another replica is not in sync");
    else if (engine_replica_state (a->dev, i) != ENGINE_OUT)
      snprintf (line, sizeof line, "%s: replica %s (%s) in sync",
                a->vol.name, r->server, r->addr);
    else if (!a->o->heal_after)
      snprintf (line, sizeof line, "%s: replica %s (%s) unreachable; "
                "healing is off", a->vol.name, r->server, r->addr);
    else if (now < h->next_try[i])
      snprintf (line, sizeof line, "%s: replica %s (%s) unreachable; no "
                "spare could take it", a->vol.name, r->server, r->addr);
    else
      snprintf (line, sizeof line, "%s: replica %s (%s) unreachable for %ld "
                "s; heals after %u s", a->vol.name, r->server, r->addr,
                h->lost_since[i] ? (long) (now - h->lost_since[i]) : 0L,
                a->o->heal_after);
    a->o->job_line (a->o->job_opaque, line);
  }
  attach_begin_detach (a);
}

static void
heal_tick (struct loop_timer *t)
{
  struct attach *a = t->opaque;
  struct attach_heal *h = a->heal;
  time_t now = time (NULL);

  if (a->detaching || a->fenced || !a->dev)
    return;
  for (int i = 0; i < a->vol.nreplicas; i++) {
    if (engine_replica_state (a->dev, i) != ENGINE_OUT) {
      h->lost_since[i] = 0;
      continue;
    }
    if (h->lost_since[i] == 0)
      h->lost_since[i] = now;
    if (h->job_slot < 0 && heal_due (a, i, now))
      start_job (a, i, false);
  }
  job_check (a);
  loop_timer_arm (a->loop, &h->timer, HEAL_TICK_MS, heal_tick, a);
}

bool
attach_heal_busy (struct attach *a, int i)
{
  return a->heal && a->heal->job_slot == i;
}

/* ---- the sweep of retired copies --------------------------------------- */

static int
drop_retired (struct reg_volume *v, void *arg)
{
  const struct reg_retired *gone = arg;

  for (int k = 0; k < v->nretired; k++)
    if (strcmp (v->retired[k].addr, gone->addr) == 0 &&
        strcmp (v->retired[k].server, gone->server) == 0) {
      memmove (&v->retired[k], &v->retired[k + 1],
               (v->nretired - k - 1) * sizeof v->retired[0]);
      v->nretired--;
      return 0;
    }
  return ENOENT;
}

typedef void say_fn (void *opaque, const char *line, bool kept);

static void
say_line (say_fn *say, void *opaque, bool kept, const char *fmt, ...)
{
  char line[400];
  va_list ap;

  if (say == NULL)
    return;
  va_start (ap, fmt);
  vsnprintf (line, sizeof line, fmt, ap);
  va_end (ap);
  say (opaque, line, kept);
}

/* The sweep, on the record v as just read. */
static int
sweep (struct registry *reg, const struct reg_volume *vp, say_fn *say,
       void *opaque)
{
  const struct reg_volume v = *vp;
  const char *volume = v.name;
  int deleted = 0;

  for (int k = 0; k < v.nretired; k++) {
    const struct reg_retired *rt = &v.retired[k];
    char addr[REG_ADDR_MAX];
    struct replica_admin ra;
    struct error err = { 0 };
    int up = -ENOENT, r;

    /* A server that holds a replica of the volume again (a replace by
     * hand): that copy is live, not stale.  Forget the entry.
     */
    bool live = false;
    for (int i = 0; i < v.nreplicas; i++)
      live |= strcmp (v.replicas[i].addr, rt->addr) == 0 ||
        (rt->server[0] && strcmp (v.replicas[i].server, rt->server) == 0);
    if (live) {
      registry_update (reg, volume, drop_retired, (void *) rt, NULL);
      continue;
    }
    snprintf (addr, sizeof addr, "%s", rt->addr);
    if (rt->server[0])
      up = registry_server_addr (reg, rt->server, addr, sizeof addr, NULL);
    if (up == 0) {
      say_line (say, opaque, true, "%s: stale copy on %s (%s) kept: the "
                "server is down", volume, rt->server, addr);
      continue;
    }
    r = replica_admin_open (&ra, addr, volume, 5000, &err);
    if (r == 0) {
      r = replica_admin_delete (&ra, &err);
      replica_admin_close (&ra);
    }
    if (r < 0 && r != -ENOENT) {
      say_line (say, opaque, true, "%s: stale copy on %s (%s) kept: %s",
                volume, rt->server, addr, error_msg (&err));
      continue;
    }
    if (registry_update (reg, volume, drop_retired, (void *) rt, NULL) < 0)
      continue;
    deleted++;
    registry_event (reg, "stale-deleted", volume, rt->server, NULL,
                    "stale copy on %s (%s) deleted%s", rt->server, addr,
                    r == -ENOENT ? " (it was gone already)" : "");
    say_line (say, opaque, false, "%s: stale copy on %s (%s) deleted",
              volume, rt->server, addr);
  }
  return deleted;
}

int
attach_sweep_retired (struct registry *reg, const char *volume,
                      say_fn *say, void *opaque)
{
  struct reg_volume v;

  if (registry_get (reg, volume, &v, NULL) < 0)
    return 0;
  return sweep (reg, &v, say, opaque);
}

static void
watch_tick (void *arg)
{
  struct watcher *w = arg;
  struct reg_server *pool;
  struct reg_volume v;
  int n;

  if (registry_get (w->reg, w->volume, &v, NULL) < 0)
    return;
  if (v.nretired)
    sweep (w->reg, &v, NULL, NULL);
  if (registry_server_list (w->reg, &pool, &n, NULL) < 0)
    return;
  for (int i = 0; i < v.nreplicas; i++)
    for (int j = 0; j < n; j++)
      if (pool[j].draining && v.replicas[i].server[0] &&
          strcmp (pool[j].name, v.replicas[i].server) == 0) {
        uint8_t slot = (uint8_t) i;
        write_full (w->fd, &slot, 1);
      }
  free (pool);
}

/* The watcher found replica slots on draining servers: move one, once
 * no job runs and every other replica is in sync.
 */
static void
drain_seen (struct loop_watch *lw, uint32_t revents)
{
  struct attach *a = lw->opaque;
  struct attach_heal *h = a->heal;
  uint8_t slots[64];
  ssize_t n = read (h->drain_pipe[0], slots, sizeof slots);

  if (n <= 0 || a->detaching || a->fenced || !a->dev || h->job_slot >= 0)
    return;
  for (ssize_t k = 0; k < n; k++) {
    int i = slots[k];
    if (i < a->vol.nreplicas && can_move (a, i) &&
        start_job (a, i, true) == 0)
      return;
  }
}

/* ---- start and stop ------------------------------------------------------ */

void
attach_heal_start (struct attach *a)
{
  struct attach_heal *h = calloc (1, sizeof *h);
  struct error err = { 0 };
  time_t now = time (NULL);

  if (h == NULL || pipe2 (h->pipe, O_CLOEXEC) == -1) {
    log_warn ("%s: no self-healing: %s", a->vol.name, strerror (errno));
    free (h);
    return;
  }
  set_nonblock (h->pipe[0]);
  h->job_slot = -1;
  a->heal = h;
  /* A replica out already: its clock started when it fell out, or when
   * the pool last heard of its server, whichever is earlier (a volume
   * nobody attached while its server died was never recorded out).
   */
  struct reg_server *pool = NULL;
  int npool = 0;
  registry_server_list (a->reg, &pool, &npool, NULL);
  for (int i = 0; i < a->vol.nreplicas; i++) {
    const struct reg_replica *r = &a->vol.replicas[i];
    time_t since = 0;
    if (engine_replica_state (a->dev, i) != ENGINE_OUT)
      continue;
    if (r->state == REG_OUT_OF_SYNC && r->out_of_sync_since > 0 &&
        r->out_of_sync_since <= now)
      since = r->out_of_sync_since;
    for (int j = 0; j < npool; j++) {
      time_t gone = pool[j].heartbeat + (time_t) pool[j].ttl;
      if (!pool[j].up && strcmp (pool[j].name, r->server) == 0 &&
          pool[j].heartbeat > 0 && gone <= now && (!since || gone < since))
        since = gone;
    }
    h->lost_since[i] = since;
  }
  free (pool);
  loop_add (a->loop, &h->watch, h->pipe[0], EPOLLIN, heal_done, a);
  snprintf (h->wt.volume, sizeof h->wt.volume, "%s", a->vol.name);
  h->drain_pipe[0] = h->drain_pipe[1] = -1;
  if (pipe2 (h->drain_pipe, O_CLOEXEC | O_NONBLOCK) == -1)
    error_set (&err, errno, "%s", strerror (errno));
  else if ((h->wt.reg = registry_open_again (a->reg, &err)) != NULL) {
    h->wt.fd = h->drain_pipe[1];
    loop_add (a->loop, &h->drain_watch, h->drain_pipe[0], EPOLLIN,
              drain_seen, a);
    h->watching = periodic_start (WATCH_MS, watch_tick, NULL, &h->wt, &err);
  }
  if (h->watching == NULL)
    log_warn ("%s: this attach will not see drains nor delete stale copies "
              "of healed replicas: %s", a->vol.name, error_msg (&err));
  loop_timer_arm (a->loop, &h->timer, HEAL_TICK_MS, heal_tick, a);
}

void
attach_heal_stop (struct attach *a)
{
  struct attach_heal *h = a->heal;
  struct heal_job *job;

  if (h == NULL)
    return;
  periodic_stop (h->watching);
  if (h->wt.reg)
    registry_close (h->wt.reg);
  if (h->drain_pipe[0] >= 0) {
    if (h->watching)
      loop_del (a->loop, &h->drain_watch);
    close (h->drain_pipe[0]);
    close (h->drain_pipe[1]);
  }
  loop_timer_cancel (a->loop, &h->timer);
  loop_del (a->loop, &h->watch);
  if (h->job_slot >= 0)
    pthread_join (h->thread, NULL);
  while (read (h->pipe[0], &job, sizeof job) == sizeof job) {
    if (job->ok)
      replica_admin_close (&job->ra);
    registry_close (job->reg);
    free (job);
  }
  close (h->pipe[0]);
  close (h->pipe[1]);
  free (h);
  a->heal = NULL;
}
