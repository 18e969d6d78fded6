/* cmd_attach.c - repvol attach: parse, then hand over to attach_run(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "attach.h"
#include "repvol.h"

int
cmd_attach (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "nbd", required_argument, NULL, 'n' },
    { "timeout", required_argument, NULL, 't' },
    { "no-takeover", no_argument, NULL, 'N' },
    { "force-stale", required_argument, NULL, 'F' },
    { "resync-rate", required_argument, NULL, 'r' },
    { "registry", required_argument, NULL, 'R' },
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  struct attach_opts o = { .timeout_ms = 10000 };
  uint64_t t;
  int c;

  while ((c = cli_getopt (argc, argv, "attach", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    switch (c) {
    case 'n':
      o.nbd = optarg;
      break;
    case 'N':
      o.no_takeover = true;
      break;
    case 'F':
      o.force_stale = optarg;
      break;
    case 'r':
      if (parse_size (optarg, &o.resync_rate) == -1 || o.resync_rate < 65536)
        return usage_error ("attach", "--resync-rate must be a size per "
                            "second of at least 64K, like 100M, not '%s'",
                            optarg);
      break;
    case 't':
      if (parse_uint (optarg, 1, 3600, &t) == -1)
        return usage_error ("attach", "--timeout must be 1 to 3600 seconds, "
                            "not '%s'", optarg);
      o.timeout_ms = t * 1000;
      break;
    }
  }
  if ((o.volume = one_volume (argc, argv, "attach")) == NULL)
    return EXIT_USAGE;
  if (o.nbd == NULL)
    return usage_error ("attach", "missing --nbd unix:PATH or --nbd tcp:ADDR:PORT");
  if ((strncmp (o.nbd, "unix:", 5) != 0 || o.nbd[5] == '\0') &&
      strncmp (o.nbd, "tcp:", 4) != 0)
    return usage_error ("attach", "bad --nbd '%s' (expected unix:PATH or "
                        "tcp:ADDR:PORT)", o.nbd);
  if (strncmp (o.nbd, "tcp:", 4) == 0) {
    struct sockaddr_storage ss;
    socklen_t len;
    if (parse_hostport (o.nbd + 4, &ss, &len) == -1)
      return usage_error ("attach", "bad --nbd '%s' (expected tcp:ADDR:PORT)",
                          o.nbd);
  }

  struct registry *reg = open_registry ();
  if (reg == NULL)
    return EXIT_FAILURE;
  struct reg_volume v;
  if (get_volume (reg, o.volume, &v) == -1) {   /* same wording as the other verbs */
    registry_close (reg);
    return EXIT_FAILURE;
  }
  if (o.force_stale) {
    bool listed = false;
    for (int i = 0; i < v.nreplicas; i++)
      listed |= strcmp (v.replicas[i].addr, o.force_stale) == 0;
    if (!listed) {
      log_error ("--force-stale %s: not a replica of %s", o.force_stale,
                 o.volume);
      registry_close (reg);
      return EXIT_FAILURE;
    }
  }
  int rc = attach_run (reg, &o);
  registry_close (reg);
  return rc;
}
