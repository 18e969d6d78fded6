/* attach.c - "repvol attach": claim the volume in the registry with a
 * new epoch (DESIGN.md rule 3), connect to every replica presenting it,
 * stack engine over replica clients, and serve the engine through a
 * frontend until SIGTERM / SIGINT ("repvol detach" sends SIGTERM).
 *
 * Detach order: the frontend stops taking requests and finishes what it
 * has, the engine drains, one last flush makes everything stable on
 * every replica, and only then is the attachment cleared.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "attach/attach.h"
#include "attach/control.h"
#include "engine/engine.h"
#include "frontend/frontend.h"
#include "core/loop.h"
#include "replica/client.h"
#include "core/util.h"
#include "core/fsutil.h"
#include "snapshot/catalog.h"
#include "snapshot/snapshot.h"

struct attach {
  struct loop *loop;
  struct registry *reg;
  const struct attach_opts *o;
  struct bdev *dev;             /* the engine */
  struct bdev *cow;             /* what is served: cow over [hydrate over] dev */
  struct bdev *hydrate;         /* NULL unless restoring */
  struct frontend *fe;
  struct control_req *snap_req; /* the control request of a snapshot */
  uint64_t epoch;
  char host[REG_NAME_MAX];
  bool detaching;
  bool took_over;
  bool unclean;                 /* the last attachment never detached */
  bool cbt_loaded;              /* the change map is complete */
  int final_err;                /* the detach failed */
  int job_err;                  /* the job (snapshot, restore) failed */
  struct reg_volume vol;        /* as claimed */
  struct control *ctl;
  char ctl_path[108];
  /* Reconnection attempts run on their own threads (a handshake with a
   * hung server blocks for the timeout); results come back on a pipe.
   */
  int rc_pipe[2];
  struct loop_watch rc_watch;
  pthread_t rc_thread[ENGINE_MAX_REPLICAS];
  bool rc_running[ENGINE_MAX_REPLICAS];
  struct bdev_io flush_io;
};

/* registry_update callbacks */

static int
claim (struct reg_volume *v, void *arg)
{
  struct attach *a = arg;
  struct reg_attachment *at = &v->attachment;

  if (at->attached && strcmp (at->frontend, "deleting") == 0)
    return EBUSY;               /* "repvol delete" holds it */
  a->took_over = false;
  a->unclean = at->attached;
  if (at->attached) {
    bool stale = strcmp (at->host, a->host) == 0 && !pid_alive (at->pid);
    if (a->o->no_takeover && !stale)
      return EBUSY;
    /* The new epoch fences the former attachment at every replica
     * (DESIGN.md rule 3); remember whom, for status.
     */
    v->fenced = *at;
    a->took_over = !stale;
  }
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
              ATTACH_SNAPSHOT ? "snapshot" : "restore");
  at->epoch = v->epoch;
  at->since = time (NULL);
  return 0;
}

static int
release (struct reg_volume *v, void *arg)
{
  struct attach *a = arg;
  struct reg_attachment *at = &v->attachment;

  /* Only clear our own claim; a newer attachment is not ours to touch. */
  if (!at->attached || at->pid != getpid () || at->epoch != a->epoch ||
      strcmp (at->host, a->host) != 0)
    return ESTALE;
  memset (at, 0, sizeof *at);
  return 0;
}

/* detach sequence: frontend stop -> engine drain -> flush -> loop stop */

static void
flushed (struct bdev_io *io, int err)
{
  struct attach *a = io->opaque;

  if (err) {
    log_error ("final flush failed: %s", strerror (err));
    a->final_err = err;
  }
  loop_stop (a->loop);
}

static void
drained (void *opaque)
{
  struct attach *a = opaque;

  a->flush_io = (struct bdev_io) { .op = BDEV_FLUSH, .done = flushed,
                                   .opaque = a };
  bdev_submit (a->cow, &a->flush_io);
}

static void
frontend_stopped (void *opaque)
{
  struct attach *a = opaque;

  bdev_drain (a->cow, drained, a);
}

static void
begin_detach (struct attach *a)
{
  if (a->detaching)
    return;
  a->detaching = true;
  if (a->fe)
    frontend_stop (a->fe, frontend_stopped, a);
  else
    frontend_stopped (a);
}

static void
on_signal (struct loop *loop, int signo, void *opaque)
{
  struct attach *a = opaque;

  if (!a->detaching)
    log_info ("%s: detaching (signal %d): finishing in-flight I/O",
              a->o->volume, signo);
  if (a->o->job != ATTACH_SERVE && !a->detaching)
    a->job_err = EINTR;
  begin_detach (a);
}

