/* cmd_detach.c - repvol detach: ask the attach process to stop and wait
 * until it has cleared its attachment.
 *
 * The attach process does the real work on SIGTERM (stop the frontend,
 * drain, flush every replica, clear the attachment, exit).  This verb
 * only signals and waits, with a bound.  A process that died without
 * clearing leaves a stale attachment, which is cleared here (compare
 * and clear: only the exact attachment observed).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attach/attach.h"
#include "core/util.h"
#include "repvol.h"

#define POLL_NS (100 * 1000 * 1000ull)

static bool
same_attachment (const struct reg_attachment *a, const struct reg_attachment *b)
{
  return a->attached && b->attached && a->pid == b->pid &&
         a->epoch == b->epoch && strcmp (a->host, b->host) == 0;
}

static int
clear_stale (struct registry *reg, const char *vol,
             const struct reg_attachment *a, const char *how)
{
  attach_release_stale (vol, a);      /* a kernel device it left */
  switch (clear_attachment (reg, vol, a)) {
  case 0:
    log_warn ("%s: attach process %d on %s %s; cleared its stale attachment",
              vol, (int) a->pid, a->host, how);
    return EXIT_SUCCESS;
  case 1:                       /* changed under us: someone else handled it */
    printf ("detached %s\n", vol);
    return EXIT_SUCCESS;
  default:
    return EXIT_FAILURE;
  }
}

int
cmd_detach (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "timeout", required_argument, NULL, 't' },
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  uint64_t timeout_s = 60;
  int c;

  while ((c = cli_getopt (argc, argv, "detach", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    if (c == 't' && parse_uint (optarg, 1, 86400, &timeout_s) == -1)
      return usage_error ("detach", "--timeout must be 1 to 86400 seconds, "
                          "not '%s'", optarg);
  }
  const char *vol;
  struct registry *reg;
  struct reg_volume v;
  int ret = verb_volume (argc, argv, "detach", &vol, &reg, &v);
  if (ret)
    return ret;
  ret = EXIT_FAILURE;

  struct reg_attachment a = v.attachment;
  if (!a.attached) {
    log_error ("volume '%s' is not attached", vol);
    goto out;
  }
  if (!attachment_is_local (&a)) {
    log_error ("volume '%s' is attached on host %s (pid %d); run "
               "'repvol detach' there", vol, a.host, (int) a.pid);
    goto out;
  }
  if (!attach_alive (&a, vol)) {
    ret = clear_stale (reg, vol, &a, "is gone");
    goto out;
  }
  if (strcmp (a.frontend, ATTACH_DELETE_CLAIM) == 0) {
    log_error ("volume '%s' is being deleted (repvol delete, pid %d)",
               vol, (int) a.pid);
    goto out;
  }
  if (kill (a.pid, SIGTERM) == -1) {
    if (errno == ESRCH)
      ret = clear_stale (reg, vol, &a, "is gone");
    else
      log_error ("%s: cannot signal attach process %d: %m", vol, (int) a.pid);
    goto out;
  }

  /* Wait for the registry to show the attachment gone (the normal end:
   * attach_run clears it just before exiting) or for the process to
   * disappear without clearing it.
   */
  uint64_t deadline = now_ns () + timeout_s * 1000000000ull;
  for (;;) {
    struct timespec ts = { 0, POLL_NS };
    nanosleep (&ts, NULL);

    struct error rerr = { 0 };
    if (registry_get (reg, vol, &v, &rerr) < 0) {
      if (rerr.code == ENOENT)  /* deleted meanwhile: certainly detached */
        ret = EXIT_SUCCESS;
      else
        log_error ("%s", error_msg (&rerr));
      goto out;
    }
    if (!same_attachment (&v.attachment, &a)) {
      printf ("detached %s\n", vol);
      ret = EXIT_SUCCESS;
      goto out;
    }
    if (!attach_alive (&a, vol)) {
      ret = clear_stale (reg, vol, &a, "exited without clearing its attachment");
      goto out;
    }
    if (now_ns () >= deadline) {
      log_error ("%s: attach process %d did not finish detaching within %"
                 PRIu64 " s (it may still be flushing; try again or "
                 "kill it)", vol, (int) a.pid, timeout_s);
      goto out;
    }
  }

 out:
  registry_close (reg);
  return ret;
}
