/* periodic.h - a thread that calls a function every period until
 * stopped: for work that may block for seconds (a registry that is slow
 * or away) and so must not run on an event loop.  What it calls owns
 * its own state; nothing is shared with the caller but arg.
 */
#ifndef REPVOL_CORE_PERIODIC_H
#define REPVOL_CORE_PERIODIC_H

struct periodic;
struct error;

/* Call tick(arg) at once and then every period_ms (measured from the
 * end of the last call) on a new thread; after periodic_stop, call
 * last(arg) (may be NULL) once on that thread.  NULL with the reason in
 * err.
 */
struct periodic *periodic_start (unsigned period_ms, void (*tick) (void *),
                                 void (*last) (void *), void *arg,
                                 struct error *err);
/* Wake the thread, let it finish its call and last(), join it (NULL:
 * nothing).
 */
void periodic_stop (struct periodic *p);

#endif
