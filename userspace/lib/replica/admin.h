/* replica_admin.h - a small blocking client for the admin side of the
 * replication protocol: create, delete and stat a replica on a repvold.
 *
 * Used by the repvol CLI; on the data path only for the handshake (the
 * event-loop replica client takes over the socket after it).  Every call is bounded by a timeout: connect, each
 * send and each receive.  On failure a call returns -1, sets errno
 * (ECONNREFUSED, ETIMEDOUT, EEXIST, ENOENT, EPROTO, ...) and writes a
 * one-line reason to err, e.g. "connection refused", "timed out after
 * 5000 ms waiting for the reply", "volume already exists".  The reason
 * does not repeat the address; callers prefix it.
 */
#ifndef REPVOL_REPLICA_ADMIN_H
#define REPVOL_REPLICA_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "replica/proto.h"

#define REPLICA_ADMIN_TIMEOUT_MS 5000

/* One admin connection to one server, bound to one volume name. */
struct replica_admin {
  int fd;
  int timeout_ms;
  uint64_t next_id;
  struct rv_welcome welcome;    /* what the server said in WELCOME */
};

/* Connect to addr ("ADDR:PORT"), send HELLO (volume vol, epoch,
 * flags) and read WELCOME into ra->welcome; a WELCOME whose status is
 * not OK is a failure.  The data path (replica_client.c) uses this for
 * its start-up handshake, then adopts ra->fd.
 */
int replica_handshake (struct replica_admin *ra, const char *addr,
                       const char *vol, uint64_t epoch, uint32_t flags,
                       int timeout_ms, char *err, size_t errlen);

/* replica_handshake for an admin connection (admin flag, epoch 0). */
int replica_admin_open (struct replica_admin *ra, const char *addr,
                        const char *vol, int timeout_ms,
                        char *err, size_t errlen);
void replica_admin_close (struct replica_admin *ra);

/* Requests on an open connection. */
int replica_admin_create (struct replica_admin *ra, const struct rv_create *c,
                          char *err, size_t errlen);
int replica_admin_delete (struct replica_admin *ra, char *err, size_t errlen);
int replica_admin_stat (struct replica_admin *ra, struct rv_volinfo *vi,
                        char *err, size_t errlen);
/* Read len bytes (at most RV_MAX_PAYLOAD, aligned to the volume's block
 * size) at offset.  Admin connections may read: it neither presents
 * nor moves the volume's epoch, so it fences nobody.
 */
int replica_admin_read (struct replica_admin *ra, uint64_t offset, void *buf,
                        uint32_t len, char *err, size_t errlen);

/* One-shot conveniences: open, (request,) close. */
int replica_admin_hello (const char *addr, const char *vol, int timeout_ms,
                         struct rv_welcome *w, char *err, size_t errlen);
int replica_admin_stat_once (const char *addr, const char *vol, int timeout_ms,
                             struct rv_welcome *w, struct rv_volinfo *vi,
                             char *err, size_t errlen);

#endif
