/* cmd_heal.c - repvol heal [VOL...]: one healing pass over detached
 * volumes (docs/DESIGN.md, "Self-healing"), and repvol settings, the
 * registry-wide defaults such as heal-after.
 *
 * An attached volume heals in its attach; heal leaves it to it.  A
 * detached one whose replicas are not all in sync is attached here for
 * one job (attach_run, ATTACH_HEAL): replicas that answer are caught up,
 * those unreachable longer than heal-after are replaced by spares from
 * the pool and copied to, and then it detaches.  Every volume also has
 * the stale copies of replicas replaced earlier deleted where their
 * servers answer again.  A timer may run this (repvol-heal.timer).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "attach/attach.h"
#include "core/util.h"
#include "health.h"
#include "repvol.h"

/* A line of what the job did: printed, or (--json: opaque is a JSON
 * array) kept for the volume's "lines".
 */
static void
print_line (void *opaque, const char *line)
{
  if (opaque) {
    json_object_array_add (opaque, json_object_new_string (line));
    return;
  }
  printf ("%s\n", line);
  fflush (stdout);
}

static void
print_sweep (void *opaque, const char *line, bool kept)
{
  print_line (opaque, line);
}

/* The pool, listed once per run (empty when it cannot be read). */
struct pool {
  struct reg_server *s;
  int n;
};

/* A replica out of sync, or one whose server the pool shows down. */
static bool
needs_heal (const struct pool *pool, const struct reg_volume *v)
{
  bool need = false;

  for (int i = 0; i < v->nreplicas; i++) {
    need |= v->replicas[i].state != REG_IN_SYNC;
    for (int j = 0; j < pool->n; j++)
      need |= !pool->s[j].up &&
        strcmp (pool->s[j].name, v->replicas[i].server) == 0;
  }
  return need;
}

/* A heal job on detached volume vol (move: a server to move away from,
 * for a drain).  An exit code.
 */
int
heal_detached (struct registry *reg, const char *vol, unsigned heal_after,
               const char *move, struct json_object *lines)
{
  struct attach_opts o = {
    .volume = vol, .timeout_ms = 10000, .heal_after = heal_after,
    .job = ATTACH_HEAL, .move_server = move,
    .job_line = print_line, .job_opaque = lines,
  };

  return attach_run (reg, &o);
}

/* One volume's pass.  --json (out not NULL): {"volume", "action",
 * "lines", "health"} added to out, where action is "attached" (its
 * attach heals it), "held" (repvol delete or epoch --reset has it),
 * "none" (nothing to heal), "healed" or "failed" (the job's exit), and
 * lines what the sweep and the job said.
 */
static int
heal_one (struct registry *reg, const struct pool *pool, const char *vol,
          unsigned heal_after, json_object *out)
{
  struct reg_volume v;
  json_object *lines = out ? json_object_new_array () : NULL;
  const char *action = "none";
  int rc = EXIT_SUCCESS;

  attach_sweep_retired (reg, vol, print_sweep, lines);
  if (get_volume (reg, vol, &v) < 0) {
    json_object_put (lines);
    return EXIT_FAILURE;
  }
  if (attachment_live (&v) && !attach_is_hold (&v.attachment)) {
    action = "attached";
    if (!out)
      printf ("%s: attached on %s (pid %d): its attach heals it\n", vol,
              v.attachment.host, (int) v.attachment.pid);
  }
  else if (v.attachment.attached && attach_is_hold (&v.attachment)) {
    action = "held";
    if (!out)
      printf ("%s: held by repvol %s (pid %d): skipped\n", vol,
              v.attachment.frontend, (int) v.attachment.pid);
  }
  else if (!needs_heal (pool, &v)) {
    if (!out)
      printf ("%s: healthy: %d of %d replicas in sync\n", vol, v.nreplicas,
              v.nreplicas);
  }
  else {
    rc = heal_detached (reg, vol, heal_after, NULL, lines);
    action = rc == EXIT_SUCCESS ? "healed" : "failed";
  }
  if (!out)
    return rc;

  struct health h;
  json_object *o = json_object_new_object (), *hj = NULL;
  if (registry_get (reg, vol, &v, NULL) == 0) {   /* after the job */
    volume_health (&v, pool->s, pool->n, &h);
    hj = health_json (&h);
  }
  json_object_object_add (o, "volume", json_object_new_string (vol));
  json_object_object_add (o, "action", json_object_new_string (action));
  json_object_object_add (o, "lines", lines);
  json_object_object_add (o, "health", hj);
  json_object_array_add (out, o);
  return rc;
}

