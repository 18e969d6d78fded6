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
#include "replica/admin.h"
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
 * another thread: connect (blocking, bounded, touches no loop; TLS with
 * the process's client credentials), then adopt the connection (socket,
 * TLS session, WELCOME in ra) on the loop's thread.  connect: 0 or a
 * negative errno, the reason in err.  adopt owns ra's socket and session
 * from then on, also when it fails (NULL: out of memory).
 */
int replica_client_connect (const char *addr, const char *volume,
                            uint64_t epoch, int timeout_ms,
                            struct replica_admin *ra, struct error *err);
struct bdev *replica_client_adopt (struct loop *loop,
                                   struct replica_admin *ra,
                                   const char *addr, int timeout_ms);

#endif
