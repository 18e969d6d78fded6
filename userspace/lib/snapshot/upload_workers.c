/* upload_workers.c - the snapshot upload's worker pool (see
 * upload_workers.h).
 *
 * Hashing (SHA-256) and compressing (zstd) a chunk take more CPU than
 * storing it; done on the thread that drives the object store they
 * also stall its transfers.  The pool runs them on as many threads as
 * there are CPUs while the driver keeps its PUTs going.
 *
 * One mutex guards both lists; workers sleep on `work`, a producer
 * waiting for room and a driver waiting for results on `room` and
 * `done_cv`.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "snapshot/upload_workers.h"

struct upload_workers {
  pthread_mutex_t lock;
  pthread_cond_t work;          /* a job queued, or quit */
  pthread_cond_t room;          /* the queue has room again */
  pthread_cond_t done_cv;       /* a job finished */
  struct uw_job *queue, *queue_tail;    /* waiting to start */
  int queued, queue_max;
  struct uw_job *done, *done_tail;      /* run, not yet taken */
  bool quit;
  void (*notify) (void *opaque);
  void *opaque;
  int nthreads;
  pthread_t threads[UW_MAX_THREADS];
};

int
uw_default_threads (void)
{
  long n = sysconf (_SC_NPROCESSORS_ONLN);
  if (n < 1)
    return 1;
  return n > UW_MAX_THREADS ? UW_MAX_THREADS : (int) n;
}

static void *
worker (void *arg)
{
  struct upload_workers *w = arg;

  pthread_mutex_lock (&w->lock);
  for (;;) {
    while (w->queue == NULL && !w->quit)
      pthread_cond_wait (&w->work, &w->lock);
    /* On quit, queued jobs stay queued: uw_stop hands them back. */
    if (w->quit)
      break;
    struct uw_job *j = w->queue;
    if ((w->queue = j->next) == NULL)
      w->queue_tail = NULL;
    w->queued--;
    pthread_cond_signal (&w->room);
    pthread_mutex_unlock (&w->lock);

    j->run (j);

    pthread_mutex_lock (&w->lock);
    j->next = NULL;
    if (w->done_tail)
      w->done_tail->next = j;
    else
      w->done = j;
    w->done_tail = j;
    pthread_cond_signal (&w->done_cv);
    if (w->notify) {
      /* Unlocked: the driver may be inside notify's target (its poll)
       * and take our lock right after.
       */
      pthread_mutex_unlock (&w->lock);
      w->notify (w->opaque);
      pthread_mutex_lock (&w->lock);
    }
  }
  pthread_mutex_unlock (&w->lock);
  return NULL;
}

static void
uw_free (struct upload_workers *w)
{
  pthread_cond_destroy (&w->done_cv);
  pthread_cond_destroy (&w->room);
  pthread_cond_destroy (&w->work);
  pthread_mutex_destroy (&w->lock);
  free (w);
}

int
uw_start (struct upload_workers **wp, int nthreads, int queue_max,
          void (*notify) (void *opaque), void *opaque)
{
  if (nthreads < 1 || nthreads > UW_MAX_THREADS || queue_max < 1)
    return -EINVAL;
  struct upload_workers *w = calloc (1, sizeof *w);
  if (w == NULL)
    return -ENOMEM;
  pthread_mutex_init (&w->lock, NULL);
  pthread_cond_init (&w->work, NULL);
  pthread_cond_init (&w->room, NULL);
  pthread_cond_init (&w->done_cv, NULL);
  w->queue_max = queue_max;
  w->notify = notify;
  w->opaque = opaque;
  for (; w->nthreads < nthreads; w->nthreads++) {
    int e = pthread_create (&w->threads[w->nthreads], NULL, worker, w);
    if (e != 0) {
      struct uw_job *left = uw_stop (w);    /* empty: nothing was queued */
      (void) left;
      return -e;
    }
  }
  *wp = w;
  return 0;
}

void
uw_submit (struct upload_workers *w, struct uw_job *job)
{
  job->next = NULL;
  pthread_mutex_lock (&w->lock);
  while (w->queued >= w->queue_max)
    pthread_cond_wait (&w->room, &w->lock);
  if (w->queue_tail)
    w->queue_tail->next = job;
  else
    w->queue = job;
  w->queue_tail = job;
  w->queued++;
  pthread_cond_signal (&w->work);
  pthread_mutex_unlock (&w->lock);
}

/* With the lock held. */
static struct uw_job *
take_done_locked (struct upload_workers *w)
{
  struct uw_job *d = w->done;
  w->done = w->done_tail = NULL;
  return d;
}

struct uw_job *
uw_take_done (struct upload_workers *w)
{
  pthread_mutex_lock (&w->lock);
  struct uw_job *d = take_done_locked (w);
  pthread_mutex_unlock (&w->lock);
  return d;
}

struct uw_job *
uw_wait_done (struct upload_workers *w, int timeout_ms)
{
  struct timespec until;
  clock_gettime (CLOCK_REALTIME, &until);
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (long) (timeout_ms % 1000) * 1000000;
  if (until.tv_nsec >= 1000000000) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock (&w->lock);
  while (w->done == NULL &&
         pthread_cond_timedwait (&w->done_cv, &w->lock, &until) != ETIMEDOUT)
    ;
  struct uw_job *d = take_done_locked (w);
  pthread_mutex_unlock (&w->lock);
  return d;
}

struct uw_job *
uw_stop (struct upload_workers *w)
{
  pthread_mutex_lock (&w->lock);
  w->quit = true;
  pthread_cond_broadcast (&w->work);
  pthread_mutex_unlock (&w->lock);
  for (int i = 0; i < w->nthreads; i++)
    pthread_join (w->threads[i], NULL);

  /* Alone now: the done jobs, then the never started, in one list. */
  struct uw_job *left = w->done;
  if (left)
    w->done_tail->next = w->queue;
  else
    left = w->queue;
  uw_free (w);
  return left;
}
