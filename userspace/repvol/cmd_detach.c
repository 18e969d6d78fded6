/* cmd_detach.c - repvol detach: ask the attach process to stop, wait
 * until it has cleared its attachment, and say how it ended.
 *
 * The attach process does the real work (stop the frontend, drain,
 * flush every replica, clear the attachment, exit).  This verb sends
 * "detach" on the attach's control channel, whose answer is how the
 * detach ended ("ok detached", or "error: ..." with the exit status),
 * or, without a control channel, SIGTERM; then it waits, with a bound,
 * for the registry to show the attachment cleared.  It exits 0 only for
 * a clean detach: an attach that answers an error, dies while
 * detaching (the channel closes with no answer), or is gone already is
 * reported and exit status is 1.  A process that died without clearing
 * leaves a stale attachment, which is cleared here (compare and clear:
 * only the exact attachment observed).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "attach/attach.h"
#include "attach/control.h"
#include "core/util.h"
#include "repvol.h"

#define POLL_NS (100 * 1000 * 1000ull)

/* The attachment is cleared: say so.  Text: "detached VOL" when clean
 * (the caller has logged why not, otherwise).  --json, either way:
 * {"volume", "detached": true, "clean", "reason": null or why not}.
 */
static void
report (const char *vol, bool json, bool clean, const char *reason)
{
  if (json) {
    json_object *o = json_object_new_object ();
    json_object_object_add (o, "volume", json_object_new_string (vol));
    json_object_object_add (o, "detached", json_object_new_boolean (true));
    json_object_object_add (o, "clean", json_object_new_boolean (clean));
    json_object_object_add (o, "reason", clean ? NULL
                            : json_object_new_string (reason));
    print_json (o, JSON_C_TO_STRING_PRETTY);
  }
  else if (clean)
    printf ("detached %s\n", vol);
}

static bool
same_attachment (const struct reg_attachment *a, const struct reg_attachment *b)
{
  return a->attached && b->attached && a->pid == b->pid &&
         a->epoch == b->epoch && strcmp (a->host, b->host) == 0;
}

/* The attach process is gone without clearing its attachment: it did
 * not detach cleanly (it died), whatever happens here, so the exit
 * status is 1 once the stale attachment is cleared.
 */
static int
clear_stale (struct registry *reg, const char *vol,
             const struct reg_attachment *a, const char *how, bool json)
{
  char why[400];

  attach_release_stale (vol, a);      /* a kernel device it left */
  switch (clear_attachment (reg, vol, a)) {
  case 0:
    snprintf (why, sizeof why, "attach process %d on %s %s: it did not "
              "detach cleanly; cleared its stale attachment", (int) a->pid,
              a->host, how);
    log_error ("%s: %s", vol, why);
    report (vol, json, false, why);
    return EXIT_FAILURE;
  case 1:                       /* changed under us: someone else handled it */
    report (vol, json, true, NULL);
    return EXIT_SUCCESS;
  default:
    return EXIT_FAILURE;
  }
}

struct answer {
  char last[512];               /* the last line the attach sent */
};

static void
keep_last (void *opaque, const char *line)
{
  struct answer *ans = opaque;

  snprintf (ans->last, sizeof ans->last, "%s", line);
}

/* The attachment was cleared (by the attach, as it exits, or by someone
 * else).  how: what the control channel said; the exit status.
 */
static int
cleared (const char *vol, const struct reg_attachment *a, int how,
         const struct answer *ans, bool json)
{
  char why[400];

  switch (how) {
  case CONTROL_OK:
  case CONTROL_UNREACHABLE:     /* SIGTERM: it cleared, that is all we know */
    report (vol, json, true, NULL);
    return EXIT_SUCCESS;
  case CONTROL_ERROR: {
    const char *w = ans->last;
    if (strncmp (w, "error: ", 7) == 0)
      w += 7;
    log_error ("%s: detached, but not cleanly: %s", vol, w);
    report (vol, json, false, w);
    return EXIT_FAILURE;
  }
  default:
    snprintf (why, sizeof why, "attach process %d cleared its attachment "
              "without saying how its detach ended; treat it as not clean",
              (int) a->pid);
    log_error ("%s: %s", vol, why);
    report (vol, json, false, why);
    return EXIT_FAILURE;
  }
}

int
cmd_detach (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "timeout", required_argument, NULL, 't' },
    { "json", no_argument, NULL, 'j' },
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  uint64_t timeout_s = 60;
  bool json = false;
  int c;

  while ((c = cli_getopt (argc, argv, "detach", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    if (c == 't' && parse_uint (optarg, 1, 86400, &timeout_s) == -1)
      return usage_error ("detach", "--timeout must be 1 to 86400 seconds, "
                          "not '%s'", optarg);
    if (c == 'j')
      json = true;
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
    ret = clear_stale (reg, vol, &a, "is gone", json);
    goto out;
  }
  if (strcmp (a.frontend, ATTACH_DELETE_CLAIM) == 0) {
    log_error ("volume '%s' is being deleted (repvol delete, pid %d)",
               vol, (int) a.pid);
    goto out;
  }
  uint64_t deadline = now_ns () + timeout_s * 1000000000ull;
  struct answer ans = { 0 };
  int how = CONTROL_UNREACHABLE;

  if (a.control[0]) {
    how = control_call_timeout (a.control, "detach", keep_last, &ans,
                                (int) (timeout_s * 1000));
    /* An attach from before "detach" existed: it takes SIGTERM. */
    if (how == CONTROL_ERROR &&
        strcmp (ans.last, "error: unknown control command") == 0)
      how = CONTROL_UNREACHABLE;
  }
  if (how == CONTROL_TIMEOUT) {
    log_error ("%s: attach process %d did not finish detaching within %"
               PRIu64 " s (it may still be flushing; try again or kill it)",
               vol, (int) a.pid, timeout_s);
    goto out;
  }
  if (how == CONTROL_UNREACHABLE && kill (a.pid, SIGTERM) == -1) {
    if (errno == ESRCH)
      ret = clear_stale (reg, vol, &a, "is gone", json);
    else
      log_error ("%s: cannot signal attach process %d: %m", vol, (int) a.pid);
    goto out;
  }

  /* Wait for the registry to show the attachment gone (the normal end:
   * attach_run clears it just before exiting) or for the process to
   * disappear without clearing it.
   */
  for (;;) {
    struct timespec ts = { 0, POLL_NS };
    nanosleep (&ts, NULL);

    struct error rerr = { 0 };
    if (registry_get (reg, vol, &v, &rerr) < 0) {
      if (rerr.code == ENOENT) {        /* deleted meanwhile: detached */
        report (vol, json, true, NULL);
        ret = EXIT_SUCCESS;
      }
      else
        log_error ("%s", error_msg (&rerr));
      goto out;
    }
    if (!same_attachment (&v.attachment, &a)) {
      ret = cleared (vol, &a, how, &ans, json);
      goto out;
    }
    if (!attach_alive (&a, vol)) {
      ret = clear_stale (reg, vol, &a, how == CONTROL_NO_ANSWER
                         ? "died while detaching (no answer on its control "
                           "channel)"
                         : "exited without clearing its attachment", json);
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
