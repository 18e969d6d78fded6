/* registry.c - pick a registry backend from a location string, and the
 * checked entry points every caller goes through.
 *
 * The location is, in order: the --registry argument, $REPVOL_REGISTRY,
 * or /var/lib/repvol.  A plain path or dir://PATH selects the directory
 * backend (dir.c); etcd://HOST:PORT[,HOST:PORT...][/PREFIX] the etcd
 * backend (etcd.c, etcd_http.c).
 *
 * The registry_* functions check their arguments before a backend sees
 * them: a name must pass valid_name() (so no backend ever turns a "../x"
 * into a path or a key), a blob kind too, and the pointers must be set.
 * A name that cannot be valid names no volume: reads, updates and
 * removes of it are -ENOENT; a create of it (refused by the backend's
 * record check) and any blob call with it are -EINVAL.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tls.h"
#include "core/util.h"
#include "registry/registry.h"
#include "registry/backends.h"

#define REGISTRY_DEFAULT "/var/lib/repvol"

static struct registry *
open_location (const char *location, struct error *err)
{
  if (strncmp (location, "etcd://", 7) == 0)
    return registry_etcd_open (location, err);
  if (strncmp (location, "dir://", 6) == 0) {
    location += 6;
    if (*location == '\0') {
      error_set (err, EINVAL, "registry dir://: no directory given");
      return NULL;
    }
  }
  else if (strstr (location, "://") != NULL) {
    error_set (err, EINVAL, "registry %s: unknown registry scheme "
               "(expected a directory, dir://PATH or etcd://HOST:PORT,...)",
               location);
    return NULL;
  }
  return registry_dir_open (location, err);
}

struct registry *
registry_open (const char *location, struct error *err)
{
  if (location == NULL || *location == '\0')
    location = getenv ("REPVOL_REGISTRY");
  if (location == NULL || *location == '\0')
    location = REGISTRY_DEFAULT;

  struct registry *r = open_location (location, err);
  if (r && (r->location = strdup (location)) == NULL) {
    r->ops->close (r);
    error_set (err, ENOMEM, "registry %s: out of memory", location);
    return NULL;
  }
  return r;
}

struct registry *
registry_open_again (const struct registry *r, struct error *err)
{
  return registry_open (r->location, err);
}

void
registry_close (struct registry *r)
{
  if (r) {
    char *loc = r->location;
    r->ops->close (r);
    free (loc);
  }
}

void
registry_free_names (char **names, int n)
{
  if (names == NULL)
    return;
  for (int i = 0; i < n; i++)
    free (names[i]);
  free (names);
}

/* The name of an existing volume: an invalid one names none. */
static int
check_existing (const char *name, struct error *err)
{
  if (name == NULL || !valid_name (name))
    return error_set (err, ENOENT, "no volume '%s' (not a valid name)",
                      name ? name : "");
  return 0;
}

/* A blob's volume name and kind. */
static int
check_blob (const char *name, const char *kind, struct error *err)
{
  if (name == NULL || !valid_name (name))
    return error_set (err, EINVAL, "registry: invalid volume name '%s'",
                      name ? name : "");
  if (kind == NULL || !valid_name (kind))
    return error_set (err, EINVAL, "registry: invalid blob kind '%s'",
                      kind ? kind : "");
  return 0;
}

int
registry_create (struct registry *r, const struct reg_volume *v,
                 struct error *err)
{
  /* The backend checks the record (reg_volume_check) where it writes,
   * for updates too.
   */
  if (v == NULL)
    return error_set (err, EINVAL, "registry: no volume to create");
  return r->ops->create (r, v, err);
}

int
registry_get (struct registry *r, const char *name, struct reg_volume *v,
              struct error *err)
{
  int e = check_existing (name, err);
  if (e < 0)
    return e;
  if (v == NULL)
    return error_set (err, EINVAL, "registry: nowhere to put volume %s",
                      name);
  return r->ops->get (r, name, v, err);
}

int
registry_update (struct registry *r, const char *name,
                 int (*fn) (struct reg_volume *v, void *arg), void *arg,
                 struct error *err)
{
  int e = check_existing (name, err);
  if (e < 0)
    return e;
  if (fn == NULL)
    return error_set (err, EINVAL, "registry: update of %s without a "
                      "callback", name);
  return r->ops->update (r, name, fn, arg, err);
}

int
registry_remove (struct registry *r, const char *name, struct error *err)
{
  int e = check_existing (name, err);
  if (e < 0)
    return e;
  return r->ops->remove (r, name, err);
}

int
registry_list (struct registry *r, char ***names, int *n, struct error *err)
{
  if (names == NULL || n == NULL)
    return error_set (err, EINVAL, "registry: list without a result");
  *names = NULL;
  *n = 0;
  return r->ops->list (r, names, n, err);
}

int
registry_blob_put (struct registry *r, const char *name, const char *kind,
                   const void *data, size_t len, struct error *err)
{
  int e = check_blob (name, kind, err);
  if (e < 0)
    return e;
  if (data == NULL && len > 0)
    return error_set (err, EINVAL, "registry: %s blob of %s without data",
                      kind, name);
  return r->ops->blob_put (r, name, kind, data, len, err);
}

int
registry_blob_get (struct registry *r, const char *name, const char *kind,
                   void **data, size_t *len, struct error *err)
{
  int e = check_blob (name, kind, err);
  if (e < 0)
    return e;
  if (data == NULL || len == NULL)
    return error_set (err, EINVAL, "registry: nowhere to put the %s blob "
                      "of %s", kind, name);
  return r->ops->blob_get (r, name, kind, data, len, err);
}

