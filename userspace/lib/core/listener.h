/* listener.h - accepting connections on a listening socket, once for
 * every server: the NBD export, repvold, the attach's control socket.
 *
 * The listener owns the accept loop and its policies, so that they are
 * the same everywhere: accepted sockets are nonblocking and close-on-
 * exec; running out of descriptors or memory pauses accepting for
 * 100 ms instead of spinning on a level-triggered listener; at most 64
 * connections are taken per wakeup, so a flood cannot starve the I/O
 * already in progress; and two limits refuse a new connection by
 * closing it at once, rather than letting it wait unanswered: the open
 * connections in all (max_conns) and those from one source address
 * (max_per_peer, TCP only), so that one host cannot take every place.
 *
 * What the listener logs about a peer (a refusal) goes through its
 * rate limiter (core/ratelimit.h, l->log), one line per address per
 * 10 s; the servers log their peers' misbehaviour through the same one
 * (conn_set_log_limit), so a peer has one budget per listener.
 */
#ifndef REPVOL_LISTENER_H
#define REPVOL_LISTENER_H

#include <stdbool.h>
#include <stdint.h>
#include "core/loop.h"
#include "core/ratelimit.h"

#define LISTENER_PEER_BUCKETS 1024

struct listener;

/* The connections open from one source address (IPv4, or IPv6 with
 * IPv4-mapped addresses as they come).  Freed with its last connection.
 */
struct listener_peer {
  struct listener_peer *next;   /* hash chain */
  char addr[48];                /* numeric: "127.0.0.2", "::1" */
  unsigned nconns;
};

/* A new connection: fd is the caller's from now on.  The caller calls
 * listener_conn_closed() once when it is gone, so it is counted; or,
 * if it took the peer (listener_take_peer), listener_peer_closed().
 */
typedef void (*listener_accept_fn) (struct listener *l, int fd, void *opaque);

struct listener {
  struct loop *loop;
  int fd;                       /* the listening socket (not owned) */
  const char *what;             /* log label: "nbd", "replica", ... */
  unsigned max_conns;           /* 0: no limit */
  unsigned max_per_peer;        /* 0: no limit; set after listener_init */
  unsigned nconns;              /* accepted and not yet closed */
  bool tcp_nodelay;             /* set TCP_NODELAY on accepted sockets */
  listener_accept_fn accept;
  void *opaque;
  struct loop_watch watch;
  struct loop_timer pause;
  uint64_t refused;             /* connections refused at a limit */
  struct ratelimit log;         /* what is logged about peers */
  struct listener_peer *peers[LISTENER_PEER_BUCKETS];
  struct listener_peer *accepting;  /* the peer of the connection being
                                       handed over, until taken */
  uint32_t hash_seed;
  bool running;
};

/* Watch fd (made nonblocking) for connections.  0 or a negative errno. */
int listener_init (struct listener *l, struct loop *loop, int fd,
                   const char *what, unsigned max_conns,
                   listener_accept_fn accept, void *opaque);
/* Stop accepting; pending connections stay in the backlog.  Does not
 * close fd.  Safe to call twice.  Connections still open may go on
 * logging through the listener and must still be reported closed.
 */
void listener_fini (struct listener *l);
/* A connection handed out by accept has closed. */
void listener_conn_closed (struct listener *l);

/* In the accept callback only: take the new connection's peer (NULL
 * when it is not a TCP peer), so that it counts against its address's
 * limit until listener_peer_closed (l, peer) reports it gone (in place
 * of listener_conn_closed).  A peer not taken stops counting the
 * connection when the callback returns: per-address limits apply to
 * the callers that take their peers.
 */
struct listener_peer *listener_take_peer (struct listener *l);
/* A connection whose peer was taken (or NULL: as listener_conn_closed). */
void listener_peer_closed (struct listener *l, struct listener_peer *p);

/* The key peer lines are rate-limited by: the address, or "local". */
const char *listener_peer_key (const struct listener_peer *p);

#endif
