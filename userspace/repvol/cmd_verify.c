/* cmd_verify.c - repvol verify: ask the running attach of a volume to
 * compare its replicas (checksums computed on the servers), and with
 * --repair to copy differing regions from the majority.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach/control.h"
#include "repvol.h"
#include "core/util.h"

int
cmd_verify (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "repair", no_argument, NULL, 'r' },
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  bool repair = false;
  int c;

  while ((c = cli_getopt (argc, argv, "verify", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    if (c == 'r')
      repair = true;
  }
  const char *vol;
  struct registry *reg;
  struct reg_volume v;
  int ret = verb_volume (argc, argv, "verify", &vol, &reg, &v);
  if (ret)
    return ret;
  ret = EXIT_FAILURE;
  if (!v.attachment.attached || !attachment_is_local (&v.attachment) ||
      !v.attachment.control[0]) {
    log_error ("volume '%s' is not attached on this host: verify runs in "
               "its attach (repvol attach %s ...)", vol, vol);
    goto out;
  }
  /* The attach prints one line per differing region, then a summary. */
  ret = control_call (v.attachment.control, repair ? "verify repair" : "verify")
    == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
 out:
  registry_close (reg);
  return ret;
}
