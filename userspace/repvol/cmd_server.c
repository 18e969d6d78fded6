/* cmd_server.c - repvol server list [--json]: the server pool, as the
 * registry knows it (every repvold started with --registry keeps its
 * record there under a lease; one whose lease ran out is down); and
 * repvol server drain / undrain NAME (docs/DESIGN.md, "Drain").
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/util.h"
#include "progress.h"
#include "repvol.h"

#define ROW "%-16s %-10s %-22s %-9s %10s %10s %7s\n"

struct tried {
  char (*names)[REG_NAME_MAX];
  int n;
};

static bool
was_tried (const struct tried *t, const char *vol)
{
  for (int i = 0; t && i < t->n; i++)
    if (strcmp (t->names[i], vol) == 0)
      return true;
  return false;
}

/* How many volumes the registry shows with a replica on server name;
 * -1 when the registry cannot say.  Optionally, the first volume that
 * is detached (or whose attachment is stale) and not in tried, into
 * detached, and how many detached ones were tried already, into stuck.
 */
static int
replicas_on (struct registry *reg, const char *name, char *detached,
             size_t len, const struct tried *tried, int *stuck)
{
  char **names;
  int n, count = 0;

  if (detached)
    detached[0] = '\0';
  if (stuck)
    *stuck = 0;
  if (registry_list (reg, &names, &n, NULL) < 0)
    return -1;
  for (int i = 0; i < n; i++) {
    struct reg_volume v;
    bool on = false;
    if (registry_get (reg, names[i], &v, NULL) < 0)
      continue;
    for (int k = 0; k < v.nreplicas; k++)
      on |= strcmp (v.replicas[k].server, name) == 0;
    if (!on)
      continue;
    count++;
    if (attachment_live (&v))
      continue;
    if (was_tried (tried, v.name)) {
      if (stuck)
        (*stuck)++;
    }
    else if (detached && !detached[0])
      snprintf (detached, len, "%s", v.name);
  }
  registry_free_names (names, n);
  return count;
}

static json_object *
server_json (const struct reg_server *s)
{
  json_object *o = json_object_new_object ();

  json_object_object_add (o, "name", json_object_new_string (s->name));
  json_object_object_add (o, "zone", json_object_new_string (s->zone));
  json_object_object_add (o, "address", json_object_new_string (s->addr));
  json_object_object_add (o, "state",
                          json_object_new_string (reg_server_state (s)));
  json_object_object_add (o, "capacity", json_object_new_uint64 (s->capacity));
  json_object_object_add (o, "free", json_object_new_uint64 (s->free));
  json_object_object_add (o, "reserved", json_object_new_uint64 (s->reserved));
  json_object_object_add (o, "volumes", json_object_new_uint64 (s->volumes));
  json_object_object_add (o, "tls", json_object_new_boolean (s->tls));
  json_object_object_add (o, "version", json_object_new_string (s->version));
  json_object_object_add (o, "heartbeat", json_object_new_int64 (s->heartbeat));
  json_object_object_add (o, "lease_ttl", json_object_new_int64 (s->ttl));
  json_object_object_add (o, "draining", json_object_new_boolean (s->draining));
  return o;
}

