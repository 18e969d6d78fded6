/* codec.c - a volume's registry record as JSON (json-c), both ways,
 * and the checks every record passes before it is stored or believed.
 *
 * The document (format 1), as reg_volume_to_json writes it:
 *
 *   { "format": 1, "name", "uuid", "size", "block_size", "epoch",
 *     "reserved", "allow_same_zone", "tls"?, "created",
 *     "replicas": [ { "addr", "server", "zone", "state" ("in-sync" |
 *                     "out-of-sync"), "out_of_sync_epoch",
 *                     "out_of_sync_since", "full_copy"?,
 *                     "resync": { "total", "done", "rate" }? } ... ],
 *     "attachment": null | { "host", "pid", "frontend", "epoch",
 *                            "since", "control"?, "reason"?,
 *                            "heartbeat"?, "lease_ttl"? },
 *     "fenced": null | (the same; "reason": why it was fenced),
 *     "chunk_size", "cbt": { "valid", "base_url", "base_name" },
 *     "restore"?: { "url", "snapshot", "chunks_total",
 *                   "chunks_hydrated", "state", "error"? },
 *     "retired"?: [ { "server", "addr" } ... ] }
 *
 * The reader requires format, name, size, block_size, epoch and
 * replicas; other keys may be absent (older records) and unknown keys
 * are ignored (newer ones).  A different format number is refused.
 * Every backend stores this same document: dir.c as a file, etcd as the
 * value of a key.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/util.h"
#include "registry/registry.h"
#include "registry/backends.h"

#define REG_FORMAT        1

/* What is wrong with v, or NULL: the checks shared by what a backend
 * reads and what it is asked to write, so a caller's bug cannot put a
 * record in the registry that the next reader refuses.
 */
static const char *
volume_bad (const struct reg_volume *v)
{
  if (!valid_name (v->name))
    return "invalid volume name";
  size_t ul = strnlen (v->uuid, sizeof v->uuid);
  if (ul != 0 && ul != 36)
    return "uuid is not 36 characters";
  if (v->block_size < 512 || v->block_size > 65536 ||
      (v->block_size & (v->block_size - 1)) != 0)
    return "block_size is not a power of two in [512, 65536]";
  if (v->size == 0 || v->size % v->block_size != 0)
    return "size is zero or not a multiple of block_size";
  if (v->nreplicas < 1 || v->nreplicas > REG_MAX_REPLICAS)
    return "number of replicas out of range";
  for (int i = 0; i < v->nreplicas; i++) {
    const struct reg_replica *rp = &v->replicas[i];
    if (rp->addr[0] == '\0' || strnlen (rp->addr, REG_ADDR_MAX) == REG_ADDR_MAX)
      return "replica addr empty or too long";
    if (rp->state != REG_IN_SYNC && rp->state != REG_OUT_OF_SYNC)
      return "replica state unknown";
  }
  if (v->attachment.attached &&
      (v->attachment.pid <= 0 || v->attachment.host[0] == '\0'))
    return "attachment without host or pid";
  if (v->nretired < 0 || v->nretired > REG_MAX_REPLICAS)
    return "number of retired replicas out of range";
  for (int i = 0; i < v->nretired; i++)
    if (v->retired[i].addr[0] == '\0' ||
        strnlen (v->retired[i].addr, REG_ADDR_MAX) == REG_ADDR_MAX)
      return "retired replica addr empty or too long";
  return NULL;
}

int
reg_volume_check (const struct reg_volume *v, struct error *err)
{
  const char *why = volume_bad (v);
  return why ? error_set (err, EINVAL, "%s", why) : 0;
}

