/* admin.h - a small blocking client for the admin side of the
 * replication protocol: create, delete, stat and read a replica on a
 * repvold, and set its epoch.
 *
 * Used by the repvol CLI and the probe; on the data path only for the
 * handshake (the event-loop replica client takes over the socket after
 * it).  Also resizes a replica.  Every call is bounded by a timeout: connect, each send and each
 * receive.  Every call returns 0 or a negative errno (-ECONNREFUSED,
 * -ETIMEDOUT, -EEXIST, -ENOENT, -EPROTO, ...) and on failure fills err
 * (which may be NULL) with a one-line reason, e.g. "connection refused
 * (is repvold running there?)", "timed out after 5000 ms waiting for
 * the WELCOME", "volume already exists on this server".  The reason
 * does not repeat the address; callers prefix it.
 */
#ifndef REPVOL_REPLICA_ADMIN_H
#define REPVOL_REPLICA_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "core/tls.h"
#include "core/util.h"
#include "replica/proto.h"

#define REPLICA_ADMIN_TIMEOUT_MS 5000

/* One admin connection to one server, bound to one volume name.  With
 * the process's TLS client credentials (core/tls.h) set up, the
 * connection is TLS and the server's certificate must match addr's host.
 */
struct replica_admin {
  int fd;
  struct tls_session *tls;      /* NULL: plaintext */
  int timeout_ms;
  uint64_t next_id;
  char volume[RV_NAME_MAX];
  struct rv_welcome welcome;    /* what the server said in WELCOME */
};

/* Connect to addr ("ADDR:PORT"), send HELLO (volume vol, epoch,
 * flags) and read WELCOME into ra->welcome; a WELCOME whose status is
 * not OK is a failure.  On failure ra->fd is -1.  The data path
 * (client.c) uses this for its start-up handshake, then adopts ra->fd.
 */
int replica_handshake (struct replica_admin *ra, const char *addr,
                       const char *vol, uint64_t epoch, uint32_t flags,
                       int timeout_ms, struct error *err);

/* replica_handshake for an admin connection (admin flag, epoch 0). */
int replica_admin_open (struct replica_admin *ra, const char *addr,
                        const char *vol, int timeout_ms, struct error *err);
void replica_admin_close (struct replica_admin *ra);

/* Requests on an open connection. */
int replica_admin_create (struct replica_admin *ra, const struct rv_create *c,
                          struct error *err);
int replica_admin_delete (struct replica_admin *ra, struct error *err);
int replica_admin_stat (struct replica_admin *ra, struct rv_volinfo *vi,
                        struct error *err);
/* Set the replica's epoch to epoch (>= 1), lower or higher: the repair
 * of a wrong epoch.  -EBUSY while an attach has the volume open there.
 */
int replica_admin_set_epoch (struct replica_admin *ra, uint64_t epoch,
                             struct error *err);
/* Resize the replica to size bytes, growing or shrinking it; flags
 * RV_F_RESERVE allocates the grown range (a reserved volume's always
 * is).  -EBUSY while an attach has the volume open there, -EINVAL for a
 * size that is zero or not a multiple of the block size, -EFBIG /
 * -ENOSPC past the server's bounds (docs/DESIGN.md 3.7), -ENOTSUP where
 * the server cannot reserve, or when its WELCOME lacks RV_FEAT_RESIZE
 * (the request is then not sent: such a server would close the
 * connection on it).  Each with a reason in the CLI's terms; callers
 * prefix "cannot resize VOL on ADDR: ".
 */
int replica_admin_resize (struct replica_admin *ra, uint64_t size,
                          uint32_t flags, struct error *err);
/* Read len bytes (at most RV_MAX_PAYLOAD, aligned to the volume's block
 * size) at offset.  Admin connections may read: it neither presents
 * nor moves the volume's epoch, so it fences nobody.
 */
int replica_admin_read (struct replica_admin *ra, uint64_t offset, void *buf,
                        uint32_t len, struct error *err);

/* One-shot: open, stat, close.  w (may be NULL) gets the WELCOME. */
int replica_admin_stat_once (const char *addr, const char *vol, int timeout_ms,
                             struct rv_welcome *w, struct rv_volinfo *vi,
                             struct error *err);

#endif
