/* cmd_delete.c - repvol delete: remove every replica, then the registry
 * entry.
 *
 * While it works, delete holds the volume through the registry's
 * attachment slot (frontend ATTACH_DELETE_CLAIM, this pid), so an attach started
 * meanwhile is refused instead of serving a volume whose replicas are
 * disappearing.  If delete itself dies, that claim is a stale
 * attachment that the next delete (or attach) on this host takes over.
 *
 * Without --force nothing is deleted unless every server answers; a
 * DELETE failing part-way stops with the registry entry kept, and
 * running delete again finishes the job (a replica already gone is
 * fine).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "attach/attach.h"
#include "core/util.h"
#include "replica/admin.h"
#include "repvol.h"

static void
warn_kept (void *opaque, const char *line, bool kept)
{
  if (kept)
    log_warn ("%s; delete it on that server by hand", line);
}

int
cmd_delete (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "force", no_argument, NULL, 'f' },
    { "json", no_argument, NULL, 'j' },
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  bool force = false, json = false;
  int c;

  while ((c = cli_getopt (argc, argv, "delete", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    if (c == 'f')
      force = true;
    if (c == 'j')
      json = true;
  }
  const char *vol;
  struct registry *reg;
  struct reg_volume v;
  int ret = verb_volume (argc, argv, "delete", &vol, &reg, &v);
  if (ret)
    return ret;
  ret = EXIT_FAILURE;
  bool claimed = false;
  struct reg_attachment hold;
  struct error rerr = { 0 };
  struct replica_admin ra[REG_MAX_REPLICAS];
  bool open[REG_MAX_REPLICAS] = { false };
  bool left[REG_MAX_REPLICAS] = { false };   /* --force: kept on its server */
  struct error err = { 0 };

  if (hold_volume (reg, &v, ATTACH_DELETE_CLAIM, &hold) != 0)
    goto out;
  claimed = true;

  /* Reach every server before deleting anything. */
  for (int i = 0; i < v.nreplicas; i++) {
    const char *addr = v.replicas[i].addr;
    if (replica_admin_open (&ra[i], addr, vol, REPLICA_ADMIN_TIMEOUT_MS,
                            &err) == 0) {
      open[i] = true;
      continue;
    }
    if (!force) {
      log_error ("replica %s: %s; nothing deleted (--force deletes the "
                 "volume anyway, leaving that replica on its server)",
                 addr, error_msg (&err));
      goto out;
    }
    log_warn ("replica %s: %s; its replica of %s stays on that server",
              addr, error_msg (&err), vol);
    left[i] = true;
  }

  for (int i = 0; i < v.nreplicas; i++) {
    const char *addr = v.replicas[i].addr;
    if (!open[i])
      continue;
    int r = replica_admin_delete (&ra[i], &err);
    if (r == 0)
      continue;
    if (r == -ENOENT)           /* an earlier, interrupted delete got it */
      continue;
    if (!force) {
      log_error ("replica %s: delete failed: %s; the volume stays in the "
                 "registry, run delete again (or with --force)", addr,
                error_msg (&err));
      goto out;
    }
    log_warn ("replica %s: delete failed: %s; going on (--force)", addr,
              error_msg (&err));
    left[i] = true;
  }

  /* Stale copies that healing or a drain left: gone too where their
   * servers answer; the others are named (nothing will remember them).
   */
  attach_sweep_retired (reg, vol, warn_kept, NULL);

  if (registry_remove (reg, vol, &rerr) < 0) {
    if (rerr.code == ENOENT)
      log_error ("unknown volume '%s' (deleted meanwhile?)", vol);
    else
      log_error ("%s", error_msg (&rerr));
    goto out;
  }
  claimed = false;
  registry_blob_remove (reg, vol, "cbt", NULL);
  registry_blob_remove (reg, vol, "hydrated", NULL);
  note_event (reg, "deleted", vol, "%d replica(s) removed", v.nreplicas);
  if (json) {
    /* {"volume", "deleted", "replicas_deleted": [ADDR], "replicas_left":
     * [ADDR]} (left: --force, its server did not answer).
     */
    json_object *o = json_object_new_object ();
    json_object *del = json_object_new_array (), *kept = json_object_new_array ();
    for (int i = 0; i < v.nreplicas; i++)
      json_object_array_add (left[i] ? kept : del,
                             json_object_new_string (v.replicas[i].addr));
    json_object_object_add (o, "volume", json_object_new_string (vol));
    json_object_object_add (o, "deleted", json_object_new_boolean (true));
    json_object_object_add (o, "replicas_deleted", del);
    json_object_object_add (o, "replicas_left", kept);
    print_json (o, JSON_C_TO_STRING_PRETTY);
  }
  else
    printf ("deleted volume %s\n", vol);
  ret = EXIT_SUCCESS;

 out:
  for (int i = 0; i < REG_MAX_REPLICAS; i++)
    if (open[i])
      replica_admin_close (&ra[i]);
  if (claimed)
    clear_attachment (reg, vol, &hold);
  registry_close (reg);
  return ret;
}