/* An attachment as an object, or JSON null when there is none. */
static json_object *
attachment_json (const struct reg_attachment *a)
{
  json_object *at;

  if (!a->attached)
    return NULL;
  at = json_object_new_object ();
  json_object_object_add (at, "host", json_object_new_string (a->host));
  json_object_object_add (at, "pid", json_object_new_int64 (a->pid));
  json_object_object_add (at, "frontend", json_object_new_string (a->frontend));
  json_object_object_add (at, "epoch", json_object_new_uint64 (a->epoch));
  json_object_object_add (at, "since", json_object_new_int64 (a->since));
  if (a->control[0])
    json_object_object_add (at, "control", json_object_new_string (a->control));
  if (a->reason[0])
    json_object_object_add (at, "reason", json_object_new_string (a->reason));
  if (a->lease_ttl) {
    json_object_object_add (at, "heartbeat",
                            json_object_new_int64 (a->heartbeat));
    json_object_object_add (at, "lease_ttl",
                            json_object_new_int64 (a->lease_ttl));
  }
  return at;
}

struct json_object *
reg_volume_json (const struct reg_volume *v)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "format", json_object_new_int (REG_FORMAT));
  json_object_object_add (o, "name", json_object_new_string (v->name));
  json_object_object_add (o, "uuid", json_object_new_string (v->uuid));
  json_object_object_add (o, "size", json_object_new_uint64 (v->size));
  json_object_object_add (o, "block_size", json_object_new_int64 (v->block_size));
  json_object_object_add (o, "epoch", json_object_new_uint64 (v->epoch));
  json_object_object_add (o, "reserved", json_object_new_boolean (v->reserved));
  json_object_object_add (o, "allow_same_zone",
                          json_object_new_boolean (v->allow_same_zone));
  if (v->tls)
    json_object_object_add (o, "tls", json_object_new_boolean (true));
  json_object_object_add (o, "created", json_object_new_int64 (v->created));

  json_object *reps = json_object_new_array ();
  for (int i = 0; i < v->nreplicas; i++) {
    const struct reg_replica *rp = &v->replicas[i];
    json_object *r = json_object_new_object ();
    json_object_object_add (r, "addr", json_object_new_string (rp->addr));
    json_object_object_add (r, "server", json_object_new_string (rp->server));
    json_object_object_add (r, "zone", json_object_new_string (rp->zone));
    json_object_object_add (r, "state",
                            json_object_new_string (reg_state_name (rp->state)));
    json_object_object_add (r, "out_of_sync_epoch",
                            json_object_new_uint64 (rp->out_of_sync_epoch));
    json_object_object_add (r, "out_of_sync_since",
                            json_object_new_int64 (rp->out_of_sync_since));
    if (rp->full_copy)
      json_object_object_add (r, "full_copy", json_object_new_boolean (true));
    if (rp->state == REG_OUT_OF_SYNC && rp->resync_total) {
      json_object *rs = json_object_new_object ();
      json_object_object_add (rs, "total", json_object_new_uint64 (rp->resync_total));
      json_object_object_add (rs, "done", json_object_new_uint64 (rp->resync_done));
      json_object_object_add (rs, "rate", json_object_new_uint64 (rp->resync_rate));
      json_object_object_add (r, "resync", rs);
    }
    json_object_array_add (reps, r);
  }
  json_object_object_add (o, "replicas", reps);

  json_object_object_add (o, "attachment", attachment_json (&v->attachment));
  json_object_object_add (o, "fenced", attachment_json (&v->fenced));
  json_object_object_add (o, "chunk_size", json_object_new_int64 (v->chunk_size));
  json_object *cbt = json_object_new_object ();
  json_object_object_add (cbt, "valid", json_object_new_boolean (v->cbt.valid));
  json_object_object_add (cbt, "base_url", json_object_new_string (v->cbt.base_url));
  json_object_object_add (cbt, "base_name", json_object_new_string (v->cbt.base_name));
  json_object_object_add (o, "cbt", cbt);
  if (v->restore.active) {
    json_object *rs = json_object_new_object ();
    json_object_object_add (rs, "url", json_object_new_string (v->restore.url));
    json_object_object_add (rs, "snapshot", json_object_new_string (v->restore.snapshot));
    json_object_object_add (rs, "chunks_total",
                            json_object_new_uint64 (v->restore.chunks_total));
    json_object_object_add (rs, "chunks_hydrated",
                            json_object_new_uint64 (v->restore.chunks_hydrated));
    json_object_object_add (rs, "state", json_object_new_string
                            (v->restore.error[0] ? "failed" : "hydrating"));
    if (v->restore.error[0])
      json_object_object_add (rs, "error", json_object_new_string (v->restore.error));
    json_object_object_add (o, "restore", rs);
  }
  if (v->nretired) {
    json_object *ret = json_object_new_array ();
    for (int i = 0; i < v->nretired; i++) {
      json_object *r = json_object_new_object ();
      json_object_object_add (r, "server",
                              json_object_new_string (v->retired[i].server));
      json_object_object_add (r, "addr",
                              json_object_new_string (v->retired[i].addr));
      json_object_array_add (ret, r);
    }
    json_object_object_add (o, "retired", ret);
  }

  return o;
}

