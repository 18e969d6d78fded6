/* common.c - helpers the repvol verbs share: the registry, this host,
 * whether a recorded attach process still runs, printing JSON.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/util.h"
#include "core/fsutil.h"
#include "repvol.h"

struct registry *
open_registry (void)
{
  struct error err = { 0 };
  struct registry *r = registry_open (cli_registry, &err);
  if (r == NULL)
    log_error ("%s", error_msg (&err));
  return r;
}

int
get_volume (struct registry *r, const char *vol, struct reg_volume *v)
{
  struct error err = { 0 };
  if (registry_get (r, vol, v, &err) == 0 &&
      reg_volume_check_tls (v, &err) == 0)
    return 0;
  if (err.code == ENOENT)
    log_error ("unknown volume '%s'", vol);
  else      /* which file and why */
    log_error ("%s", error_msg (&err));
  return -err.code;
}

const char *
this_host (void)
{
  static char host[REG_NAME_MAX];
  if (host[0] == '\0') {
    if (gethostname (host, sizeof host) == -1)
      snprintf (host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
  }
  return host;
}

bool
attachment_is_local (const struct reg_attachment *a)
{
  return a->attached && strcmp (a->host, this_host ()) == 0;
}

bool
attachment_alive (const struct reg_attachment *a, const char *vol)
{
  char path[64], buf[4096];

  if (!pid_alive (a->pid))
    return false;

  /* The pid exists, but pids are reused: believe it is our attach only
   * if its command line names the volume.  A zombie has an empty
   * command line and counts as gone.  If /proc cannot tell us (not
   * mounted, hidepid), trust kill(): wrongly thinking a live attach dead
   * is the mistake to avoid.
   */
  snprintf (path, sizeof path, "/proc/%d/cmdline", (int) a->pid);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return true;
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  for (ssize_t i = 0; i < n; i += strlen (buf + i) + 1)
    if (strcmp (buf + i, vol) == 0)
      return true;
  return false;
}

struct clear_arg {
  const struct reg_attachment *expect;
};

static int
clear_fn (struct reg_volume *v, void *opaque)
{
  const struct reg_attachment *e = ((struct clear_arg *) opaque)->expect;
  struct reg_attachment *a = &v->attachment;

  /* Compare and clear: only the attachment we looked at, never one a new
   * attach has made since.
   */
  if (!a->attached || a->pid != e->pid || a->epoch != e->epoch ||
      strcmp (a->host, e->host) != 0)
    return ESTALE;
  memset (a, 0, sizeof *a);
  return 0;
}

int
clear_attachment (struct registry *r, const char *vol,
                  const struct reg_attachment *a)
{
  struct clear_arg arg = { a };
  struct error err = { 0 };
  if (registry_update (r, vol, clear_fn, &arg, &err) == 0)
    return 0;
  if (err.code == ESTALE || err.code == ENOENT)
    return 1;
  log_error ("%s", error_msg (&err));
  return -err.code;
}

const char *
format_time (time_t t, char *buf, size_t len)
{
  struct tm tm;
  if (t == 0 || gmtime_r (&t, &tm) == NULL)
    snprintf (buf, len, "-");
  else
    strftime (buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

void
print_json (json_object *o, int flags)
{
  printf ("%s\n", json_object_to_json_string_ext (o, flags));
  fflush (stdout);
  json_object_put (o);
}

int
verb_volume (int argc, char **argv, const char *verb, const char **vol,
             struct registry **reg, struct reg_volume *v)
{
  if ((*vol = one_volume (argc, argv, verb)) == NULL)
    return EXIT_USAGE;
  if ((*reg = open_registry ()) == NULL)
    return EXIT_FAILURE;
  if (get_volume (*reg, *vol, v) < 0) {
    registry_close (*reg);
    *reg = NULL;
    return EXIT_FAILURE;
  }
  return 0;
}