/* ---- replica states in the registry (the engine's hooks) ------------ */

struct state_change {
  int replica;                  /* -1: every replica but keep */
  int keep;                     /* with replica -1: the one left in sync */
  enum reg_replica_state state;
  uint64_t epoch;               /* the caller's; the new one after a bump */
  uint64_t done, total, rate;   /* progress only (state unchanged) */
  bool progress;
};

static void
set_state (struct reg_replica *r, enum reg_replica_state st, uint64_t epoch)
{
  if (st == REG_OUT_OF_SYNC && r->state != REG_OUT_OF_SYNC) {
    r->out_of_sync_epoch = epoch;
    r->out_of_sync_since = time (NULL);
  }
  if (st == REG_IN_SYNC) {
    r->out_of_sync_epoch = 0;
    r->out_of_sync_since = 0;
    r->resync_total = r->resync_done = r->resync_rate = 0;
    r->full_copy = false;
  }
  r->state = st;
}

static int
change_state (struct reg_volume *v, void *arg)
{
  struct state_change *c = arg;

  /* Only the current attachment speaks for the volume: a fenced one
   * (a zombie host whose writes the replicas now refuse) must not mark
   * replicas out of sync.  Its engine then fails its writes.
   */
  if (!v->attachment.attached || v->attachment.epoch != c->epoch)
    return ESTALE;
  if (c->replica < 0) {
    for (int i = 0; i < v->nreplicas; i++)
      set_state (&v->replicas[i], i == c->keep ? REG_IN_SYNC : REG_OUT_OF_SYNC,
                 c->epoch);
    return 0;
  }
  if (c->replica >= v->nreplicas)
    return EINVAL;
  if (c->progress) {
    struct reg_replica *r = &v->replicas[c->replica];
    r->resync_total = c->total;
    r->resync_done = c->done;
    r->resync_rate = c->rate;
    return 0;
  }
  if (c->state == REG_OUT_OF_SYNC &&
      v->replicas[c->replica].state != REG_OUT_OF_SYNC) {
    /* Degrading opens a new epoch (DESIGN.md rule 2): the attachment
     * moves to it, and the replica is recorded as behind from then on.
     */
    v->epoch++;
    v->attachment.epoch = v->epoch;
    c->epoch = v->epoch;
  }
  set_state (&v->replicas[c->replica], c->state, c->epoch);
  return 0;
}

static int
record (struct attach *a, struct state_change *c)
{
  struct error rerr = { 0 };

  c->epoch = a->epoch;
  if (registry_update (a->reg, a->o->volume, change_state, c, &rerr) < 0) {
    if (rerr.code != ESTALE && rerr.code != ENOENT)
      log_error ("%s", error_msg (&rerr));
    return rerr.code;
  }
  a->epoch = c->epoch;          /* moved if the update opened a new epoch */
  return 0;
}

static int
hook_out_of_sync (void *opaque, int i)
{
  struct state_change c = { .replica = i, .state = REG_OUT_OF_SYNC };
  return record (opaque, &c);
}

static int
hook_in_sync (void *opaque, int i)
{
  struct state_change c = { .replica = i, .state = REG_IN_SYNC };
  return record (opaque, &c);
}

static void
hook_progress (void *opaque, int i, uint64_t done, uint64_t total,
               uint64_t rate)
{
  struct state_change c = { .replica = i, .progress = true, .done = done,
                            .total = total, .rate = rate };
  record (opaque, &c);
}

/* Connect to replica i at our epoch and check it is the volume we
 * expect.  NULL with err set otherwise.
 */
static struct bdev *
connect_replica (struct attach *a, int i, int timeout_ms, char *err,
                 size_t errlen)
{
  const struct reg_replica *r = &a->vol.replicas[i];
  struct rv_welcome w;
  struct bdev *b;

  b = replica_client_open (a->loop, r->addr, a->vol.name, a->epoch,
                           timeout_ms, &w, err, errlen);
  if (b && (w.size != a->vol.size || w.block_size != a->vol.block_size)) {
    snprintf (err, errlen, "holds %llu bytes in %u-byte blocks, the registry "
              "says %llu in %u", (unsigned long long) w.size, w.block_size,
              (unsigned long long) a->vol.size, a->vol.block_size);
    bdev_close (b);
    b = NULL;
  }
  return b;
}

