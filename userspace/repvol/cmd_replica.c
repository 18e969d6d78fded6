/* cmd_replica.c - repvol replica replace VOL OLD NEW: build a full copy
 * of the volume on a new server while it serves, then drop the old
 * replica (EBS's "launch a replacement", DRBD's full sync).
 *
 * The new replica is created, the registry entry of OLD becomes NEW
 * (out of sync, full copy), and the running attach is told to take it
 * in; the copy runs there.  The command waits until the registry shows
 * NEW in sync, then deletes the replica on OLD's server.  A volume that
 * is not attached gets its copy at its next attach.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "attach/control.h"
#include "replica/admin.h"
#include "progress.h"
#include "repvol.h"
#include "core/util.h"

/* --json: one object per line, {"event": EVENT, "volume", "old",
 * "new", ...}: "replacing" when the registry shows NEW in OLD's slot,
 * "progress" (bytes_done, bytes_total, bytes_per_second) while the
 * attach copies, "done" at the end (attached, in_sync, old_deleted).
 */
struct replace_out {
  bool json;
  const char *vol, *old, *new;
};

static json_object *
replace_event (const struct replace_out *ro, const char *event)
{
  json_object *o = event_new (event);

  json_object_object_add (o, "volume", json_object_new_string (ro->vol));
  json_object_object_add (o, "old", json_object_new_string (ro->old));
  json_object_object_add (o, "new", json_object_new_string (ro->new));
  return o;
}

static void
replace_done (const struct replace_out *ro, bool attached, bool in_sync,
              bool old_deleted)
{
  json_object *o;

  if (!ro->json)
    return;
  o = replace_event (ro, "done");
  json_object_object_add (o, "attached", json_object_new_boolean (attached));
  json_object_object_add (o, "in_sync", json_object_new_boolean (in_sync));
  json_object_object_add (o, "old_deleted",
                          json_object_new_boolean (old_deleted));
  event_print (o);
}

/* The attach's answer to "replace": its last line, for the error. */
static void
keep_last (void *opaque, const char *line)
{
  snprintf (opaque, 512, "%s", line);
}

struct swap {
  const char *old, *new;
  const struct rv_welcome *w;
};

static int
swap_entry (struct reg_volume *v, void *arg)
{
  struct swap *s = arg;

  for (int i = 0; i < v->nreplicas; i++)
    if (strcmp (v->replicas[i].addr, s->old) == 0) {
      struct reg_replica *r = &v->replicas[i];
      memset (r, 0, sizeof *r);
      snprintf (r->addr, sizeof r->addr, "%s", s->new);
      snprintf (r->server, sizeof r->server, "%s", s->w->server);
      snprintf (r->zone, sizeof r->zone, "%s", s->w->zone);
      r->state = REG_OUT_OF_SYNC;
      r->out_of_sync_epoch = v->epoch;
      r->out_of_sync_since = time (NULL);
      r->full_copy = true;
      return 0;
    }
  return ENOENT;
}

/* OLD given as a server name: the address the volume records for it. */
static int
replica_by_name (struct registry *reg, const char *vol, const char *arg,
                 char *addr, size_t len)
{
  struct reg_volume v;
  struct error err = { 0 };

  snprintf (addr, len, "%s", arg);
  if (strchr (arg, ':') || !valid_name (arg))
    return 0;
  if (registry_get (reg, vol, &v, &err) < 0)
    return 0;                   /* replace() says what is wrong */
  for (int i = 0; i < v.nreplicas; i++)
    if (strcmp (v.replicas[i].server, arg) == 0) {
      snprintf (addr, len, "%s", v.replicas[i].addr);
      return 0;
    }
  return 0;
}

/* NEW given as a server name: its address in the pool, if it is up. */
static int
pool_by_name (struct registry *reg, const char *arg, char *addr, size_t len)
{
  struct error err = { 0 };
  int up;

  snprintf (addr, len, "%s", arg);
  if (strchr (arg, ':') || !valid_name (arg))
    return 0;
  up = registry_server_addr (reg, arg, addr, len, &err);
  if (up == 1)
    return 0;
  if (up == 0)
    log_error ("server %s is down (repvol server list)", arg);
  else if (up == -ENOENT)
    log_error ("no server '%s' in the pool (give ADDR:PORT, or see repvol "
               "server list)", arg);
  else
    log_error ("%s", error_msg (&err));
  return EXIT_FAILURE;
}

