/* event.c - the snapshot event lines (see snapshot.h): parsed once, for
 * the CLI that prints them and the attach that logs them, so that no
 * protocol line ever reaches a user as it is.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "snapshot/snapshot.h"

int
snap_event_parse (const char *line, struct snap_event *ev)
{
  long long t;

  memset (ev, 0, sizeof *ev);
  if (sscanf (line, "point %127s %lld", ev->name, &t) == 2) {
    ev->kind = SNAP_EV_POINT;
    ev->time = t;
  }
  else if (sscanf (line, "progress %" SCNu64 " %" SCNu64 " %" SCNu64
                   " %" SCNu64, &ev->done, &ev->total, &ev->bytes_read,
                   &ev->bytes_uploaded) == 4)
    ev->kind = SNAP_EV_PROGRESS;
  else if (sscanf (line, "ok %127s %127s %" SCNu64 " %" SCNu64 " %" SCNu64
                   " %lf", ev->name, ev->parent, &ev->total, &ev->bytes_read,
                   &ev->bytes_uploaded, &ev->seconds) == 6) {
    ev->kind = SNAP_EV_OK;
    if (strcmp (ev->parent, "-") == 0)
      ev->parent[0] = '\0';
  }
  else if (strncmp (line, "error", 5) == 0) {
    ev->kind = SNAP_EV_ERROR;
    ev->error = line + (strncmp (line, "error: ", 7) == 0 ? 7 : 5);
  }
  else
    return -1;
  return 0;
}

const char *
snap_event_describe (const struct snap_event *ev, char *buf, size_t len)
{
  char when[64], rd[32], up[32];
  time_t tt;

  switch (ev->kind) {
  case SNAP_EV_POINT:
    tt = (time_t) ev->time;
    strftime (when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime (&tt));
    snprintf (buf, len, "snapshot %s: point in time taken at %s", ev->name,
              when);
    break;
  case SNAP_EV_PROGRESS:
    snprintf (buf, len, "snapshot: %" PRIu64 " of %" PRIu64 " chunks, %s "
              "read, %s uploaded", ev->done, ev->total,
              format_size (ev->bytes_read, rd, sizeof rd),
              format_size (ev->bytes_uploaded, up, sizeof up));
    break;
  case SNAP_EV_OK:
    snprintf (buf, len, "snapshot %s complete: %" PRIu64 " chunk%s read "
              "(%s), %s uploaded in %.1f s; %s%s", ev->name, ev->total,
              ev->total == 1 ? "" : "s",
              format_size (ev->bytes_read, rd, sizeof rd),
              format_size (ev->bytes_uploaded, up, sizeof up), ev->seconds,
              ev->parent[0] ? "incremental on " : "full", ev->parent);
    break;
  case SNAP_EV_ERROR:
    snprintf (buf, len, "%s", ev->error);
    break;
  }
  return buf;
}
