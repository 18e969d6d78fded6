/* server_internal.h - what the two halves of the replica server share:
 * server.c (connections, HELLO and epoch fencing, reading requests,
 * replies, shutdown) and server_io.c (carrying out a request against the
 * store).  Not for use outside replica/server*.c.
 */
#ifndef REPVOL_REPLICA_SERVER_INTERNAL_H
#define REPVOL_REPLICA_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bdev.h"
#include "core/conn.h"
#include "core/listener.h"
#include "core/loop.h"
#include "core/tls.h"
#include "metrics/metrics.h"
#include "replica/proto.h"
#include "replica/server.h"
#include "store/store.h"

#define ID_BUCKETS         256
#define RS_MAX_CONN_BYTES  (64u << 20)  /* buffers held per connection */

struct rs_conn;

/* Why a HELLO or a request was refused (repvold_refused_total). */
enum rs_refusal {
  RS_REFUSE_BAD_FRAME,          /* undecodable, out of range, duplicate id */
  RS_REFUSE_CRC,                /* payload checksum mismatch */
  RS_REFUSE_AUTH,               /* identity not in --admins, read-only admin */
  RS_REFUSE_TLS,                /* plaintext HELLO to a TLS-only server */
  RS_REFUSE_EPOCH,              /* HELLO epoch below the stored one, or too far above */
  RS_REFUSE_FENCED,             /* request on a connection a newer epoch fenced */
  RS_REFUSE_BUSY,               /* admin command on a volume an attach uses */
  RS_REFUSE_COUNT
};

/* The process's series (server_metrics.c); all NULL without --metrics. */
struct rs_metrics {
  struct metrics *m;
  struct metric *accepted, *open, *limit_refused, *tls_failed;
  struct metric *refused[RS_REFUSE_COUNT];
  struct loop_timer timer;      /* copies the listener's refusals */
};

/* A connection's volume's series, bound once it names a volume held
 * here.
 */
struct rs_vol_metrics {
  bool bound;
  bool counted;                 /* in conns */
  struct metrics_io io;
  struct metric *conns, *epoch;
  struct metric *refused[RS_REFUSE_COUNT];
};

/* One request, from its header until its reply has been written (or the
 * connection is gone).
 */
struct rs_req {
  struct rs_conn *rc;
  struct rv_req req;
  struct bdev_io io;
  void *buf;
  size_t buf_cap;               /* buf's size (a reused one's may be more) */
  void *spare;                  /* a reused request's buffer, not taken yet */
  size_t spare_cap;
  size_t buflen;                /* counted in rc->bytes */
  uint32_t pre_status;          /* reply this without executing */
  uint64_t start_ns;            /* dispatched to the store (metrics) */
  uint64_t old_size;            /* RESIZE: the volume's size before */
  struct rs_req *hnext;         /* id table chain */
};

struct rs_conn {
  struct replica_server *srv;
  struct rs_conn *prev, *next;
  struct conn *c;
  struct listener_peer *peer;   /* counted by the listener; NULL: none */
  int refs;                     /* 1 while open + 1 per request */
  bool closed;
  bool paused;                  /* no expectation set: back-pressure */
  bool admin;
  bool tls_refused;             /* plaintext HELLO to a TLS-only server */
  bool may_admin;               /* the identity is one of --admins */
  char peer_id[TLS_ID_MAX];     /* TLS identity; "" in plaintext */
  uint64_t epoch;
  char volname[RV_NAME_MAX];
  struct store_vol *vol;        /* referenced, or NULL */
  const char *close_why;        /* close once the WELCOME is out */
  unsigned inflight;
  size_t bytes;
  uint8_t hello[RV_HELLO_SIZE];
  uint8_t welcome[RV_WELCOME_SIZE];   /* larger than CONN_HDR_MAX: payload */
  uint8_t hdr[RV_REQ_SIZE];
  struct rs_req *pending;       /* waiting for its payload */
  struct rs_req *ids[ID_BUCKETS];
  struct rs_vol_metrics vm;
};

struct replica_server {
  struct loop *loop;
  struct store *store;
  int lfd;                      /* the listening socket, ours; -1 once closed */
  struct listener listener;
  char name[RV_NAME_MAX];
  char zone[RV_NAME_MAX];
  unsigned stall_ms;
  struct tls_creds *tls;        /* TLS only, with these; not owned */
  char **admins;                /* identities allowed admin work; NULL: all */
  unsigned nadmins;
  unsigned idle_ms;             /* 0: connections may idle forever */
  struct rs_metrics mx;
  struct rs_conn *conns;
  unsigned nconns;              /* in conns: open, or finishing requests */
  struct rs_req *req_cache;     /* finished requests, for reuse */
  unsigned nreq_cache;
  size_t req_cache_bytes;       /* their buffers' sizes */
  /* shutdown */
  bool stopping;
  struct loop_timer stop_timer;
  void (*stop_done) (void *);
  void *stop_opaque;
};

/* server.c */
/* log_warn about what the peer did, rate-limited per source address
 * with everything else the listener logs about it.
 */
void rs_conn_warn (struct rs_conn *rc, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
/* The volume this connection works on now (NULL: none). */
struct store_vol *rs_conn_vol (struct rs_conn *rc);
/* Answer req (payload only with RV_OK) and free it once sent. */
void rs_reply (struct rs_req *req, uint32_t status, const void *payload,
               uint32_t len);

/* server_metrics.c */
/* Find v's series for rc (once; a no-op without metrics). */
void rs_metrics_bind (struct rs_conn *rc, struct store_vol *v);
/* The volume's epoch gauge from its metadata now. */
void rs_metrics_epoch (struct rs_conn *rc, struct store_vol *v);
/* A data connection starts (+1) or stops (-1) using its volume. */
void rs_metrics_conn (struct rs_conn *rc, int delta);
/* Count a refusal, in the process's and the volume's series. */
void rs_refused (struct rs_conn *rc, enum rs_refusal why);
void rs_metrics_fini (struct replica_server *srv);

/* server_reqs.c */
/* A zeroed request (NULL: out of memory); its buffer of at least n
 * bytes, 4096-aligned, into req->buf (0, or -1 out of memory); and back
 * once it is over, buffer and all.
 */
struct rs_req *rs_req_get (struct replica_server *srv);
int rs_req_buf (struct rs_req *req, size_t n);
void rs_req_put (struct replica_server *srv, struct rs_req *req);
void rs_req_cache_free (struct replica_server *srv);

/* server_io.c */
/* Carry out a request whose header (and payload) checked out; it ends
 * with rs_reply, now or when its I/O completes.
 */
void rs_dispatch (struct rs_req *req);

#endif
