/* cmd_list.c - repvol list: one line per volume. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/util.h"
#include "repvol.h"

int
cmd_list (int argc, char **argv)
{
  static const struct option longopts[] = {
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  int c;

  while ((c = cli_getopt (argc, argv, "list", longopts)) != -1)
    if (OPT_DONE (c))
      return OPT_EXIT (c);
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

  printf ("%-24s %10s %6s %8s %s\n", "NAME", "SIZE", "BLOCK", "REPLICAS",
          "ATTACHED");
  for (int i = 0; i < n; i++) {
    struct reg_volume v;
    char sbuf[32], att[REG_NAME_MAX + 32];
    if (registry_get (reg, names[i], &v, &rerr) < 0) {
      /* Say which file and what is wrong with it; keep listing. */
      if (rerr.code != ENOENT)
        log_error ("%s", error_msg (&rerr));
      printf ("%-24s %10s %6s %8s %s\n", names[i], "?", "?", "?", "?");
      ret = EXIT_FAILURE;
      continue;
    }
    if (v.attachment.attached)
      snprintf (att, sizeof att, "%s pid %d", v.attachment.host,
                (int) v.attachment.pid);
    else
      snprintf (att, sizeof att, "no");
    printf ("%-24s %10s %6" PRIu32 " %8d %s\n", v.name,
            format_size (v.size, sbuf, sizeof sbuf), v.block_size,
            v.nreplicas, att);
  }
  registry_free_names (names, n);
  registry_close (reg);
  return ret;
}
