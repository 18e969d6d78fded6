/* loop.c - epoll event loop with one-shot timers and deferred calls. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>

#include "core/loop.h"
#include "core/util.h"

struct loop {
  int epfd;
  bool stop;
  struct loop_timer *timers;    /* sorted by deadline */
  struct loop_defer *defer_head, *defer_tail;
  /* signals */
  struct loop_watch sig_watch;
  void (*sig_cb) (struct loop *, int, void *);
  void *sig_opaque;
};

static void run_deferred (struct loop *loop);

struct loop *
loop_new (void)
{
  struct loop *loop = calloc (1, sizeof *loop);
  if (!loop)
    return NULL;
  loop->epfd = epoll_create1 (EPOLL_CLOEXEC);
  if (loop->epfd == -1) {
    free (loop);
    return NULL;
  }
  loop->sig_watch.fd = -1;
  return loop;
}

void
loop_free (struct loop *loop)
{
  if (!loop)
    return;
  /* Deferred work (freeing closed connections, mostly) is never
   * dropped, even when the loop stopped before it ran.
   */
  run_deferred (loop);
  if (loop->sig_watch.fd >= 0)
    close (loop->sig_watch.fd);
  close (loop->epfd);
  free (loop);
}

int
loop_add (struct loop *loop, struct loop_watch *w, int fd, uint32_t events,
          void (*cb) (struct loop_watch *, uint32_t), void *opaque)
{
  struct epoll_event ev = { .events = events, .data.ptr = w };

  w->fd = fd;
  w->events = events;
  w->cb = cb;
  w->opaque = opaque;
  return epoll_ctl (loop->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int
loop_mod (struct loop *loop, struct loop_watch *w, uint32_t events)
{
  struct epoll_event ev = { .events = events, .data.ptr = w };

  if (w->events == events)
    return 0;
  w->events = events;
  return epoll_ctl (loop->epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

void
loop_del (struct loop *loop, struct loop_watch *w)
{
  epoll_ctl (loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
  w->cb = NULL;
}

void
loop_timer_cancel (struct loop *loop, struct loop_timer *t)
{
  struct loop_timer **pp;

  if (!t->armed)
    return;
  for (pp = &loop->timers; *pp; pp = &(*pp)->next)
    if (*pp == t) {
      *pp = t->next;
      break;
    }
  t->armed = false;
}

void
loop_timer_arm (struct loop *loop, struct loop_timer *t, uint64_t ms,
                void (*cb) (struct loop_timer *), void *opaque)
{
  struct loop_timer **pp;

  loop_timer_cancel (loop, t);
  t->deadline_ns = now_ns () + ms * 1000000ull;
  t->cb = cb;
  t->opaque = opaque;
  for (pp = &loop->timers; *pp && (*pp)->deadline_ns <= t->deadline_ns;
       pp = &(*pp)->next)
    ;
  t->next = *pp;
  *pp = t;
  t->armed = true;
}

void
loop_defer (struct loop *loop, struct loop_defer *d,
            void (*cb) (struct loop_defer *), void *opaque)
{
  if (d->queued)
    return;
  d->cb = cb;
  d->opaque = opaque;
  d->next = NULL;
  d->queued = true;
  if (loop->defer_tail)
    loop->defer_tail->next = d;
  else
    loop->defer_head = d;
  loop->defer_tail = d;
}

void
loop_defer_cancel (struct loop *loop, struct loop_defer *d)
{
  struct loop_defer *prev = NULL;

  if (!d->queued)
    return;
  for (struct loop_defer *p = loop->defer_head; p; prev = p, p = p->next)
    if (p == d) {
      if (prev)
        prev->next = d->next;
      else
        loop->defer_head = d->next;
      if (loop->defer_tail == d)
        loop->defer_tail = prev;
      break;
    }
  d->queued = false;
  d->next = NULL;
}

static void
run_deferred (struct loop *loop)
{
  /* Callbacks may queue more work (which then runs in this same pass). */
  while (loop->defer_head) {
    struct loop_defer *d = loop->defer_head;
    loop->defer_head = d->next;
    if (!loop->defer_head)
      loop->defer_tail = NULL;
    d->queued = false;
    d->cb (d);
  }
}

static void
run_timers (struct loop *loop)
{
  uint64_t now = now_ns ();

  while (loop->timers && loop->timers->deadline_ns <= now) {
    struct loop_timer *t = loop->timers;
    loop->timers = t->next;
    t->armed = false;
    t->cb (t);
  }
}

static int
next_timeout_ms (struct loop *loop)
{
  uint64_t now;

  if (loop->defer_head)
    return 0;
  if (!loop->timers)
    return -1;
  now = now_ns ();
  if (loop->timers->deadline_ns <= now)
    return 0;
  /* Round up so a timer never fires a little early and spins. */
  return (loop->timers->deadline_ns - now + 999999) / 1000000;
}

static void
signal_ready (struct loop_watch *w, uint32_t revents)
{
  struct loop *loop = w->opaque;
  struct signalfd_siginfo si;

  while (read (w->fd, &si, sizeof si) == sizeof si)
    loop->sig_cb (loop, si.ssi_signo, loop->sig_opaque);
}

int
loop_signals (struct loop *loop, const int *signals, int n,
              void (*cb) (struct loop *, int, void *), void *opaque)
{
  sigset_t set;
  int fd;

  sigemptyset (&set);
  for (int i = 0; i < n; i++)
    sigaddset (&set, signals[i]);
  if (sigprocmask (SIG_BLOCK, &set, NULL) == -1)
    return -1;
  fd = signalfd (-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd == -1)
    return -1;
  loop->sig_cb = cb;
  loop->sig_opaque = opaque;
  return loop_add (loop, &loop->sig_watch, fd, EPOLLIN, signal_ready, loop);
}

int
loop_run (struct loop *loop)
{
  struct epoll_event evs[64];

  /* A stop asked for before the loop runs (a request that completed
   * at once, inside its submit) is honoured, not forgotten: the flag is
   * cleared on the way out, for the next run.
   */
  while (!loop->stop) {
    int n = epoll_wait (loop->epfd, evs, ARRAY_SIZE (evs),
                        next_timeout_ms (loop));
    if (n == -1 && errno != EINTR) {
      loop->stop = false;
      return -1;
    }
    for (int i = 0; i < n; i++) {
      struct loop_watch *w = evs[i].data.ptr;
      /* A callback earlier in this batch may have removed w. */
      if (w->cb)
        w->cb (w, evs[i].events);
    }
    run_timers (loop);
    run_deferred (loop);
  }
  loop->stop = false;
  return 0;
}

void
loop_stop (struct loop *loop)
{
  loop->stop = true;
}
