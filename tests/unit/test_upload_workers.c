/* test_upload_workers.c - the snapshot upload's worker pool
 * (snapshot/upload_workers.c): every job run and delivered exactly once,
 * in any order; the queue bounds the producer; a stop with jobs still
 * queued hands every one back (valgrind checks nothing is left).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "snapshot/upload_workers.h"

/* A gate jobs may wait at until the test opens it. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static int at_gate;             /* jobs waiting at it */

struct tjob {
  struct uw_job w;              /* first */
  int index;
  bool wait_at_gate;
  atomic_int runs;
  uint64_t sum;                 /* work done on the worker */
};

static void
tjob_run (struct uw_job *w)
{
  struct tjob *j = (struct tjob *) w;

  if (j->wait_at_gate) {
    pthread_mutex_lock (&gate_lock);
    at_gate++;
    pthread_cond_broadcast (&gate_cv);
    while (!gate_open)
      pthread_cond_wait (&gate_cv, &gate_lock);
    at_gate--;
    pthread_mutex_unlock (&gate_lock);
  }
  for (int i = 0; i <= j->index % 1000; i++)
    j->sum += (uint64_t) i * j->index;
  atomic_fetch_add (&j->runs, 1);
}

static struct tjob *
tjob_new (int index, bool wait_at_gate)
{
  struct tjob *j = calloc (1, sizeof *j);
  assert_non_null (j);
  j->w.run = tjob_run;
  j->index = index;
  j->wait_at_gate = wait_at_gate;
  return j;
}

static void
gate_reset (void)
{
  pthread_mutex_lock (&gate_lock);
  gate_open = false;
  pthread_mutex_unlock (&gate_lock);
}

static void
gate_release (void)
{
  pthread_mutex_lock (&gate_lock);
  gate_open = true;
  pthread_cond_broadcast (&gate_cv);
  pthread_mutex_unlock (&gate_lock);
}

/* Wait (bounded: 10 s) until n jobs wait at the gate. */
static void
gate_wait_for (int n)
{
  struct timespec until;
  clock_gettime (CLOCK_REALTIME, &until);
  until.tv_sec += 10;
  pthread_mutex_lock (&gate_lock);
  while (at_gate < n)
    if (pthread_cond_timedwait (&gate_cv, &gate_lock, &until) == ETIMEDOUT)
      break;
  int got = at_gate;
  pthread_mutex_unlock (&gate_lock);
  assert_int_equal (got, n);
}

static atomic_int notified;

static void
count_notify (void *opaque)
{
  assert_ptr_equal (opaque, &notified);
  atomic_fetch_add (&notified, 1);
}

static void
test_default_threads (void **state)
{
  int n = uw_default_threads ();
  assert_true (n >= 1 && n <= UW_MAX_THREADS);
}

static void
test_start_bad (void **state)
{
  struct upload_workers *w = NULL;
  assert_int_equal (uw_start (&w, 0, 4, NULL, NULL), -EINVAL);
  assert_int_equal (uw_start (&w, UW_MAX_THREADS + 1, 4, NULL, NULL),
                    -EINVAL);
  assert_int_equal (uw_start (&w, 2, 0, NULL, NULL), -EINVAL);
  assert_null (w);
}

/* Many jobs through a small queue: each run once and handed back once,
 * the driver collecting as it goes, as the upload thread does.
 */
#define MANY 3000
static void
test_many_jobs (void **state)
{
  static struct tjob *jobs[MANY];
  static int delivered[MANY];
  struct upload_workers *w;
  int taken = 0;

  memset (delivered, 0, sizeof delivered);
  atomic_store (&notified, 0);
  assert_int_equal (uw_start (&w, uw_default_threads (), 3, count_notify,
                              &notified), 0);
  for (int i = 0; i < MANY; i++) {
    jobs[i] = tjob_new (i, false);
    uw_submit (w, &jobs[i]->w);
    if (i % 7 == 0)
      for (struct uw_job *d = uw_take_done (w), *next; d; d = next) {
        next = d->next;
        delivered[((struct tjob *) d)->index]++;
        taken++;
      }
  }
  while (taken < MANY) {
    struct uw_job *d = uw_wait_done (w, 10000);
    assert_non_null (d);        /* not 10 s without one */
    for (struct uw_job *next; d; d = next) {
      next = d->next;
      delivered[((struct tjob *) d)->index]++;
      taken++;
    }
  }
  assert_null (uw_stop (w));
  for (int i = 0; i < MANY; i++) {
    assert_int_equal (delivered[i], 1);
    assert_int_equal (atomic_load (&jobs[i]->runs), 1);
    free (jobs[i]);
  }
  assert_int_equal (atomic_load (&notified), MANY);
}