int
cmd_heal (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "heal-after", required_argument, NULL, 'A' },
    { "json", no_argument, NULL, 'j' },
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  unsigned heal_after = 0;
  bool given = false, json = false;
  int c, rc = EXIT_SUCCESS;

  while ((c = cli_getopt (argc, argv, "heal", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    if (c == 'A') {
      if (parse_heal_after (optarg, &heal_after) < 0)
        return usage_error ("heal", "--heal-after must be a duration like "
                            "30s, 5m or 2h (0: never), at most 30d, not "
                            "'%s'", optarg);
      given = true;
    }
    if (c == 'j')
      json = true;
  }
  for (int i = optind; i < argc; i++)
    if (!valid_name (argv[i]))
      return usage_error ("heal", "invalid volume name '%s'", argv[i]);

  struct registry *reg = open_registry ();
  if (reg == NULL)
    return EXIT_FAILURE;
  if (!given)
    heal_after = default_heal_after (reg);
  struct pool pool = { NULL, 0 };
  if (registry_server_list (reg, &pool.s, &pool.n, NULL) < 0)
    pool.s = NULL;
  json_object *out = json ? json_object_new_array () : NULL;
  if (optind < argc) {
    for (int i = optind; i < argc; i++)
      if (heal_one (reg, &pool, argv[i], heal_after, out) != EXIT_SUCCESS)
        rc = EXIT_FAILURE;
  }
  else {
    char **names;
    int n;
    struct error err = { 0 };
    if (registry_list (reg, &names, &n, &err) < 0) {
      log_error ("%s", error_msg (&err));
      free (pool.s);
      json_object_put (out);
      registry_close (reg);
      return EXIT_FAILURE;
    }
    if (n == 0 && !json)
      printf ("no volumes\n");
    for (int i = 0; i < n; i++)
      if (heal_one (reg, &pool, names[i], heal_after, out) != EXIT_SUCCESS)
        rc = EXIT_FAILURE;
    registry_free_names (names, n);
  }
  if (out) {
    json_object *top = json_object_new_object ();
    json_object_object_add (top, "volumes", out);
    print_json (top, JSON_C_TO_STRING_PRETTY);
  }
  free (pool.s);
  registry_close (reg);
  return rc;
}

/* A setting's value (NULL: not set, the built-in default holds): a
 * line, or (out not NULL) out's member KEY: {"value": the string or
 * null, "seconds", "default": bool}.  heal-after is the only key.
 */
static void
show_setting (json_object *out, const char *key, const char *value)
{
  unsigned secs = ATTACH_HEAL_AFTER;

  if (value && parse_heal_after (value, &secs) < 0)
    secs = ATTACH_HEAL_AFTER;   /* a bad stored value: attach warns, uses this */
  if (out) {
    json_object *o = json_object_new_object ();
    json_object_object_add (o, "value", value ? json_object_new_string (value)
                            : NULL);
    json_object_object_add (o, "seconds", json_object_new_int64 (secs));
    json_object_object_add (o, "default", json_object_new_boolean (!value));
    json_object_object_add (out, key, o);
  }
  else if (value)
    printf ("%s = %s\n", key, value);
  else
    printf ("%s = %ds (default)\n", key, ATTACH_HEAL_AFTER);
}

/* repvol settings [KEY [VALUE | --unset]] */
int
cmd_settings (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "unset", no_argument, NULL, 'u' },
    { "json", no_argument, NULL, 'j' },
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  static const char *const keys[] = { REG_SETTING_HEAL_AFTER };
  bool unset = false, json = false;
  int c, nargs;

  while ((c = cli_getopt (argc, argv, "settings", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    if (c == 'u')
      unset = true;
    if (c == 'j')
      json = true;
  }
  nargs = argc - optind;
  if (nargs > 2 || (unset && nargs != 1))
    return usage_error ("settings", "expected: settings [KEY [VALUE | "
                        "--unset]]");
  const char *key = nargs ? argv[optind] : NULL;
  const char *value = nargs == 2 ? argv[optind + 1] : NULL;
  if (key && strcmp (key, REG_SETTING_HEAL_AFTER) != 0)
    return usage_error ("settings", "no setting '%s' (known: %s)", key,
                        REG_SETTING_HEAL_AFTER);
  unsigned secs;
  if (value && parse_heal_after (value, &secs) < 0)
    return usage_error ("settings", "heal-after must be a duration like 30s, "
                        "5m or 2h (0: never), at most 30d, not '%s'", value);

  struct registry *reg = open_registry ();
  if (reg == NULL)
    return EXIT_FAILURE;
  struct error err = { 0 };
  int rc = EXIT_SUCCESS;
  json_object *out = json ? json_object_new_object () : NULL;
  if (value || unset) {
    if (registry_setting_put (reg, key, value, &err) < 0) {
      log_error ("%s", error_msg (&err));
      rc = EXIT_FAILURE;
    }
    else
      show_setting (out, key, value);
  }
  else
    for (size_t i = 0; i < ARRAY_SIZE (keys); i++) {
      char val[REG_SETTING_MAX];
      if (key && strcmp (key, keys[i]) != 0)
        continue;
      int r = registry_setting_get (reg, keys[i], val, sizeof val, &err);
      if (r < 0 && r != -ENOENT) {
        log_error ("%s", error_msg (&err));
        rc = EXIT_FAILURE;
      }
      else
        show_setting (out, keys[i], r == -ENOENT ? NULL : val);
    }
  if (out && rc == EXIT_SUCCESS)
    print_json (out, JSON_C_TO_STRING_PRETTY);
  else
    json_object_put (out);
  registry_close (reg);
  return rc;
}
