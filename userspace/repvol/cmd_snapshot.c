/* cmd_snapshot.c - repvol snapshot create|restore, and the sub-verb
 * dispatch (list and delete are in cmd_snapshot_catalog.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "repvol.h"

int
cmd_snapshot (int argc, char **argv)
{
  static const struct {
    const char *name;
    int (*fn) (int argc, char **argv);
  } subs[] = {
    { "create", snapshot_create_main },
    { "list", snapshot_list_main },
    { "delete", snapshot_delete_main },
    { "restore", snapshot_restore_main },
  };

  if (argc >= 2 && (strcmp (argv[1], "--help") == 0 ||
                    strcmp (argv[1], "-h") == 0)) {
    verb_help ("snapshot", false);
    return 0;
  }
  for (size_t i = 0; argc >= 2 && i < ARRAY_SIZE (subs); i++)
    if (strcmp (argv[1], subs[i].name) == 0)
      return subs[i].fn (argc - 1, argv + 1);
  return usage_error ("snapshot", "expected create, list, delete or restore%s%s",
                      argc >= 2 ? ", not " : "", argc >= 2 ? argv[1] : "");
}

int
snapshot_create_main (int argc, char **argv)
{
  return usage_error ("snapshot", "create: not yet");
}

int
snapshot_restore_main (int argc, char **argv)
{
  return usage_error ("snapshot", "restore: not yet");
}
