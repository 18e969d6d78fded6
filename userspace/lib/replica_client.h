/* replica_client.h - a bdev that is one replica on a remote repvold,
 * reached over the replication protocol (TCP, pipelined, out of order).
 */
#ifndef REPVOL_REPLICA_CLIENT_H
#define REPVOL_REPLICA_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include "bdev.h"
#include "loop.h"
#include "proto/proto.h"

/* Connect to addr and present (volume, epoch, flags) in HELLO; a
 * bounded, blocking exchange for start-up and admin commands.  Returns
 * the connected blocking socket with *w filled in, or -1 with a
 * one-line reason in err.  A WELCOME with a non-OK status is returned
 * as success: the caller decides what it means.
 */
int rv_connect (const char *addr, const char *volume, uint64_t epoch,
                uint32_t flags, int timeout_ms, struct rv_welcome *w,
                char *err, size_t errlen);

/* Open a data connection to a replica of volume at epoch.  The returned
 * bdev fails every request with EIO once the connection is lost or a
 * request has been outstanding for longer than timeout_ms.
 */
struct bdev *replica_client_open (struct loop *loop, const char *addr,
                                  const char *volume, uint64_t epoch,
                                  int timeout_ms, struct rv_welcome *w,
                                  char *err, size_t errlen);

#endif
