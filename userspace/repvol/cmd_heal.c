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

#include "attach/attach.h"
#include "core/util.h"
#include "repvol.h"

static void
print_line (void *opaque, const char *line)
{
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
               const char *move)
{
  struct attach_opts o = {
    .volume = vol, .timeout_ms = 10000, .heal_after = heal_after,
    .job = ATTACH_HEAL, .move_server = move,
    .job_line = print_line,
  };

  return attach_run (reg, &o);
}

static int
heal_one (struct registry *reg, const struct pool *pool, const char *vol,
          unsigned heal_after)
{
  struct reg_volume v;

  attach_sweep_retired (reg, vol, print_sweep, NULL);
  if (get_volume (reg, vol, &v) < 0)
    return EXIT_FAILURE;
  if (attachment_live (&v) && !attach_is_hold (&v.attachment)) {
    printf ("%s: attached on %s (pid %d): its attach heals it\n", vol,
            v.attachment.host, (int) v.attachment.pid);
    return EXIT_SUCCESS;
  }
  if (v.attachment.attached && attach_is_hold (&v.attachment)) {
    printf ("%s: held by repvol %s (pid %d): skipped\n", vol,
            v.attachment.frontend, (int) v.attachment.pid);
    return EXIT_SUCCESS;
  }
  if (!needs_heal (pool, &v)) {
    printf ("%s: healthy: %d of %d replicas in sync\n", vol, v.nreplicas,
            v.nreplicas);
    return EXIT_SUCCESS;
  }
  return heal_detached (reg, vol, heal_after, NULL);
}

int
cmd_heal (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "heal-after", required_argument, NULL, 'A' },
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  unsigned heal_after = 0;
  bool given = false;
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
  registry_server_list (reg, &pool.s, &pool.n, NULL);
  if (optind < argc) {
    for (int i = optind; i < argc; i++)
      if (heal_one (reg, &pool, argv[i], heal_after) != EXIT_SUCCESS)
        rc = EXIT_FAILURE;
  }
  else {
    char **names;
    int n;
    struct error err = { 0 };
    if (registry_list (reg, &names, &n, &err) < 0) {
      log_error ("%s", error_msg (&err));
      free (pool.s);
      registry_close (reg);
      return EXIT_FAILURE;
    }
    if (n == 0)
      printf ("no volumes\n");
    for (int i = 0; i < n; i++)
      if (heal_one (reg, &pool, names[i], heal_after) != EXIT_SUCCESS)
        rc = EXIT_FAILURE;
    registry_free_names (names, n);
  }
  free (pool.s);
  registry_close (reg);
  return rc;
}

/* repvol settings [KEY [VALUE | --unset]] */
int
cmd_settings (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "unset", no_argument, NULL, 'u' },
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  static const char *const keys[] = { REG_SETTING_HEAL_AFTER };
  bool unset = false;
  int c, nargs;

  while ((c = cli_getopt (argc, argv, "settings", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    if (c == 'u')
      unset = true;
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
  if (value || unset) {
    if (registry_setting_put (reg, key, value, &err) < 0) {
      log_error ("%s", error_msg (&err));
      rc = EXIT_FAILURE;
    }
    else if (value)
      printf ("%s = %s\n", key, value);
    else
      printf ("%s unset (default %d s)\n", key, ATTACH_HEAL_AFTER);
  }
  else
    for (size_t i = 0; i < ARRAY_SIZE (keys); i++) {
      char val[REG_SETTING_MAX];
      if (key && strcmp (key, keys[i]) != 0)
        continue;
      int r = registry_setting_get (reg, keys[i], val, sizeof val, &err);
      if (r == -ENOENT)
        printf ("%s = %ds (default)\n", keys[i], ATTACH_HEAL_AFTER);
      else if (r < 0) {
        log_error ("%s", error_msg (&err));
        rc = EXIT_FAILURE;
      }
      else
        printf ("%s = %s\n", keys[i], val);
    }
  registry_close (reg);
  return rc;
}
