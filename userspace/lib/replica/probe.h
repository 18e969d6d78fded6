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

/* The two ends probed, block aligned: [0, head) and [tail_off,
 * tail_off + tail_len) (tail_len 0: the head covers it all).
 */
void probe_geometry (uint64_t size, uint32_t block_size, uint32_t *head,
                     uint64_t *tail_off, uint32_t *tail_len);
/* libblkid over an image of size bytes holding those two ends. */
void probe_image_contents (uint64_t size, const void *head, uint32_t head_len,
                           const void *tail, uint64_t tail_off,
                           uint32_t tail_len, struct volume_contents *c);
/* One line of JSON (malloc'd; NULL when out of memory), and back:
 * 0 or -EINVAL.  What an attach answers to "contents".
 */
char *volume_contents_to_json (const struct volume_contents *c);
int volume_contents_from_json (const char *line, struct volume_contents *c);

#endif