char *
reg_volume_to_json (const struct reg_volume *v)
{
  json_object *o = reg_volume_json (v);
  const char *s = json_object_to_json_string_ext (o,
                    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                    JSON_C_TO_STRING_NOSLASHESCAPE);
  char *ret = NULL;
  if (asprintf (&ret, "%s\n", s) < 0)
    ret = NULL;
  json_object_put (o);
  return ret;
}

/* Field readers: each returns 0 or -1 with *why set; *field is set by
 * the caller so the message can name the key.
 */
static json_object *
member (json_object *o, const char *key, json_type type, bool required,
        const char **why)
{
  json_object *m;
  if (!json_object_object_get_ex (o, key, &m) || m == NULL) {
    if (required)
      *why = "missing";
    return NULL;
  }
  if (!json_object_is_type (m, type)) {
    *why = "has the wrong type";
    return NULL;
  }
  return m;
}

static int
get_u64 (json_object *o, const char *key, bool required, uint64_t *out,
         const char **why)
{
  *why = NULL;
  json_object *m = member (o, key, json_type_int, required, why);
  if (m == NULL) {
    if (*why)
      return -1;
    *out = 0;
    return 0;
  }
  /* json-c keeps integers as int64 or uint64; a negative one is refused,
   * a large positive one is read back exactly by get_uint64.
   */
  if (json_object_get_int64 (m) < 0) {
    *why = "is negative";
    return -1;
  }
  *out = json_object_get_uint64 (m);
  return 0;
}

static int
get_bool (json_object *o, const char *key, bool *out, const char **why)
{
  *why = NULL;
  json_object *m = member (o, key, json_type_boolean, false, why);
  if (m == NULL) {
    *out = false;
    return *why ? -1 : 0;
  }
  *out = json_object_get_boolean (m);
  return 0;
}

static int
get_str (json_object *o, const char *key, bool required, char *buf, size_t size,
         const char **why)
{
  *why = NULL;
  json_object *m = member (o, key, json_type_string, required, why);
  if (m == NULL) {
    buf[0] = '\0';
    return *why ? -1 : 0;
  }
  const char *s = json_object_get_string (m);
  size_t len = json_object_get_string_len (m);
  if (len >= size || strlen (s) != len) {   /* too long, or embedded NUL */
    *why = "is too long or contains NUL";
    return -1;
  }
  memcpy (buf, s, len + 1);
  return 0;
}

#define TRY(key, call)                          \
  do {                                          \
    *field = (key);                             \
    if ((call) == -1)                           \
      goto out;                                 \
  } while (0)

