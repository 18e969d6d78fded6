/* replica_admin.h - a small blocking client for the admin side of the
 * replication protocol: create, delete and stat a replica on a repvold.
 *
 * Used by the repvol CLI, never on the data path (that is the event-loop
 * replica client).  Every call is bounded by a timeout: connect, each
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

#include "proto/proto.h"

#define REPLICA_ADMIN_TIMEOUT_MS 5000

/* One admin connection to one server, bound to one volume name. */
struct replica_admin {
  int fd;
  int timeout_ms;
  uint64_t next_id;
  struct rv_welcome welcome;    /* what the server said in WELCOME */
};

/* Connect to addr ("ADDR:PORT"), send HELLO (admin flag, volume vol,
 * epoch 0) and read WELCOME into ra->welcome.
 */
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

/* One-shot conveniences: open, (request,) close. */
int replica_admin_hello (const char *addr, const char *vol, int timeout_ms,
                         struct rv_welcome *w, char *err, size_t errlen);
int replica_admin_stat_once (const char *addr, const char *vol, int timeout_ms,
                             struct rv_welcome *w, struct rv_volinfo *vi,
                             char *err, size_t errlen);

#endif
