/* etcd_events.c - the event stream on etcd:
 *
 *   PREFIX/events/TTTTTTTTTTTTTTTTRRRRRRRR   one event (events.c's JSON),
 *                                  T its time in ns and R random, hex,
 *                                  so keys sort by time
 *
 * An event's revision is its key's mod_revision (etcd's store revision,
 * increasing, not contiguous): listing is a range from since + 1 sorted
 * by it.  Once the stream holds more than reg_events_max() events
 * (counted, keys only, after every append: events are rare), the oldest
 * keys go in one deleterange.  A follower waits on a watch of the prefix
 * from since + 1 (etcd_watch.c), and looks again a second later when a
 * member will not be watched.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "registry/registry.h"
#include "registry/backends.h"
#include "registry/etcd_internal.h"

static void
events_dir (struct etcd_registry *e, char *buf)
{
  snprintf (buf, KEY_MAX, "%s/events/", e->prefix);
}

/* A range over the stream: after since, sorted as asked; count_only or
 * keys_only when set; limit 0: none.
 */
static json_object *
range_req (struct etcd_registry *e, uint64_t since, const char *target,
           bool count_only, bool keys_only, int64_t limit)
{
  char dir[KEY_MAX];
  events_dir (e, dir);
  json_object *o = etcd_key_req (dir, true);
  if (o == NULL)
    return NULL;
  json_object_object_add (o, "sort_order", json_object_new_string ("ASCEND"));
  json_object_object_add (o, "sort_target", json_object_new_string (target));
  if (since)
    json_object_object_add (o, "min_mod_revision",
                            json_object_new_int64 ((int64_t) since + 1));
  if (count_only)
    json_object_object_add (o, "count_only", json_object_new_boolean (1));
  if (keys_only)
    json_object_object_add (o, "keys_only", json_object_new_boolean (1));
  if (limit)
    json_object_object_add (o, "limit", json_object_new_int64 (limit));
  return o;
}

static int
count_after (struct etcd_registry *e, uint64_t since, int64_t *count,
             struct error *err)
{
  json_object *resp;
  const char *why = NULL;
  int ret = etcd_reg_call (e, "/v3/kv/range",
                           range_req (e, since, "MOD", true, false, 0), &resp,
                           NULL, err);
  if (ret < 0)
    return ret;
  ret = etcd_get_i64 (resp, "count", count, &why);
  json_object_put (resp);
  return ret < 0 ? etcd_reg_bad_answer (e, "the events", why, err) : 0;
}

/* Drop the oldest events beyond the bound. */
static int
trim (struct etcd_registry *e, struct error *err)
{
  unsigned max = reg_events_max ();
  int64_t count;
  json_object *resp;
  struct etcd_kv *kv;
  int n, ret;

  if ((ret = count_after (e, 0, &count, err)) < 0 || count <= (int64_t) max)
    return ret;
  ret = etcd_reg_range (e, range_req (e, 0, "KEY", false, true, count - max),
                        "the events", &kv, &n, err);
  if (ret < 0)
    return ret;
  if (n > 0) {
    char dir[KEY_MAX], *end = malloc (kv[n - 1].key_len + 2);
    events_dir (e, dir);
    json_object *req = end ? etcd_key_req (dir, false) : NULL;
    if (req) {
      /* [dir, last key + "\0"): every key up to the last one. */
      memcpy (end, kv[n - 1].key, kv[n - 1].key_len);
      end[kv[n - 1].key_len] = '\0';
      char *b64 = etcd_b64_encode (end, kv[n - 1].key_len + 1);
      if (b64)
        json_object_object_add (req, "range_end", json_object_new_string (b64));
      free (b64);
      ret = etcd_reg_call (e, "/v3/kv/deleterange", req, &resp, NULL, err);
      if (ret == 0)
        json_object_put (resp);
    }
    free (end);
  }
  etcd_kvs_free (kv, n);
  return ret;
}

int
etcd_event_append (struct registry *r, const struct reg_event *ev,
                   struct error *err)
{
  struct etcd_registry *e = etcd_of (r);
  char key[KEY_MAX];
  struct timespec ts;
  json_object *resp;
  int ret;

  char *text = reg_event_to_text (ev);       /* revision: the key's */
  if (text == NULL)
    return etcd_reg_nomem (e, err);
  clock_gettime (CLOCK_REALTIME, &ts);
  snprintf (key, sizeof key, "%s/events/%016llx%08x", e->prefix,
            (unsigned long long) ts.tv_sec * 1000000000ull +
            (unsigned long long) ts.tv_nsec,
            (unsigned) (etcd_rand (&e->c) & 0xffffffffu));
  ret = etcd_reg_call (e, "/v3/kv/put", etcd_kv_req (key, text, strlen (text),
                                                     0), &resp, NULL, err);
  free (text);
  if (ret < 0)
    return ret;
  json_object_put (resp);
  return trim (e, err);
}

int
etcd_event_list (struct registry *r, uint64_t since,
                 int (*fn) (const struct reg_event *ev, void *arg), void *arg,
                 struct error *err)
{
  struct etcd_registry *e = etcd_of (r);
  struct etcd_kv *kv;
  int n, ret;

  ret = etcd_reg_range (e, range_req (e, since, "MOD", false, false, 0),
                        "the events", &kv, &n, err);
  if (ret < 0)
    return ret;
  for (int i = 0; i < n && ret == 0; i++) {
    struct reg_event ev;
    if (kv[i].mod_revision <= (int64_t) since ||
        reg_event_from_text (kv[i].value, kv[i].value_len, &ev, NULL) < 0)
      continue;                 /* not an event: skipped, as in a file */
    ev.revision = (uint64_t) kv[i].mod_revision;
    ret = fn (&ev, arg);
  }
  etcd_kvs_free (kv, n);
  return ret;
}

int
etcd_event_wait (struct registry *r, uint64_t since, int timeout_ms,
                 struct error *err)
{
  struct etcd_registry *e = etcd_of (r);
  char dir[KEY_MAX];
  int64_t count;
  int ret;

  /* Anything newer already?  (Also what finds an endpoint that answers,
   * for the watch.)
   */
  if ((ret = count_after (e, since, &count, err)) < 0)
    return ret;
  if (count > 0)
    return 1;
  events_dir (e, dir);
  json_object *range = etcd_key_req (dir, true), *req = json_object_new_object ();
  if (range == NULL || req == NULL) {
    json_object_put (range);
    json_object_put (req);
    return etcd_reg_nomem (e, err);
  }
  json_object_object_add (range, "start_revision",
                          json_object_new_int64 ((int64_t) since + 1));
  json_object_object_add (req, "create_request", range);
  ret = etcd_watch_wait (&e->c, req, timeout_ms, NULL);
  json_object_put (req);
  if (ret >= 0)
    return ret;
  /* No watch from that member: look again after a pause instead. */
  struct timespec ts = { timeout_ms / 1000, (long) (timeout_ms % 1000) * 1000000 };
  nanosleep (&ts, NULL);
  return 1;
}