static int
attachment_from_json (json_object *o, const char *key, struct reg_attachment *a,
                      const char **why, const char **field)
{
  json_object *at;
  uint64_t u;
  int ret = -1;

  if (!json_object_object_get_ex (o, key, &at) || at == NULL)
    return 0;
  if (!json_object_is_type (at, json_type_object)) {
    *why = "is neither null nor an object";
    return -1;
  }
  a->attached = true;
  TRY ("host", get_str (at, "host", true, a->host, sizeof a->host, why));
  TRY ("pid", get_u64 (at, "pid", true, &u, why));
  if (u == 0 || u > INT_MAX) {
    *why = "out of range";
    goto out;
  }
  a->pid = u;
  TRY ("frontend", get_str (at, "frontend", false, a->frontend,
                            sizeof a->frontend, why));
  TRY ("epoch", get_u64 (at, "epoch", true, &a->epoch, why));
  TRY ("since", get_u64 (at, "since", false, &u, why));
  a->since = u;
  TRY ("control", get_str (at, "control", false, a->control,
                           sizeof a->control, why));
  TRY ("reason", get_str (at, "reason", false, a->reason, sizeof a->reason,
                          why));
  TRY ("heartbeat", get_u64 (at, "heartbeat", false, &u, why));
  a->heartbeat = (time_t) u;
  TRY ("lease_ttl", get_u64 (at, "lease_ttl", false, &u, why));
  if (u > REG_LEASE_TTL_MAX) {
    *why = "out of range";
    goto out;
  }
  a->lease_ttl = (uint32_t) u;
  ret = 0;
 out:
  return ret;
}

/* The parser behind reg_volume_from_json: 0, or -1 with *why and *field
 * (the offending key, or "") set.
 */
