/* server.h - the replication protocol server (repvold's core).
 *
 * Accepts TCP connections on a listening socket (core/listener.h), runs
 * the handshake (HELLO / WELCOME, with epoch fencing) and then serves
 * pipelined requests against the store, each answered by id as it
 * completes.  See replica/proto.h and man/repvol-protocol.7 for the wire
 * format.
 *
 * Everything runs on one event loop; concurrency comes from the store's
 * I/O engine.  A bad frame closes only the connection it came on.
 */
#ifndef REPVOL_REPLICA_SERVER_H
#define REPVOL_REPLICA_SERVER_H

#include "core/loop.h"
#include "core/tls.h"
#include "store/store.h"

struct replica_server;

/* Serve on listen_fd (a listening socket; the server owns it from now
 * on).  name is this server's name, zone its availability zone ("" or
 * NULL for none).
 */
struct replica_server *replica_server_new (struct loop *loop,
                                           struct store *store,
                                           int listen_fd, const char *name,
                                           const char *zone);

/* Serve TLS only, with creds (the server's own, not owned; see
 * core/tls.h).  admins is "ID[,ID...]": the identities (certificate CN
 * or PSK user) that may CREATE, DELETE and READ or CHECKSUM a volume
 * over an admin connection; every other identity may only attach (HELLO
 * and data I/O) and STAT.  NULL admins: every authenticated identity is
 * an admin.  0 or a negative errno.
 */
int replica_server_set_tls (struct replica_server *srv,
                            struct tls_creds *creds, const char *admins);

/* A connection whose frame (or HELLO) stalls for ms is closed
 * (default RS_STALL_MS).  See conn_set_stall_timeout.
 */
#define RS_STALL_MS 30000
void replica_server_set_stall_timeout (struct replica_server *srv,
                                       unsigned ms);

/* Stop accepting, stop reading new requests, let requests in flight
 * finish and their replies go out, close every connection; then call
 * done.  After timeout_ms, connections still busy are closed and done
 * is called anyway (their I/O completes later, safely).
 */
void replica_server_shutdown (struct replica_server *srv, unsigned timeout_ms,
                              void (*done) (void *opaque), void *opaque);

/* Free the server.  Call after store_close() has drained the store's
 * I/O, so no completion can still reach a connection.
 */
void replica_server_free (struct replica_server *srv);

#endif
