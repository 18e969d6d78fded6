/* conn.c - framed nonblocking stream connections (see conn.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "core/conn.h"
#include "core/ratelimit.h"
#include "core/util.h"

#define IBUF_SIZE   (256 * 1024)
#define DIRECT_MIN  (64 * 1024)    /* read bulk payloads straight to the caller */
#define IOV_BATCH   64
#define TLS_RECORD  16384          /* GnuTLS's largest record payload */

struct conn_out {
  struct conn_out *next;
  char hdr[CONN_HDR_MAX];
  size_t hdr_len;
  const char *payload;
  size_t payload_len;
  size_t sent;                  /* of hdr_len + payload_len */
  conn_sent_cb done;
  void *opaque;
};

static void conn_ready (struct loop_watch *w, uint32_t revents);
static void do_read (struct conn *c);
static void conn_flush (struct loop_defer *d);

struct conn *
conn_new (struct loop *loop, int fd, const char *name,
          conn_close_cb on_close, void *opaque)
{
  struct conn *c = calloc (1, sizeof *c);

  if (!c)
    return NULL;
  c->ibuf = malloc (IBUF_SIZE);
  if (!c->ibuf) {
    free (c);
    return NULL;
  }
  c->ibuf_cap = IBUF_SIZE;
  c->loop = loop;
  c->fd = fd;
  c->on_close = on_close;
  c->opaque = opaque;
  c->refs = 1;
  snprintf (c->name, sizeof c->name, "%s", name);
  set_nonblock (fd);
  if (loop_add (loop, &c->watch, fd, 0, conn_ready, c) == -1) {
    free (c->ibuf);
    free (c);
    return NULL;
  }
  return c;
}

void
conn_get (struct conn *c)
{
  c->refs++;
}

/* Every send is one conn_out, kept once sent for the next sends (a
 * busy connection would otherwise pay malloc and free per request).
 */
#define OUT_FREE_MAX 64

static struct conn_out *
out_get (struct conn *c)
{
  c->out_free.max = OUT_FREE_MAX;
  return freelist_get (&c->out_free, sizeof (struct conn_out));
}

static void
out_put (struct conn *c, struct conn_out *o)
{
  freelist_put (&c->out_free, o);
}

static void
conn_free (struct conn *c)
{
  freelist_fini (&c->out_free);
  tls_session_free (c->tls);
  tls_creds_free (c->tls_creds);        /* a handshake that never finished */
  free (c->tls_stage);
  free (c->ibuf);
  free (c);
}

static void
conn_free_deferred (struct loop_defer *d)
{
  conn_free (d->opaque);
}

void
conn_put (struct conn *c)
{
  if (--c->refs > 0)
    return;
  /* The loop may still hold this conn's watch in the current epoll
   * batch, and the flush defer may be queued: free after both.
   */
  loop_defer (c->loop, &c->reap, conn_free_deferred, c);
}

static void
update_events (struct conn *c)
{
  uint32_t ev = 0;

  if (c->closed)
    return;
  if (c->tls_handshaking)
    ev = c->tls && tls_wants_write (c->tls) ? EPOLLOUT : EPOLLIN;
  if (c->want_cb)
    ev |= EPOLLIN;
  if (c->out_head)
    ev |= EPOLLOUT;
  loop_mod (c->loop, &c->watch, ev);
}

void
conn_close (struct conn *c, const char *fmt, ...)
{
  struct conn_out *o;

  if (c->closed)
    return;
  if (fmt) {
    char why[512];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (why, sizeof why, fmt, ap);
    va_end (ap);
    if (c->log_limit)
      ratelimit_warn (c->log_limit, c->log_key, "%s: closing connection: %s",
                      c->name, why);
    else
      log_warn ("%s: closing connection: %s", c->name, why);
  }
  c->closed = true;
  c->want_cb = NULL;
  c->tls_handshaking = false;
  loop_timer_cancel (c->loop, &c->stall_timer);
  loop_del (c->loop, &c->watch);
  tls_session_free (c->tls);    /* its close_notify before the close */
  c->tls = NULL;
  close (c->fd);
  c->fd = -1;

  conn_get (c);
  while ((o = c->out_head) != NULL) {
    c->out_head = o->next;
    if (o->done)
      o->done (o->opaque, ECONNRESET);
    out_put (c, o);
  }
  c->out_tail = NULL;
  c->out_bytes = 0;
  if (c->on_close)
    c->on_close (c, c->opaque);
  conn_put (c);                 /* ours */
  conn_put (c);                 /* the reference conn_new gave the owner */
}