static int
server_list (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "json", no_argument, NULL, 'j' },
    CLI_BYTES_OPTION,
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  bool json = false;
  int c;

  while ((c = cli_getopt (argc, argv, "server", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    if (c == 'j')
      json = true;
  }
  if (optind < argc)
    return usage_error ("server", "unexpected argument '%s'", argv[optind]);

  struct registry *reg = open_registry ();
  if (reg == NULL)
    return EXIT_FAILURE;
  struct reg_server *all;
  int n;
  struct error err = { 0 };
  int ret = registry_server_list (reg, &all, &n, &err);
  if (ret < 0) {
    registry_close (reg);
    log_error ("%s", error_msg (&err));
    return EXIT_FAILURE;
  }
  /* A draining server: the replicas the registry still puts there. */
  int left[n ? n : 1];
  for (int i = 0; i < n; i++)
    left[i] = all[i].draining ? replicas_on (reg, all[i].name, NULL, 0, NULL, NULL) : 0;
  registry_close (reg);
  if (json) {
    json_object *arr = json_object_new_array ();
    for (int i = 0; i < n; i++) {
      json_object *o = server_json (&all[i]);
      if (all[i].draining)
        json_object_object_add (o, "drain_left", json_object_new_int (left[i]));
      json_object_array_add (arr, o);
    }
    print_json (arr, JSON_C_TO_STRING_PRETTY);
  }
  else {
    printf (ROW, "NAME", "ZONE", "ADDRESS", "STATE", "CAPACITY", "FREE",
            "VOLUMES");
    for (int i = 0; i < n; i++) {
      char cap[32], fr[32], vols[24];
      char state[32];
      snprintf (vols, sizeof vols, "%" PRIu64, all[i].volumes);
      if (all[i].draining)
        snprintf (state, sizeof state, "%s(%d)", all[i].up ? "draining"
                  : "down,drain", left[i]);
      else
        snprintf (state, sizeof state, "%s", reg_server_state (&all[i]));
      printf (ROW, all[i].name, all[i].zone[0] ? all[i].zone : "-",
              all[i].addr, state,
              size_text (all[i].capacity, cap, sizeof cap),
              size_text (all[i].free, fr, sizeof fr), vols);
    }
  }
  free (all);
  return EXIT_SUCCESS;
}

/* Progress of the moves off server name: every replica being copied to
 * now (a moved replica's old copy is deleted at once, so what is being
 * copied is all there is to see).
 */
static void
print_moves (struct registry *reg, const char *name, bool json)
{
  char **names;
  int n;

  if (registry_list (reg, &names, &n, NULL) < 0)
    return;
  for (int i = 0; i < n; i++) {
    struct reg_volume v;
    if (registry_get (reg, names[i], &v, NULL) < 0)
      continue;
    for (int k = 0; k < v.nreplicas; k++) {
      const struct reg_replica *r = &v.replicas[k];
      char a[32], b[32];
      if (r->state == REG_IN_SYNC || r->resync_total == 0)
        continue;
      if (json) {
        json_object *o = event_new ("copying");
        json_object_object_add (o, "server", json_object_new_string (name));
        json_object_object_add (o, "volume", json_object_new_string (v.name));
        json_object_object_add (o, "to", json_object_new_string (r->server));
        json_object_object_add (o, "bytes_done",
                                json_object_new_uint64 (r->resync_done));
        json_object_object_add (o, "bytes_total",
                                json_object_new_uint64 (r->resync_total));
        event_print (o);
        continue;
      }
      printf ("%s: copying %s to %s: %s of %s\n", name, v.name, r->server,
              size_text (r->resync_done, a, sizeof a),
              size_text (r->resync_total, b, sizeof b));
    }
  }
  registry_free_names (names, n);
}

/* A line of the drain's --json stream: {"event": EVENT, "server": NAME,
 * "replicas_left": LEFT} (LEFT < 0: not said).
 */
static void
drain_event (const char *event, const char *name, int left)
{
  json_object *o = event_new (event);

  json_object_object_add (o, "server", json_object_new_string (name));
  if (left >= 0)
    json_object_object_add (o, "replicas_left", json_object_new_int (left));
  event_print (o);
}

/* repvol server drain NAME [--wait] [--timeout SECONDS] [--json] and
 * undrain.
 */
static int
server_drain (int argc, char **argv, bool on)
{
  static const struct option longopts[] = {
    { "wait", no_argument, NULL, 'w' },
    { "timeout", required_argument, NULL, 't' },
    { "json", no_argument, NULL, 'j' },
    CLI_BYTES_OPTION,
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  const char *verb = on ? "server drain" : "server undrain";
  bool wait = false, json = false;
  uint64_t timeout_s = 3600;
  int c;

  while ((c = cli_getopt (argc, argv, "server", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    if (c == 'w')
      wait = true;
    if (c == 'j')
      json = true;
    if (c == 't' && parse_uint (optarg, 1, 7 * 86400, &timeout_s) == -1)
      return usage_error ("server", "--timeout must be 1 to 604800 seconds, "
                          "not '%s'", optarg);
  }
  if (argc - optind != 1)
    return usage_error ("server", "expected: %s NAME", verb);
  if (!on && wait)
    return usage_error ("server", "--wait goes with drain");
  const char *name = argv[optind];
  if (!valid_name (name))
    return usage_error ("server", "invalid server name '%s'", name);

  struct registry *reg = open_registry ();
  if (reg == NULL)
    return EXIT_FAILURE;
  struct error err = { 0 };
  int ret = registry_server_drain (reg, name, on, &err);
  if (ret < 0) {
    if (ret == -ENOENT)
      log_error ("no server '%s' in the pool (repvol server list)", name);
    else
      log_error ("%s", error_msg (&err));
    registry_close (reg);
    return EXIT_FAILURE;
  }
  int left = replicas_on (reg, name, NULL, 0, NULL, NULL);
  if (!on) {
    if (json) {
      json_object *o = json_object_new_object ();
      json_object_object_add (o, "server", json_object_new_string (name));
      json_object_object_add (o, "draining", json_object_new_boolean (false));
      json_object_object_add (o, "replicas_on", json_object_new_int (left));
      print_json (o, JSON_C_TO_STRING_PRETTY);
    }
    else
      printf ("%s: not draining; placement may use it again\n", name);
    registry_event (reg, "drain-done", NULL, name, NULL, "undrained with "
                    "%d replica(s) on it", left);
    registry_close (reg);
    return EXIT_SUCCESS;
  }
  registry_event (reg, "drain-started", NULL, name, NULL, "%d replica(s) "
                  "to move", left);
  if (json)
    drain_event ("draining", name, left);
  else
    printf ("%s: draining: placement skips it; %d replica(s) to move\n",
            name, left);
  fflush (stdout);

  /* Detached volumes move here, one after another; attached ones move
   * in their attach, which sees the mark within seconds.
   */
  uint64_t deadline = now_ns () + timeout_s * 1000000000ull;
  char vol[REG_NAME_MAX];
  struct tried tried = { NULL, 0 };
  int rc = EXIT_SUCCESS, last = -2, stuck;
  uint64_t shown = now_ns ();
  while ((left = replicas_on (reg, name, vol, sizeof vol, &tried,
                              &stuck)) > 0) {
    if (vol[0]) {
      void *nt = realloc (tried.names, (tried.n + 1) * sizeof *tried.names);
      if (nt == NULL) {
        log_error ("out of memory");
        rc = EXIT_FAILURE;
        break;
      }
      tried.names = nt;
      snprintf (tried.names[tried.n++], REG_NAME_MAX, "%s", vol);
      if (!json) {
        printf ("%s: moving %s's replica (detached: copied here)\n", name,
                vol);
        fflush (stdout);
        heal_detached (reg, vol, default_heal_after (reg), name, NULL);
        continue;
      }
      json_object *lines = json_object_new_array ();
      int hr = heal_detached (reg, vol, default_heal_after (reg), name, lines);
      json_object *o = event_new ("moved");
      json_object_object_add (o, "server", json_object_new_string (name));
      json_object_object_add (o, "volume", json_object_new_string (vol));
      json_object_object_add (o, "ok", json_object_new_boolean (hr == 0));
      json_object_object_add (o, "lines", lines);
      event_print (o);
      continue;
    }
    if (!wait)
      break;
    if (stuck == left) {
      log_error ("%s: %d detached volume(s) could not be moved (above); "
                 "nothing else is moving", name, left);
      rc = EXIT_FAILURE;
      break;
    }
    if (now_ns () > deadline) {
      log_error ("%s: %d replica(s) still on it after %" PRIu64 " s", name,
                 left, timeout_s);
      rc = EXIT_FAILURE;
      break;
    }
    if (left != last && json)
      drain_event ("left", name, left);
    else if (left != last)
      printf ("%s: %d replica(s) left\n", name, left);
    if (now_ns () - shown > 2000000000ull) {
      print_moves (reg, name, json);
      shown = now_ns ();
    }
    fflush (stdout);
    last = left;
    usleep (200000);
  }
  if (json && left >= 0)
    drain_event (left == 0 ? "drained" : "moving", name, left);
  if (left == 0) {
    if (!json)
      printf ("%s: drained: it holds no replica\n", name);
    registry_event (reg, "drain-done", NULL, name, NULL, "no replica left");
  }
  else if (left > 0 && !wait && !json)
    printf ("%s: %d replica(s) still moving in their attaches (repvol server "
            "list shows the count; --wait waits)\n", name, left);
  else if (left < 0) {
    log_error ("cannot read the registry to count %s's replicas", name);
    rc = EXIT_FAILURE;
  }
  free (tried.names);
  registry_close (reg);
  return rc;
}

int
cmd_server (int argc, char **argv)
{
  if (argc >= 2 && (strcmp (argv[1], "--help") == 0 ||
                    strcmp (argv[1], "-h") == 0)) {
    verb_help ("server", false);
    return 0;
  }
  if (argc >= 2 && strcmp (argv[1], "list") == 0)
    return server_list (argc - 1, argv + 1);
  if (argc >= 2 && strcmp (argv[1], "drain") == 0)
    return server_drain (argc - 1, argv + 1, true);
  if (argc >= 2 && strcmp (argv[1], "undrain") == 0)
    return server_drain (argc - 1, argv + 1, false);
  return usage_error ("server", "expected list, drain or undrain%s%s",
                      argc >= 2 ? ", not " : "", argc >= 2 ? argv[1] : "");
}