struct reconnect_job {
  int replica;
  char addr[REG_ADDR_MAX];
  char volume[REG_NAME_MAX];
  uint64_t epoch;
  int timeout_ms;
  int fd, ok;
  struct rv_welcome w;
  char err[256];
};

static void *
reconnect_thread (void *arg)
{
  struct reconnect_job *job = arg;
  int wfd = job->fd;            /* the pipe, passed in fd */

  job->ok = replica_client_connect (job->addr, job->volume, job->epoch,
                                    job->timeout_ms, &job->fd, &job->w,
                                    job->err, sizeof job->err) == 0;
  write_full (wfd, &job, sizeof job);
  return NULL;
}

/* A reconnection attempt finished: hand a good replica to the engine. */
static void
reconnect_done (struct loop_watch *w, uint32_t revents)
{
  struct attach *a = w->opaque;
  struct reconnect_job *job;

  while (read (a->rc_pipe[0], &job, sizeof job) == sizeof job) {
    int i = job->replica;
    pthread_join (a->rc_thread[i], NULL);
    a->rc_running[i] = false;
    if (job->ok && (job->w.size != a->vol.size ||
                    job->w.block_size != a->vol.block_size ||
                    strcmp (job->addr, a->vol.replicas[i].addr) != 0)) {
      log_warn ("%s: replica %s answered but is not the replica expected",
                a->vol.name, job->addr);
      close (job->fd);
    }
    else if (job->ok) {
      struct bdev *b = replica_client_adopt (a->loop, job->fd, job->addr,
                                             &job->w, a->o->timeout_ms);
      if (b)
        engine_replica_back (a->dev, i, b);
    }
    else
      log_debug ("%s: replica %s still unreachable: %s", a->vol.name,
                 job->addr, job->err);
    free (job);
  }
}

static struct bdev *
hook_reconnect (void *opaque, int i)
{
  struct attach *a = opaque;
  struct reconnect_job *job;

  if (a->rc_running[i] || a->rc_pipe[1] < 0 ||
      (job = calloc (1, sizeof *job)) == NULL)
    return NULL;
  job->replica = i;
  snprintf (job->addr, sizeof job->addr, "%s", a->vol.replicas[i].addr);
  snprintf (job->volume, sizeof job->volume, "%s", a->vol.name);
  job->epoch = a->epoch;
  job->timeout_ms = a->o->timeout_ms;
  job->fd = a->rc_pipe[1];
  if (pthread_create (&a->rc_thread[i], NULL, reconnect_thread, job) != 0) {
    free (job);
    return NULL;
  }
  a->rc_running[i] = true;
  return NULL;                  /* the answer comes through reconnect_done */
}

static void
reconnect_setup (struct attach *a)
{
  if (pipe2 (a->rc_pipe, O_CLOEXEC) == -1) {
    a->rc_pipe[0] = a->rc_pipe[1] = -1;
    return;
  }
  set_nonblock (a->rc_pipe[0]);
  loop_add (a->loop, &a->rc_watch, a->rc_pipe[0], EPOLLIN, reconnect_done, a);
}

/* Wait for attempts still running (each bounded by the timeout). */
static void
reconnect_teardown (struct attach *a)
{
  struct reconnect_job *job;

  for (int i = 0; i < ENGINE_MAX_REPLICAS; i++)
    if (a->rc_running[i])
      pthread_join (a->rc_thread[i], NULL);
  if (a->rc_pipe[0] < 0)
    return;
  while (read (a->rc_pipe[0], &job, sizeof job) == sizeof job) {
    if (job->ok)
      close (job->fd);
    free (job);
  }
  close (a->rc_pipe[0]);
  close (a->rc_pipe[1]);
}