/* Deliver buffered bytes to the current expectation; call callbacks as
 * expectations complete.  Returns when input is exhausted or nobody is
 * waiting.
 */
static void
deliver (struct conn *c)
{
  while (c->want_cb && !c->closed) {
    size_t avail = c->ibuf_len - c->ibuf_pos;
    size_t need = c->want_len - c->want_got;
    size_t n = MIN (avail, need);

    if (n) {
      memcpy (c->want_buf + c->want_got, c->ibuf + c->ibuf_pos, n);
      c->want_got += n;
      c->ibuf_pos += n;
    }
    if (c->want_got < c->want_len)
      return;                   /* need more from the socket */

    conn_read_cb cb = c->want_cb;
    c->want_cb = NULL;
    c->got_frame = true;
    cb (c, c->want_opaque);     /* may set the next expectation */
  }
}

void
conn_expect (struct conn *c, void *buf, size_t len, conn_read_cb cb,
             void *opaque)
{
  if (c->closed)
    return;
  c->want_buf = buf;
  c->want_len = len;
  c->want_got = 0;
  c->want_cb = cb;
  c->want_opaque = opaque;
  /* If called from outside a read callback (back-pressure released),
   * buffered bytes may already satisfy it.
   */
  if (!c->in_callback) {
    conn_get (c);
    c->in_callback = true;
    deliver (c);
    /* Decrypted bytes GnuTLS holds are invisible to epoll: read them. */
    if (c->tls && c->want_cb && tls_pending (c->tls))
      do_read (c);
    c->in_callback = false;
    update_events (c);
    conn_put (c);
  }
}

/* read() or a TLS record: a count, 0 at the end, or a negative errno. */
static ssize_t
sock_read (struct conn *c, void *buf, size_t len)
{
  ssize_t r;

  if (c->tls)
    return tls_recv (c->tls, buf, len);
  r = read (c->fd, buf, len);
  return r >= 0 ? r : -errno;
}

static void
do_read (struct conn *c)
{
  /* A read that returns less than it asked for has emptied the socket:
   * stop there instead of paying for a read that says EAGAIN (the
   * level-triggered watch calls again when more arrives).  Not so with
   * TLS, where one read returns one record and GnuTLS may hold more.
   */
  bool drained = false;

  for (;;) {
    ssize_t r;
    size_t ask;

    deliver (c);
    if (c->closed || !c->want_cb || drained)
      return;

    size_t need = c->want_len - c->want_got;
    if (c->ibuf_pos == c->ibuf_len && need >= DIRECT_MIN) {
      /* Bulk payload: straight into the caller's buffer. */
      c->ibuf_pos = c->ibuf_len = 0;
      r = sock_read (c, c->want_buf + c->want_got, ask = need);
      if (r > 0) {
        c->last_rx_ns = now_ns ();
        c->want_got += r;
        drained = !c->tls && (size_t) r < ask;
        continue;
      }
    }
    else {
      if (c->ibuf_pos == c->ibuf_len)
        c->ibuf_pos = c->ibuf_len = 0;
      else if (c->ibuf_pos > 0) {
        memmove (c->ibuf, c->ibuf + c->ibuf_pos, c->ibuf_len - c->ibuf_pos);
        c->ibuf_len -= c->ibuf_pos;
        c->ibuf_pos = 0;
      }
      ask = c->ibuf_cap - c->ibuf_len;
      r = sock_read (c, c->ibuf + c->ibuf_len, ask);
      if (r > 0) {
        c->last_rx_ns = now_ns ();
        c->ibuf_len += r;
        drained = !c->tls && (size_t) r < ask;
        continue;
      }
    }
    if (r == 0) {
      if (c->want_got > 0 || c->ibuf_pos < c->ibuf_len)
        conn_close (c, "peer closed in the middle of a frame");
      else
        conn_close (c, NULL);
      return;
    }
    if (r == -EAGAIN || r == -EWOULDBLOCK)
      return;
    if (r == -EINTR)
      continue;
    if (r == -ECONNRESET)
      conn_close (c, NULL);
    else if (c->tls)
      conn_close (c, "TLS: %s", tls_last_error (c->tls));
    else
      conn_close (c, "read: %s", strerror ((int) -r));
    return;
  }
}

