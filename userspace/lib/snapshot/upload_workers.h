/* upload_workers.h - a small pool of threads that run CPU-bound jobs
 * (hash and compress a snapshot chunk) beside the thread that drives
 * the object store.
 *
 * One thread (the driver) submits jobs and collects them once run; the
 * workers only call job->run.  The queue of jobs not yet started is
 * bounded: uw_submit blocks while it is full.  A finished job waits on
 * a done list until the driver takes it; notify (called by the worker
 * that finished it, without the pool's lock) tells the driver there is
 * something to take, so it can sleep elsewhere (objstore_poll) and be
 * woken (objstore_wakeup).  Jobs complete in any order.
 */
#ifndef REPVOL_SNAPSHOT_UPLOAD_WORKERS_H
#define REPVOL_SNAPSHOT_UPLOAD_WORKERS_H

struct uw_job {
  struct uw_job *next;          /* the pool's while the job is in it */
  void (*run) (struct uw_job *job);     /* on a worker thread */
};

struct upload_workers;

/* The default number of workers: the CPUs online, 1 to UW_MAX_THREADS. */
#define UW_MAX_THREADS 8
int uw_default_threads (void);

/* Start nthreads workers (1..UW_MAX_THREADS) with room for queue_max
 * (at least 1) jobs waiting to start.  0 or a negative errno.
 */
int uw_start (struct upload_workers **wp, int nthreads, int queue_max,
              void (*notify) (void *opaque), void *opaque);
/* Driver: queue job, waiting while queue_max jobs are waiting already. */
void uw_submit (struct upload_workers *w, struct uw_job *job);
/* Driver: every job run and not yet taken (a list through next, in the
 * order they finished), or NULL.  Never waits.
 */
struct uw_job *uw_take_done (struct upload_workers *w);
/* Driver: wait until at least one job is done or timeout_ms passed;
 * then as uw_take_done.
 */
struct uw_job *uw_wait_done (struct upload_workers *w, int timeout_ms);
/* Driver: let the running jobs finish, join the workers and free the
 * pool.  Returns every job not taken: those never started (run was not
 * called) and those done; the caller frees them.
 */
struct uw_job *uw_stop (struct upload_workers *w);

#endif
