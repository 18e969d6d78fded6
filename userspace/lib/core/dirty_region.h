/* dirty_region.h - how many bytes one bit of a volume's dirty map
 * covers: one rule for the replica server's map (store/) and the
 * engine's (engine/), so both derive it from the size alike and nothing
 * about it is negotiated (docs/DESIGN.md 3.4, 4.1).  The smallest power
 * of two from 4 KiB whose map stays within 2^27 bits (16 MiB): 4 KiB up
 * to 512 GiB, 64 KiB at the 8 TiB maximum.
 */
#ifndef REPVOL_DIRTY_REGION_H
#define REPVOL_DIRTY_REGION_H

#include <stdint.h>

#define DIRTY_REGION_MIN  4096u
#define DIRTY_MAX_REGIONS (UINT64_C (1) << 27)

static inline uint32_t
dirty_region_for (uint64_t size)
{
  uint64_t region = DIRTY_REGION_MIN;

  while ((size + region - 1) / region > DIRTY_MAX_REGIONS &&
         region < (UINT64_C (1) << 30))
    region *= 2;
  return (uint32_t) region;
}

#endif
