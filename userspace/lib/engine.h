/* engine.h - the volume engine: one bdev over N replica bdevs. */
#ifndef REPVOL_ENGINE_H
#define REPVOL_ENGINE_H

#include "bdev.h"
#include "loop.h"

#define ENGINE_MAX_REPLICAS 8

/* Build the engine over n replica bdevs (it takes ownership of them).
 * names label the replicas in log lines.  info is what the volume
 * promises (size and block size from the registry).
 */
struct bdev *engine_new (struct loop *loop, struct bdev **replicas,
                         const char *const *names, int n,
                         const struct bdev_info *info);

#endif
