/* cmd_resize.c - repvol resize: change a volume's size
 * (docs/DESIGN.md 3.10).
 *
 * Attached: the attach grows it online ("resize SIZE [reserve]" on its
 * control channel): every replica, then the registry, then the device.
 * Detached: here, holding the volume (ATTACH_RESIZE_CLAIM) so no attach
 * starts meanwhile.  A grow asks every replica first and records the
 * size last; a shrink (--allow-shrink, detached only) records the size
 * first and shrinks the replicas after.  Either way a resize that stops
 * half way leaves replicas at least as large as the registry says,
 * which an attach accepts, and running the same resize again finishes
 * it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "attach/attach.h"
#include "attach/control.h"
#include "core/util.h"
#include "replica/admin.h"
#include "replica/proto.h"
#include "repvol.h"

struct resize {
  struct registry *reg;
  struct reg_volume v;
  uint64_t size;
  bool reserve, json;
  struct reg_attachment hold;
  json_object *reps;            /* --json: one object per replica */
  char last[512];               /* the attach's answer */
};

/* RESIZE one replica on an admin connection.  An out-of-sync replica
 * that cannot be reached is left for its catch-up, which grows it
 * (attach_check_size); -1 when one that counts failed.
 */
static int
resize_one (struct resize *rz, int i)
{
  const struct reg_replica *r = &rz->v.replicas[i];
  struct replica_admin ra;
  struct error err = { 0 };
  int ret = replica_admin_open (&ra, r->addr, rz->v.name,
                                REPLICA_ADMIN_TIMEOUT_MS, &err);
  uint64_t had = ret < 0 ? 0 : ra.welcome.size;
  bool skip = false;

  if (ret == 0) {
    ret = replica_admin_resize (&ra, rz->size, rz->reserve ? RV_F_RESERVE
                                : 0, &err);
    replica_admin_close (&ra);
  }
  if (ret < 0 && r->state == REG_OUT_OF_SYNC && rz->size > rz->v.size &&
      (ret == -ECONNREFUSED || ret == -ETIMEDOUT || ret == -EHOSTUNREACH ||
       ret == -ENOENT)) {
    skip = true;
    log_warn ("replica %s (out of sync): %s; it grows when it is caught up",
              r->addr, error_msg (&err));
  }
  else if (ret < 0)
    log_error ("replica %s: %s", r->addr, error_msg (&err));
  if (rz->reps) {
    json_object *o = json_object_new_object ();
    json_object_object_add (o, "addr", json_object_new_string (r->addr));
    json_object_object_add (o, "from", had ? json_object_new_uint64 (had)
                            : NULL);
    json_object_object_add (o, "resized", json_object_new_boolean (ret == 0));
    json_object_object_add (o, "error", ret < 0 ? json_object_new_string
                            (error_msg (&err)) : NULL);
    json_object_array_add (rz->reps, o);
  }
  return ret < 0 && !skip ? -1 : 0;
}

static int
record_size (struct reg_volume *v, void *arg)
{
  const struct resize *rz = arg;

  /* Still our hold: nothing attached meanwhile. */
  if (strcmp (v->attachment.frontend, rz->hold.frontend) != 0 ||
      v->attachment.pid != rz->hold.pid)
    return ESTALE;
  v->size = rz->size;
  return 0;
}

static int
record (struct resize *rz)
{
  struct error err = { 0 };

  if (registry_update (rz->reg, rz->v.name, record_size, rz, &err) < 0) {
    log_error ("%s: the registry cannot record the new size: %s", rz->v.name,
               error_msg (&err));
    return -1;
  }
  return 0;
}

static int
resize_detached (struct resize *rz)
{
  bool grow = rz->size > rz->v.size;
  int failed = 0;

  if (hold_volume (rz->reg, &rz->v, ATTACH_RESIZE_CLAIM, &rz->hold) != 0)
    return -1;
  /* Grow: replicas, then the registry.  Shrink: the registry first, so
   * the replicas are never smaller than it says.
   */
  if (!grow && record (rz) < 0)
    failed = -1;
  for (int i = 0; i < rz->v.nreplicas && !failed; i++)
    failed += resize_one (rz, i);
  if (grow && !failed && record (rz) < 0)
    failed = -1;
  clear_attachment (rz->reg, rz->v.name, &rz->hold);
  if (failed)
    log_error ("%s: not resized everywhere; run 'repvol resize %s --size "
               "%" PRIu64 "%s' again once every server answers", rz->v.name,
               rz->v.name, rz->size, grow ? "" : " --allow-shrink");
  return failed ? -1 : 0;
}

static void
keep_last (void *opaque, const char *line)
{
  struct resize *rz = opaque;
  snprintf (rz->last, sizeof rz->last, "%s", line);
}

