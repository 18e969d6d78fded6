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
/* Renewed credentials (still not owned) for connections accepted from
 * now on; those open keep theirs (sessions hold references).  The
 * caller may free the old ones after.
 */
void replica_server_replace_tls (struct replica_server *srv,
                                 struct tls_creds *creds);

/* A connection whose frame (or HELLO) stalls for ms is closed
 * (default RS_STALL_MS).  See conn_set_stall_timeout.
 */
#define RS_STALL_MS 30000
void replica_server_set_stall_timeout (struct replica_server *srv,
                                       unsigned ms);

/* A connection that has sent nothing and has nothing in flight for ms
 * (default RS_IDLE_MS; 0: never) is closed, whether it has said HELLO
 * or not.  WELCOME tells the client, whose replica client then sends
 * PING often enough (see conn_set_idle_timeout).
 */
#define RS_IDLE_MS 60000
void replica_server_set_idle_timeout (struct replica_server *srv,
                                      unsigned ms);

/* Connection limits (core/listener.h): over either, a new connection is
 * closed at once.  By default the total is sized to the descriptor
 * limit, half of what RLIMIT_NOFILE leaves after RS_FD_RESERVE (the
 * other half is for the store's files, three per volume), between
 * RS_MIN_CONNS and RS_MAX_CONNS_CAP; per source address
 * RS_MAX_CONNS_PER_PEER.  0: no limit.
 */
#define RS_FD_RESERVE         64
#define RS_MIN_CONNS          16
#define RS_MAX_CONNS_CAP      65536
#define RS_MAX_CONNS_PER_PEER 256
unsigned replica_server_default_max_conns (void);
void replica_server_set_conn_limits (struct replica_server *srv,
                                     unsigned total, unsigned per_peer);

/* What a peer makes the server log (refused connections and requests,
 * bad frames) is said once per peer per ms (core/ratelimit.h; default
 * RATELIMIT_INTERVAL_MS), the rest counted; 0 logs every line.
 */
void replica_server_set_log_interval (struct replica_server *srv,
                                      unsigned ms);

/* Count into m (metrics/metrics.h; not owned, outlives the server)
 * what docs/DESIGN.md 2.9 lists for repvold.  Call before serving.
 */
struct metrics;
void replica_server_set_metrics (struct replica_server *srv,
                                 struct metrics *m);

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