/* r bytes of the queue have left: complete what they finish.  false if
 * a done callback closed the connection.
 */
static bool
out_consume (struct conn *c, size_t r)
{
  c->out_bytes -= r;
  c->last_tx_ns = now_ns ();
  while (r > 0) {
    struct conn_out *o = c->out_head;
    size_t left = o->hdr_len + o->payload_len - o->sent;
    if (r < left) {
      o->sent += r;
      break;
    }
    r -= left;
    c->out_head = o->next;
    if (!c->out_head)
      c->out_tail = NULL;
    if (o->done)
      o->done (o->opaque, 0);
    out_put (c, o);
    if (c->closed)              /* the callback closed us */
      return false;
  }
  return true;
}

/* The next TLS record: a large payload in place, or headers and small
 * payloads gathered into one stage buffer (a record per piece would cost
 * a record's overhead and an AEAD pass per 32-byte header).  Set once
 * and kept until GnuTLS takes it, since after -EAGAIN the same buffer
 * and length must be offered again.
 */
static int
tls_next_record (struct conn *c)
{
  struct conn_out *o = c->out_head;
  size_t off = o->sent;

  if (off >= o->hdr_len && o->payload_len - (off - o->hdr_len) >= TLS_RECORD) {
    c->tls_direct = o->payload + (off - o->hdr_len);
    c->tls_direct_len = TLS_RECORD;
    return 0;
  }
  if (!c->tls_stage && (c->tls_stage = malloc (TLS_RECORD)) == NULL)
    return -ENOMEM;
  for (; o && c->tls_stage_len < TLS_RECORD; o = o->next, off = 0) {
    size_t total = o->hdr_len + o->payload_len;
    while (off < total && c->tls_stage_len < TLS_RECORD) {
      const char *p = off < o->hdr_len ? o->hdr + off :
        o->payload + (off - o->hdr_len);
      size_t n = off < o->hdr_len ? o->hdr_len - off : total - off;
      n = MIN (n, TLS_RECORD - c->tls_stage_len);
      memcpy (c->tls_stage + c->tls_stage_len, p, n);
      c->tls_stage_len += n;
      off += n;
    }
  }
  return 0;
}

static void
do_write_tls (struct conn *c)
{
  while (c->out_head && !c->closed) {
    ssize_t r;

    if (!c->tls_direct_len && !c->tls_stage_len &&
        tls_next_record (c) < 0) {
      conn_close (c, "out of memory");
      return;
    }
    if (c->tls_direct_len)
      r = tls_send (c->tls, c->tls_direct, c->tls_direct_len);
    else
      r = tls_send (c->tls, c->tls_stage, c->tls_stage_len);
    if (r == -EAGAIN)
      return;
    if (r < 0) {
      if (r == -ECONNRESET || r == -EPIPE)
        conn_close (c, NULL);
      else
        conn_close (c, "TLS: %s", tls_last_error (c->tls));
      return;
    }
    c->tls_direct_len = c->tls_stage_len = 0;
    if (!out_consume (c, r))
      return;
  }
}

