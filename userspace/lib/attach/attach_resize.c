/* attach_resize.c - "resize SIZE [reserve]" on the control channel:
 * growing an attached volume (docs/DESIGN.md 3.10).
 *
 * The request goes down the served stack (metrics, cow, [hydrate],
 * engine) as one BDEV_RESIZE: the engine grows every replica, then each
 * layer takes the new size.  Only then is the size recorded in the
 * registry, and only once it is recorded do the frontends show it: a
 * client can write past the old end only when the next attach will
 * serve the new size too (a replica larger than the registry says is
 * accepted, so a resize that stops half way loses nothing and can be
 * run again).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach/attach_internal.h"
#include "core/util.h"

struct resize_job {
  struct bdev_io io;
  struct attach *a;
  struct control_req *req;
  uint64_t old_size;
};

static int
record_size (struct reg_volume *v, void *arg)
{
  const struct resize_job *j = arg;

  if (!attach_owns (v, j->a))
    return ESTALE;
  if (v->size < j->io.offset)
    v->size = j->io.offset;
  return 0;
}

static void
resized (struct bdev_io *io, int err)
{
  struct resize_job *j = container_of (io, struct resize_job, io);
  struct attach *a = j->a;
  struct error rerr = { 0 };
  char line[400], from[32], to[32];
  const char *when = "";

  a->resizing = false;
  format_size (j->old_size, from, sizeof from);
  format_size (io->offset, to, sizeof to);
  if (err) {
    snprintf (line, sizeof line, "error: cannot grow the volume from %s to "
              "%s: %s", from, to, err == EBUSY && a->hydrate
              ? "it is being restored (resize it once the restore is over "
                "and it is attached again)"
              : err == EBUSY ? "a snapshot is running" : strerror (err));
    goto answer;
  }
  if (registry_update (a->reg, a->vol.name, record_size, j, &rerr) < 0) {
    /* The replicas hold the new size and the registry the old one: the
     * next attach serves the old one, so no client may see the new.
     */
    snprintf (line, sizeof line, "error: the replicas grew to %s but the "
              "registry cannot record it (%s): the volume stays %s for its "
              "clients; run repvol resize again", to, error_msg (&rerr), from);
    goto answer;
  }
  a->vol.size = io->offset;
  int r = a->fe ? frontend_resized (a->fe, &when) : -ENOTSUP;
  attach_event (a, "resized", "%s -> %s", from, to);
  log_info ("%s: grown from %s to %s", a->vol.name, from, to);
  if (r == 0)
    snprintf (line, sizeof line, "ok resized %" PRIu64 " %" PRIu64 ": %s "
              "shows %s %s", j->old_size, io->offset,
              a->fe->where, to, when);
  else if (r == -ENOTSUP && a->fe)
    snprintf (line, sizeof line, "ok resized %" PRIu64 " %" PRIu64 ": %s "
              "keeps showing %s until the volume is attached again (this "
              "kernel cannot change the size of a %s device in place)",
              j->old_size, io->offset, a->fe->where, from, a->fe->ops->name);
  else
    snprintf (line, sizeof line, "ok resized %" PRIu64 " %" PRIu64 "%s",
              j->old_size, io->offset, a->fe ? ": the device could not be "
              "told (see the attach's log)" : "");
 answer:
  if (line[0] == 'e')
    log_error ("%s: resize: %s", a->vol.name, line + 7);
  control_finish (j->req, line);
  free (j);
}

bool
attach_resize_control (struct attach *a, struct control_req *req,
                       const char *line)
{
  char size_s[64], flag[16] = "";
  uint64_t size;
  int n = sscanf (line, "resize %63s %15s", size_s, flag);
  struct resize_job *j;
  struct bdev *top = a->fe ? a->fe->dev : a->cow;

  if (strncmp (line, "resize ", 7) != 0)
    return false;
  if (n < 1 || parse_size (size_s, &size) < 0 ||
      (n == 2 && strcmp (flag, "reserve") != 0)) {
    control_finish (req, "error: usage: resize SIZE [reserve]");
    return true;
  }
  if (a->fenced || a->detaching || !top) {
    control_finish (req, a->fenced ? "error: this attachment has been "
                    "fenced" : "error: the volume is being detached");
    return true;
  }
  if (size < top->info.size) {
    control_finish (req, "error: an attached volume only grows; shrinking "
                    "needs it detached (repvol resize --allow-shrink)");
    return true;
  }
  if (size == top->info.size) {
    char line_ok[64];
    snprintf (line_ok, sizeof line_ok, "ok resized %" PRIu64 " %" PRIu64,
              size, size);
    control_finish (req, line_ok);
    return true;
  }
  if (size % a->vol.block_size) {
    control_finish (req, "error: the size is not a multiple of the "
                    "volume's block size");
    return true;
  }
  if (a->resizing || (j = calloc (1, sizeof *j)) == NULL) {
    control_finish (req, a->resizing ? "error: a resize is in progress"
                    : "error: out of memory");
    return true;
  }
  a->resizing = true;
  j->a = a;
  j->req = req;
  j->old_size = top->info.size;
  j->io.done = resized;
  log_info ("%s: resize to %" PRIu64 " bytes requested", a->vol.name, size);
  bdev_resize (top, &j->io, size,
               n == 2 || a->vol.reserved ? BDEV_RESERVE : 0);
  return true;
}
