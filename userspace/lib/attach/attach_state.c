/* attach_state.c - the replicas' states in the registry: the engine's
 * hooks (docs/DESIGN.md rule 2), and recording a degrade in the
 * background.
 *
 * A replica that falls out of sync must be recorded before any write it
 * missed is acknowledged.  The registry may be slow or away for a long
 * time (every etcd member down), and the rest of the I/O must go on
 * meanwhile, so the record is made on a thread of its own with a
 * registry handle of its own, retried until the registry answers, while
 * the engine holds the acknowledgements (engine.h, EINPROGRESS); the
 * answer comes back to the loop through a pipe.  Degrades are recorded
 * one at a time, each from the epoch the previous one left.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach_internal.h"
#include "core/fsutil.h"
#include "core/util.h"


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
    /* Degrading opens a new epoch (docs/DESIGN.md rule 2): the attachment
     * moves to it, and the replica is recorded as behind from then on.
     */
    v->epoch++;
    v->attachment.epoch = v->epoch;
    c->epoch = v->epoch;
  }
  set_state (&v->replicas[c->replica], c->state, c->epoch);
  return 0;
}

int
attach_record (struct attach *a, struct state_change *c)
{
  struct error rerr = { 0 };

  c->epoch = a->epoch;
  if (registry_update (a->reg, a->o->volume, change_state, c, &rerr) < 0) {
    if (rerr.code == ESTALE)
      attach_fenced (a, "the registry names a newer attachment");
    else if (rerr.code != ENOENT) {
      log_error ("%s", error_msg (&rerr));
      a->reg_failed_ns = now_ns ();
    }
    return -rerr.code;
  }
  a->epoch = c->epoch;          /* moved if the update opened a new epoch */
  return 0;
}

/* The engine's hooks answer 0 or a (positive) errno. */

/* A replica fell out of sync: recorded in the background (a registry
 * that is away may take as long as it likes), one at a time, while the
 * engine holds the acknowledgements that depend on it.
 */
static int
hook_out_of_sync (void *opaque, int i)
{
  struct attach *a = opaque;

  if (a->degrade_queued & (1u << i))
    return EINPROGRESS;
  a->degrade_queued |= 1u << i;
  attach_metrics_out (a, i);
  attach_degrade_next (a);
  return EINPROGRESS;
}

static int
hook_in_sync (void *opaque, int i)
{
  struct attach *a = opaque;
  struct state_change c = { .replica = i, .state = REG_IN_SYNC };

  if (a->dg_running || a->degrade_queued)
    return EAGAIN;              /* after the degrade: the engine retries */
  int r = attach_record (a, &c);
  if (r == 0) {
    attach_metrics_in_sync (a, i);
    attach_event (a, "resync-done", "replica %s (%s) in sync",
                  a->vol.replicas[i].server, a->vol.replicas[i].addr);
  }
  return -r;
}

static void
hook_progress (void *opaque, int i, uint64_t done, uint64_t total,
               uint64_t rate)
{
  struct attach *a = opaque;
  struct state_change c = { .replica = i, .progress = true, .done = done,
                            .total = total, .rate = rate };

  attach_metrics_progress (a, i, done, total);

  /* Progress is news, not state: not while a degrade is being recorded
   * (its epoch would be stale), nor for a while after the registry
   * failed to answer (each try may block the loop for seconds).
   */
  if (a->dg_running || a->degrade_queued ||
      now_ns () - a->reg_failed_ns < 10 * 1000000000ull)
    return;
  attach_record (a, &c);
}

static void
hook_fenced (void *opaque, int i)
{
  struct attach *a = opaque;

  attach_fenced (a, "replica %s refused epoch %llu: it holds a newer one",
                 a->vol.replicas[i].addr, (unsigned long long) a->epoch);
}

void
attach_event (struct attach *a, const char *type, const char *fmt, ...)
{
  char details[256];
  struct error err = { 0 };
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (details, sizeof details, fmt, ap);
  va_end (ap);
  if (registry_event (a->reg, type, a->vol.name, NULL, &err, "%s",
                      details) < 0)
    log_warn ("%s: event %s not recorded: %s", a->vol.name, type,
              error_msg (&err));
}

void
attach_engine_hooks (struct attach *a, struct engine_hooks *h)
{
  *h = (struct engine_hooks) {
    .mark_out_of_sync = hook_out_of_sync, .mark_in_sync = hook_in_sync,
    .reconnect = attach_reconnect, .progress = hook_progress,
    .fenced = hook_fenced, .opaque = a,
  };
}

/* ---- recording a degrade in the background -------------------------- */

struct degrade_job {
  struct registry *reg;
  char volume[REG_NAME_MAX];
  struct state_change c;
  char host[REG_NAME_MAX];      /* this attachment, by host and pid */
  pid_t pid;
  int fd;                       /* the pipe back */
  volatile bool *stop;
  int err;                      /* 0, or why it will never be recorded */
  struct error why;
};

/* The degrade, judged by host and pid rather than by epoch: a try whose
 * answer was lost (etcd restarting) may have been applied, and moved the
 * epoch; the next try then finds the replica already out of sync, under
 * our own attachment, and that is success.
 */
