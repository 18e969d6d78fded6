/* etcd_pool.c - the server pool on etcd (registry.h's registry_server_*).
 *
 *   PREFIX/servers/NAME        a live server: its record (codec.c),
 *                              under the server's lease (its TTL); gone
 *                              when the server stops refreshing it, so
 *                              the key's presence is what "up" means
 *   PREFIX/servers/NAME/info   the same record without a lease, so a
 *                              server that went down is still listed
 *   PREFIX/servers/NAME/drain  present while the server is draining
 *                              (repvol server drain): apart from the
 *                              record, which the server rewrites
 *
 * A repvold keeps one handle for its registration: the lease it granted
 * is kept alive by each put, and granted anew when etcd says it expired
 * (the server was cut off longer than its TTL, or etcd lost it).
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

static json_object *
lease_req (int64_t id)
{
  char num[24];
  json_object *req = json_object_new_object ();
  snprintf (num, sizeof num, "%lld", (long long) id);
  if (req)
    json_object_object_add (req, "ID", json_object_new_string (num));
  return req;
}

/* Keep the server lease alive: 1 alive, 0 expired (or unknown), <0. */
static int
keepalive (struct etcd_registry *e, struct error *err)
{
  json_object *resp, *result;
  const char *why = NULL;
  int64_t ttl = 0;
  int ret = etcd_reg_call (e, "/v3/lease/keepalive", lease_req (e->srv_lease), &resp,
                  NULL, err);
  if (ret < 0)
    return ret;
  /* {"result": {"ID", "TTL", ...}}; an expired lease has no TTL. */
  if (etcd_get_member (resp, "result", json_type_object, &result, &why) < 0)
    ret = etcd_reg_bad_answer (e, "a lease keepalive", why, err);
  else if (result &&
           etcd_get_i64 (result, "TTL", &ttl, &why) < 0)
    ret = etcd_reg_bad_answer (e, "a lease keepalive", why, err);
  else
    ret = ttl > 0;
  json_object_put (resp);
  return ret;
}

int
etcd_server_put (struct registry *r, const struct reg_server *s, unsigned ttl,
                 struct error *err)
{
  struct etcd_registry *e = etcd_of (r);
  char key[KEY_MAX], info[KEY_MAX];
  json_object *resp;
  int ret;

  if (e->srv_lease && e->srv_ttl == ttl) {
    ret = keepalive (e, err);
    if (ret < 0)
      return ret;
    if (ret == 0)
      e->srv_lease = 0;           /* expired: a new one */
  }
  else
    e->srv_lease = 0;
  if (e->srv_lease == 0) {
    if ((ret = etcd_reg_grant (e, ttl, &e->srv_lease, err)) < 0)
      return ret;
    e->srv_ttl = ttl;
  }
  struct reg_server copy = *s;
  copy.heartbeat = time (NULL);
  copy.ttl = ttl;
  copy.up = true;
  char *text = reg_server_to_json (&copy);
  if (text == NULL)
    return etcd_reg_nomem (e, err);
  snprintf (key, sizeof key, "%s/servers/%s", e->prefix, s->name);
  snprintf (info, sizeof info, "%s/servers/%s/info", e->prefix, s->name);
  /* Both in one transaction (its compare always holds). */
  json_object *req = etcd_txn (etcd_compare (key, "VERSION", "GREATER", -1),
                          etcd_put_lease (key, text, strlen (text),
                                        e->srv_lease),
                          etcd_put (info, text, strlen (text)), NULL);
  free (text);
  ret = etcd_reg_call (e, "/v3/kv/txn", req, &resp, NULL, err);
  if (ret < 0) {
    e->srv_lease = 0;             /* perhaps gone: grant anew next time */
    return ret;
  }
  json_object_put (resp);
  return 0;
}

int
etcd_server_down (struct registry *r, const char *name, struct error *err)
{
  struct etcd_registry *e = etcd_of (r);
  char key[KEY_MAX];
  json_object *resp;
  int ret;

  if (e->srv_lease) {
    ret = etcd_reg_call (e, "/v3/lease/revoke", lease_req (e->srv_lease), &resp, NULL,
                err);
    if (ret == 0)
      json_object_put (resp);
    e->srv_lease = 0;
  }
  snprintf (key, sizeof key, "%s/servers/%s", e->prefix, name);
  ret = etcd_reg_call (e, "/v3/kv/deleterange", etcd_key_req (key, false), &resp, NULL, err);
  if (ret == 0)
    json_object_put (resp);
  return ret;
}

