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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attach.h"
#include "engine.h"
#include "frontend/frontend.h"
#include "loop.h"
#include "replica_client.h"
#include "util.h"

struct attach {
  struct loop *loop;
  struct registry *reg;
  const struct attach_opts *o;
  struct bdev *dev;
  struct frontend *fe;
  uint64_t epoch;
  char host[REG_NAME_MAX];
  bool detaching;
  bool took_over;
  int final_err;
  struct bdev_io flush_io;
};

static bool
pid_alive (pid_t pid)
{
  return pid > 0 && (kill (pid, 0) == 0 || errno == EPERM);
}

/* registry_update callbacks */

static int
claim (struct reg_volume *v, void *arg)
{
  struct attach *a = arg;
  struct reg_attachment *at = &v->attachment;

  if (at->attached && strcmp (at->frontend, "deleting") == 0)
    return EBUSY;               /* "repvol delete" holds it */
  a->took_over = false;
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
  snprintf (at->frontend, sizeof at->frontend, "nbd %s", a->o->nbd);
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
  bdev_submit (a->dev, &a->flush_io);
}

static void
frontend_stopped (void *opaque)
{
  struct attach *a = opaque;

  a->dev->ops->drain (a->dev, drained, a);
}

static void
on_signal (struct loop *loop, int signo, void *opaque)
{
  struct attach *a = opaque;

  if (a->detaching)
    return;
  a->detaching = true;
  log_info ("%s: detaching (signal %d): finishing in-flight I/O",
            a->o->volume, signo);
  frontend_stop (a->fe, frontend_stopped, a);
}

/* Connect every replica at the new epoch and stack the engine on them. */
static struct bdev *
open_engine (struct attach *a, const struct reg_volume *v)
{
  struct bdev *reps[ENGINE_MAX_REPLICAS];
  const char *names[ENGINE_MAX_REPLICAS];
  struct bdev_info info = {
    .size = v->size, .block_size = v->block_size,
    .max_io = RV_MAX_PAYLOAD, .volatile_cache = 1,
  };
  struct bdev *dev;
  int i;

  for (i = 0; i < v->nreplicas; i++) {
    const char *addr = v->replicas[i].addr;
    struct rv_welcome w;
    char err[256];

    reps[i] = replica_client_open (a->loop, addr, v->name, a->epoch,
                                   a->o->timeout_ms, &w, err, sizeof err);
    names[i] = addr;
    if (!reps[i]) {
      log_error ("%s: replica %s: %s", v->name, addr, err);
      goto fail;
    }
    if (w.size != v->size || w.block_size != v->block_size) {
      log_error ("%s: replica %s holds %llu bytes in %u-byte blocks, the "
                 "registry says %llu in %u", v->name, addr,
                 (unsigned long long) w.size, w.block_size,
                 (unsigned long long) v->size, v->block_size);
      reps[i]->ops->close (reps[i]);
      goto fail;
    }
  }
  dev = engine_new (a->loop, reps, names, v->nreplicas, &info);
  if (dev)
    return dev;
  log_error ("%s: cannot create the engine: %s", v->name, strerror (errno));
 fail:
  while (i-- > 0)
    reps[i]->ops->close (reps[i]);
  return NULL;
}

int
attach_run (struct registry *reg, const struct attach_opts *o)
{
  static const int sigs[] = { SIGTERM, SIGINT };
  struct attach a = { .reg = reg, .o = o };
  struct reg_volume v;
  char size[32];
  int rc = 1;

  server_process_init ();
  if (gethostname (a.host, sizeof a.host) == -1)
    strcpy (a.host, "localhost");
  a.host[sizeof a.host - 1] = '\0';

  if (registry_get (reg, o->volume, &v) == -1) {
    log_error ("no such volume: %s", o->volume);
    return 1;
  }
  if (registry_update (reg, o->volume, claim, &a) == -1) {
    if (errno == EBUSY) {
      registry_get (reg, o->volume, &v);
      log_error ("volume %s is already attached (host %s, pid %d, %s)%s",
                 o->volume, v.attachment.host, (int) v.attachment.pid,
                 v.attachment.frontend, o->no_takeover ?
                 "; without --no-takeover, attach takes it over" : "");
    }
    else
      log_error ("%s: cannot update the registry: %s", o->volume,
                 strerror (errno));
    return 1;
  }
  registry_get (reg, o->volume, &v);
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
  a.dev = open_engine (&a, &v);
  if (!a.dev)
    goto out;
  a.fe = frontend_start ("nbd", a.loop, a.dev, v.name, o->nbd);
  if (!a.fe)
    goto out;

  log_info ("%s: attached (%s, %d replica%s, epoch %llu), serving nbd %s",
            v.name, format_size (v.size, size, sizeof size), v.nreplicas,
            v.nreplicas == 1 ? "" : "s", (unsigned long long) a.epoch,
            o->nbd);
  if (loop_run (a.loop) == -1)
    log_error ("event loop failed: %s", strerror (errno));
  else if (a.final_err == 0) {
    log_info ("%s: detached cleanly", v.name);
    rc = 0;
  }

 out:
  if (a.fe)
    frontend_free (a.fe);
  if (a.dev)
    a.dev->ops->close (a.dev);
  loop_free (a.loop);
  if (registry_update (reg, o->volume, release, &a) == -1 && errno != ESTALE)
    log_error ("%s: cannot clear the attachment in the registry: %s",
               o->volume, strerror (errno));
  return rc;
}