static int
volume_from_json (const char *text, size_t len, struct reg_volume *v,
                  const char **why, const char **field)
{
  json_object *o = NULL;
  uint64_t u;
  int ret = -1;

  memset (v, 0, sizeof *v);
  *field = "";
  *why = NULL;

  json_tokener *tok = json_tokener_new ();
  if (tok == NULL) {
    *why = "out of memory";
    return -1;
  }
  o = json_tokener_parse_ex (tok, text, (int) len);
  enum json_tokener_error jerr = json_tokener_get_error (tok);
  size_t end = json_tokener_get_parse_end (tok);
  json_tokener_free (tok);
  if (o == NULL || jerr != json_tokener_success) {
    *why = jerr == json_tokener_continue ? "truncated JSON"
                                         : json_tokener_error_desc (jerr);
    goto out;
  }
  for (size_t i = end; i < len; i++)
    if (text[i] != ' ' && text[i] != '\n' && text[i] != '\t' && text[i] != '\r') {
      *why = "trailing garbage after the JSON document";
      goto out;
    }
  if (!json_object_is_type (o, json_type_object)) {
    *why = "not a JSON object";
    goto out;
  }

  TRY ("format", get_u64 (o, "format", true, &u, why));
  if (u != REG_FORMAT) {
    *why = "is not 1 (written by a newer repvol?)";
    goto out;
  }
  TRY ("name", get_str (o, "name", true, v->name, sizeof v->name, why));
  TRY ("uuid", get_str (o, "uuid", false, v->uuid, sizeof v->uuid, why));
  TRY ("size", get_u64 (o, "size", true, &v->size, why));
  TRY ("block_size", get_u64 (o, "block_size", true, &u, why));
  if (u > UINT32_MAX) {
    *why = "out of range";
    goto out;
  }
  v->block_size = u;
  TRY ("epoch", get_u64 (o, "epoch", true, &v->epoch, why));
  TRY ("reserved", get_bool (o, "reserved", &v->reserved, why));
  TRY ("allow_same_zone", get_bool (o, "allow_same_zone", &v->allow_same_zone, why));
  TRY ("tls", get_bool (o, "tls", &v->tls, why));
  TRY ("created", get_u64 (o, "created", false, &u, why));
  v->created = u;

  *field = "replicas";
  json_object *reps = member (o, "replicas", json_type_array, true, why);
  if (reps == NULL)
    goto out;
  size_t n = json_object_array_length (reps);
  if (n < 1 || n > REG_MAX_REPLICAS) {
    *why = "must hold 1 to 8 replicas";
    goto out;
  }
  v->nreplicas = n;
  for (size_t i = 0; i < n; i++) {
    struct reg_replica *rp = &v->replicas[i];
    json_object *r = json_object_array_get_idx (reps, i);
    char state[32];
    *field = "replicas";
    if (!json_object_is_type (r, json_type_object)) {
      *why = "element is not an object";
      goto out;
    }
    TRY ("replicas[].addr", get_str (r, "addr", true, rp->addr, sizeof rp->addr, why));
    TRY ("replicas[].server", get_str (r, "server", false, rp->server,
                                       sizeof rp->server, why));
    TRY ("replicas[].zone", get_str (r, "zone", false, rp->zone,
                                     sizeof rp->zone, why));
    TRY ("replicas[].state", get_str (r, "state", true, state, sizeof state, why));
    if (strcmp (state, reg_state_name (REG_IN_SYNC)) == 0)
      rp->state = REG_IN_SYNC;
    else if (strcmp (state, reg_state_name (REG_OUT_OF_SYNC)) == 0)
      rp->state = REG_OUT_OF_SYNC;
    else {
      *why = "is not \"in-sync\" or \"out-of-sync\"";
      goto out;
    }
    TRY ("replicas[].out_of_sync_epoch",
         get_u64 (r, "out_of_sync_epoch", false, &rp->out_of_sync_epoch, why));
    TRY ("replicas[].out_of_sync_since",
         get_u64 (r, "out_of_sync_since", false, &u, why));
    rp->out_of_sync_since = u;
    json_object *fc;
    if (json_object_object_get_ex (r, "full_copy", &fc) && fc != NULL)
      rp->full_copy = json_object_get_boolean (fc);
    json_object *rs;
    if (json_object_object_get_ex (r, "resync", &rs) && rs != NULL) {
      TRY ("replicas[].resync.total", get_u64 (rs, "total", true, &rp->resync_total, why));
      TRY ("replicas[].resync.done", get_u64 (rs, "done", true, &rp->resync_done, why));
      TRY ("replicas[].resync.rate", get_u64 (rs, "rate", false, &rp->resync_rate, why));
    }
  }

  /* "attachment": null (or absent) means not attached; "fenced" is
   * the attachment a takeover fenced, in the same form.
   */
  TRY ("attachment", attachment_from_json (o, "attachment", &v->attachment,
                                           why, field));
  TRY ("fenced", attachment_from_json (o, "fenced", &v->fenced, why, field));

  /* Snapshot state; absent in volumes made before snapshots existed. */
  TRY ("chunk_size", get_u64 (o, "chunk_size", false, &u, why));
  if (u == 0)
    u = REG_DEFAULT_CHUNK_SIZE;
  if (u < 65536 || u > (64u << 20) || (u & (u - 1))) {
    *why = "is not a power of two from 64K to 64M";
    goto out;
  }
  v->chunk_size = u;
  *field = "cbt";
  json_object *cbt = member (o, "cbt", json_type_object, false, why);
  if (*why)
    goto out;
  if (cbt) {
    TRY ("cbt.valid", get_bool (cbt, "valid", &v->cbt.valid, why));
    TRY ("cbt.base_url", get_str (cbt, "base_url", false, v->cbt.base_url,
                                  sizeof v->cbt.base_url, why));
    TRY ("cbt.base_name", get_str (cbt, "base_name", false, v->cbt.base_name,
                                   sizeof v->cbt.base_name, why));
  }
  *field = "restore";
  json_object *rs = member (o, "restore", json_type_object, false, why);
  if (*why)
    goto out;
  if (rs) {
    v->restore.active = true;
    TRY ("restore.url", get_str (rs, "url", true, v->restore.url,
                                 sizeof v->restore.url, why));
    TRY ("restore.snapshot", get_str (rs, "snapshot", true, v->restore.snapshot,
                                      sizeof v->restore.snapshot, why));
    TRY ("restore.chunks_total", get_u64 (rs, "chunks_total", true,
                                          &v->restore.chunks_total, why));
    TRY ("restore.chunks_hydrated", get_u64 (rs, "chunks_hydrated", true,
                                             &v->restore.chunks_hydrated, why));
    TRY ("restore.error", get_str (rs, "error", false, v->restore.error,
                                   sizeof v->restore.error, why));
  }

  *field = "retired";
  json_object *ret_a = member (o, "retired", json_type_array, false, why);
  if (*why)
    goto out;
  if (ret_a) {
    size_t nr = json_object_array_length (ret_a);
    if (nr > REG_MAX_REPLICAS) {
      *why = "holds more than 8 entries";
      goto out;
    }
    for (size_t i = 0; i < nr; i++) {
      json_object *r = json_object_array_get_idx (ret_a, i);
      struct reg_retired *rt = &v->retired[i];
      if (!json_object_is_type (r, json_type_object)) {
        *why = "element is not an object";
        goto out;
      }
      TRY ("retired[].server", get_str (r, "server", false, rt->server,
                                        sizeof rt->server, why));
      TRY ("retired[].addr", get_str (r, "addr", true, rt->addr,
                                      sizeof rt->addr, why));
    }
    v->nretired = nr;
  }

  *field = "";
  if ((*why = volume_bad (v)) != NULL)
    goto out;
  ret = 0;

 out:
  if (o)
    json_object_put (o);
  return ret;
}

