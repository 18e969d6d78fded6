/* attach_snapshot.c - what a running attach does for snapshots and
 * restores: start a snapshot of the live volume (the attach's own job,
 * or a "snapshot" command on the control channel) and relay its event
 * lines; move the change map's base (attach_cbt.c) with each one; and
 * record the progress of a lazy restore (the hydrated-chunk map and
 * count) in the registry until every chunk is in.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach/attach_internal.h"
#include "core/util.h"
#include "snapshot/catalog.h"
#include "snapshot/snapshot.h"

/* ---- snapshots ---------------------------------------------------------- */

static void
snap_line (void *opaque, const char *line)
{
  struct attach *a = opaque;
  struct snap_event ev;
  char say[512];
  bool known = snap_event_parse (line, &ev) == 0;
  bool last = known && (ev.kind == SNAP_EV_OK || ev.kind == SNAP_EV_ERROR);

  /* The lines themselves go on to the CLI; the log gets them as words. */
  if (known && ev.kind == SNAP_EV_ERROR)
    log_error ("%s", ev.error);         /* log_error says "error: " itself */
  else if (known && ev.kind != SNAP_EV_PROGRESS)
    log_info ("%s: %s", a->vol.name,
              snap_event_describe (&ev, say, sizeof say));
  if (known && ev.kind == SNAP_EV_OK)
    attach_event (a, "snapshot-done", "%s", line + (strncmp (line, "ok ", 3)
                                                     ? 0 : 3));
  if (last) {                   /* snap_done sends it, once recorded */
    snprintf (a->snap_last, sizeof a->snap_last, "%s", line);
    return;
  }
  if (a->snap_req)
    control_reply (a->snap_req, line);
  else if (a->o->job_line)
    a->o->job_line (a->o->job_opaque, line);
}

struct cbt_update {
  struct attach *a;
  bool complete;                /* the map is journaled: mark it valid */
};

/* The change map's base, and whether the saved map can be trusted. */
static int
record_cbt (struct reg_volume *v, void *arg)
{
  struct cbt_update *u = arg;

  bool valid = v->cbt.valid;

  if (!attach_owns (v, u->a))
    return ESTALE;
  v->cbt = u->a->vol.cbt;
  /* Our copy still says valid as it was at claim time; without a
   * journal, the registry's "invalid until a clean detach" (take_cbt)
   * must survive a snapshot's update, or a crash after it would make the
   * next attach trust a map that misses what was written since.
   */
  v->cbt.valid = u->complete ? true : valid;
  return 0;
}

static void
snap_done (void *opaque, int err, const char *name, const char *url)
{
  struct attach *a = opaque;
  struct cbt_update u = { .a = a };
  struct error rerr = { 0 };

  if (err == 0) {
    /* The next snapshot to this store builds on this one. */
    snprintf (a->vol.cbt.base_url, sizeof a->vol.cbt.base_url, "%s", url);
    snprintf (a->vol.cbt.base_name, sizeof a->vol.cbt.base_name, "%s", name);
    /* The journal first: the record may call the map trusted only once
     * what is saved for this base stays complete.
     */
    attach_cbt_rebased (a);
    u.complete = a->cbt_journal != NULL;
    if (registry_update (a->reg, a->vol.name, record_cbt, &u, &rerr) < 0)
      log_warn ("%s: cannot record snapshot %s as the change map's base: %s",
                a->vol.name, name, error_msg (&rerr));
  }
  /* Only now does the caller hear the end: once it has, the snapshot is
   * the base the next attach counts from, even after a crash.
   */
  if (a->snap_req) {
    control_finish (a->snap_req, a->snap_last);
    a->snap_req = NULL;
  }
  else if (a->o->job_line)
    a->o->job_line (a->o->job_opaque, a->snap_last);
  a->snap_last[0] = '\0';
  if (a->o->job == ATTACH_SNAPSHOT) {
    a->job_err = err;
    attach_begin_detach (a);
  }
}

int
attach_snapshot_start (struct attach *a, struct control_req *req,
                       const char *url, const char *name, char *const *env)
{
  struct snap_params p = {
    .url = url, .name = name, .volume = a->vol.name,
    .volume_uuid = a->vol.uuid, .volume_size = a->vol.size,
    .base_url = a->vol.cbt.base_url, .base_name = a->vol.cbt.base_name,
    .cbt_valid = a->cbt_loaded, .env = env,
  };

  log_info ("%s: snapshot %s to %s requested", a->vol.name, name, url);
  a->snap_req = req;
  int r = cow_snapshot (a->cow, &p, snap_line, snap_done, a);

  if (r < 0)
    a->snap_req = NULL;
  return r;
}

