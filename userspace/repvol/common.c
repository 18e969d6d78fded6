/* common.c - helpers the repvol verbs share: the registry, this host,
 * holding a volume through its attachment slot, printing JSON.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/util.h"
#include "core/fsutil.h"
#include "attach/attach.h"
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
      reg_volume_check_tls (v, &err) == 0) {
    /* Each replica where its server is now (a server that moved); the
     * recorded addresses when the pool cannot say.
     */
    registry_resolve_replicas (r, v, NULL);
    return 0;
  }
  if (err.code == ENOENT)
    log_error ("unknown volume '%s'", vol);
  else      /* which file and why */
    log_error ("%s", error_msg (&err));
  return -err.code;
}

const char *
this_host (void)
{
  return this_host_name ();
}

bool
attachment_is_local (const struct reg_attachment *a)
{
  return a->attached && strcmp (a->host, this_host ()) == 0;
}

const char *
attachment_state (const struct reg_volume *v)
{
  const struct reg_attachment *a = &v->attachment;

  if (!a->attached)
    return "none";
  if (!attachment_is_local (a))
    return reg_attachment_lease_left (a, time (NULL)) > 0 ? "remote"
      : "stale";
  return attach_alive (a, v->name) ? "running" : "gone";
}

bool
attachment_live (const struct reg_volume *v)
{
  const char *st = attachment_state (v);

  return strcmp (st, "running") == 0 || strcmp (st, "remote") == 0;
}

time_t
attachment_silent_since (const struct reg_volume *v)
{
  const struct reg_attachment *a = &v->attachment;
  const char *st = attachment_state (v);

  if (strcmp (st, "gone") == 0)
    return a->lease_ttl ? a->heartbeat : 0;
  if (strcmp (st, "stale") == 0)
    return a->lease_ttl ? a->heartbeat + a->lease_ttl : 0;
  return 0;
}

struct hold_arg {
  struct reg_attachment seen;   /* the stale attachment we may replace */
  struct reg_attachment mine;
};

static int
hold_fn (struct reg_volume *v, void *opaque)
{
  struct hold_arg *h = opaque;
  struct reg_attachment *a = &v->attachment;

  if (a->attached &&
      !(h->seen.attached && a->pid == h->seen.pid &&
        a->epoch == h->seen.epoch && strcmp (a->host, h->seen.host) == 0))
    return EBUSY;               /* attached since we looked */
  *a = h->mine;
  return 0;
}

int
hold_volume (struct registry *r, const struct reg_volume *v, const char *what,
             struct reg_attachment *mine)
{
  const struct reg_attachment *a = &v->attachment;
  struct hold_arg h = { 0 };
  struct error err = { 0 };

  if (a->attached) {
    if (!attachment_is_local (a) || attach_alive (a, v->name)) {
      log_error ("volume '%s' is attached on host %s (pid %d, %s); "
                 "detach it first", v->name, a->host, (int) a->pid,
                 a->frontend[0] ? a->frontend : "-");
      return EXIT_FAILURE;
    }
    log_warn ("%s: attachment of pid %d on %s is stale (the process is "
              "gone); going on", v->name, (int) a->pid, a->host);
    h.seen = *a;
  }
  h.mine.attached = true;
  snprintf (h.mine.host, sizeof h.mine.host, "%s", this_host ());
  h.mine.pid = getpid ();
  snprintf (h.mine.frontend, sizeof h.mine.frontend, "%s", what);
  h.mine.epoch = v->epoch;
  h.mine.since = time (NULL);
  if (registry_update (r, v->name, hold_fn, &h, &err) < 0) {
    if (err.code == EBUSY)
      log_error ("volume '%s' was attached meanwhile; detach it first",
                 v->name);
    else if (err.code == ENOENT)
      log_error ("unknown volume '%s' (deleted meanwhile?)", v->name);
    else
      log_error ("%s", error_msg (&err));
    return EXIT_FAILURE;
  }
  *mine = h.mine;
  return 0;
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

const char *
size_text (uint64_t bytes, char *buf, size_t len)
{
  if (cli_bytes)
    snprintf (buf, len, "%" PRIu64, bytes);
  else
    format_size (bytes, buf, len);
  return buf;
}

const char *
rate_text (uint64_t bytes_per_s, char *buf, size_t len)
{
  char b[32];

  snprintf (buf, len, "%s/s", size_text (bytes_per_s, b, sizeof b));
  return buf;
}

const char *
duration_text (uint64_t s, char *buf, size_t len)
{
  if (s < 60)
    snprintf (buf, len, "%" PRIu64 "s", s);
  else if (s < 3600)
    snprintf (buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
  else
    snprintf (buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600,
              s / 60 % 60);
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

void
note_event (struct registry *r, const char *type, const char *vol,
            const char *fmt, ...)
{
  char details[256];
  struct error err = { 0 };
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (details, sizeof details, fmt, ap);
  va_end (ap);
  if (registry_event (r, type, vol, NULL, &err, "%s", details) < 0)
    log_warn ("%s: event %s not recorded: %s", vol, type, error_msg (&err));
}

int
parse_heal_after (const char *s, unsigned *out)
{
  uint64_t v;

  if (parse_duration (s, 0, 30 * 86400, &v) == -1)
    return -1;
  *out = (unsigned) v;
  return 0;
}

unsigned
default_heal_after (struct registry *r)
{
  char val[REG_SETTING_MAX];
  struct error err = { 0 };
  unsigned v;
  int ret = registry_setting_get (r, REG_SETTING_HEAL_AFTER, val, sizeof val,
                                  &err);

  if (ret == -ENOENT)
    return ATTACH_HEAL_AFTER;
  if (ret < 0) {
    log_warn ("cannot read the registry's heal-after setting (using %d s): "
              "%s", ATTACH_HEAL_AFTER, error_msg (&err));
    return ATTACH_HEAL_AFTER;
  }
  if (parse_heal_after (val, &v) < 0) {
    log_warn ("the registry's heal-after setting '%s' is not a duration "
              "(using %d s; repvol settings heal-after DURATION)", val,
              ATTACH_HEAL_AFTER);
    return ATTACH_HEAL_AFTER;
  }
  return v;
}
