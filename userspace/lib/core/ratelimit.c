/* ratelimit.c - one log line per peer per interval (see ratelimit.h). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/ratelimit.h"
#include "core/util.h"

#define OTHERS RATELIMIT_KEYS   /* the entry every other key shares */

void
ratelimit_init (struct ratelimit *rl, struct loop *loop, unsigned interval_ms)
{
  memset (rl, 0, sizeof *rl);
  rl->loop = loop;
  rl->interval_ns = (uint64_t) interval_ms * 1000000ull;
  snprintf (rl->e[OTHERS].key, sizeof rl->e[OTHERS].key, "other peers");
}

static void say_suppressed (struct ratelimit *rl, struct ratelimit_entry *e);

void
ratelimit_set_interval (struct ratelimit *rl, unsigned interval_ms)
{
  for (int i = 0; i <= OTHERS; i++) {
    say_suppressed (rl, &rl->e[i]);
    rl->e[i].start_ns = 0;
  }
  if (rl->loop)
    loop_timer_cancel (rl->loop, &rl->timer);
  rl->interval_ns = (uint64_t) interval_ms * 1000000ull;
}

static bool
expired (const struct ratelimit *rl, const struct ratelimit_entry *e,
         uint64_t now)
{
  return now - e->start_ns >= rl->interval_ns;
}

/* The line that closes an interval in which lines were counted. */
static void
say_suppressed (struct ratelimit *rl, struct ratelimit_entry *e)
{
  if (!e->suppressed)
    return;
  log_warn ("%s: %" PRIu64 " more line%s suppressed in the last %" PRIu64
            " s; the last: %s", e->key, e->suppressed,
            e->suppressed == 1 ? "" : "s",
            (uint64_t) ((rl->interval_ns + 999999999u) / 1000000000u), e->last);
  e->suppressed = 0;
}

static void on_timer (struct loop_timer *t);

/* Have the timer fire by the end of e's interval. */
static void
arm (struct ratelimit *rl, const struct ratelimit_entry *e, uint64_t now)
{
  uint64_t end = e->start_ns + rl->interval_ns;

  if (!rl->loop || (rl->timer.armed && rl->timer.deadline_ns <= end))
    return;
  loop_timer_arm (rl->loop, &rl->timer,
                  end > now ? (end - now + 999999) / 1000000 : 0, on_timer, rl);
}

static void
on_timer (struct loop_timer *t)
{
  struct ratelimit *rl = t->opaque;
  uint64_t now = now_ns ();

  for (int i = 0; i <= OTHERS; i++) {
    struct ratelimit_entry *e = &rl->e[i];
    if (e->start_ns && e->suppressed && expired (rl, e, now)) {
      say_suppressed (rl, e);
      e->start_ns = now;        /* that line was this interval's */
    }
  }
  for (int i = 0; i <= OTHERS; i++)
    if (rl->e[i].start_ns && rl->e[i].suppressed)
      arm (rl, &rl->e[i], now);
}

/* key's entry: its own, a free or finished one made its own, or the
 * one every other key shares.
 */
static struct ratelimit_entry *
entry_for (struct ratelimit *rl, const char *key, uint64_t now)
{
  struct ratelimit_entry *spare = NULL;

  for (int i = 0; i < OTHERS; i++) {
    struct ratelimit_entry *e = &rl->e[i];
    if (e->start_ns && !strcmp (e->key, key))
      return e;
    if (!spare && (!e->start_ns || expired (rl, e, now)))
      spare = e;
  }
  if (!spare)
    return &rl->e[OTHERS];
  say_suppressed (rl, spare);
  snprintf (spare->key, sizeof spare->key, "%s", key);
  spare->start_ns = 0;
  return spare;
}

bool
ratelimit_vwarn (struct ratelimit *rl, const char *key, const char *fmt,
                 va_list ap)
{
  struct ratelimit_entry *e;
  char k[sizeof e->key], line[sizeof e->last];
  uint64_t now = now_ns ();

  vsnprintf (line, sizeof line, fmt, ap);
  if (!rl->interval_ns) {       /* no limit: every line */
    log_warn ("%s", line);
    return true;
  }
  snprintf (k, sizeof k, "%s", key);     /* compared as it is stored */
  e = entry_for (rl, k, now);
  if (e->start_ns && !expired (rl, e, now)) {
    e->suppressed++;
    memcpy (e->last, line, sizeof line);
    arm (rl, e, now);
    return false;
  }
  say_suppressed (rl, e);       /* no timer said it */
  e->start_ns = now;
  log_warn ("%s", line);
  return true;
}

bool
ratelimit_warn (struct ratelimit *rl, const char *key, const char *fmt, ...)
{
  va_list ap;
  bool logged;

  va_start (ap, fmt);
  logged = ratelimit_vwarn (rl, key, fmt, ap);
  va_end (ap);
  return logged;
}

void
ratelimit_fini (struct ratelimit *rl)
{
  for (int i = 0; i <= OTHERS; i++)
    say_suppressed (rl, &rl->e[i]);
  if (rl->loop)
    loop_timer_cancel (rl->loop, &rl->timer);
  rl->loop = NULL;
}
