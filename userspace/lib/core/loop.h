/* loop.h - the single-threaded event loop every repvol process runs on.
 *
 * One thread, epoll for file descriptors, a sorted list of one-shot
 * timers, and "deferred" callbacks that run once at the end of the
 * current iteration (used to batch socket writes: everything queued
 * while handling one epoll wakeup leaves in one writev).  Nothing here
 * is thread safe: a loop and everything registered on it belong to the
 * thread that calls loop_run().
 */
#ifndef REPVOL_LOOP_H
#define REPVOL_LOOP_H

#include <stdint.h>
#include <stdbool.h>
#include <sys/epoll.h>

struct loop;

struct loop_watch {
  int fd;
  uint32_t events;
  void (*cb) (struct loop_watch *w, uint32_t revents);
  void *opaque;
};

struct loop_timer {
  uint64_t deadline_ns;           /* CLOCK_MONOTONIC */
  void (*cb) (struct loop_timer *t);
  void *opaque;
  struct loop_timer *next;
  bool armed;
};

struct loop_defer {
  void (*cb) (struct loop_defer *d);
  void *opaque;
  struct loop_defer *next;
  bool queued;
};

struct loop *loop_new (void);
void loop_free (struct loop *loop);

/* Watch fd for events (EPOLLIN / EPOLLOUT).  w must stay valid until
 * loop_del().  The callback gets the ready events (EPOLLERR / EPOLLHUP
 * included).
 */
int loop_add (struct loop *loop, struct loop_watch *w, int fd, uint32_t events,
              void (*cb) (struct loop_watch *, uint32_t), void *opaque);
int loop_mod (struct loop *loop, struct loop_watch *w, uint32_t events);
void loop_del (struct loop *loop, struct loop_watch *w);

/* Arm (or re-arm) a one-shot timer ms milliseconds from now. */
void loop_timer_arm (struct loop *loop, struct loop_timer *t, uint64_t ms,
                     void (*cb) (struct loop_timer *), void *opaque);
void loop_timer_cancel (struct loop *loop, struct loop_timer *t);

/* Run cb once at the end of this iteration (idempotent while queued). */
void loop_defer (struct loop *loop, struct loop_defer *d,
                 void (*cb) (struct loop_defer *), void *opaque);

/* Take d off the queue if it is queued (its owner is going away). */
void loop_defer_cancel (struct loop *loop, struct loop_defer *d);

/* Call cb when one of the signals arrives (blocks them, uses signalfd). */
int loop_signals (struct loop *loop, const int *signals, int n,
                  void (*cb) (struct loop *, int signo, void *opaque),
                  void *opaque);

/* Run until loop_stop().  Returns 0, or -1 on an epoll failure. */
int loop_run (struct loop *loop);
void loop_stop (struct loop *loop);

#endif