/* Serve only current data (DESIGN.md rule 4): connect every replica;
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
  char errs[ENGINE_MAX_REPLICAS][256];
  struct bdev_info info = {
    .size = v->size, .block_size = v->block_size,
    .max_io = RV_MAX_PAYLOAD, .volatile_cache = 1,
  };
  struct engine_hooks hooks = {
    .mark_out_of_sync = hook_out_of_sync, .mark_in_sync = hook_in_sync,
    .reconnect = hook_reconnect, .progress = hook_progress, .opaque = a,
  };
  struct engine_config cfg = { .resync_rate = a->o->resync_rate };
  int in_sync = 0, forced = -1;
  struct bdev *dev;

  for (int i = 0; i < v->nreplicas; i++) {
    const struct reg_replica *r = &v->replicas[i];
    bool was_in_sync = r->state == REG_IN_SYNC;

    names[i] = r->addr;
    reps[i] = connect_replica (a, i, was_in_sync ? a->o->timeout_ms
                               : MIN (a->o->timeout_ms, 2000),
                               errs[i], sizeof errs[i]);
    states[i] = !reps[i] ? ENGINE_OUT
      : was_in_sync ? ENGINE_IN_SYNC : ENGINE_RESYNC;
    in_sync += states[i] == ENGINE_IN_SYNC;
    if (a->o->force_stale && strcmp (a->o->force_stale, r->addr) == 0)
      forced = i;
  }

  if (in_sync == 0) {
    if (forced < 0 || !reps[forced]) {
      log_error ("%s: no replica that is in sync can be reached; refusing "
                 "to serve possibly stale data:", v->name);
      for (int i = 0; i < v->nreplicas; i++) {
        const struct reg_replica *r = &v->replicas[i];
        if (r->state == REG_IN_SYNC)
          log_error ("  %s (in sync): %s", r->addr, errs[i]);
        else
          log_error ("  %s: out of sync since epoch %llu%s", r->addr,
                     (unsigned long long) r->out_of_sync_epoch,
                     reps[i] ? "" : " (and unreachable)");
      }
      if (forced >= 0)
        log_error ("  --force-stale %s: %s", a->o->force_stale, errs[forced]);
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
    if (record (a, &c) != 0) {
      log_error ("%s: cannot update the registry", v->name);
      goto fail;
    }
    for (int i = 0; i < v->nreplicas; i++)
      if (reps[i])
        states[i] = i == forced ? ENGINE_IN_SYNC : ENGINE_RESYNC;
  }
  else
    for (int i = 0; i < v->nreplicas; i++)
      if (!reps[i] && v->replicas[i].state == REG_IN_SYNC) {
        log_warn ("%s: replica %s: %s; recording it out of sync", v->name,
                  v->replicas[i].addr, errs[i]);
        if (hook_out_of_sync (a, i) != 0) {
          log_error ("%s: cannot update the registry", v->name);
          goto fail;
        }
      }

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

/* ---- the control channel: verify and replace on the live volume ------- */

static void
verify_report (void *opaque, const char *line)
{
  control_reply (opaque, line);
}

static void
verify_done (void *opaque, uint64_t differing, uint64_t repaired, int err)
{
  char line[160];

  if (err)
    snprintf (line, sizeof line, "error: verify stopped: %s (%llu differing "
              "regions so far)", strerror (err), (unsigned long long) differing);
  else if (differing > repaired)
    snprintf (line, sizeof line, "error: %llu region(s) of %u bytes differ "
              "(repvol verify --repair copies them from the majority)",
              (unsigned long long) differing, ENGINE_VERIFY_REGION);
  else
    snprintf (line, sizeof line, "ok: replicas agree (%llu region(s) of %u "
              "bytes repaired)", (unsigned long long) repaired,
              ENGINE_VERIFY_REGION);
  log_info ("verify: %s", line);
  control_finish (opaque, line);
}

static int
find_replica (const struct reg_volume *v, const char *addr)
{
  for (int i = 0; i < v->nreplicas; i++)
    if (strcmp (v->replicas[i].addr, addr) == 0)
      return i;
  return -1;
}

/* "replace OLD NEW": the CLI has created NEW's replica and rewritten the
 * registry entry; take NEW into OLD's slot and copy everything to it.
 */
static void
control_replace (struct attach *a, struct control_req *req, const char *old,
                 const char *new)
{
  struct reg_volume v;
  struct error rerr = { 0 };
  char err[256], line[400];
  int i = find_replica (&a->vol, old);
  struct bdev *b;

  if (i < 0 || registry_get (a->reg, a->vol.name, &v, &rerr) < 0 ||
      strcmp (v.replicas[i].addr, new) != 0) {
    if (rerr.code && rerr.code != ENOENT)
      log_error ("%s", error_msg (&rerr));
    control_finish (req, "error: the registry does not show that replacement");
    return;
  }
  a->vol.replicas[i] = v.replicas[i];
  b = connect_replica (a, i, a->o->timeout_ms, err, sizeof err);
  if (!b)
    log_warn ("%s: new replica %s: %s (will keep trying)", v.name, new, err);
  engine_replace (a->dev, i, b, new);
  snprintf (line, sizeof line, "ok: %s replaces %s; copying the volume to it",
            new, old);
  control_finish (req, line);
}

