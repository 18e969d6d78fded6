/* cmd_epoch.c - repvol epoch VOL [--reset] [--json]: each replica's
 * epoch beside the registry's, and the operator's repair when one is
 * wrong (docs/DESIGN.md rule 8).
 *
 * The registry's epoch is the authority.  A replica whose epoch is
 * above it refuses every attach (an attach presents registry epoch + 1,
 * which is older), so the volume cannot be used until that replica's
 * epoch comes back.  --reset sets every replica's epoch to the
 * registry's with SET_EPOCH on an admin connection, while holding the
 * volume through its attachment slot (ATTACH_EPOCH_CLAIM) so that no
 * attach starts meanwhile; each server also refuses it while an attach
 * has the volume open there.  A replica below the registry's epoch is
 * fine: the next attach moves it on.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "attach/attach.h"
#include "core/util.h"
#include "replica/admin.h"
#include "repvol.h"

/* What one server says of its replica. */
struct rep_epoch {
  bool reachable, exists;
  uint64_t epoch;
  char err[256];
};

static void
ask (const struct reg_volume *v, int i, int timeout_ms, struct rep_epoch *re)
{
  struct rv_volinfo vi;
  struct error err = { 0 };

  memset (re, 0, sizeof *re);
  if (replica_admin_stat_once (v->replicas[i].addr, v->name, timeout_ms, NULL,
                               &vi, &err) < 0) {
    snprintf (re->err, sizeof re->err, "%s", error_msg (&err));
    return;
  }
  re->reachable = true;
  re->exists = vi.exists;
  re->epoch = vi.epoch;
}

static bool
ahead (const struct reg_volume *v, const struct rep_epoch *re)
{
  return re->reachable && re->exists && re->epoch > v->epoch;
}

static void
print_text (const struct reg_volume *v, const struct rep_epoch *re)
{
  const struct reg_attachment *a = &v->attachment;
  bool any_ahead = false;

  printf ("volume:    %s\n", v->name);
  printf ("registry:  epoch %" PRIu64, v->epoch);
  if (a->attached)
    printf (", attached (host %s, pid %d, %s) at epoch %" PRIu64 "\n",
            a->host, (int) a->pid, a->frontend[0] ? a->frontend : "-",
            a->epoch);
  else
    printf (", detached\n");
  printf ("  %-22s %-12s %-20s %s\n", "ADDR", "STATE", "EPOCH", "VERDICT");
  for (int i = 0; i < v->nreplicas; i++) {
    char ep[24] = "-", verdict[320];
    if (!re[i].reachable)
      snprintf (verdict, sizeof verdict, "unreachable: %s", re[i].err);
    else if (!re[i].exists)
      snprintf (verdict, sizeof verdict, "replica missing");
    else {
      snprintf (ep, sizeof ep, "%" PRIu64, re[i].epoch);
      if (ahead (v, &re[i])) {
        any_ahead = true;
        snprintf (verdict, sizeof verdict, "AHEAD of the registry by %" PRIu64
                  ": it refuses every attach", re[i].epoch - v->epoch);
      }
      else if (re[i].epoch < v->epoch)
        snprintf (verdict, sizeof verdict, "behind by %" PRIu64 " (the next "
                  "attach moves it on)", v->epoch - re[i].epoch);
      else
        snprintf (verdict, sizeof verdict, "ok");
    }
    printf ("  %-22s %-12s %-20s %s\n", v->replicas[i].addr,
            reg_state_name (v->replicas[i].state), ep, verdict);
  }
  if (any_ahead)
    printf ("a replica's epoch is wrong: %s'repvol epoch %s --reset' sets "
            "every replica's epoch to the registry's\n", a->attached ?
            "detach the volume, then " : "", v->name);
}

