/* mem_bdev.h - a RAM disk bdev that completes every request at once,
 * for tests of the layers above the engine (the frontends).
 */
#ifndef REPVOL_TEST_MEM_BDEV_H
#define REPVOL_TEST_MEM_BDEV_H

#include <stdint.h>
#include "core/bdev.h"

struct mem_bdev {
  struct bdev bdev;
  uint8_t *data;                /* size bytes, the caller's */
  int flushes;                  /* FLUSH requests seen */
};

/* A volatile-cache disk of size bytes over data, 512-byte blocks,
 * requests up to 64 KiB.
 */
void mem_bdev_init (struct mem_bdev *m, void *data, uint64_t size);

#endif
