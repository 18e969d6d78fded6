/* probe.h - what is on a volume (filesystem type, label, UUID), for
 * "repvol status".
 *
 * The bytes live on the replicas, so the probe reads the first and the
 * last MiB of the volume from one in-sync replica over an admin
 * connection of the replication protocol, lays them at their offsets
 * in a sparse memfd of the volume's size, and lets libblkid look at
 * that.  Signatures outside those two MiB are not seen.
 */
#ifndef REPVOL_PROBE_H
#define REPVOL_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#include "registry/registry.h"

#define PROBE_SPAN (1u << 20)   /* read at each end of the volume */

struct volume_contents {
  bool known;                   /* a replica answered and blkid ran */
  bool found;                   /* a signature: type or pttype is set */
  char type[32];                /* "ext4", "xfs", "swap"...; "" if none */
  char label[256];              /* "" if none */
  char uuid[64];                /* "" if none */
  char pttype[32];              /* partition table ("gpt", "dos"), "" if none */
  char why[320];                /* !known or !found: why, for the user */
};

/* Probe v's contents, each replica connection bounded by timeout_ms.
 * skip, if not NULL, marks replicas (by index) known to be unreachable
 * already, not to wait for twice.  Always fills c: when known is
 * false, why says which replicas were tried and what went wrong.
 */
void probe_volume_contents (const struct reg_volume *v, int timeout_ms,
                            const bool *skip, struct volume_contents *c);

#endif