int
reg_volume_from_json (const char *text, size_t len, struct reg_volume *v,
                      struct error *err)
{
  const char *why, *field;

  if (volume_from_json (text, len, v, &why, &field) == 0)
    return 0;
  if (field[0])
    return error_set (err, EBADMSG, "key \"%s\" %s", field, why);
  return error_set (err, EBADMSG, "%s", why);
}


/* ---- server records ----------------------------------------------------
 *
 *   { "format": 1, "name", "zone", "addr", "capacity", "free",
 *     "reserved", "volumes", "tls", "draining", "version", "heartbeat",
 *     "ttl", "down"? }
 *
 * "down" (dir backend only): the server shut down cleanly.
 */

int
reg_server_check (const struct reg_server *s, struct error *err)
{
  if (!valid_name (s->name))
    return error_set (err, EINVAL, "registry: invalid server name '%.*s'",
                      REG_NAME_MAX, s->name);
  if (s->zone[0] && !valid_name (s->zone))
    return error_set (err, EINVAL, "registry: server %s: invalid zone",
                      s->name);
  size_t al = strnlen (s->addr, REG_ADDR_MAX);
  if (al == 0 || al == REG_ADDR_MAX)
    return error_set (err, EINVAL, "registry: server %s: no address",
                      s->name);
  if (strnlen (s->version, sizeof s->version) == sizeof s->version)
    return error_set (err, EINVAL, "registry: server %s: version too long",
                      s->name);
  return 0;
}

char *
reg_server_to_json (const struct reg_server *s)
{
  json_object *o = json_object_new_object ();
  if (o == NULL)
    return NULL;
  json_object_object_add (o, "format", json_object_new_int (REG_FORMAT));
  json_object_object_add (o, "name", json_object_new_string (s->name));
  json_object_object_add (o, "zone", json_object_new_string (s->zone));
  json_object_object_add (o, "addr", json_object_new_string (s->addr));
  json_object_object_add (o, "capacity", json_object_new_uint64 (s->capacity));
  json_object_object_add (o, "free", json_object_new_uint64 (s->free));
  json_object_object_add (o, "reserved", json_object_new_uint64 (s->reserved));
  json_object_object_add (o, "volumes", json_object_new_uint64 (s->volumes));
  json_object_object_add (o, "tls", json_object_new_boolean (s->tls));
  json_object_object_add (o, "draining", json_object_new_boolean (s->draining));
  json_object_object_add (o, "version", json_object_new_string (s->version));
  json_object_object_add (o, "heartbeat",
                          json_object_new_int64 ((int64_t) s->heartbeat));
  json_object_object_add (o, "ttl", json_object_new_int64 (s->ttl));
  if (!s->up)
    json_object_object_add (o, "down", json_object_new_boolean (1));
  const char *t = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN);
  char *copy = t ? strdup (t) : NULL;
  json_object_put (o);
  return copy;
}