static void
print_json_doc (const struct reg_volume *v, const struct rep_epoch *re)
{
  json_object *o = json_object_new_object (), *reps = json_object_new_array ();

  json_object_object_add (o, "volume", json_object_new_string (v->name));
  json_object_object_add (o, "epoch", json_object_new_uint64 (v->epoch));
  json_object_object_add (o, "attached",
                          json_object_new_boolean (v->attachment.attached));
  for (int i = 0; i < v->nreplicas; i++) {
    json_object *r = json_object_new_object ();
    json_object_object_add (r, "addr",
                            json_object_new_string (v->replicas[i].addr));
    json_object_object_add (r, "state", json_object_new_string
                            (reg_state_name (v->replicas[i].state)));
    json_object_object_add (r, "reachable",
                            json_object_new_boolean (re[i].reachable));
    json_object_object_add (r, "error", re[i].reachable ? NULL
                            : json_object_new_string (re[i].err));
    json_object_object_add (r, "exists",
                            json_object_new_boolean (re[i].exists));
    json_object_object_add (r, "epoch", re[i].exists
                            ? json_object_new_uint64 (re[i].epoch) : NULL);
    json_object_object_add (r, "ahead",
                            json_object_new_boolean (ahead (v, &re[i])));
    json_object_array_add (reps, r);
  }
  json_object_object_add (o, "replicas", reps);
  print_json (o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
}

/* Set replica i's epoch to the registry's.  0, or -1 after printing why.
 * out (--json): the replicas array, which gets {"addr", "from", "to",
 * "error"} (from and to null when it could not be reset) instead of
 * the line.
 */
static int
reset_one (const struct reg_volume *v, int i, int timeout_ms, json_object *out)
{
  const char *addr = v->replicas[i].addr;
  struct replica_admin ra;
  struct rv_volinfo vi;
  struct error err = { 0 };
  int r;

  if ((r = replica_admin_open (&ra, addr, v->name, timeout_ms, &err)) == 0 &&
      (r = replica_admin_stat (&ra, &vi, &err)) == 0 && !vi.exists)
    r = error_set (&err, ENOENT, "no such volume on this server");
  if (r == 0 && vi.epoch != v->epoch)
    r = replica_admin_set_epoch (&ra, v->epoch, &err);
  replica_admin_close (&ra);
  if (r < 0)
    log_error ("replica %s: %s", addr, error_msg (&err));
  if (out) {
    json_object *o = json_object_new_object ();
    json_object_object_add (o, "addr", json_object_new_string (addr));
    json_object_object_add (o, "from", r < 0 ? NULL
                            : json_object_new_uint64 (vi.epoch));
    json_object_object_add (o, "to", r < 0 ? NULL
                            : json_object_new_uint64 (v->epoch));
    json_object_object_add (o, "error", r < 0
                            ? json_object_new_string (error_msg (&err)) : NULL);
    json_object_array_add (out, o);
    return r < 0 ? -1 : 0;
  }
  if (r < 0)
    return -1;
  if (vi.epoch == v->epoch)
    printf ("%s: epoch %" PRIu64 " (unchanged)\n", addr, vi.epoch);
  else
    printf ("%s: epoch %" PRIu64 " -> %" PRIu64 "\n", addr, vi.epoch,
            v->epoch);
  return 0;
}

/* --json: {"volume", "epoch", "reset": every replica is at the
 * registry's epoch, "replicas": [reset_one's]}, printed whatever the
 * outcome once the volume was held.
 */
static int
reset (struct registry *reg, const struct reg_volume *v, int timeout_ms,
       bool json)
{
  struct reg_attachment hold;
  json_object *reps = json ? json_object_new_array () : NULL;
  int failed = 0;

  if (hold_volume (reg, v, ATTACH_EPOCH_CLAIM, &hold) != 0) {
    json_object_put (reps);
    return EXIT_FAILURE;
  }
  for (int i = 0; i < v->nreplicas; i++)
    failed += reset_one (v, i, timeout_ms, reps) < 0;
  clear_attachment (reg, v->name, &hold);
  if (json) {
    json_object *o = json_object_new_object ();
    json_object_object_add (o, "volume", json_object_new_string (v->name));
    json_object_object_add (o, "epoch", json_object_new_uint64 (v->epoch));
    json_object_object_add (o, "reset", json_object_new_boolean (!failed));
    json_object_object_add (o, "replicas", reps);
    print_json (o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
  }
  if (failed) {
    log_error ("%s: %d of %d replica(s) not reset; run 'repvol epoch %s "
               "--reset' again once they answer", v->name, failed,
               v->nreplicas, v->name);
    return EXIT_FAILURE;
  }
  if (!json)
    printf ("every replica of %s is at the registry's epoch, %" PRIu64 "\n",
            v->name, v->epoch);
  return EXIT_SUCCESS;
}

int
cmd_epoch (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "reset", no_argument, NULL, 'r' },
    { "json", no_argument, NULL, 'j' },
    { "timeout", required_argument, NULL, 't' },
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  bool do_reset = false, json = false;
  uint64_t timeout_s = REPLICA_ADMIN_TIMEOUT_MS / 1000;
  int c;

  while ((c = cli_getopt (argc, argv, "epoch", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    switch (c) {
    case 'r': do_reset = true; break;
    case 'j': json = true; break;
    case 't':
      if (parse_uint (optarg, 1, 600, &timeout_s) == -1)
        return usage_error ("epoch", "--timeout must be 1 to 600 seconds, "
                            "not '%s'", optarg);
      break;
    }
  }
  const char *vol;
  struct registry *reg;
  struct reg_volume v;
  int ret = verb_volume (argc, argv, "epoch", &vol, &reg, &v);
  if (ret)
    return ret;

  if (do_reset)
    ret = reset (reg, &v, timeout_s * 1000, json);
  else {
    struct rep_epoch re[REG_MAX_REPLICAS];
    bool any_ahead = false;
    for (int i = 0; i < v.nreplicas; i++) {
      ask (&v, i, timeout_s * 1000, &re[i]);
      any_ahead |= ahead (&v, &re[i]);
    }
    if (json)
      print_json_doc (&v, re);
    else
      print_text (&v, re);
    ret = any_ahead ? EXIT_FAILURE : EXIT_SUCCESS;
  }
  registry_close (reg);
  return ret;
}