/* Replica addr's entry in the registry now: 0, or -ENOENT (or the
 * registry's error).
 */
static int
replica_state (struct registry *reg, const char *vol, const char *addr,
               struct reg_replica *out)
{
  struct reg_volume v;
  struct error rerr = { 0 };

  if (registry_get (reg, vol, &v, &rerr) < 0) {
    if (rerr.code != ENOENT)
      log_error ("%s", error_msg (&rerr));
    return -rerr.code;
  }
  for (int i = 0; i < v.nreplicas; i++)
    if (strcmp (v.replicas[i].addr, addr) == 0) {
      *out = v.replicas[i];
      return 0;
    }
  return -ENOENT;
}

static int
replace (struct registry *reg, const char *vol, const char *old,
         const char *new, bool allow_same_zone, uint64_t timeout_s,
         bool json)
{
  struct replace_out ro = { json, vol, old, new };
  struct reg_volume v;
  struct replica_admin ra;
  struct error err = { 0 };

  if (get_volume (reg, vol, &v) < 0)
    return EXIT_FAILURE;
  bool have_old = false;
  for (int i = 0; i < v.nreplicas; i++) {
    have_old |= strcmp (v.replicas[i].addr, old) == 0;
    if (strcmp (v.replicas[i].addr, new) == 0) {
      log_error ("%s is already a replica of %s", new, vol);
      return EXIT_FAILURE;
    }
  }
  if (!have_old) {
    log_error ("%s is not a replica of %s", old, vol);
    return EXIT_FAILURE;
  }
  if (v.attachment.attached && !attachment_is_local (&v.attachment)) {
    log_error ("%s is attached on host %s: run replace there", vol,
               v.attachment.host);
    return EXIT_FAILURE;
  }

  /* The new server: reachable, not in a zone another replica is in. */
  if (replica_admin_open (&ra, new, vol, 0, &err) < 0) {
    log_error ("new replica %s: %s", new, error_msg (&err));
    return EXIT_FAILURE;
  }
  for (int i = 0; i < v.nreplicas; i++)
    if (strcmp (v.replicas[i].addr, old) != 0 && ra.welcome.zone[0] &&
        strcmp (v.replicas[i].zone, ra.welcome.zone) == 0 &&
        !allow_same_zone && !v.allow_same_zone) {
      log_error ("%s is in zone '%s' like replica %s (use --allow-same-zone "
                 "to allow it)", new, ra.welcome.zone, v.replicas[i].addr);
      replica_admin_close (&ra);
      return EXIT_FAILURE;
    }
  struct rv_create cr = {
    .size = v.size, .block_size = v.block_size, .epoch = v.epoch,
    .flags = v.reserved ? RV_F_RESERVE : 0,
  };
  if (replica_admin_create (&ra, &cr, &err) < 0) {
    log_error ("new replica %s: create failed: %s", new, error_msg (&err));
    replica_admin_close (&ra);
    return EXIT_FAILURE;
  }
  struct rv_welcome w = ra.welcome;
  replica_admin_close (&ra);

  struct swap s = { .old = old, .new = new, .w = &w };
  struct error rerr = { 0 };
  if (registry_update (reg, vol, swap_entry, &s, &rerr) < 0) {
    log_error ("cannot update the registry: %s", error_msg (&rerr));
    return EXIT_FAILURE;
  }
  note_event (reg, "replica-replaced", vol, "%s replaces %s (full copy)",
              new, old);
  if (json)
    event_print (replace_event (&ro, "replacing"));
  else
    printf ("%s: %s replaces %s (full copy)\n", vol, new, old);
  fflush (stdout);

  registry_get (reg, vol, &v, NULL);
  if (!v.attachment.attached || !v.attachment.control[0]) {
    if (!json)
      printf ("%s is not attached: the copy runs at its next attach; the "
              "old replica on %s is kept until you delete it\n", vol, old);
    replace_done (&ro, false, false, false);
    return EXIT_SUCCESS;
  }
  char cmd[300], last[512] = "";
  snprintf (cmd, sizeof cmd, "replace %s %s", old, new);
  if (json) {
    if (control_call_lines (v.attachment.control, cmd, keep_last, last)
        != 0) {
      if (strncmp (last, "error: ", 7) == 0)
        log_error ("%s: %s", vol, last + 7);
      return EXIT_FAILURE;
    }
  }
  else if (control_call (v.attachment.control, cmd) != 0)
    return EXIT_FAILURE;

  /* Wait (bounded) for the copy; show progress now and then. */
  uint64_t deadline = now_ns () + timeout_s * 1000000000ull, last_shown = 0;
  struct reg_replica r = { 0 };
  for (;;) {
    if (replica_state (reg, vol, new, &r) < 0) {
      log_error ("%s: the replica entry vanished from the registry", vol);
      return EXIT_FAILURE;
    }
    if (r.state == REG_IN_SYNC)
      break;
    if (now_ns () > deadline) {
      log_error ("%s: %s not in sync after %" PRIu64 " s; the copy goes on "
                 "in the attach, the old replica on %s is kept", vol, new,
                 timeout_s, old);
      return EXIT_FAILURE;
    }
    if (now_ns () - last_shown > 2000000000ull && r.resync_total) {
      char a[32], b[32];
      if (json) {
        json_object *o = replace_event (&ro, "progress");
        json_object_object_add (o, "bytes_done",
                                json_object_new_uint64 (r.resync_done));
        json_object_object_add (o, "bytes_total",
                                json_object_new_uint64 (r.resync_total));
        json_object_object_add (o, "bytes_per_second",
                                json_object_new_uint64 (r.resync_rate));
        event_print (o);
      }
      else
        printf ("copying: %s of %s\n", size_text (r.resync_done, a, sizeof a),
                size_text (r.resync_total, b, sizeof b));
      fflush (stdout);
      last_shown = now_ns ();
    }
    usleep (100000);
  }
  if (!json)
    printf ("%s: %s is in sync\n", vol, new);

  /* Drop the old replica; an unreachable server keeps its copy. */
  bool deleted = false;
  if (replica_admin_open (&ra, old, vol, 0, &err) < 0 ||
      replica_admin_delete (&ra, &err) < 0)
    log_warn ("old replica %s not deleted (%s): remove it there by hand",
              old, error_msg (&err));
  else {
    deleted = true;
    if (!json)
      printf ("%s: old replica on %s deleted\n", vol, old);
  }
  if (ra.fd >= 0)
    replica_admin_close (&ra);
  replace_done (&ro, true, true, deleted);
  return EXIT_SUCCESS;
}