/* Unlike volume records, the "up" field here is the record's own claim
 * (not "down"); backends decide from it and the heartbeat.
 */
int
reg_server_from_json (const char *text, size_t len, struct reg_server *s,
                      struct error *err)
{
  const char *why = NULL, *field = "";
  const char **field_ = &field;
  uint64_t u;
  bool down;
  int ret = -1;

  memset (s, 0, sizeof *s);
  json_tokener *tok = json_tokener_new ();
  if (tok == NULL)
    return error_set (err, ENOMEM, "out of memory");
  json_object *o = json_tokener_parse_ex (tok, text, (int) len);
  enum json_tokener_error jerr = json_tokener_get_error (tok);
  json_tokener_free (tok);
  if (o == NULL || jerr != json_tokener_success) {
    if (o)
      json_object_put (o);
    return error_set (err, EBADMSG, "%s", jerr == json_tokener_continue ?
                      "truncated JSON" : json_tokener_error_desc (jerr));
  }
  if (!json_object_is_type (o, json_type_object)) {
    why = "not a JSON object";
    goto out;
  }
  {
    const char **field = field_;
    TRY ("format", get_u64 (o, "format", true, &u, &why));
    if (u != REG_FORMAT) {
      why = "is not 1";
      goto out;
    }
    TRY ("name", get_str (o, "name", true, s->name, sizeof s->name, &why));
    TRY ("zone", get_str (o, "zone", false, s->zone, sizeof s->zone, &why));
    TRY ("addr", get_str (o, "addr", true, s->addr, sizeof s->addr, &why));
    TRY ("capacity", get_u64 (o, "capacity", false, &s->capacity, &why));
    TRY ("free", get_u64 (o, "free", false, &s->free, &why));
    TRY ("reserved", get_u64 (o, "reserved", false, &s->reserved, &why));
    TRY ("volumes", get_u64 (o, "volumes", false, &s->volumes, &why));
    TRY ("tls", get_bool (o, "tls", &s->tls, &why));
    TRY ("draining", get_bool (o, "draining", &s->draining, &why));
    TRY ("version", get_str (o, "version", false, s->version,
                             sizeof s->version, &why));
    TRY ("heartbeat", get_u64 (o, "heartbeat", false, &u, &why));
    s->heartbeat = (time_t) u;
    TRY ("ttl", get_u64 (o, "ttl", false, &u, &why));
    if (u > REG_SERVER_TTL_MAX) {
      why = "out of range";
      goto out;
    }
    s->ttl = (uint32_t) u;
    TRY ("down", get_bool (o, "down", &down, &why));
    s->up = !down;
  }
  field = "";
  ret = 0;
  if (reg_server_check (s, err) < 0) {
    json_object_put (o);
    return -EBADMSG;
  }
 out:
  json_object_put (o);
  if (ret == 0)
    return 0;
  if (field[0])
    return error_set (err, EBADMSG, "key \"%s\" %s", field,
                      why ? why : "is bad");
  return error_set (err, EBADMSG, "%s", why ? why : "bad server record");
}

int
reg_server_cmp (const void *a, const void *b)
{
  return strcmp (((const struct reg_server *) a)->name,
                 ((const struct reg_server *) b)->name);
}
