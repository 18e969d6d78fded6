/* client.h - a bdev that is one replica on a remote repvold,
 * reached over the replication protocol (TCP, pipelined, out of order).
 */
#ifndef REPVOL_REPLICA_CLIENT_H
#define REPVOL_REPLICA_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include "core/bdev.h"
#include "core/util.h"
#include "core/loop.h"
#include "replica/proto.h"

/* Open a data connection to a replica of volume at epoch; NULL with a
 * one-line reason in err on failure (e.g. a refusal because a newer
 * epoch has fenced this one).  The returned
 * bdev fails every request with EIO once the connection is lost or a
 * request has been outstanding for longer than timeout_ms.
 */
struct bdev *replica_client_open (struct loop *loop, const char *addr,
                                  const char *volume, uint64_t epoch,
                                  int timeout_ms, struct rv_welcome *w,
                                  struct error *err);

/* The two halves of replica_client_open, for callers that handshake on
 * another thread: connect (blocking, bounded, touches no loop), then
 * adopt the socket on the loop's thread.  connect: 0 or a negative
 * errno, the reason in err.
 */
int replica_client_connect (const char *addr, const char *volume,
                            uint64_t epoch, int timeout_ms, int *fd,
                            struct rv_welcome *w, struct error *err);
struct bdev *replica_client_adopt (struct loop *loop, int fd,
                                   const char *addr,
                                   const struct rv_welcome *w,
                                   int timeout_ms);

#endif