/* ---- snapshots ---------------------------------------------------------- */

static void
snap_line (void *opaque, const char *line)
{
  struct attach *a = opaque;
  bool last = strncmp (line, "ok ", 3) == 0 || strncmp (line, "error", 5) == 0;

  if (strncmp (line, "error", 5) == 0)
    log_error ("%s", line);
  else if (last || strncmp (line, "point ", 6) == 0)
    log_info ("%s: snapshot %s", a->vol.name, line);
  if (a->snap_req && last) {
    control_finish (a->snap_req, line);
    a->snap_req = NULL;
  }
  else if (a->snap_req)
    control_reply (a->snap_req, line);
  else if (a->o->job_line)
    a->o->job_line (a->o->job_opaque, line);
}

static int
record_cbt_base (struct reg_volume *v, void *arg)
{
  struct attach *a = arg;

  if (!v->attachment.attached || v->attachment.pid != getpid () ||
      v->attachment.epoch != a->epoch)
    return ESTALE;
  v->cbt = a->vol.cbt;
  return 0;
}

static void
snap_done (void *opaque, int err, const char *name, const char *url)
{
  struct attach *a = opaque;
  struct error rerr = { 0 };

  if (err == 0) {
    /* The next snapshot to this store builds on this one. */
    snprintf (a->vol.cbt.base_url, sizeof a->vol.cbt.base_url, "%s", url);
    snprintf (a->vol.cbt.base_name, sizeof a->vol.cbt.base_name, "%s", name);
    if (registry_update (a->reg, a->vol.name, record_cbt_base, a, &rerr) < 0)
      log_warn ("%s: cannot record snapshot %s as the change map's base: %s",
                a->vol.name, name, error_msg (&rerr));
  }
  if (a->o->job == ATTACH_SNAPSHOT) {
    a->job_err = err;
    begin_detach (a);
  }
}

/* Start a snapshot of the live volume; NULL req: the attach's own job. */
static int
start_snapshot (struct attach *a, struct control_req *req, const char *url,
                const char *name, char *const *env)
{
  struct snap_params p = {
    .url = url, .name = name, .volume = a->vol.name,
    .volume_uuid = a->vol.uuid, .volume_size = a->vol.size,
    .base_url = a->vol.cbt.base_url, .base_name = a->vol.cbt.base_name,
    .cbt_valid = a->cbt_loaded, .env = env,
  };

  log_info ("%s: snapshot %s to %s requested", a->vol.name, name, url);
  a->snap_req = req;
  if (cow_snapshot (a->cow, &p, snap_line, snap_done, a) == -1) {
    a->snap_req = NULL;
    return -1;
  }
  return 0;
}

static void
on_control (struct control_req *req, const char *line, void *opaque)
{
  struct attach *a = opaque;
  char old[REG_ADDR_MAX], new[REG_ADDR_MAX];
  char url[256], name[SNAP_NAME_MAX];
  int n;

  /* snapshot URL NAME [SETTING=VALUE...]: the settings are the caller's
   * store configuration (AWS_*), quoted.
   */
  if (sscanf (line, "snapshot %255s %127s%n", url, name, &n) == 2) {
    char *env[64] = { NULL }, *copy = strdup (line + n), *save = NULL;
    int k = 0;
    for (char *w = copy ? strtok_r (copy, " ", &save) : NULL; w && k < 63;
         w = strtok_r (NULL, " ", &save)) {
      control_unquote (w);
      env[k++] = w;
    }
    if (a->detaching)
      control_finish (req, "error: the volume is detaching");
    else if (copy == NULL)
      control_finish (req, "error: out of memory");
    else if (start_snapshot (a, req, url, name, env) == -1)
      control_finish (req, errno == ENOMEM ? "error: out of memory"
                      : "error: a snapshot of this volume is already running");
    free (copy);
    return;
  }
  if (strcmp (line, "verify") == 0 || strcmp (line, "verify repair") == 0) {
    log_info ("%s: %s requested", a->vol.name, line);
    engine_verify (a->dev, strcmp (line, "verify repair") == 0,
                   verify_report, verify_done, req);
  }
  else if (sscanf (line, "replace %127s %127s", old, new) == 2)
    control_replace (a, req, old, new);
  else
    control_finish (req, "error: unknown control command");
}

static int
record_control (struct reg_volume *v, void *arg)
{
  struct attach *a = arg;

  if (!v->attachment.attached || v->attachment.pid != getpid ())
    return ESTALE;
  snprintf (v->attachment.control, sizeof v->attachment.control, "%s",
            a->ctl_path);
  return 0;
}

