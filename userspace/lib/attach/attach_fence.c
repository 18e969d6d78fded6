/* attach_fence.c - an attach and the other attachments of its volume:
 * what the claim needs to know of the attachment it finds (a CLI verb's
 * hold, a process still running), and learning that this attachment has
 * been fenced (docs/DESIGN.md rule 3): from a replica that refuses its
 * epoch (the engine's hook, a reconnection, the start-up connections),
 * from a registry update refused as not ours, or from the registry
 * itself, read once a second so that an idle attach learns it too.  A
 * fenced attach fails every request with EIO, stops its frontend without
 * the last flush and exits ATTACH_EXIT_FENCED.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "attach/attach_internal.h"
#include "core/fsutil.h"
#include "core/util.h"

bool
attach_is_hold (const struct reg_attachment *at)
{
  return strcmp (at->frontend, ATTACH_DELETE_CLAIM) == 0 ||
         strcmp (at->frontend, ATTACH_EPOCH_CLAIM) == 0 ||
         strcmp (at->frontend, ATTACH_RESIZE_CLAIM) == 0;
}

bool
attach_alive (const struct reg_attachment *at, const char *vol)
{
  char path[64], buf[4096];

  if (!pid_alive (at->pid))
    return false;

  /* The pid exists, but pids are reused: believe it is our attach only
   * if its command line names the volume.  A zombie has an empty
   * command line and counts as gone.  If /proc cannot tell us (not
   * mounted, hidepid), trust kill(): wrongly thinking a live attach dead
   * is the mistake to avoid.
   */
  snprintf (path, sizeof path, "/proc/%d/cmdline", (int) at->pid);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return true;
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  for (ssize_t i = 0; i < n; i += strlen (buf + i) + 1)
    if (strcmp (buf + i, vol) == 0)
      return true;
  return false;
}

static void
fence_stop (struct loop_defer *d)
{
  attach_begin_detach (d->opaque);
}

void
attach_fenced (struct attach *a, const char *fmt, ...)
{
  va_list ap;

  if (a->fenced)
    return;
  a->fenced = true;
  va_start (ap, fmt);
  vsnprintf (a->fence_why, sizeof a->fence_why, fmt, ap);
  va_end (ap);
  log_error ("%s: this attachment has been fenced: %s; failing I/O and "
             "stopping", a->o->volume, a->fence_why);
  if (!a->dev)
    return;                     /* not serving yet: attach_run stops */
  engine_fence (a->dev);
  /* Not from inside the engine's completion that told us. */
  if (!a->detaching)
    loop_defer (a->loop, &a->fence_defer, fence_stop, a);
}
