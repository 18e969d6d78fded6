/* attach_reconnect.c - reaching a lost replica again, for the engine.
 *
 * A handshake with a hung server blocks for the whole timeout, so each
 * attempt runs on a thread of its own (at most one per replica).  The
 * thread only connects; it hands its result back through a pipe to the
 * loop thread, which checks that the server is the replica expected
 * and gives it to the engine (engine_replica_back).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attach/attach_internal.h"
#include "core/fsutil.h"
#include "core/util.h"
#include "replica/client.h"

struct reconnect_job {
  int replica;
  struct registry *reg;         /* the thread's own handle, or NULL */
  char server[REG_NAME_MAX];    /* the replica's server ("": unnamed) */
  char recorded[REG_ADDR_MAX];  /* its address when the job started */
  char addr[REG_ADDR_MAX];      /* where it was dialled */
  char volume[REG_NAME_MAX];
  uint64_t epoch;
  uint64_t size;                /* the volume's when the job started */
  uint32_t block_size;
  bool reserve;
  int timeout_ms;
  int fd, ok;                   /* fd: the pipe back, while connecting */
  struct replica_admin ra;
  struct error err;
};

static void *
reconnect_thread (void *arg)
{
  struct reconnect_job *job = arg;
  int wfd = job->fd;            /* the pipe, passed in fd */

  /* A server that came back elsewhere is found through the pool; with
   * the registry away, at the address recorded.
   */
  if (job->reg && job->server[0])
    registry_server_addr (job->reg, job->server, job->addr, sizeof job->addr,
                          NULL);
  job->ok = replica_client_connect (job->addr, job->volume, job->epoch,
                                    job->timeout_ms, &job->ra,
                                    &job->err) == 0;
  /* Lost while the volume grew: grown here, off the loop, before the
   * engine catches it up.
   */
  if (job->ok && job->ra.welcome.block_size == job->block_size &&
      attach_check_size (&job->ra, job->size, job->block_size, true,
                         job->reserve, &job->err) < 0) {
    replica_admin_close (&job->ra);
    job->ok = false;
  }
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
    const struct reg_replica *rep = &a->vol.replicas[i];
    if (job->reg)
      registry_close (job->reg);
    /* Still the replica the job was for (not replaced meanwhile), and
     * the server it names (not another one at that address).
     */
    if (job->ok && (job->ra.welcome.size < a->vol.size ||
                    job->ra.welcome.block_size != a->vol.block_size ||
                    strcmp (job->recorded, rep->addr) != 0 ||
                    strcmp (job->server, rep->server) != 0 ||
                    (rep->server[0] &&
                     strcmp (job->ra.welcome.server, rep->server) != 0))) {
      log_warn ("%s: replica %s answered but is not the replica expected",
                a->vol.name, job->addr);
      replica_admin_close (&job->ra);
    }
    else if (job->ok) {
      if (strcmp (job->addr, rep->addr) != 0)
        attach_record_addr (a, i, job->addr);
      struct bdev *b = replica_client_adopt (a->loop, &job->ra, job->addr,
                                             a->o->timeout_ms);
      if (b) {
        attach_event (a, "resync-started", "replica %s (%s) is back",
                      rep->server, rep->addr);
        attach_metrics_reconnected (a, i);
        engine_replica_back (a->dev, i, b);
      }
    }
    else if (job->err.code == EPERM)   /* it holds a newer epoch */
      attach_fenced (a, "replica %s: %s", job->addr, error_msg (&job->err));
    else
      log_debug ("%s: replica %s still unreachable: %s", a->vol.name,
                 job->addr, error_msg (&job->err));
    free (job);
  }
}

struct bdev *
attach_reconnect (void *opaque, int i)
{
  struct attach *a = opaque;
  struct reconnect_job *job;

  if (a->rc_running[i] || a->rc_pipe[1] < 0 || attach_heal_busy (a, i) ||
      (job = calloc (1, sizeof *job)) == NULL)
    return NULL;
  job->replica = i;
  snprintf (job->addr, sizeof job->addr, "%s", a->vol.replicas[i].addr);
  snprintf (job->recorded, sizeof job->recorded, "%s", job->addr);
  snprintf (job->server, sizeof job->server, "%s", a->vol.replicas[i].server);
  job->reg = registry_open_again (a->reg, NULL);
  snprintf (job->volume, sizeof job->volume, "%s", a->vol.name);
  job->epoch = a->epoch;
  job->size = a->vol.size;
  job->block_size = a->vol.block_size;
  job->reserve = a->vol.reserved;
  job->timeout_ms = a->o->timeout_ms;
  job->fd = a->rc_pipe[1];
  if (pthread_create (&a->rc_thread[i], NULL, reconnect_thread, job) != 0) {
    registry_close (job->reg);
    free (job);
    return NULL;
  }
  a->rc_running[i] = true;
  return NULL;                  /* the answer comes through reconnect_done */
}

/* Without the pipe there are no attempts: the engine keeps a lost
 * replica out, as it would one that never answers.
 */
void
attach_reconnect_init (struct attach *a)
{
  if (pipe2 (a->rc_pipe, O_CLOEXEC) == -1) {
    a->rc_pipe[0] = a->rc_pipe[1] = -1;
    return;
  }
  set_nonblock (a->rc_pipe[0]);
  loop_add (a->loop, &a->rc_watch, a->rc_pipe[0], EPOLLIN, reconnect_done, a);
}

void
attach_reconnect_fini (struct attach *a)
{
  struct reconnect_job *job;

  for (int i = 0; i < ENGINE_MAX_REPLICAS; i++)
    if (a->rc_running[i])
      pthread_join (a->rc_thread[i], NULL);
  if (a->rc_pipe[0] < 0)
    return;
  while (read (a->rc_pipe[0], &job, sizeof job) == sizeof job) {
    if (job->ok)                /* connected, never handed over */
      replica_admin_close (&job->ra);
    registry_close (job->reg);
    free (job);
  }
  close (a->rc_pipe[0]);
  close (a->rc_pipe[1]);
}
