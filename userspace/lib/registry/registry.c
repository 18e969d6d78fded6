/* registry.c - pick a registry backend from a location string.
 *
 * The location is, in order: the --registry argument, $REPVOL_REGISTRY,
 * or /var/lib/repvol.  A plain path selects the directory backend
 * (dir.c); "etcd://" is reserved for the etcd backend of a later issue.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "registry/registry.h"
#include "registry/backends.h"

#define REGISTRY_DEFAULT "/var/lib/repvol"

struct registry *
registry_open (const char *location)
{
  if (location == NULL || *location == '\0')
    location = getenv ("REPVOL_REGISTRY");
  if (location == NULL || *location == '\0')
    location = REGISTRY_DEFAULT;

  if (strncmp (location, "etcd://", 7) == 0) {
    log_error ("registry %s: the etcd backend is not built into this version",
               location);
    errno = ENOTSUP;
    return NULL;
  }
  if (strstr (location, "://") != NULL) {
    log_error ("registry %s: unknown registry scheme "
               "(expected a directory path)", location);
    errno = EINVAL;
    return NULL;
  }
  return registry_dir_open (location);
}

void
registry_close (struct registry *r)
{
  if (r)
    r->ops->close (r);
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

const char *
reg_state_name (enum reg_replica_state s)
{
  switch (s) {
  case REG_IN_SYNC: return "in-sync";
  case REG_OUT_OF_SYNC: return "out-of-sync";
  }
  return "unknown";
}
