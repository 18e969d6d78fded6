/* periodic.c - a thread calling a function every period (periodic.h). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/periodic.h"
#include "core/util.h"

struct periodic {
  unsigned period_ms;
  void (*tick) (void *);
  void (*last) (void *);
  void *arg;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;          /* on CLOCK_MONOTONIC */
  bool stop;
};

static void *
periodic_thread (void *opaque)
{
  struct periodic *p = opaque;

  pthread_mutex_lock (&p->lock);
  while (!p->stop) {
    pthread_mutex_unlock (&p->lock);
    p->tick (p->arg);
    pthread_mutex_lock (&p->lock);
    struct timespec until;
    clock_gettime (CLOCK_MONOTONIC, &until);
    until.tv_sec += p->period_ms / 1000;
    until.tv_nsec += (long) (p->period_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000;
    }
    while (!p->stop &&
           pthread_cond_timedwait (&p->cond, &p->lock, &until) != ETIMEDOUT)
      ;
  }
  pthread_mutex_unlock (&p->lock);
  if (p->last)
    p->last (p->arg);
  return NULL;
}

struct periodic *
periodic_start (unsigned period_ms, void (*tick) (void *),
                void (*last) (void *), void *arg, struct error *err)
{
  struct periodic *p = calloc (1, sizeof *p);
  pthread_condattr_t ca;
  int e;

  if (p == NULL) {
    error_set (err, ENOMEM, "out of memory");
    return NULL;
  }
  *p = (struct periodic) { .period_ms = period_ms, .tick = tick,
                           .last = last, .arg = arg };
  pthread_mutex_init (&p->lock, NULL);
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&p->cond, &ca);
  pthread_condattr_destroy (&ca);
  /* Signals are the event loop's (signalfd): a thread that took one
   * would die of it, so this one blocks them all from its start.
   */
  sigset_t all, old;
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  e = pthread_create (&p->thread, NULL, periodic_thread, p);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (e != 0) {
    error_set (err, e, "cannot start a thread: %s", strerror (e));
    pthread_cond_destroy (&p->cond);
    pthread_mutex_destroy (&p->lock);
    free (p);
    return NULL;
  }
  return p;
}

void
periodic_stop (struct periodic *p)
{
  if (p == NULL)
    return;
  pthread_mutex_lock (&p->lock);
  p->stop = true;
  pthread_cond_signal (&p->cond);
  pthread_mutex_unlock (&p->lock);
  pthread_join (p->thread, NULL);
  pthread_cond_destroy (&p->cond);
  pthread_mutex_destroy (&p->lock);
  free (p);
}
