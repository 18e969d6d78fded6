/* placement.h - where a volume's replicas go (docs/DESIGN.md,
 * "Placement"): a pure policy over a listing of the server pool, shared
 * by create, restore and (later) healing and drain.  It may call core/
 * and use registry/'s types; it talks to nothing.
 *
 * The rules: only servers that are up and not draining; none that is
 * excluded (already holds the volume); each replica in a zone of its
 * own (servers without a zone conflict with no one) unless same zones
 * are allowed; a reserved volume only on servers whose free space less
 * their reserve margin holds it; among those, most free space first.
 */
#ifndef REPVOL_PLACEMENT_H
#define REPVOL_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/registry.h"

struct placement_req {
  int want;                     /* replicas to place */
  uint64_t size;                /* the volume's bytes */
  bool reserve;                 /* space allocated up front */
  bool allow_same_zone;
  /* Servers (names) and zones the volume already has: not used again
   * (zones: unless allow_same_zone).
   */
  const char *const *exclude_servers;
  int nexclude_servers;
  const char *const *exclude_zones;
  int nexclude_zones;
};

/* Choose req->want servers of pool[0..n): their indexes in chosen[],
 * best first.  0, or -ENOSPC with why saying what is missing ("need 2
 * zones with 10.0 GiB free, found 1: az-a").
 */
int place_replicas (const struct reg_server *pool, int n,
                    const struct placement_req *req, int *chosen,
                    char *why, size_t whylen);

#endif