static int
degrade_state (struct reg_volume *v, void *arg)
{
  struct degrade_job *job = arg;
  const struct reg_attachment *at = &v->attachment;
  int i = job->c.replica;

  if (!at->attached || at->pid != job->pid || strcmp (at->host, job->host))
    return ESTALE;
  if (i >= v->nreplicas)
    return EINVAL;
  if (v->replicas[i].state == REG_OUT_OF_SYNC) {
    job->c.epoch = at->epoch;
    return 0;                   /* nothing to write */
  }
  job->c.epoch = at->epoch;
  return change_state (v, &job->c);
}

static void
pause_ms (int ms)
{
  struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000 };
  nanosleep (&ts, NULL);
}

static void *
degrade_thread (void *arg)
{
  struct degrade_job *job = arg;
  bool told = false;

  for (;;) {
    struct error err = { 0 };
    if (registry_update (job->reg, job->volume, degrade_state, job, &err)
        == 0) {
      struct state_change c = job->c;
      job->err = 0;
      registry_event (job->reg, "degraded", job->volume, NULL, NULL,
                      "replica %d out of sync at epoch %llu", c.replica,
                      (unsigned long long) c.epoch);
      if (told)
        log_info ("%s: the registry answers again: replica %d recorded "
                  "out of sync", job->volume, job->c.replica);
      break;
    }
    if (err.code == ESTALE || err.code == ENOENT || err.code == EINVAL ||
        *job->stop) {
      job->err = *job->stop ? EINTR : err.code;
      job->why = err;
      break;
    }
    if (!told)
      log_warn ("%s: cannot record replica %d out of sync yet (%s): "
                "holding write acknowledgements, retrying until the "
                "registry answers", job->volume, job->c.replica,
                error_msg (&err));
    told = true;
    pause_ms (500);
  }
  write_full (job->fd, &job, sizeof job);
  return NULL;
}

static void
degrade_done (struct loop_watch *w, uint32_t revents)
{
  struct attach *a = w->opaque;
  struct degrade_job *job;

  while (read (a->dg_pipe[0], &job, sizeof job) == sizeof job) {
    int i = job->c.replica;
    pthread_join (a->dg_thread, NULL);
    a->dg_running = false;
    registry_close (job->reg);
    if (job->err == 0)
      a->epoch = job->c.epoch;  /* the degrade opened a new epoch */
    else if (job->err == ESTALE)
      attach_fenced (a, "the registry names a newer attachment");
    if (a->dev)
      engine_out_of_sync_recorded (a->dev, i, job->err);
    free (job);
  }
  attach_degrade_next (a);
}

void
attach_degrade_next (struct attach *a)
{
  struct degrade_job *job = NULL;
  struct error err = { 0 };
  int i;

  if (a->dg_running || a->degrade_queued == 0)
    return;
  i = __builtin_ctz (a->degrade_queued);
  a->degrade_queued &= ~(1u << i);
  if (a->dg_pipe[1] < 0 || (job = calloc (1, sizeof *job)) == NULL ||
      (job->reg = registry_open_again (a->reg, &err)) == NULL) {
    free (job);
    if (a->dev)
      engine_out_of_sync_recorded (a->dev, i, ENOMEM);
    return;
  }
  snprintf (job->volume, sizeof job->volume, "%s", a->vol.name);
  job->c = (struct state_change) { .replica = i, .state = REG_OUT_OF_SYNC,
                                   .epoch = a->epoch };
  job->fd = a->dg_pipe[1];
  job->stop = &a->dg_stop;
  snprintf (job->host, sizeof job->host, "%s", a->host);
  job->pid = getpid ();
  if (pthread_create (&a->dg_thread, NULL, degrade_thread, job) != 0) {
    registry_close (job->reg);
    free (job);
    if (a->dev)
      engine_out_of_sync_recorded (a->dev, i, EAGAIN);
    return;
  }
  a->dg_running = true;
}

void
attach_degrade_init (struct attach *a)
{
  a->dg_pipe[0] = a->dg_pipe[1] = -1;
  if (pipe2 (a->dg_pipe, O_CLOEXEC) == -1)
    return;
  set_nonblock (a->dg_pipe[0]);
  loop_add (a->loop, &a->dg_watch, a->dg_pipe[0], EPOLLIN, degrade_done, a);
}

/* At the end: a record still retrying gives up (within one registry
 * call); its writes were never acknowledged.
 */
void
attach_degrade_fini (struct attach *a)
{
  struct degrade_job *job;

  a->dg_stop = true;
  if (a->dg_running)
    pthread_join (a->dg_thread, NULL);
  if (a->dg_pipe[0] < 0)
    return;
  loop_del (a->loop, &a->dg_watch);
  while (read (a->dg_pipe[0], &job, sizeof job) == sizeof job) {
    /* Recorded, but the loop had stopped before it heard: the epoch it
     * opened is ours all the same (else the release at the end would
     * not know our own attachment, and leave it behind).
     */
    if (job->err == 0)
      a->epoch = job->c.epoch;
    registry_close (job->reg);
    free (job);
  }
  close (a->dg_pipe[0]);
  close (a->dg_pipe[1]);
}