struct producer {
  struct upload_workers *w;
  struct uw_job *job;
  atomic_bool returned;
};

static void *
producer (void *arg)
{
  struct producer *p = arg;
  uw_submit (p->w, p->job);
  atomic_store (&p->returned, true);
  return NULL;
}

/* One worker held at the gate and two jobs queued: a third submit
 * waits until the worker takes one.
 */
static void
test_queue_blocks_producer (void **state)
{
  struct upload_workers *w;
  struct tjob *a = tjob_new (0, true), *b = tjob_new (1, false),
    *c = tjob_new (2, false), *d = tjob_new (3, false);
  struct producer p = { .job = &d->w };
  pthread_t t;

  gate_reset ();
  assert_int_equal (uw_start (&w, 1, 2, NULL, NULL), 0);
  p.w = w;
  uw_submit (w, &a->w);
  gate_wait_for (1);            /* a runs: the queue is empty */
  uw_submit (w, &b->w);
  uw_submit (w, &c->w);         /* the queue is full */
  assert_int_equal (pthread_create (&t, NULL, producer, &p), 0);
  /* Nothing can free room while the gate is shut: give the producer
   * time to get past uw_submit if the bound did not hold.
   */
  struct timespec pause = { 0, 100 * 1000000 };
  nanosleep (&pause, NULL);
  assert_false (atomic_load (&p.returned));
  gate_release ();
  pthread_join (t, NULL);
  assert_true (atomic_load (&p.returned));

  int taken = 0;
  while (taken < 4) {
    struct uw_job *j = uw_wait_done (w, 10000);
    assert_non_null (j);
    for (struct uw_job *next; j; j = next) {
      next = j->next;
      taken++;
    }
  }
  assert_null (uw_stop (w));
  struct tjob *all[] = { a, b, c, d };
  for (int i = 0; i < 4; i++) {
    assert_int_equal (atomic_load (&all[i]->runs), 1);
    free (all[i]);
  }
}

struct stopper {
  struct upload_workers *w;
  struct uw_job *left;
};

static void *
stopper (void *arg)
{
  struct stopper *s = arg;
  s->left = uw_stop (s->w);
  return NULL;
}

/* A stop while workers are busy and jobs are queued: the running ones
 * finish, and every job not taken comes back once, run or never run.
 */
static void
test_stop_with_jobs_queued (void **state)
{
  enum { N = 12 };
  struct upload_workers *w;
  struct tjob *jobs[N];
  int back[N] = { 0 };
  pthread_t t;

  gate_reset ();
  assert_int_equal (uw_start (&w, 2, N, NULL, NULL), 0);
  for (int i = 0; i < N; i++) {
    jobs[i] = tjob_new (i, i < 2);      /* the first two hold the workers */
    uw_submit (w, &jobs[i]->w);
  }
  gate_wait_for (2);
  struct stopper s = { .w = w };
  assert_int_equal (pthread_create (&t, NULL, stopper, &s), 0);
  /* Let the stop begin before the workers can finish. */
  struct timespec pause = { 0, 50 * 1000000 };
  nanosleep (&pause, NULL);
  gate_release ();
  pthread_join (t, NULL);

  for (struct uw_job *j = s.left, *next; j; j = next) {
    next = j->next;
    back[((struct tjob *) j)->index]++;
  }
  /* How many of the queued ones ran depends on when the workers saw
   * the stop (valgrind may not schedule the stopper for a while); that
   * each comes back once, run at most once, and nothing leaks does not.
   */
  for (int i = 0; i < N; i++) {
    assert_int_equal (back[i], 1);
    if (i < 2)
      assert_int_equal (atomic_load (&jobs[i]->runs), 1);   /* held ones */
    else
      assert_true (atomic_load (&jobs[i]->runs) <= 1);
    free (jobs[i]);
  }
}

/* A stop with nothing submitted, and one right after start. */
static void
test_stop_idle (void **state)
{
  struct upload_workers *w;
  assert_int_equal (uw_start (&w, UW_MAX_THREADS, 1, NULL, NULL), 0);
  assert_null (uw_take_done (w));
  assert_null (uw_wait_done (w, 10));
  assert_null (uw_stop (w));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_default_threads),
    cmocka_unit_test (test_start_bad),
    cmocka_unit_test (test_many_jobs),
    cmocka_unit_test (test_queue_blocks_producer),
    cmocka_unit_test (test_stop_with_jobs_queued),
    cmocka_unit_test (test_stop_idle),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