/* ---- the change map: held in memory while attached ---------------------- */

static int
take_cbt (struct reg_volume *v, void *arg)
{
  struct attach *a = arg;

  if (v->attachment.pid != getpid () || v->attachment.epoch != a->epoch)
    return ESTALE;
  v->cbt.valid = false;         /* until a clean detach saves it back */
  return 0;
}

/* The map saved by the last clean detach, if it can be trusted; else
 * NULL (the next snapshot reads every chunk).
 */
static uint8_t *
load_cbt (struct attach *a)
{
  size_t want = chunk_map_bytes (a->vol.size, a->vol.chunk_size);
  void *map = NULL;
  size_t len;
  struct error rerr = { 0 };

  if (!a->vol.cbt.valid)
    return NULL;
  if (registry_blob_get (a->reg, a->vol.name, "cbt", &map, &len, &rerr) < 0) {
    if (rerr.code != ENOENT)
      return NULL;
    map = calloc (1, want);     /* none saved yet: nothing changed */
    len = want;
  }
  if (map == NULL || len != want) {
    free (map);
    return NULL;
  }
  if (registry_update (a->reg, a->vol.name, take_cbt, a, &rerr) < 0) {
    if (rerr.code != ESTALE && rerr.code != ENOENT)
      log_error ("%s", error_msg (&rerr));
    free (map);
    return NULL;
  }
  a->cbt_loaded = true;
  return map;
}

static int
put_cbt (struct reg_volume *v, void *arg)
{
  struct attach *a = arg;

  if (!v->attachment.attached || v->attachment.pid != getpid () ||
      v->attachment.epoch != a->epoch)
    return ESTALE;
  v->cbt = a->vol.cbt;
  v->cbt.valid = true;
  return 0;
}

/* At a clean detach: the map (complete since the base) for the next
 * attach.
 */
static void
save_cbt (struct attach *a)
{
  size_t len;
  const uint8_t *map = cow_cbt (a->cow, &len);
  struct error rerr = { 0 };

  if (map == NULL)
    return;
  if (registry_blob_put (a->reg, a->vol.name, "cbt", map, len, &rerr) < 0 ||
      registry_update (a->reg, a->vol.name, put_cbt, a, &rerr) < 0)
    log_warn ("%s: cannot save the change map (%s): the next snapshot "
              "reads the whole volume", a->vol.name, error_msg (&rerr));
}

/* ---- a volume restored from a snapshot, until every chunk is in ---------- */

struct restore_update {
  struct attach *a;
  uint64_t hydrated;
  bool complete;
  const char *error;
};

static int
record_restore (struct reg_volume *v, void *arg)
{
  struct restore_update *u = arg;

  if (!v->attachment.attached || v->attachment.pid != getpid () ||
      v->attachment.epoch != u->a->epoch)
    return ESTALE;
  v->restore.chunks_hydrated = u->hydrated;
  if (u->error)
    snprintf (v->restore.error, sizeof v->restore.error, "%s", u->error);
  if (u->complete)
    memset (&v->restore, 0, sizeof v->restore);
  return 0;
}

static int
hydrate_save (void *opaque, const uint8_t *map, size_t len, uint64_t hydrated,
              uint64_t total)
{
  struct attach *a = opaque;
  struct restore_update u = { .a = a, .hydrated = hydrated };
  struct error rerr = { 0 };
  uint64_t d, t, bytes;

  if (registry_blob_put (a->reg, a->vol.name, "hydrated", map, len,
                         &rerr) < 0 ||
      registry_update (a->reg, a->vol.name, record_restore, &u, &rerr) < 0) {
    if (rerr.code != ESTALE && rerr.code != ENOENT)
      log_error ("%s", error_msg (&rerr));
    return rerr.code;
  }
  if (a->o->job == ATTACH_RESTORE && a->o->job_line) {
    char line[128];
    hydrate_progress (a->hydrate, &d, &t, &bytes);
    snprintf (line, sizeof line, "progress %llu %llu %llu 0",
              (unsigned long long) hydrated, (unsigned long long) total,
              (unsigned long long) bytes);
    a->o->job_line (a->o->job_opaque, line);
  }
  return 0;
}

