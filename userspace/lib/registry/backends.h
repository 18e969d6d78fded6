/* backends.h - constructors of the registry backends, for registry.c
 * only.  Everything else goes through registry_open().
 */
#ifndef REPVOL_REGISTRY_BACKENDS_H
#define REPVOL_REGISTRY_BACKENDS_H

#include "registry/registry.h"

/* dir.c: a directory of VOLNAME.json files.  The directory need not
 * exist yet; it is created (mode 0700) by the first registry_create().
 */
struct registry *registry_dir_open (const char *path);

/* The JSON codec dir.c uses, exposed for tests and for a future etcd
 * backend, which stores the same document as the value of a key.
 * reg_volume_from_json returns 0, or -1 with a static reason in *why
 * (and field naming the offending key, or "").
 */
char *reg_volume_to_json (const struct reg_volume *v);   /* malloc'd */
int reg_volume_from_json (const char *text, size_t len, struct reg_volume *v,
                          const char **why, const char **field);

#endif
