/* progress.c - see progress.h. */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/util.h"
#include "progress.h"
#include "repvol.h"

json_object *
event_new (const char *event)
{
  json_object *o = json_object_new_object ();

  json_object_object_add (o, "event", json_object_new_string (event));
  return o;
}

/* {"event":"done","name":"s1",...}: no spaces, '/' as it is. */
void
event_print (json_object *o)
{
  print_json (o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

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
                 uint64_t bytes, uint64_t uploaded)
{
  uint64_t now = now_ns ();
  double secs = (now - p->t0) / 1e9;
  double rate = secs > 0 ? bytes / secs : 0;
  char b[32], r[32], eta[32] = "?";

  if (p->json) {
    json_object *o = event_new ("progress");
    json_object_object_add (o, "chunks_done", json_object_new_uint64 (done));
    json_object_object_add (o, "chunks_total", json_object_new_uint64 (total));
    json_object_object_add (o, "bytes_read", json_object_new_uint64 (bytes));
    json_object_object_add (o, "bytes_uploaded",
                            json_object_new_uint64 (uploaded));
    event_print (o);
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
  size_text (bytes, b, sizeof b);
  rate_text ((uint64_t) rate, r, sizeof r);
  unsigned pct = total ? (unsigned) (done * 100 / total) : 100;
  if (p->tty) {
    char bar[31];
    unsigned fill = pct * 30 / 100;
    for (unsigned i = 0; i < 30; i++)
      bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf (stderr, "\r%s [%s] %3u%% %" PRIu64 "/%" PRIu64 " chunks, %s, "
             "%s, eta %s   ", p->what, bar, pct, done, total, b, r, eta);
    p->drawn = true;
  }
  else
    fprintf (stderr, "%s: %u%% (%" PRIu64 "/%" PRIu64 " chunks), %s at %s, "
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
