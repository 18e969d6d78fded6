/* events.c - the registry's event stream: the checked entry points
 * (registry.h), the event as JSON, and following the stream.
 *
 * An event is one JSON object on one line:
 *   {"revision": N, "time_ms": T, "type": "...", "volume": "...",
 *    "server": "...", "host": "...", "details": "..."}
 * (dir.c's events.jsonl holds these lines; on etcd each is a key's
 * value, its revision the key's mod_revision).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "core/util.h"
#include "registry/registry.h"
#include "registry/backends.h"

static const char *const event_types[] = {
  "created", "attached", "detached", "fenced", "degraded", "resync-started",
  "resync-done", "replica-replaced", "snapshot-done", "restore-done",
  "server-up", "server-down", "deleted", "heal-started", "stale-deleted",
  "drain-started", "drain-done", "resized",
};

static bool
known_type (const char *t)
{
  for (size_t i = 0; i < ARRAY_SIZE (event_types); i++)
    if (strcmp (t, event_types[i]) == 0)
      return true;
  return false;
}

unsigned
reg_events_max (void)
{
  const char *env = getenv ("REPVOL_EVENTS_MAX");
  uint64_t n;

  if (env && parse_uint (env, 1, 10000000, &n) == 0)
    return (unsigned) n;
  return REG_EVENTS_MAX;
}

struct json_object *
reg_event_json (const struct reg_event *ev)
{
  json_object *o = json_object_new_object ();

  if (o == NULL)
    return NULL;
  json_object_object_add (o, "revision", json_object_new_uint64 (ev->revision));
  json_object_object_add (o, "time_ms", json_object_new_int64 (ev->time_ms));
  json_object_object_add (o, "type", json_object_new_string (ev->type));
  json_object_object_add (o, "volume", json_object_new_string (ev->volume));
  json_object_object_add (o, "server", json_object_new_string (ev->server));
  json_object_object_add (o, "host", json_object_new_string (ev->host));
  json_object_object_add (o, "details", json_object_new_string (ev->details));
  return o;
}

char *
reg_event_to_text (const struct reg_event *ev)
{
  json_object *o = reg_event_json (ev);
  const char *t = o ? json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN)
                    : NULL;
  char *copy = t ? strdup (t) : NULL;
  json_object_put (o);
  return copy;
}

/* A string member into buf: false when absent, not a string or too long. */
static bool
str_member (json_object *o, const char *key, char *buf, size_t size)
{
  json_object *m;
  if (!json_object_object_get_ex (o, key, &m) ||
      !json_object_is_type (m, json_type_string))
    return false;
  const char *s = json_object_get_string (m);
  if (strlen (s) >= size)
    return false;
  snprintf (buf, size, "%s", s);
  return true;
}

static bool
int_member (json_object *o, const char *key, int64_t *out)
{
  json_object *m;
  if (!json_object_object_get_ex (o, key, &m) ||
      !json_object_is_type (m, json_type_int))
    return false;
  *out = json_object_get_int64 (m);
  return *out >= 0;
}

int
reg_event_from_text (const char *text, size_t len, struct reg_event *ev,
                     struct error *err)
{
  json_tokener *tok = json_tokener_new ();
  json_object *o;
  int64_t rev = 0;
  const char *why = NULL;

  memset (ev, 0, sizeof *ev);
  if (tok == NULL)
    return error_set (err, ENOMEM, "out of memory");
  o = json_tokener_parse_ex (tok, text, (int) len);
  if (o == NULL || json_tokener_get_error (tok) != json_tokener_success)
    why = "not JSON";
  else if (!json_object_is_type (o, json_type_object))
    why = "not a JSON object";
  else if (!int_member (o, "revision", &rev) ||
           !int_member (o, "time_ms", &ev->time_ms))
    why = "no revision or time_ms";
  else if (!str_member (o, "type", ev->type, sizeof ev->type) ||
           !known_type (ev->type))
    why = "no known type";
  else if (!str_member (o, "volume", ev->volume, sizeof ev->volume) ||
           !str_member (o, "server", ev->server, sizeof ev->server) ||
           !str_member (o, "host", ev->host, sizeof ev->host) ||
           !str_member (o, "details", ev->details, sizeof ev->details))
    why = "a missing or too long string";
  json_tokener_free (tok);
  if (o)
    json_object_put (o);
  ev->revision = (uint64_t) rev;
  if (why)
    return error_set (err, EBADMSG, "bad event: %s", why);
  return 0;
}

int
registry_event (struct registry *r, const char *type, const char *volume,
                const char *server, struct error *err, const char *fmt, ...)
{
  struct reg_event ev = { 0 };
  struct timespec ts;
  va_list ap;

  if (r == NULL || type == NULL || !known_type (type))
    return error_set (err, EINVAL, "registry: unknown event type '%s'",
                      type ? type : "");
  clock_gettime (CLOCK_REALTIME, &ts);
  ev.time_ms = (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  snprintf (ev.type, sizeof ev.type, "%s", type);
  snprintf (ev.volume, sizeof ev.volume, "%s", volume ? volume : "");
  snprintf (ev.server, sizeof ev.server, "%s", server ? server : "");
  snprintf (ev.host, sizeof ev.host, "%s", this_host_name ());
  va_start (ap, fmt);
  vsnprintf (ev.details, sizeof ev.details, fmt, ap);
  va_end (ap);
  return r->ops->event_append (r, &ev, err);
}

int
registry_events (struct registry *r, uint64_t since,
                 int (*fn) (const struct reg_event *ev, void *arg),
                 void *arg, struct error *err)
{
  if (r == NULL || fn == NULL)
    return error_set (err, EINVAL, "registry: events without a callback");
  return r->ops->event_list (r, since, fn, arg, err);
}

struct follow {
  uint64_t last;
  int (*fn) (const struct reg_event *ev, void *arg);
  void *arg;
};

static int
follow_one (const struct reg_event *ev, void *opaque)
{
  struct follow *f = opaque;
  if (ev->revision <= f->last)
    return 0;
  f->last = ev->revision;
  return f->fn (ev, f->arg);
}

int
registry_events_follow (struct registry *r, uint64_t since,
                        int (*fn) (const struct reg_event *ev, void *arg),
                        bool (*stop) (void *arg), void *arg,
                        struct error *err)
{
  struct follow f = { .last = since, .fn = fn, .arg = arg };
  int ret;

  if (r == NULL || fn == NULL)
    return error_set (err, EINVAL, "registry: events without a callback");
  for (;;) {
    if ((ret = r->ops->event_list (r, f.last, follow_one, &f, err)) != 0)
      return ret < 0 ? ret : 0;         /* fn ended it */
    if (stop && stop (arg))
      return 0;
    /* Until something after the last one may be there, a second at most
     * so that stop is asked.
     */
    if ((ret = r->ops->event_wait (r, f.last, 1000, err)) < 0)
      return ret;
  }
}