int
cmd_replica (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "allow-same-zone", no_argument, NULL, 'z' },
    { "timeout", required_argument, NULL, 't' },
    { "json", no_argument, NULL, 'j' },
    CLI_BYTES_OPTION,
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  bool allow_same_zone = false, json = false;
  uint64_t timeout_s = 3600;
  int c;

  while ((c = cli_getopt (argc, argv, "replica", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    if (c == 'z')
      allow_same_zone = true;
    if (c == 'j')
      json = true;
    if (c == 't' && parse_uint (optarg, 1, 7 * 86400, &timeout_s) == -1)
      return usage_error ("replica", "--timeout must be 1 to 604800 seconds, "
                          "not '%s'", optarg);
  }
  if (argc - optind != 4 || strcmp (argv[optind], "replace") != 0)
    return usage_error ("replica", "expected: replica replace VOL OLD_ADDR "
                        "NEW_ADDR");
  const char *vol = argv[optind + 1];
  if (!valid_name (vol))
    return usage_error ("replica", "invalid volume name '%s'", vol);

  struct registry *reg = open_registry ();
  if (reg == NULL)
    return EXIT_FAILURE;
  /* Either may be a server name: OLD as the volume's record names it,
   * NEW as the pool knows it.
   */
  char old[REG_ADDR_MAX], new[REG_ADDR_MAX];
  int ret = replica_by_name (reg, vol, argv[optind + 2], old, sizeof old);
  if (ret == 0)
    ret = pool_by_name (reg, argv[optind + 3], new, sizeof new);
  if (ret == 0)
    ret = replace (reg, vol, old, new, allow_same_zone, timeout_s, json);
  registry_close (reg);
  return ret;
}
