/* listener.h - accepting connections on a listening socket, once for
 * every server: the NBD export, repvold, the attach's control socket.
 *
 * The listener owns the accept loop and its policies, so that they are
 * the same everywhere: accepted sockets are nonblocking and close-on-
 * exec; running out of descriptors or memory pauses accepting for
 * 100 ms instead of spinning on a level-triggered listener; at most 64
 * connections are taken per wakeup, so a flood cannot starve the I/O
 * already in progress; and a limit on open connections (max_conns)
 * refuses a new one by closing it at once, with one log line every
 * 10 s at most, rather than letting it wait unanswered.
 */
#ifndef REPVOL_LISTENER_H
#define REPVOL_LISTENER_H

#include <stdbool.h>
#include <stdint.h>
#include "core/loop.h"

struct listener;

/* A new connection: fd is the caller's from now on.  The caller calls
 * listener_conn_closed() once when it is gone, so it is counted.
 */
typedef void (*listener_accept_fn) (struct listener *l, int fd, void *opaque);

struct listener {
  struct loop *loop;
  int fd;                       /* the listening socket (not owned) */
  const char *what;             /* log label: "nbd", "replica", ... */
  unsigned max_conns;           /* 0: no limit */
  unsigned nconns;              /* accepted and not yet closed */
  bool tcp_nodelay;             /* set TCP_NODELAY on accepted sockets */
  listener_accept_fn accept;
  void *opaque;
  struct loop_watch watch;
  struct loop_timer pause;
  uint64_t refused;             /* connections refused at the limit */
  uint64_t last_refusal_log_ns;
  bool running;
};

/* Watch fd (made nonblocking) for connections.  0 or a negative errno. */
int listener_init (struct listener *l, struct loop *loop, int fd,
                   const char *what, unsigned max_conns,
                   listener_accept_fn accept, void *opaque);
/* Stop accepting; pending connections stay in the backlog.  Does not
 * close fd.  Safe to call twice.
 */
void listener_fini (struct listener *l);
/* A connection handed out by accept has closed. */
void listener_conn_closed (struct listener *l);

#endif
