/* conn.h - a nonblocking, framed stream connection on the event loop.
 *
 * Shared by the NBD frontend, the replica server and the replica client:
 * each is a small state machine that says "give me the next N bytes in
 * this buffer, then call me" (conn_expect) and "send this header and
 * payload, then tell me" (conn_send).  conn hides partial reads, partial
 * writes, batching of replies into one writev per loop iteration, and
 * tear-down.
 *
 * Reads: small expectations are served from an internal buffer filled
 * with large read()s; large ones (bulk payloads) are read straight into
 * the caller's buffer.  While no expectation is set the connection stops
 * reading, which is how callers apply back-pressure.
 *
 * Writes: conn_send copies the header (at most CONN_HDR_MAX bytes) and
 * references the payload, which must stay valid until the done callback
 * runs.  Queued data leaves at the end of the loop iteration.
 *
 * TLS: after conn_start_tls (a server's handshake, run on the loop) or
 * conn_adopt_tls (a session a client set up before), the same calls
 * move TLS records instead of bytes; callers see no difference.
 */
#ifndef REPVOL_CONN_H
#define REPVOL_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "core/freelist.h"
#include "core/loop.h"
#include "core/tls.h"

#define CONN_HDR_MAX 128

struct conn;
struct conn_out;

typedef void (*conn_read_cb) (struct conn *c, void *opaque);
typedef void (*conn_sent_cb) (void *opaque, int err);
typedef void (*conn_close_cb) (struct conn *c, void *opaque);
/* The end of conn_start_tls: err 0 (the peer is tls_peer_id), or a
 * negative errno with why; -EPROTONOSUPPORT when the peer's first byte
 * was not TLS (the connection stays usable in plaintext, so a server
 * can say in its own protocol that TLS is required).
 */
typedef void (*conn_tls_cb) (struct conn *c, int err, const char *why,
                             void *opaque);
typedef bool (*conn_busy_cb) (struct conn *c, void *opaque);
struct ratelimit;

struct conn {
  struct loop *loop;
  struct loop_watch watch;
  struct loop_defer flush;       /* batched writev at end of iteration */
  struct loop_defer reap;        /* free after the current epoll batch */
  int fd;
  char name[96];                /* for log lines: peer or role */

  /* input */
  char *ibuf;
  size_t ibuf_len, ibuf_pos, ibuf_cap;
  char *want_buf;               /* where the expected bytes go */
  size_t want_len, want_got;
  conn_read_cb want_cb;
  void *want_opaque;

  /* output */
  struct conn_out *out_head, *out_tail;
  size_t out_bytes;             /* queued, for back-pressure decisions */
  struct freelist out_free;     /* sent ones kept for the next sends */

  /* stall and idle detection (conn_set_stall_timeout, _idle_timeout) */
  unsigned stall_ms;
  uint64_t last_rx_ns;
  bool got_frame;
  struct loop_timer stall_timer;
  unsigned idle_ms;
  uint64_t last_tx_ns;
  conn_busy_cb idle_busy;

  /* where conn_close's reason is logged (conn_set_log_limit) */
  struct ratelimit *log_limit;
  char log_key[48];

  /* TLS */
  struct tls_session *tls;      /* owned; NULL: plaintext */
  struct tls_creds *tls_creds;  /* for the handshake (a reference) */
  bool tls_handshaking;
  conn_tls_cb tls_done;
  void *tls_opaque;
  char *tls_stage;              /* small sends gathered into one record */
  size_t tls_stage_len;         /* > 0: a tls_send of it to repeat */
  const char *tls_direct;       /* a large payload sent in place... */
  size_t tls_direct_len;        /* ...and the length to repeat */

  conn_close_cb on_close;
  void *opaque;
  bool closed;
  bool in_callback;             /* free deferred until callbacks unwind */
  bool free_pending;
  int refs;
};

/* Adopt fd (made nonblocking).  on_close runs once when the connection
 * ends for any reason (peer closed, error, conn_close).
 */
struct conn *conn_new (struct loop *loop, int fd, const char *name,
                       conn_close_cb on_close, void *opaque);

/* Expect exactly len bytes into buf; cb runs when they have arrived.
 * Call it again from cb for the next frame.  len 0 calls cb at once.
 */
void conn_expect (struct conn *c, void *buf, size_t len, conn_read_cb cb,
                  void *opaque);

/* Queue hdr (copied) followed by payload (referenced).  done (may be
 * NULL) runs with err 0 once written, or with an errno when the
 * connection closes first.
 */
void conn_send (struct conn *c, const void *hdr, size_t hdr_len,
                const void *payload, size_t payload_len,
                conn_sent_cb done, void *opaque);

/* Servers: close the connection when a frame stalls, that is when part
 * of it has arrived (or the peer has not completed its first frame yet)
 * and nothing more arrives for ms milliseconds.  Idle time between
 * frames is not limited.  Without this, a peer that announces a payload
 * and never sends it would hold its buffers forever.
 */
void conn_set_stall_timeout (struct conn *c, unsigned ms);

/* Server side: run a TLS handshake with creds on the loop, then call
 * done.  No expectation may be set meanwhile.  Bytes already buffered
 * (sent before the handshake) fail it: after NBD's STARTTLS nothing may
 * arrive in plaintext.
 */
void conn_start_tls (struct conn *c, struct tls_creds *creds,
                     conn_tls_cb done, void *opaque);
/* Client side: from now on, talk through s (handshake done; owned). */
void conn_adopt_tls (struct conn *c, struct tls_session *s);
/* The peer's TLS identity, or NULL on a plaintext connection. */
const char *conn_peer_id (const struct conn *c);
/* Servers: close the connection once it has been idle for ms
 * milliseconds: nothing received and nothing sent, while the owner has
 * no work in progress for it (busy, called with the owner's opaque, may
 * be NULL: never busy).  Queued output that does not move for ms (a peer
 * that stopped reading) counts as idle even while busy.  Before the
 * first frame this bounds the handshake too, together with the stall
 * timeout.  0 turns it off.
 */
void conn_set_idle_timeout (struct conn *c, unsigned ms, conn_busy_cb busy);

/* Log conn_close's reasons through rl under key (the peer's address),
 * so that a peer that makes us close its connections again and again
 * gets one line per interval (core/ratelimit.h).  rl must outlive c.
 */
void conn_set_log_limit (struct conn *c, struct ratelimit *rl,
                         const char *key);

/* Close with a reason that is logged (NULL: quiet).  Queued sends fail
 * with ECONNRESET; on_close runs; the conn is freed once no callback is
 * running.
 */
void conn_close (struct conn *c, const char *reason_fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* Keep the struct alive across a callback that may close it. */
void conn_get (struct conn *c);
void conn_put (struct conn *c);

#endif
