/* progress.h - progress of a long job on the terminal, or for scripts.
 *
 * On a terminal (stderr): one bar redrawn in place with bytes, rate and
 * time left.  Otherwise: a plain line every few seconds.  With json: one
 * event object per update on stdout ({"event":"progress",...}), for
 * scripts; the job's other events (event_new / event_print) are lines
 * of the same stream.
 */
#ifndef REPVOL_PROGRESS_H
#define REPVOL_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct json_object;

struct progress {
  const char *what;             /* "snapshot vol-1", "restore v2" */
  bool tty, json, drawn;
  uint64_t t0, last;            /* ns */
};

void progress_init (struct progress *p, const char *what, bool json);
/* done of total units (chunks); bytes read so far (the rate shown) and
 * bytes uploaded (in the JSON event only).
 */
void progress_update (struct progress *p, uint64_t done, uint64_t total,
                      uint64_t bytes_read, uint64_t bytes_uploaded);
/* Finish the bar's line (before printing anything else). */
void progress_end (struct progress *p);

/* An event of the --json stream: {"event":EVENT}, for the caller to add
 * its fields to; event_print prints it as one compact line and drops it.
 */
struct json_object *event_new (const char *event);
void event_print (struct json_object *o);

#endif
