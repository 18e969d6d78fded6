/* etcd_req.c - the JSON requests of etcd's v3 gateway that etcd.c
 * sends: keys and ranges, puts, compares and transactions (see
 * etcd_internal.h).  Keys and values go base64, as the gateway wants.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/etcd_internal.h"

/* o[field] = base64 (data); false when out of memory. */
static bool
add_b64 (json_object *o, const char *field, const void *data, size_t len)
{
  char *s = etcd_b64_encode (data, len);
  json_object *str = s ? json_object_new_string (s) : NULL;
  free (s);
  return str && json_object_object_add (o, field, str) == 0;
}

/* {"key": KEY} and, for a prefix (ending in '/'), its "range_end": the
 * prefix with its last byte + 1.
 */
json_object *
etcd_key_req (const char *key, bool prefix)
{
  json_object *o = json_object_new_object ();
  if (o == NULL || !add_b64 (o, "key", key, strlen (key)))
    goto nomem;
  if (prefix) {
    size_t len = strlen (key);
    char *end = strndup (key, len);
    bool ok = end && len > 0;
    if (ok) {
      end[len - 1]++;
      ok = add_b64 (o, "range_end", end, len);
    }
    free (end);
    if (!ok)
      goto nomem;
  }
  return o;
 nomem:
  json_object_put (o);
  return NULL;
}

/* {"request_OP": inner} (inner consumed). */
json_object *
etcd_op (const char *what, json_object *inner)
{
  json_object *o = inner ? json_object_new_object () : NULL;
  if (o == NULL || json_object_object_add (o, what, inner) != 0) {
    json_object_put (o);
    json_object_put (inner);
    return NULL;
  }
  return o;
}

json_object *
etcd_kv_req (const char *key, const char *value, size_t len, int64_t lease)
{
  json_object *p = etcd_key_req (key, false);
  if (p && !add_b64 (p, "value", value, len)) {
    json_object_put (p);
    p = NULL;
  }
  if (p && lease) {
    char num[24];
    snprintf (num, sizeof num, "%lld", (long long) lease);
    json_object_object_add (p, "lease", json_object_new_string (num));
  }
  return p;
}

json_object *
etcd_put_lease (const char *key, const char *value, size_t len, int64_t lease)
{
  return etcd_op ("request_put", etcd_kv_req (key, value, len, lease));
}

json_object *
etcd_put (const char *key, const char *value, size_t len)
{
  return etcd_put_lease (key, value, len, 0);
}

/* A compare on key: target VERSION or MOD, result EQUAL or GREATER. */
json_object *
etcd_compare (const char *key, const char *target, const char *result,
         int64_t value)
{
  char num[24];
  json_object *c = etcd_key_req (key, false);
  if (c == NULL)
    return NULL;
  snprintf (num, sizeof num, "%lld", (long long) value);
  json_object_object_add (c, "target", json_object_new_string (target));
  json_object_object_add (c, "result", json_object_new_string (result));
  json_object_object_add (c, strcmp (target, "MOD") ? "version"
                          : "mod_revision", json_object_new_string (num));
  return c;
}

/* {"compare": [cmp], "success": [ops...], "failure": [fail]} from
 * consumed parts (any NULL: out of memory, all freed).
 */
json_object *
etcd_txn3 (json_object *cmp, json_object *s1, json_object *s2, json_object *s3,
      json_object *fail)
{
  json_object *t = json_object_new_object ();
  json_object *ca = json_object_new_array (), *sa = json_object_new_array ();
  json_object *fa = json_object_new_array ();
  bool ok = t && ca && sa && fa && cmp && s1;
  if (ok) {
    json_object_array_add (ca, cmp);
    json_object_array_add (sa, s1);
    if (s2)
      json_object_array_add (sa, s2);
    if (s3)
      json_object_array_add (sa, s3);
    if (fail)
      json_object_array_add (fa, fail);
    json_object_object_add (t, "compare", ca);
    json_object_object_add (t, "success", sa);
    json_object_object_add (t, "failure", fa);
    return t;
  }
  json_object_put (t);
  json_object_put (ca);
  json_object_put (sa);
  json_object_put (fa);
  json_object_put (cmp);
  json_object_put (s1);
  json_object_put (s2);
  json_object_put (s3);
  json_object_put (fail);
  return NULL;
}

json_object *
etcd_txn (json_object *cmp, json_object *s1, json_object *s2, json_object *fail)
{
  return etcd_txn3 (cmp, s1, s2, NULL, fail);
}
