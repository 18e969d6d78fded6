/* progress.c - see progress.h. */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "core/util.h"
#include "progress.h"

void
progress_init (struct progress *p, const char *what, bool json)
{
  p->what = what;
  p->json = json;
  p->tty = !json && isatty (STDERR_FILENO);
  p->drawn = false;
  p->t0 = now_ns ();
  p->last = 0;
}

void
progress_update (struct progress *p, uint64_t done, uint64_t total,
                 uint64_t bytes, const char *extra)
{
  uint64_t now = now_ns ();
  double secs = (now - p->t0) / 1e9;
  double rate = secs > 0 ? bytes / secs : 0;
  char b[32], r[32], eta[32] = "?";

  if (p->json) {
    printf ("{\"event\":\"progress\",\"chunks_done\":%" PRIu64
            ",\"chunks_total\":%" PRIu64 "%s}\n", done, total, extra);
    fflush (stdout);
    return;
  }
  /* Plain lines are for logs: one every 5 s and the last. */
  if (!p->tty && done < total && now - p->last < 5000000000ull)
    return;
  p->last = now;
  if (done > 0 && total > done && secs > 0)
    snprintf (eta, sizeof eta, "%.0fs", secs * (total - done) / done);
  else if (done >= total)
    snprintf (eta, sizeof eta, "0s");
  format_size (bytes, b, sizeof b);
  format_size ((uint64_t) rate, r, sizeof r);
  unsigned pct = total ? (unsigned) (done * 100 / total) : 100;
  if (p->tty) {
    char bar[31];
    unsigned fill = pct * 30 / 100;
    for (unsigned i = 0; i < 30; i++)
      bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf (stderr, "\r%s [%s] %3u%% %" PRIu64 "/%" PRIu64 " chunks, %s, "
             "%s/s, eta %s   ", p->what, bar, pct, done, total, b, r, eta);
    p->drawn = true;
  }
  else
    fprintf (stderr, "%s: %u%% (%" PRIu64 "/%" PRIu64 " chunks), %s at %s/s, "
             "eta %s\n", p->what, pct, done, total, b, r, eta);
  fflush (stderr);
}

void
progress_end (struct progress *p)
{
  if (p->drawn)
    fputc ('\n', stderr);
  p->drawn = false;
}
