/* cmd_server.c - repvol server list [--json]: the server pool, as the
 * registry knows it (every repvold started with --registry keeps its
 * record there under a lease; one whose lease ran out is down).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/util.h"
#include "repvol.h"

#define ROW "%-16s %-10s %-22s %-9s %10s %10s %7s\n"

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
  return o;
}

static int
server_list (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "json", no_argument, NULL, 'j' },
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
  registry_close (reg);
  if (ret < 0) {
    log_error ("%s", error_msg (&err));
    return EXIT_FAILURE;
  }
  if (json) {
    json_object *arr = json_object_new_array ();
    for (int i = 0; i < n; i++)
      json_object_array_add (arr, server_json (&all[i]));
    print_json (arr, JSON_C_TO_STRING_PRETTY);
  }
  else {
    printf (ROW, "NAME", "ZONE", "ADDRESS", "STATE", "CAPACITY", "FREE",
            "VOLUMES");
    for (int i = 0; i < n; i++) {
      char cap[32], fr[32], vols[24];
      snprintf (vols, sizeof vols, "%" PRIu64, all[i].volumes);
      printf (ROW, all[i].name, all[i].zone[0] ? all[i].zone : "-",
              all[i].addr, reg_server_state (&all[i]),
              format_size (all[i].capacity, cap, sizeof cap),
              format_size (all[i].free, fr, sizeof fr), vols);
    }
  }
  free (all);
  return EXIT_SUCCESS;
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
  return usage_error ("server", "expected list%s%s", argc >= 2 ? ", not " : "",
                      argc >= 2 ? argv[1] : "");
}
