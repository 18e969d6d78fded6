/* cmd_list.c - repvol list [--json] [--bytes]: one line (or object) per
 * volume, with its health (health.h) and its attachment.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/util.h"
#include "health.h"
#include "repvol.h"

#define ROW "%-24s %10s %6s %8s %8s %-22s %s\n"

/* The ATTACHED column: "no", or where, and whether its process is gone
 * or its lease expired, since when.
 */
static void
attached_text (const struct reg_volume *v, char *buf, size_t len)
{
  const struct reg_attachment *a = &v->attachment;
  const char *st = attachment_state (v);
  char when[64];

  format_time (attachment_silent_since (v), when, sizeof when);
  if (!a->attached)
    snprintf (buf, len, "no");
  else if (strcmp (st, "gone") == 0)
    snprintf (buf, len, "%s pid %d (gone: the process exited; last "
              "heartbeat %s)", a->host, (int) a->pid, when);
  else if (strcmp (st, "stale") == 0)
    snprintf (buf, len, "%s pid %d (stale: its lease expired %s)", a->host,
              (int) a->pid, when);
  else
    snprintf (buf, len, "%s pid %d", a->host, (int) a->pid);
}

static json_object *
list_json (const struct reg_volume *v, const struct health *h)
{
  json_object *o = json_object_new_object ();
  const struct reg_attachment *a = &v->attachment;
  time_t silent = attachment_silent_since (v);

  json_object_object_add (o, "name", json_object_new_string (v->name));
  json_object_object_add (o, "size", json_object_new_uint64 (v->size));
  json_object_object_add (o, "block_size",
                          json_object_new_uint64 (v->block_size));
  json_object_object_add (o, "replicas", json_object_new_int (v->nreplicas));
  json_object_object_add (o, "epoch", json_object_new_uint64 (v->epoch));
  json_object_object_add (o, "attached", json_object_new_boolean (a->attached));
  json_object_object_add (o, "attachment_state",
                          json_object_new_string (attachment_state (v)));
  json_object_object_add (o, "silent_since", silent ?
                          json_object_new_int64 (silent) : NULL);
  json_object_object_add (o, "health", health_json (h));
  if (a->attached) {
    json_object_object_add (o, "host", json_object_new_string (a->host));
    json_object_object_add (o, "pid", json_object_new_int (a->pid));
  }
  return o;
}

int
cmd_list (int argc, char **argv)
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

  while ((c = cli_getopt (argc, argv, "list", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    if (c == 'j')
      json = true;
  }
  if (optind < argc)
    return usage_error ("list", "unexpected argument '%s'", argv[optind]);

  struct registry *reg = open_registry ();
  if (reg == NULL)
    return EXIT_FAILURE;
  char **names;
  int n, ret = EXIT_SUCCESS;
  struct error rerr = { 0 };
  if (registry_list (reg, &names, &n, &rerr) < 0) {
    log_error ("%s", error_msg (&rerr));
    registry_close (reg);
    return EXIT_FAILURE;
  }

  struct reg_server *pool = NULL;
  int npool = 0;
  if (registry_server_list (reg, &pool, &npool, NULL) < 0)
    pool = NULL;                /* health from the records alone */

  json_object *arr = json ? json_object_new_array () : NULL;
  if (!json)
    printf (ROW, "NAME", "SIZE", "BLOCK", "REPLICAS", "EPOCH", "HEALTH",
            "ATTACHED");
  for (int i = 0; i < n; i++) {
    struct reg_volume v;
    struct health h;
    char sbuf[32], bbuf[16], rbuf[16], ebuf[24], att[REG_NAME_MAX + 128];
    if (registry_get (reg, names[i], &v, &rerr) < 0) {
      /* Say which file and what is wrong with it; keep listing. */
      if (rerr.code != ENOENT)
        log_error ("%s", error_msg (&rerr));
      if (!json)
        printf (ROW, names[i], "?", "?", "?", "?", "?", "?");
      ret = EXIT_FAILURE;
      continue;
    }
    volume_health (&v, pool, npool, &h);
    if (json) {
      json_object_array_add (arr, list_json (&v, &h));
      continue;
    }
    snprintf (bbuf, sizeof bbuf, "%" PRIu32, v.block_size);
    snprintf (rbuf, sizeof rbuf, "%d", v.nreplicas);
    snprintf (ebuf, sizeof ebuf, "%" PRIu64, v.epoch);
    attached_text (&v, att, sizeof att);
    printf (ROW, v.name, size_text (v.size, sbuf, sizeof sbuf), bbuf, rbuf,
            ebuf, h.text, att);
  }
  free (pool);
  if (json)
    print_json (arr, JSON_C_TO_STRING_PRETTY);
  registry_free_names (names, n);
  registry_close (reg);
  return ret;
}
