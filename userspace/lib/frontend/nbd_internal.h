/* nbd_internal.h - what the parts of the NBD server share: nbd.c (the
 * server, its clients, the transmission phase), nbd_listen.c (its
 * listening socket) and nbd_handshake.c (the option negotiation).  Only for
 * frontend/nbd*.c; everyone else uses nbd.h or the frontend ops.
 */
#ifndef REPVOL_NBD_INTERNAL_H
#define REPVOL_NBD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/conn.h"
#include "core/listener.h"
#include "core/loop.h"
#include "core/bdev.h"
#include "frontend/frontend.h"
#include "frontend/nbd.h"
#include "frontend/nbd_proto.h"

#define NBD_MAX_CLIENTS         1024    /* per export, the listener's limit */
/* Largest READ/WRITE payload from a client that did not negotiate block
 * sizes (the spec asks for at least 32 MiB; such requests go in pieces
 * of the bdev's max_io).
 */
#define NBD_LOOSE_MAX_PAYLOAD   (64u << 20)
#define NBD_SLOW_PIECES         4       /* pieces of one slow request in flight */

struct nbd_slow;                /* the slow path's state (nbd_unaligned.c) */

/* One request in flight. */
struct nbd_req {
  struct bdev_io io;
  struct nbd_client *cl;
  struct nbd_request rq;
  uint32_t err;                 /* NBD error for the reply */
  uint64_t done_bytes;          /* TRIM / WRITE_ZEROES split progress */
  void *buf;
  size_t buf_len;
  size_t buf_cap;               /* buf's size (a reused request's may be more) */
  void *payload;                /* a READ reply's data (NULL: buf) */
  /* Ordering against read-modify-writes (nbd_unaligned.c): every write,
   * trim and write-zeroes is in the server's active list while it runs.
   */
  bool ordered, rmw;
  uint64_t lo, hi;              /* the blocks it covers */
  struct nbd_req *ord_prev, *ord_next;
  struct nbd_slow *slow;        /* NULL: the aligned fast path */
};

struct nbd_client {
  struct nbd_server *srv;
  struct nbd_client *next;
  struct conn *conn;            /* NULL once the connection has closed */
  char name[96];                /* "nbd client N (ADDR:PORT)" */
  struct loop_timer handshake_timer;
  bool accepted;                /* by s->listener, which counts it */
  struct listener_peer *peer;   /* its address there (NULL: not TCP) */

  bool transmission;            /* past GO / EXPORT_NAME */
  bool sizes_agreed;            /* GO asked for NBD_INFO_BLOCK_SIZE (or the
                                   kernel, which knows them): aligned only */
  struct nbd_export exp;        /* what its requests are checked against */
  bool structured;              /* NBD_OPT_STRUCTURED_REPLY negotiated */
  bool no_zeroes;               /* NBD_FLAG_C_NO_ZEROES */
  bool tls;                     /* STARTTLS done: the options go on in TLS */
  bool expecting;               /* a conn_expect is outstanding */
  bool draining;                /* DISC, ABORT or stop: no new requests;
                                   close once inflight reaches 0 */
  bool warned;                  /* one warning per connection for bad requests */
  unsigned n_options;

  unsigned inflight;            /* requests allocated and not yet freed */
  size_t inflight_bytes;
  struct nbd_req *receiving;    /* WRITE whose payload is being read */

  /* Input frames land here. */
  char hdr[NBD_REQUEST_LEN];
  struct nbd_option_hdr opt;
  char optbuf[NBD_MAX_OPTION_LEN];
};

struct nbd_server {
  struct frontend *fe;
  struct loop *loop;
  struct bdev *dev;
  struct nbd_export exp;
  uint32_t max_io;              /* bdev's largest request */
  char description[128];

  int listen_fd;
  struct listener listener;
  char label[80];               /* the listener's log label: "nbd: VOL" */
  char *unix_path;              /* unlinked on stop if still ours */
  dev_t unix_dev;
  ino_t unix_ino;
  bool is_tcp;
  struct tls_creds *tls;        /* TCP with TLS required (f->tls); NULL: plaintext */

  struct nbd_client *clients;
  unsigned nclients;
  /* Writes in flight and writes waiting for an overlapping
   * read-modify-write (or waiting ones) to finish (nbd_unaligned.c).
   */
  struct nbd_req *ord_active, *ord_wait_head, *ord_wait_tail;
  unsigned ord_rmw;             /* read-modify-writes in ord_active */
  bool ord_releasing, ord_again;
  uint64_t next_id;
  struct loop_defer kick;
  struct nbd_req *req_cache;    /* finished requests and their buffers */
  unsigned nreq_cache;
  size_t req_cache_bytes;       /* their buffers' sizes */

  bool stopping;
  struct loop_timer stop_timer;
  void (*stopped) (void *opaque);
  void *stopped_opaque;
};

/* nbd.c: queue the deferred work (closing drained connections,
 * resuming reads, freeing clients, reporting stopped) for the end of
 * this loop iteration.
 */
void nbd_kick (struct nbd_server *s);
/* nbd.c: the handshake is over (or there was none): read requests. */
void nbd_enter_transmission (struct nbd_client *cl);

/* nbd.c: reply to r (r->err says how it went), then free it. */
void nbd_req_reply (struct nbd_req *r);
/* nbd.c: submit r, whose turn it is (ordered, or not a write). */
void nbd_req_start (struct nbd_req *r);

/* nbd_unaligned.c: requests from clients that did not negotiate block
 * sizes.  nbd_slow_buf_len: the buffer a checked request rq needs
 * (len: what the fast path would use).  nbd_slow_prepare decides
 * whether r (checked, not yet submitted) needs the slow path
 * (unaligned, or a READ/WRITE over max_io) and sets it up; 0, or
 * -ENOMEM.  An unaligned TRIM is shrunk to the blocks it covers.
 */
size_t nbd_slow_buf_len (const struct nbd_server *s,
                         const struct nbd_request *rq, size_t len);
int nbd_slow_prepare (struct nbd_server *s, struct nbd_req *r);
void nbd_slow_start (struct nbd_req *r);
void nbd_slow_free (struct nbd_req *r);
/* Ordering (docs/DESIGN.md rule 6): r, a write, trim or write-zeroes,
 * may start now (true; it is in the active list), or waits (false; it
 * is started by nbd_req_start when its turn comes).  nbd_order_leave
 * when it has completed, before its reply.
 */
bool nbd_order_enter (struct nbd_server *s, struct nbd_req *r);
void nbd_order_leave (struct nbd_server *s, struct nbd_req *r);

/* nbd_listen.c: listen on spec (unix:PATH or tcp:ADDR:PORT) and accept
 * through s->listener into on_accept.  0 or a negative errno, after
 * logging why; nbd_server_unlisten undoes a partial success.
 */
int nbd_server_listen (struct nbd_server *s, const char *spec,
                       listener_accept_fn on_accept);
/* nbd_listen.c: stop accepting, close the socket, remove its path. */
void nbd_server_unlisten (struct nbd_server *s);

/* nbd_handshake.c: greet a new connection and negotiate options until
 * GO or EXPORT_NAME, which call nbd_enter_transmission.
 */
void nbd_handshake_start (struct nbd_client *cl);

#endif
