/* ratelimit.h - at most one log line per peer per interval.
 *
 * A peer that misbehaves in a loop (a flood of bad frames, of refused
 * connections, of bad NBD requests) would otherwise make us write one
 * line per attempt, and the log becomes the attack.  Each line is said
 * with a key, the peer's address: the first line a key says in an
 * interval is logged; the others until the interval ends are counted,
 * and at its end one line says how many ("127.0.0.2: 4999 more lines
 * like this suppressed in the last 10 s; the last: ...") and starts the
 * next interval, so a key that keeps going gets one line per interval.
 *
 * The table holds RATELIMIT_KEYS keys; when all are in an interval,
 * every other key shares one more entry ("other peers"), so a flood
 * from many addresses is bounded as well.  The end of an interval is
 * noticed by a timer on the loop; without a loop (or after
 * ratelimit_fini) it is said with the key's next line instead.
 * Loop thread only.
 */
#ifndef REPVOL_RATELIMIT_H
#define REPVOL_RATELIMIT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include "core/loop.h"

#define RATELIMIT_KEYS        32
#define RATELIMIT_INTERVAL_MS 10000     /* the default interval */

struct ratelimit_entry {
  char key[64];
  char last[256];               /* the last line suppressed */
  uint64_t start_ns;            /* of the key's interval; 0: entry free */
  uint64_t suppressed;          /* lines counted in this interval */
};

struct ratelimit {
  struct loop *loop;            /* NULL: no timer */
  uint64_t interval_ns;
  struct loop_timer timer;      /* the earliest interval end with lines counted */
  struct ratelimit_entry e[RATELIMIT_KEYS + 1];   /* the last: other peers */
};

/* interval_ms 0: no limit, every line is logged. */
void ratelimit_init (struct ratelimit *rl, struct loop *loop,
                     unsigned interval_ms);
/* Change the interval (0: no limit); what is counted so far is said. */
void ratelimit_set_interval (struct ratelimit *rl, unsigned interval_ms);
/* Say what is still counted, stop the timer.  The limiter keeps
 * working after it, without a timer.
 */
void ratelimit_fini (struct ratelimit *rl);

/* log_warn() the line unless key has had one in its current interval;
 * then count it.  True if it was logged.
 */
bool ratelimit_warn (struct ratelimit *rl, const char *key,
                     const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
bool ratelimit_vwarn (struct ratelimit *rl, const char *key,
                      const char *fmt, va_list ap)
  __attribute__ ((format (printf, 3, 0)));

#endif