static int
resize_attached (struct resize *rz)
{
  char cmd[96];
  int how;

  snprintf (cmd, sizeof cmd, "resize %" PRIu64 "%s", rz->size,
            rz->reserve ? " reserve" : "");
  how = control_call_timeout (rz->v.attachment.control, cmd, keep_last, rz,
                              -1);
  if (how == CONTROL_UNREACHABLE || how == CONTROL_NO_ANSWER) {
    log_error ("%s: the attach's control channel %s", rz->v.name,
               how == CONTROL_UNREACHABLE ? "cannot be reached"
               : "closed without an answer");
    return -1;
  }
  if (how != CONTROL_OK) {
    log_error ("%s: %s", rz->v.name, strncmp (rz->last, "error: ", 7) == 0
               ? rz->last + 7 : rz->last);
    return -1;
  }
  return 0;
}

int
cmd_resize (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "size", required_argument, NULL, 's' },
    { "reserve", no_argument, NULL, 'r' },
    { "allow-shrink", no_argument, NULL, 'a' },
    { "json", no_argument, NULL, 'j' },
    CLI_COMMON_OPTIONS,
    CLI_BYTES_OPTION,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  struct resize rz = { 0 };
  bool allow_shrink = false, have_size = false;
  int c;

  while ((c = cli_getopt (argc, argv, "resize", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    switch (c) {
    case 's':
      if (parse_size (optarg, &rz.size) < 0 || rz.size == 0)
        return usage_error ("resize", "--size: not a size: '%s'", optarg);
      have_size = true;
      break;
    case 'r': rz.reserve = true; break;
    case 'a': allow_shrink = true; break;
    case 'j': rz.json = true; break;
    }
  }
  if (!have_size)
    return usage_error ("resize", "--size SIZE is required");
  const char *vol;
  int ret = verb_volume (argc, argv, "resize", &vol, &rz.reg, &rz.v);
  if (ret)
    return ret;
  char from[32], to[32];
  size_text (rz.v.size, from, sizeof from);
  size_text (rz.size, to, sizeof to);
  bool live = attachment_live (&rz.v);
  const char *how = live ? "online" : "detached";
  ret = EXIT_FAILURE;
  if (rz.size % rz.v.block_size) {
    log_error ("%s: %s is not a multiple of the volume's %" PRIu32 "-byte "
               "block size", vol, to, rz.v.block_size);
    goto out;
  }
  if (rz.size == rz.v.size) {
    ret = EXIT_SUCCESS;
    how = "unchanged";
  }
  else if (rz.size < rz.v.size && live) {
    log_error ("%s is attached (host %s, pid %d): shrinking needs it "
               "detached (repvol detach %s), then --allow-shrink", vol,
               rz.v.attachment.host, (int) rz.v.attachment.pid, vol);
    goto out;
  }
  else if (rz.size < rz.v.size && !allow_shrink) {
    log_error ("shrinking %s from %s to %s discards everything past %s: "
               "give --allow-shrink to do it", vol, from, to, to);
    goto out;
  }
  else if (live && (!attachment_is_local (&rz.v.attachment) ||
                    !rz.v.attachment.control[0])) {
    log_error ("%s is attached on host %s: run repvol resize there, where "
               "its attach can be reached", vol, rz.v.attachment.host);
    goto out;
  }
  else {
    rz.reps = rz.json && !live ? json_object_new_array () : NULL;
    ret = (live ? resize_attached (&rz) : resize_detached (&rz)) == 0
      ? EXIT_SUCCESS : EXIT_FAILURE;
  }
  if (rz.json) {
    json_object *o = json_object_new_object ();
    json_object_object_add (o, "volume", json_object_new_string (vol));
    json_object_object_add (o, "old_size", json_object_new_uint64 (rz.v.size));
    json_object_object_add (o, "size", json_object_new_uint64 (rz.size));
    json_object_object_add (o, "how", json_object_new_string (how));
    json_object_object_add (o, "resized",
                            json_object_new_boolean (ret == EXIT_SUCCESS));
    if (live)
      json_object_object_add (o, "result", json_object_new_string (rz.last));
    if (rz.reps)
      json_object_object_add (o, "replicas", rz.reps);
    print_json (o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
  }
  else if (ret == EXIT_SUCCESS && rz.size == rz.v.size)
    printf ("%s is %s already\n", vol, to);
  else if (ret == EXIT_SUCCESS) {
    const char *note = strchr (rz.last, ':');
    printf ("resized %s from %s to %s (%s)%s%s\n", vol, from, to, how,
            note ? ";" : "", note ? note + 1 : "");
  }
  if (ret == EXIT_SUCCESS && rz.size != rz.v.size && !live)
    note_event (rz.reg, "resized", vol, "%s -> %s (%s)", from, to, how);
 out:
  registry_close (rz.reg);
  return ret;
}
