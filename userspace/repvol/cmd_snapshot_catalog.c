/* cmd_snapshot_catalog.c - repvol snapshot list|delete. */
#include "util.h"
#include "repvol.h"

int
snapshot_list_main (int argc, char **argv)
{
  return usage_error ("snapshot", "list: not yet");
}

int
snapshot_delete_main (int argc, char **argv)
{
  return usage_error ("snapshot", "delete: not yet");
}
