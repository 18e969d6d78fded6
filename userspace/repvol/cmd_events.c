/* cmd_events.c - repvol events [--follow] [--since REVISION] [--json]
 * [--volume VOL]: the registry's event stream, oldest first.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "core/util.h"
#include "repvol.h"

#define ROW "%-10s %-24s %-16s %-14s %-12s %-12s %s\n"

struct show {
  bool json;
  const char *volume;
};

static volatile sig_atomic_t stopping;

static void
on_stop (int sig)
{
  stopping = 1;
}

static bool
stop_asked (void *arg)
{
  return stopping;
}

static int
show_one (const struct reg_event *ev, void *arg)
{
  const struct show *s = arg;
  char rev[24], when[40];
  time_t t = (time_t) (ev->time_ms / 1000);
  struct tm tm;

  if (s->volume && strcmp (ev->volume, s->volume) != 0)
    return 0;
  if (s->json) {
    json_object *o = reg_event_json (ev);
    printf ("%s\n", json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN));
    json_object_put (o);
  }
  else {
    gmtime_r (&t, &tm);
    strftime (when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (when + strlen (when), sizeof when - strlen (when), ".%03dZ",
              (int) (ev->time_ms % 1000));
    snprintf (rev, sizeof rev, "%" PRIu64, ev->revision);
    printf (ROW, rev, when, ev->type, ev->volume[0] ? ev->volume : "-",
            ev->server[0] ? ev->server : "-", ev->host, ev->details);
  }
  fflush (stdout);
  return 0;
}

int
cmd_events (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "follow", no_argument, NULL, 'f' },
    { "since", required_argument, NULL, 's' },
    { "json", no_argument, NULL, 'j' },
    { "volume", required_argument, NULL, 'v' },
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  struct show s = { 0 };
  bool follow = false;
  uint64_t since = 0;
  int c;

  while ((c = cli_getopt (argc, argv, "events", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    switch (c) {
    case 'f': follow = true; break;
    case 'j': s.json = true; break;
    case 's':
      if (parse_uint (optarg, 0, INT64_MAX, &since) == -1)
        return usage_error ("events", "--since must be a revision (a whole "
                            "number), not '%s'", optarg);
      break;
    case 'v':
      if (!valid_name (optarg))
        return usage_error ("events", "bad --volume '%s'", optarg);
      s.volume = optarg;
      break;
    }
  }
  if (optind < argc)
    return usage_error ("events", "unexpected argument '%s'", argv[optind]);

  struct registry *reg = open_registry ();
  if (reg == NULL)
    return EXIT_FAILURE;
  if (!s.json)
    printf (ROW, "REVISION", "TIME", "TYPE", "VOLUME", "SERVER", "HOST",
            "DETAILS");
  struct error err = { 0 };
  int ret;
  if (follow) {
    struct sigaction sa = { .sa_handler = on_stop };
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
    ret = registry_events_follow (reg, since, show_one, stop_asked, &s, &err);
  }
  else
    ret = registry_events (reg, since, show_one, &s, &err);
  registry_close (reg);
  if (ret < 0) {
    log_error ("%s", error_msg (&err));
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}