bool
attach_snapshot_control (struct attach *a, struct control_req *req,
                         const char *line)
{
  char url[256], name[SNAP_NAME_MAX];
  char *env[64] = { NULL }, *copy, *save = NULL;
  int n, k = 0, r;

  /* snapshot URL NAME [SETTING=VALUE...]: the settings are the caller's
   * store configuration (AWS_*), quoted.
   */
  if (sscanf (line, "snapshot %255s %127s%n", url, name, &n) != 2)
    return false;
  copy = strdup (line + n);
  for (char *w = copy ? strtok_r (copy, " ", &save) : NULL; w && k < 63;
       w = strtok_r (NULL, " ", &save)) {
    control_unquote (w);
    env[k++] = w;
  }
  if (a->detaching)
    control_finish (req, "error: the volume is detaching");
  else if (copy == NULL)
    control_finish (req, "error: out of memory");
  else if ((r = attach_snapshot_start (a, req, url, name, env)) < 0)
    control_finish (req, r == -ENOMEM ? "error: out of memory"
                    : "error: a snapshot of this volume is already running");
  free (copy);
  return true;
}

/* ---- a volume restored from a snapshot, until every chunk is in ---------- */

struct restore_update {
  struct attach *a;
  uint64_t hydrated;
  bool complete;
  const char *error;            /* why it stopped; NULL: it goes on */
};

static int
record_restore (struct reg_volume *v, void *arg)
{
  struct restore_update *u = arg;

  if (!attach_owns (v, u->a))
    return ESTALE;
  v->restore.chunks_hydrated = u->hydrated;
  if (u->error)
    snprintf (v->restore.error, sizeof v->restore.error, "%s", u->error);
  if (u->complete)
    memset (&v->restore, 0, sizeof v->restore);
  return 0;
}

static int
hydrate_save (void *opaque, const uint8_t *map, size_t len, uint64_t hydrated,
              uint64_t total)
{
  struct attach *a = opaque;
  struct restore_update u = { .a = a, .hydrated = hydrated };
  struct error rerr = { 0 };
  uint64_t d, t, bytes;

  if (registry_blob_put (a->reg, a->vol.name, "hydrated", map, len,
                         &rerr) < 0 ||
      registry_update (a->reg, a->vol.name, record_restore, &u, &rerr) < 0) {
    if (rerr.code != ESTALE && rerr.code != ENOENT)
      log_error ("%s", error_msg (&rerr));
    return rerr.code;
  }
  if (a->o->job == ATTACH_RESTORE && a->o->job_line) {
    char line[128];
    hydrate_progress (a->hydrate, &d, &t, &bytes);
    snprintf (line, sizeof line, "progress %llu %llu %llu 0",
              (unsigned long long) hydrated, (unsigned long long) total,
              (unsigned long long) bytes);
    a->o->job_line (a->o->job_opaque, line);
  }
  return 0;
}

static void
hydrate_finished (void *opaque, int err, const char *why)
{
  struct attach *a = opaque;
  struct restore_update u = { .a = a, .complete = err == 0,
                              .error = err ? why : NULL };
  uint64_t done, total, bytes;
  struct error rerr = { 0 };
  char line[sizeof rerr.msg + 64];

  hydrate_progress (a->hydrate, &done, &total, &bytes);
  u.hydrated = done;
  if (registry_update (a->reg, a->vol.name, record_restore, &u, &rerr) < 0)
    log_warn ("%s: cannot record the restore's state: %s", a->vol.name,
              error_msg (&rerr));
  if (err == 0) {
    registry_blob_remove (a->reg, a->vol.name, "hydrated", NULL);
    log_info ("%s: restore from %s complete: %llu chunks", a->vol.name,
              a->vol.restore.snapshot, (unsigned long long) total);
    snprintf (line, sizeof line, "ok restored %llu %llu",
              (unsigned long long) total, (unsigned long long) bytes);
    attach_event (a, "restore-done", "from %s %s: %llu chunks",
                  a->vol.restore.url, a->vol.restore.snapshot,
                  (unsigned long long) total);
  }
  else                          /* the hydrate layer has logged why */
    snprintf (line, sizeof line, "error: restore from %s: %s",
              a->vol.restore.snapshot, why);
  if (a->o->job == ATTACH_RESTORE) {
    if (a->o->job_line)
      a->o->job_line (a->o->job_opaque, line);
    a->job_err = err;
    attach_begin_detach (a);
  }
}

struct bdev *
attach_hydrate_open (struct attach *a)
{
  const struct reg_restore *r = &a->vol.restore;
  size_t want = chunk_map_bytes (a->vol.size, a->vol.chunk_size);
  struct hydrate_hooks hooks = {
    .save = hydrate_save, .finished = hydrate_finished, .opaque = a,
  };
  void *map = NULL;
  size_t len;
  struct error err = { 0 };

  if (registry_blob_get (a->reg, a->vol.name, "hydrated", &map, &len,
                         NULL) == 0 &&
      len != want) {
    log_error ("%s: the hydration map is %zu bytes, not %zu: refusing to "
               "guess what is restored", a->vol.name, len, want);
    free (map);
    return NULL;
  }
  a->hydrate = hydrate_new (a->loop, a->dev, r->url, r->snapshot, map, true,
                            &hooks, &err);
  if (a->hydrate == NULL)
    log_error ("%s: cannot serve the restore from %s: %s", a->vol.name,
               r->url, error_msg (&err));
  else
    log_info ("%s: restoring from snapshot %s in %s: %llu of %llu chunks "
              "in place; the rest is fetched on demand and in the background",
              a->vol.name, r->snapshot, r->url,
              (unsigned long long) r->chunks_hydrated,
              (unsigned long long) r->chunks_total);
  return a->hydrate;
}