static void
do_write (struct conn *c)
{
  if (c->tls) {
    do_write_tls (c);
    return;
  }
  while (c->out_head && !c->closed) {
    struct iovec iov[IOV_BATCH * 2];
    int n = 0;
    ssize_t r;

    for (struct conn_out *o = c->out_head; o && n < IOV_BATCH * 2 - 1;
         o = o->next) {
      size_t off = o->sent;
      if (off < o->hdr_len) {
        iov[n++] = (struct iovec) { o->hdr + off, o->hdr_len - off };
        off = o->hdr_len;
      }
      if (o->payload_len && off < o->hdr_len + o->payload_len)
        iov[n++] = (struct iovec) {
          (void *) (o->payload + (off - o->hdr_len)),
          o->hdr_len + o->payload_len - off
        };
    }
    r = writev (c->fd, iov, n);
    if (r == -1) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      if (errno == EINTR)
        continue;
      /* A peer that went away is not worth a warning. */
      if (errno == EPIPE || errno == ECONNRESET)
        conn_close (c, NULL);
      else
        conn_close (c, "write: %s", strerror (errno));
      return;
    }
    if (!out_consume (c, r))
      return;
  }
}

/* The stall and idle timeouts share one timer, every quarter of the
 * shorter.
 */
static unsigned
check_period (const struct conn *c)
{
  unsigned ms = c->stall_ms;

  if (c->idle_ms && (!ms || c->idle_ms < ms))
    ms = c->idle_ms;
  return MAX (ms / 4, 1u);
}

static bool
idle_expired (struct conn *c, uint64_t now)
{
  uint64_t last = MAX (c->last_rx_ns, c->last_tx_ns);

  if (!c->idle_ms || now - last < c->idle_ms * 1000000ull)
    return false;
  return c->out_head || !c->idle_busy || !c->idle_busy (c, c->opaque);
}

static void
timeout_check (struct loop_timer *t)
{
  struct conn *c = t->opaque;
  uint64_t now = now_ns ();
  bool mid_frame = c->tls_handshaking || (c->want_cb &&
    (!c->got_frame || c->want_got > 0 || c->ibuf_pos < c->ibuf_len));

  if (c->stall_ms && mid_frame &&
      now - c->last_rx_ns >= c->stall_ms * 1000000ull) {
    conn_close (c, "%s stalled for %u ms", c->tls_handshaking ?
                "TLS handshake" : c->got_frame ? "frame" : "handshake",
                c->stall_ms);
    return;
  }
  if (idle_expired (c, now)) {
    conn_close (c, "idle for %u ms%s", c->idle_ms,
                c->out_head ? " (the peer is not reading)" : "");
    return;
  }
  loop_timer_arm (c->loop, t, check_period (c), timeout_check, c);
}

/* (Re)start the shared timer, or stop it when neither timeout is set. */
static void
timeouts_changed (struct conn *c)
{
  if ((!c->stall_ms && !c->idle_ms) || c->closed) {
    loop_timer_cancel (c->loop, &c->stall_timer);
    return;
  }
  loop_timer_arm (c->loop, &c->stall_timer, check_period (c), timeout_check,
                  c);
}

void
conn_set_stall_timeout (struct conn *c, unsigned ms)
{
  c->stall_ms = ms;
  c->last_rx_ns = now_ns ();
  timeouts_changed (c);
}

void
conn_set_idle_timeout (struct conn *c, unsigned ms, conn_busy_cb busy)
{
  c->idle_ms = ms;
  c->idle_busy = busy;
  c->last_rx_ns = c->last_tx_ns = now_ns ();
  timeouts_changed (c);
}

void
conn_set_log_limit (struct conn *c, struct ratelimit *rl, const char *key)
{
  c->log_limit = rl;
  snprintf (c->log_key, sizeof c->log_key, "%s", key);
}

static void
conn_flush (struct loop_defer *d)
{
  struct conn *c = d->opaque;

  if (c->closed)
    return;
  conn_get (c);
  do_write (c);
  update_events (c);
  conn_put (c);
}