int
etcd_server_list (struct registry *r, struct reg_server **out, int *n_out,
                  struct error *err)
{
  struct etcd_registry *e = etcd_of (r);
  char dir[KEY_MAX];
  struct etcd_kv *kv;
  int n, ret;

  snprintf (dir, sizeof dir, "%s/servers/", e->prefix);
  if ((ret = etcd_reg_range (e, etcd_key_req (dir, true), dir, &kv, &n,
                             err)) < 0)
    return ret;
  struct reg_server *all = n ? calloc (n, sizeof *all) : NULL;
  bool *alive = n ? calloc (n, sizeof *alive) : NULL;
  if (n && (all == NULL || alive == NULL)) {
    free (all);
    free (alive);
    etcd_kvs_free (kv, n);
    return etcd_reg_nomem (e, err);
  }
  /* Keys come sorted: NAME (alive) before NAME/info. */
  size_t dl = strlen (dir);
  int count = 0;
  for (int i = 0; i < n; i++) {
    char name[REG_NAME_MAX + 1];
    /* A key outside the directory (a hostile or broken answer) is a
     * stray; it may be shorter than dir, so test before skipping dl.
     */
    if (strncmp (kv[i].key, dir, dl) != 0)
      continue;
    const char *k = kv[i].key + dl, *slash = strchr (k, '/');
    size_t nl = slash ? (size_t) (slash - k) : strlen (k);
    bool is_info = slash && strcmp (slash, "/info") == 0;
    /* NAME/drain is read below, once every server is known. */
    if (nl >= sizeof name || (slash && !is_info))
      continue;
    memcpy (name, k, nl);
    name[nl] = '\0';
    if (!valid_name (name))
      continue;
    struct reg_server s;
    if (reg_server_from_json (kv[i].value, kv[i].value_len, &s, err) < 0 ||
        strcmp (s.name, name) != 0) {
      if (strcmp (s.name, name) != 0)
        error_set (err, EBADMSG, "holds server \"%s\"", s.name);
      error_prefix (err, "registry %s: corrupt value of %s: ", e->loc,
                    kv[i].key);
      free (all);
      free (alive);
      etcd_kvs_free (kv, n);
      return -EBADMSG;
    }
    int j = count - 1;
    if (j >= 0 && strcmp (all[j].name, name) == 0) {
      /* The alive record (fresher) is kept; info only says it is known. */
      if (!is_info) {
        s.draining = false;
        all[j] = s;
        alive[j] = true;
      }
      continue;
    }
    s.draining = false;         /* only the drain key says so */
    all[count] = s;
    alive[count] = !is_info;
    count++;
  }
  for (int i = 0; i < n; i++) {
    if (strncmp (kv[i].key, dir, dl) != 0)
      continue;
    const char *k = kv[i].key + dl, *slash = strchr (k, '/');
    if (!slash || strcmp (slash, "/drain") != 0)
      continue;
    for (int j = 0; j < count; j++)
      if (strlen (all[j].name) == (size_t) (slash - k) &&
          strncmp (all[j].name, k, slash - k) == 0)
        all[j].draining = true;
  }
  etcd_kvs_free (kv, n);
  for (int i = 0; i < count; i++)
    all[i].up = alive[i];
  free (alive);
  if (count > 1)
    qsort (all, count, sizeof *all, reg_server_cmp);
  if (count == 0) {
    free (all);
    all = NULL;
  }
  *out = all;
  *n_out = count;
  return 0;
}

int
etcd_server_drain (struct registry *r, const char *name, bool on,
                   struct error *err)
{
  struct etcd_registry *e = etcd_of (r);
  char key[KEY_MAX];
  json_object *resp, *req;
  int ret;

  snprintf (key, sizeof key, "%s/servers/%s/drain", e->prefix, name);
  req = on ? etcd_kv_req (key, "1", 1, 0) : etcd_key_req (key, false);
  ret = etcd_reg_call (e, on ? "/v3/kv/put" : "/v3/kv/deleterange", req,
                       &resp, NULL, err);
  if (ret == 0)
    json_object_put (resp);
  return ret;
}