int
registry_blob_remove (struct registry *r, const char *name, const char *kind,
                      struct error *err)
{
  int e = check_blob (name, kind, err);
  if (e < 0)
    return e;
  return r->ops->blob_remove (r, name, kind, err);
}

const char *
reg_state_name (enum reg_replica_state s)
{
  switch (s) {
  case REG_IN_SYNC: return "in-sync";
  case REG_OUT_OF_SYNC: return "out-of-sync";
  }
  return "unknown";
}

int
reg_volume_check_tls (const struct reg_volume *v, struct error *err)
{
  if (!v->tls || tls_client_creds ())
    return 0;
  return error_set (err, EACCES, "volume %s is on servers that require TLS: "
                    "give --tls-dir DIR or --tls-psk FILE (or set "
                    "REPVOL_TLS_DIR)", v->name);
}

/* ---- the server pool --------------------------------------------------- */

int
registry_server_put (struct registry *r, const struct reg_server *s,
                     unsigned ttl, struct error *err)
{
  if (s == NULL)
    return error_set (err, EINVAL, "registry: no server to register");
  if (ttl < 1 || ttl > REG_SERVER_TTL_MAX)
    return error_set (err, EINVAL, "registry: server %s: lease TTL %u out "
                      "of range (1 to %d s)", s->name, ttl,
                      REG_SERVER_TTL_MAX);
  int e = reg_server_check (s, err);
  if (e < 0)
    return e;
  return r->ops->server_put (r, s, ttl, err);
}

int
registry_server_down (struct registry *r, const char *name,
                      struct error *err)
{
  if (name == NULL || !valid_name (name))
    return error_set (err, ENOENT, "no server '%s' (not a valid name)",
                      name ? name : "");
  return r->ops->server_down (r, name, err);
}

int
registry_server_list (struct registry *r, struct reg_server **servers,
                      int *n, struct error *err)
{
  if (servers == NULL || n == NULL)
    return error_set (err, EINVAL, "registry: server list without a result");
  *servers = NULL;
  *n = 0;
  return r->ops->server_list (r, servers, n, err);
}

static bool
known_setting (const char *key)
{
  return key && strcmp (key, REG_SETTING_HEAL_AFTER) == 0;
}

int
registry_setting_get (struct registry *r, const char *key, char *value,
                      size_t len, struct error *err)
{
  if (!known_setting (key))
    return error_set (err, EINVAL, "no setting '%s'", key ? key : "");
  if (value == NULL || len == 0)
    return error_set (err, EINVAL, "registry: nowhere to put setting %s",
                      key);
  return r->ops->setting_get (r, key, value, len, err);
}

int
registry_setting_put (struct registry *r, const char *key,
                      const char *value, struct error *err)
{
  if (!known_setting (key))
    return error_set (err, EINVAL, "no setting '%s'", key ? key : "");
  if (value && (value[0] == '\0' || strlen (value) >= REG_SETTING_MAX ||
                strpbrk (value, "\n\r")))
    return error_set (err, EINVAL, "setting %s: a value of 1 to %d "
                      "characters on one line", key, REG_SETTING_MAX - 1);
  return r->ops->setting_put (r, key, value, err);
}

int
registry_server_drain (struct registry *r, const char *name, bool on,
                       struct error *err)
{
  struct reg_server s;
  int ret;

  if ((ret = registry_server_get (r, name, &s, err)) < 0)
    return ret;
  return r->ops->server_drain (r, name, on, err);
}

int
registry_server_get (struct registry *r, const char *name,
                     struct reg_server *s, struct error *err)
{
  struct reg_server *all;
  int n, ret;

  if (name == NULL || !valid_name (name))
    return error_set (err, ENOENT, "no server '%s' (not a valid name)",
                      name ? name : "");
  if (s == NULL)
    return error_set (err, EINVAL, "registry: nowhere to put server %s",
                      name);
  if ((ret = registry_server_list (r, &all, &n, err)) < 0)
    return ret;
  ret = error_set (err, ENOENT, "registry: no server '%s'", name);
  for (int i = 0; i < n; i++)
    if (strcmp (all[i].name, name) == 0) {
      *s = all[i];
      ret = 0;
      break;
    }
  free (all);
  return ret;
}

const char *
reg_server_state (const struct reg_server *s)
{
  if (!s->up)
    return "down";
  return s->draining ? "draining" : "up";
}

/* ---- names, not addresses ------------------------------------------------ */

int
registry_resolve_replicas (struct registry *r, struct reg_volume *v,
                           struct error *err)
{
  struct reg_server *all;
  int n, moved = 0;
  int ret = registry_server_list (r, &all, &n, err);

  if (ret < 0)
    return ret;
  for (int i = 0; i < v->nreplicas; i++) {
    struct reg_replica *rep = &v->replicas[i];
    for (int j = 0; rep->server[0] && j < n; j++)
      if (strcmp (all[j].name, rep->server) == 0) {
        if (strcmp (all[j].addr, rep->addr) != 0) {
          snprintf (rep->addr, sizeof rep->addr, "%s", all[j].addr);
          moved++;
        }
        break;
      }
  }
  free (all);
  return moved;
}

int
registry_server_addr (struct registry *r, const char *name, char *addr,
                      size_t len, struct error *err)
{
  struct reg_server s;
  int ret = registry_server_get (r, name, &s, err);

  if (ret < 0)
    return ret;
  if (strlen (s.addr) >= len)
    return error_set (err, ENAMETOOLONG, "server %s: address too long",
                      name);
  snprintf (addr, len, "%s", s.addr);
  return s.up;
}

long
reg_attachment_lease_left (const struct reg_attachment *a, time_t now)
{
  if (!a->attached || a->lease_ttl == 0)
    return 0;
  return (long) (a->heartbeat + (time_t) a->lease_ttl - now);
}