void
conn_send (struct conn *c, const void *hdr, size_t hdr_len,
           const void *payload, size_t payload_len,
           conn_sent_cb done, void *opaque)
{
  struct conn_out *o;

  if (hdr_len + payload_len == 0) {    /* nothing to write: done now */
    if (done)
      done (opaque, c->closed ? ECONNRESET : 0);
    return;
  }
  if (c->closed || hdr_len > CONN_HDR_MAX || (o = out_get (c)) == NULL) {
    if (done)
      done (opaque, c->closed ? ECONNRESET : ENOMEM);
    return;
  }
  if (hdr_len)
    memcpy (o->hdr, hdr, hdr_len);
  o->hdr_len = hdr_len;
  o->payload = payload;
  o->payload_len = payload_len;
  o->sent = 0;
  o->done = done;
  o->opaque = opaque;
  o->next = NULL;
  if (c->out_tail)
    c->out_tail->next = o;
  else
    c->out_head = o;
  c->out_tail = o;
  c->out_bytes += hdr_len + payload_len;
  /* Leave at the end of this loop iteration, batched with the rest. */
  loop_defer (c->loop, &c->flush, conn_flush, c);
}

/* ---- TLS handshake (server side) -------------------------------------- */

static void
tls_finish (struct conn *c, int err, const char *why)
{
  c->tls_handshaking = false;
  tls_creds_free (c->tls_creds);
  c->tls_creds = NULL;
  if (err < 0) {
    tls_session_free (c->tls);
    c->tls = NULL;
  }
  c->tls_done (c, err, why, c->tls_opaque);
}

static void
tls_step (struct conn *c)
{
  struct error err = { 0 };
  int r;

  if (!c->tls) {
    /* The first byte says whether the peer speaks TLS at all. */
    unsigned char b;
    ssize_t n = recv (c->fd, &b, 1, MSG_PEEK);
    if (n == 0) {
      conn_close (c, NULL);
      return;
    }
    if (n == -1) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        conn_close (c, errno == ECONNRESET ? NULL : "read: %s",
                    strerror (errno));
      return;
    }
    c->last_rx_ns = now_ns ();
    if (b != TLS_RECORD_HANDSHAKE) {
      tls_finish (c, -EPROTONOSUPPORT, "the client does not use TLS");
      return;
    }
    if ((r = tls_session_new (&c->tls, c->tls_creds, c->fd, NULL,
                              &err)) < 0) {
      tls_finish (c, r, error_msg (&err));
      return;
    }
  }
  r = tls_handshake_step (c->tls, &err);
  c->last_rx_ns = now_ns ();
  if (r == -EAGAIN)
    return;
  tls_finish (c, r, r < 0 ? error_msg (&err) : NULL);
  /* The first record may have come with the handshake's last one and
   * wait inside GnuTLS, where epoll cannot see it.
   */
  if (!c->closed && c->tls && c->want_cb && tls_pending (c->tls))
    do_read (c);
}

void
conn_start_tls (struct conn *c, struct tls_creds *creds, conn_tls_cb done,
                void *opaque)
{
  if (c->closed)
    return;
  c->tls_done = done;
  c->tls_opaque = opaque;
  c->want_cb = NULL;
  if (c->ibuf_pos < c->ibuf_len) {
    done (c, -EPROTO, "data arrived before the TLS handshake", opaque);
    return;
  }
  c->tls_creds = tls_creds_ref (creds);
  c->tls_handshaking = true;
  c->last_rx_ns = now_ns ();
  update_events (c);
}

void
conn_adopt_tls (struct conn *c, struct tls_session *s)
{
  c->tls = s;
}

const char *
conn_peer_id (const struct conn *c)
{
  return c->tls ? tls_peer_id (c->tls) : NULL;
}

static void
conn_ready (struct loop_watch *w, uint32_t revents)
{
  struct conn *c = w->opaque;

  conn_get (c);
  c->in_callback = true;
  if (c->tls_handshaking)
    tls_step (c);
  else if (revents & (EPOLLIN | EPOLLERR | EPOLLHUP))
    do_read (c);
  if (!c->closed && (revents & EPOLLOUT))
    do_write (c);
  if (!c->closed && (revents & (EPOLLERR | EPOLLHUP)) && !c->want_cb)
    conn_close (c, NULL);
  c->in_callback = false;
  update_events (c);
  conn_put (c);
}
