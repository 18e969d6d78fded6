/* progress.h - progress of a long job on the terminal, or for scripts.
 *
 * On a terminal (stderr): one bar redrawn in place with bytes, rate and
 * time left.  Otherwise: a plain line every few seconds.  With json: one
 * object per update on stdout ({"event":"progress",...}), for scripts.
 */
#ifndef REPVOL_PROGRESS_H
#define REPVOL_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct progress {
  const char *what;             /* "snapshot vol-1", "restore v2" */
  bool tty, json, drawn;
  uint64_t t0, last;            /* ns */
};

void progress_init (struct progress *p, const char *what, bool json);
/* done of total units (chunks); bytes moved so far; extra is a JSON
 * fragment (',"k":v...') added to the JSON object, or "".
 */
void progress_update (struct progress *p, uint64_t done, uint64_t total,
                      uint64_t bytes, const char *extra);
/* Finish the bar's line (before printing anything else). */
void progress_end (struct progress *p);

#endif