static void
hydrate_finished (void *opaque, int err, const char *why)
{
  struct attach *a = opaque;
  struct restore_update u = { .a = a, .complete = err == 0,
                              .error = err ? why : NULL };
  uint64_t done, total, bytes;
  char line[OBJ_ERR_MAX + 64];
  struct error rerr = { 0 };

  hydrate_progress (a->hydrate, &done, &total, &bytes);
  u.hydrated = done;
  if (registry_update (a->reg, a->vol.name, record_restore, &u, &rerr) < 0)
    log_warn ("%s: cannot record the restore's state: %s", a->vol.name,
              error_msg (&rerr));
  if (err == 0) {
    registry_blob_remove (a->reg, a->vol.name, "hydrated", NULL);
    log_info ("%s: restore from %s complete: %llu chunks", a->vol.name,
              a->vol.restore.snapshot, (unsigned long long) total);
    snprintf (line, sizeof line, "ok restored %llu %llu",
              (unsigned long long) total, (unsigned long long) bytes);
  }
  else
    snprintf (line, sizeof line, "error: restore from %s: %s",
              a->vol.restore.snapshot, why);
  if (a->o->job == ATTACH_RESTORE) {
    if (a->o->job_line)
      a->o->job_line (a->o->job_opaque, line);
    a->job_err = err;
    begin_detach (a);
  }
}

static struct bdev *
open_hydrate (struct attach *a)
{
  const struct reg_restore *r = &a->vol.restore;
  size_t want = chunk_map_bytes (a->vol.size, a->vol.chunk_size);
  struct hydrate_hooks hooks = {
    .save = hydrate_save, .finished = hydrate_finished, .opaque = a,
  };
  void *map = NULL;
  size_t len;
  char why[OBJ_ERR_MAX];

  if (registry_blob_get (a->reg, a->vol.name, "hydrated", &map, &len,
                         NULL) == 0 &&
      len != want) {
    log_error ("%s: the hydration map is %zu bytes, not %zu: refusing to "
               "guess what is restored", a->vol.name, len, want);
    free (map);
    return NULL;
  }
  a->hydrate = hydrate_new (a->loop, a->dev, r->url, r->snapshot, map, true,
                            &hooks, why, sizeof why);
  if (a->hydrate == NULL)
    log_error ("%s: cannot serve the restore from %s: %s", a->vol.name,
               r->url, why);
  else
    log_info ("%s: restoring from snapshot %s in %s: %llu of %llu chunks "
              "in place; the rest is fetched on demand and in the background",
              a->vol.name, r->snapshot, r->url,
              (unsigned long long) r->chunks_hydrated,
              (unsigned long long) r->chunks_total);
  return a->hydrate;
}

/* Once the frontend is up: record where it serves ("ublk /dev/ublkb0"). */
static int
record_where (struct reg_volume *v, void *arg)
{
  struct attach *a = arg;

  if (!v->attachment.attached || v->attachment.pid != getpid ())
    return ESTALE;
  snprintf (v->attachment.frontend, sizeof v->attachment.frontend, "%s %s",
            a->fe->ops->name, a->fe->where);
  return 0;
}

/* Where the control socket goes: $REPVOL_RUN_DIR or /run/repvol, named
 * by the volume's uuid (unique even across registries).
 */
static void
start_control (struct attach *a)
{
  const char *dir = getenv ("REPVOL_RUN_DIR");
  struct error rerr = { 0 };

  if (!dir)
    dir = "/run/repvol";
  if (mkdir (dir, 0700) == -1 && errno != EEXIST) {
    log_warn ("%s: no control channel (%s: %s): verify and replace will "
              "not reach this attach", a->vol.name, dir, strerror (errno));
    return;
  }
  snprintf (a->ctl_path, sizeof a->ctl_path, "%s/%s.ctl", dir,
            a->vol.uuid[0] ? a->vol.uuid : a->vol.name);
  a->ctl = control_start (a->loop, a->ctl_path, on_control, a);
  if (a->ctl &&
      registry_update (a->reg, a->vol.name, record_control, a, &rerr) < 0 &&
      rerr.code != ESTALE && rerr.code != ENOENT)
    log_error ("%s", error_msg (&rerr));
}

