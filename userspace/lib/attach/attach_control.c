/* attach_control.c - what a running attach answers on its control
 * channel (core of the channel: control.c): verify and replace on the
 * live volume, detach, snapshot, contents; and recording the channel's
 * socket in the registry so the CLI finds it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attach/attach_internal.h"
#include "core/fsutil.h"
#include "core/util.h"

/* ---- the control channel: verify and replace on the live volume ------- */

static void
verify_report (void *opaque, const char *line)
{
  control_reply (opaque, line);
}

static void
verify_done (void *opaque, uint64_t differing, uint64_t repaired, int err)
{
  char line[160];

  if (err)
    snprintf (line, sizeof line, "error: verify stopped: %s (%llu differing "
              "regions so far)", strerror (err), (unsigned long long) differing);
  else if (differing > repaired)
    snprintf (line, sizeof line, "error: %llu region(s) of %u bytes differ "
              "(repvol verify --repair copies them from the majority)",
              (unsigned long long) differing, ENGINE_VERIFY_REGION);
  else
    snprintf (line, sizeof line, "ok: replicas agree (%llu region(s) of %u "
              "bytes repaired)", (unsigned long long) repaired,
              ENGINE_VERIFY_REGION);
  log_info ("verify: %s", line);
  control_finish (opaque, line);
}

static int
find_replica (const struct reg_volume *v, const char *addr)
{
  for (int i = 0; i < v->nreplicas; i++)
    if (strcmp (v->replicas[i].addr, addr) == 0)
      return i;
  return -1;
}

/* "replace OLD NEW": the CLI has created NEW's replica and rewritten the
 * registry entry; take NEW into OLD's slot and copy everything to it.
 */
static void
control_replace (struct attach *a, struct control_req *req, const char *old,
                 const char *new)
{
  struct reg_volume v;
  struct error err = { 0 }, rerr = { 0 };
  char line[400];
  int i = find_replica (&a->vol, old);
  struct bdev *b;

  if (i < 0 || registry_get (a->reg, a->vol.name, &v, &rerr) < 0 ||
      strcmp (v.replicas[i].addr, new) != 0) {
    if (rerr.code && rerr.code != ENOENT)
      log_error ("%s", error_msg (&rerr));
    control_finish (req, "error: the registry does not show that replacement");
    return;
  }
  a->vol.replicas[i] = v.replicas[i];
  b = attach_connect_replica (a, i, a->o->timeout_ms, &err);
  if (!b)
    log_warn ("%s: new replica %s: %s (will keep trying)", v.name, new,
              error_msg (&err));
  engine_replace (a->dev, i, b, new);
  snprintf (line, sizeof line, "ok: %s replaces %s; copying the volume to it",
            new, old);
  control_finish (req, line);
}

static void
on_control (struct control_req *req, const char *line, void *opaque)
{
  struct attach *a = opaque;
  char old[REG_ADDR_MAX], new[REG_ADDR_MAX];

  if (attach_snapshot_control (a, req, line) ||
      attach_probe_control (a, req, line) ||
      attach_resize_control (a, req, line))
    return;
  if (strcmp (line, "verify") == 0 || strcmp (line, "verify repair") == 0) {
    log_info ("%s: %s requested", a->vol.name, line);
    engine_verify (a->dev, strcmp (line, "verify repair") == 0,
                   verify_report, verify_done, req);
  }
  else if (strcmp (line, "detach") == 0) {
    /* Answered with the outcome by detach_over (repvol detach), or now
     * if it is over already (the loop stops at the end of this pass).
     */
    if (a->detach_answer[0]) {
      control_finish (req, a->detach_answer);
      return;
    }
    if (a->ndetach_req == ATTACH_DETACH_REQS) {
      control_finish (req, "error: too many detach requests at once");
      return;
    }
    a->detach_req[a->ndetach_req++] = req;
    attach_stop_requested (a, "repvol detach");
  }
  else if (sscanf (line, "replace %127s %127s", old, new) == 2)
    control_replace (a, req, old, new);
  else
    control_finish (req, "error: unknown control command");
}

static int
record_control (struct reg_volume *v, void *arg)
{
  struct attach *a = arg;

  if (!attach_owns (v, a))
    return ESTALE;
  snprintf (v->attachment.control, sizeof v->attachment.control, "%s",
            a->ctl_path);
  return 0;
}

/* Where the control socket goes: $REPVOL_RUN_DIR or /run/repvol, named
 * by the volume's uuid (unique even across registries).
 */
void
attach_start_control (struct attach *a)
{
  struct error rerr = { 0 };
  int err = 0;
  const char *dir = run_dir (&err);

  if (err < 0) {
    log_warn ("%s: no control channel (%s: %s): verify and replace will "
              "not reach this attach", a->vol.name, dir, strerror (-err));
    return;
  }
  snprintf (a->ctl_path, sizeof a->ctl_path, "%s/%s.ctl", dir,
            a->vol.uuid[0] ? a->vol.uuid : a->vol.name);
  a->ctl = control_start (a->loop, a->ctl_path, on_control, a);
  if (a->ctl &&
      registry_update (a->reg, a->vol.name, record_control, a, &rerr) < 0 &&
      rerr.code != ESTALE && rerr.code != ENOENT)
    log_error ("%s", error_msg (&rerr));
}