int
attach_run (struct registry *reg, const struct attach_opts *o)
{
  static const int sigs[] = { SIGTERM, SIGINT };
  struct attach a = { .reg = reg, .o = o, .rc_pipe = { -1, -1 } };
  struct reg_volume v;
  struct error rerr = { 0 };
  char size[32];
  int rc = 1;

  server_process_init ();
  if (gethostname (a.host, sizeof a.host) == -1)
    strcpy (a.host, "localhost");
  a.host[sizeof a.host - 1] = '\0';

  if (registry_get (reg, o->volume, &v, &rerr) < 0) {
    if (rerr.code != ENOENT)
      log_error ("%s", error_msg (&rerr));
    log_error ("no such volume: %s", o->volume);
    return 1;
  }
  if (registry_update (reg, o->volume, claim, &a, &rerr) < 0) {
    if (rerr.code == EBUSY) {
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
  if (a.took_over)
    log_warn ("%s: took over from host %s, pid %d (epoch %llu): that "
              "attachment is fenced and can no longer write",
              o->volume, v.fenced.host, (int) v.fenced.pid,
              (unsigned long long) v.fenced.epoch);

  a.loop = loop_new ();
  if (!a.loop || loop_signals (a.loop, sigs, 2, on_signal, &a) == -1) {
    log_error ("cannot set up the event loop: %s", strerror (errno));
    goto out;
  }
  reconnect_setup (&a);
  a.dev = open_engine (&a);
  if (!a.dev)
    goto out;
  if (a.unclean) {
    /* The former attach may have died with writes on some replicas
     * and not others: make them equal (reads meanwhile come from one).
     */
    log_info ("%s: the last attachment did not detach cleanly: "
              "reconciling the replicas", v.name);
    engine_reconcile (a.dev, reconciled, &a);
  }
  if (a.unclean && !a.took_over) {
    /* Our own dead predecessor on this host: its kernel device, if it
     * had one, serves nothing now; free it (it may be the one we want).
     */
    char dev[64], why[256];
    int r = frontend_release_stale (v.fenced.frontend, v.fenced.pid, dev,
                                    sizeof dev, why, sizeof why);
    if (r == 1)
      log_warn ("%s: disconnected %s, left behind by attach process %d",
                v.name, dev, (int) v.fenced.pid);
    else if (r == -1)
      log_warn ("%s: %s", v.name, why);
  }
  struct bdev *below = a.dev;
  if (v.restore.active) {
    if ((below = open_hydrate (&a)) == NULL)
      goto out;
  }
  else if (o->job == ATTACH_RESTORE) {
    log_info ("%s: nothing to restore: every chunk is in place", v.name);
    if (o->job_line)
      o->job_line (o->job_opaque, "ok restored 0 0");
    rc = 0;
    goto out;
  }
  a.cow = cow_new (a.loop, below, v.chunk_size, load_cbt (&a));
  if (!a.cow) {
    log_error ("%s: out of memory", v.name);
    bdev_close (below);
    a.dev = NULL;
    goto out;
  }
  start_control (&a);          /* before clients: verify can find it */
  if (o->job == ATTACH_SERVE) {
    a.fe = frontend_start (o->frontend, a.loop, a.cow, v.name, o->spec);
    if (!a.fe)
      goto out;
    log_info ("%s: attached (%s, %d replica%s, epoch %llu), serving %s",
              v.name, format_size (v.size, size, sizeof size), v.nreplicas,
              v.nreplicas == 1 ? "" : "s", (unsigned long long) a.epoch,
              a.fe->where);
    if (registry_update (reg, o->volume, record_where, &a, &rerr) < 0 &&
        rerr.code != ESTALE && rerr.code != ENOENT)
      log_error ("%s", error_msg (&rerr));
  }
  else if (o->job == ATTACH_SNAPSHOT &&
           start_snapshot (&a, NULL, o->snap_url, o->snap_name, NULL) == -1) {
    log_error ("%s: cannot start the snapshot: %s", v.name, strerror (errno));
    goto out;
  }
  if (loop_run (a.loop) == -1)
    log_error ("event loop failed: %s", strerror (errno));
  else if (a.final_err == 0) {
    save_cbt (&a);
    if (o->job == ATTACH_SERVE)
      log_info ("%s: detached cleanly", v.name);
    rc = a.job_err ? 1 : 0;
  }

 out:
  control_stop (a.ctl);
  reconnect_teardown (&a);
  if (a.fe)
    frontend_free (a.fe);
  if (a.cow)
    bdev_close (a.cow);  /* and what is below it */
  else if (a.dev)
    bdev_close (a.dev);
  loop_free (a.loop);
  if (registry_update (reg, o->volume, release, &a, &rerr) < 0 &&
      rerr.code != ESTALE)
    log_error ("%s: cannot clear the attachment in the registry: %s",
               o->volume, error_msg (&rerr));
  return rc;
}
