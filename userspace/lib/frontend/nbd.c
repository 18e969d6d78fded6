/* nbd.c - the NBD socket frontend: serve a bdev to NBD clients over a
 * unix or TCP socket (fio's nbd engine, nbdcopy, qemu, nbd-client).
 *
 * This file is the server and the transmission phase; the handshake
 * before it is nbd_handshake.c, the wire format nbd_proto.c, and what
 * the two halves share nbd_internal.h.  One struct nbd_server per
 * export, one struct nbd_client per connection, one struct nbd_req per
 * request in flight.  All clients share the one bdev.  Everything runs
 * on the event loop; core/listener.c accepts, conn.h does the framing.
 *
 * Life of a connection:
 *   accept (the listener: at most NBD_MAX_CLIENTS at once) -> handshake
 *   (nbd_handshake.c) -> transmission: read a 28-byte request header
 *   (and a WRITE's payload), submit a bdev_io, read the next header
 *   while that runs; reply whenever the bdev completes, so replies
 *   leave in completion order.  At most NBD_MAX_INFLIGHT requests (and
 *   NBD_MAX_INFLIGHT_BYTES of buffers) per connection: beyond that we
 *   stop reading until a reply has gone out, which pushes back on the
 *   client through TCP.
 *
 * A request outlives its connection if it has to: when the peer goes
 * away while the bdev still holds a request, the request is freed when
 * the bdev completes it, and the client struct when the last request
 * is gone.  Work that must not run inside conn or bdev callbacks
 * (closing drained connections, resuming reads, freeing clients,
 * reporting that stop has finished) is done by one deferred "kick".
 *
 * Opening and closing the listening socket is nbd_listen.c.
 *
 * Slightly over 800 lines with the request cache (req_new, req_free);
 * the server's life (start, stop, free) is the seam if it grows more.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "core/util.h"
#include "core/loop.h"
#include "core/conn.h"
#include "core/bdev.h"
#include "core/listener.h"
#include "core/ratelimit.h"
#include "frontend/frontend.h"
#include "frontend/nbd.h"
#include "frontend/nbd_proto.h"
#include "frontend/nbd_internal.h"

#define NBD_MAX_INFLIGHT        128
#define NBD_MAX_INFLIGHT_BYTES  (256u << 20)
#define NBD_STOP_GRACE_MS       10000   /* stop: then drop clients that will not read */
#define NBD_STALL_MS            30000   /* a half-sent request: see conn_set_stall_timeout */
#define NBD_DEFAULT_MAX_IO      (32u << 20)
#define NBD_BUF_ALIGN           4096    /* the store may use O_DIRECT */


/* Export flags.  CAN_MULTI_CONN holds because every connection submits
 * to the same bdev, whose flush reaches every replica: a flush on any
 * connection covers writes completed on all of them.
 */
#define NBD_EXPORT_FLAGS \
  (NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | \
   NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_CAN_MULTI_CONN)

static void client_read_next (struct nbd_client *cl);

/* ---- deferred work ---- */

static void server_kick (struct loop_defer *d);

void
nbd_kick (struct nbd_server *s)
{
  loop_defer (s->loop, &s->kick, server_kick, s);
}

/* Drop what is left of a connection once nothing refers to it.  Only
 * now does the listener stop counting it: a closed connection whose
 * requests the bdev still holds keeps its buffers, so it still counts
 * against NBD_MAX_CLIENTS.
 */
static void
client_free (struct nbd_client *cl)
{
  struct nbd_server *s = cl->srv;
  struct nbd_client **pp;

  for (pp = &s->clients; *pp != cl; pp = &(*pp)->next)
    ;
  *pp = cl->next;
  s->nclients--;
  if (cl->accepted)
    listener_peer_closed (&s->listener, cl->peer);
  loop_timer_cancel (s->loop, &cl->handshake_timer);
  free (cl);
}

static void
server_kick (struct loop_defer *d)
{
  struct nbd_server *s = d->opaque;
  struct nbd_client *cl, *next;

  for (cl = s->clients; cl; cl = next) {
    next = cl->next;
    if (cl->conn) {
      if (s->stopping && !cl->transmission)
        conn_close (cl->conn, NULL);      /* nothing in flight in handshake */
      else if (s->stopping)
        cl->draining = true;
      if (cl->conn && cl->draining && cl->inflight == 0)
        conn_close (cl->conn, NULL);      /* every reply has been written */
      if (cl->conn)
        client_read_next (cl);            /* resume after back-pressure */
    }
    if (!cl->conn && cl->inflight == 0)
      client_free (cl);
  }

  /* Closing connections above queues this kick again; report stopped
   * only from the last pass, so nothing of ours is left queued on the
   * loop when the caller frees us.
   */
  if (s->stopping && !s->clients && s->stopped && !s->kick.queued) {
    void (*cb) (void *) = s->stopped;
    s->stopped = NULL;
    loop_timer_cancel (s->loop, &s->stop_timer);
    log_info ("nbd: %s: stopped", s->fe->export_name);
    cb (s->stopped_opaque);       /* may free s: touch nothing after */
  }
}

/* ---- requests ---- */

/* A finished request is kept, with its buffer when that is small, for
 * the next one: two allocations and two frees per request were a tenth
 * of the attach's CPU at 4 KiB.
 */
#define REQ_CACHE_MAX       64
#define REQ_CACHE_BYTES_MAX (8u << 20)  /* buffers kept, all together */

static void
req_free (struct nbd_req *r)
{
  struct nbd_client *cl = r->cl;
  struct nbd_server *s = cl->srv;

  cl->inflight--;
  cl->inflight_bytes -= r->buf_len;
  nbd_slow_free (r);
  if (s->nreq_cache < REQ_CACHE_MAX &&
      s->req_cache_bytes + r->buf_cap <= REQ_CACHE_BYTES_MAX) {
    r->io.layer_priv = s->req_cache;
    s->req_cache = r;
    s->nreq_cache++;
    s->req_cache_bytes += r->buf_cap;
  }
  else {
    free (r->buf);
    free (r);
  }
  /* Not from here: we may be inside conn's writev loop or inside the
   * bdev.  The kick resumes reading or finishes a drain.
   */
  nbd_kick (cl->srv);
}

static void
req_sent (void *opaque, int err)
{
  req_free (opaque);
}

/* Send the reply for r (its err says how it went) and free r once the
 * bytes are out, or at once if there is nobody to reply to.
 */
void
nbd_req_reply (struct nbd_req *r)
{
  struct nbd_client *cl = r->cl;
  char hdr[NBD_CHUNK_HDR_LEN + 6 + NBD_ERROR_MSG_MAX];
  const void *payload = NULL;
  size_t hlen, plen = 0;

  if (!cl->conn) {
    req_free (r);
    return;
  }

  if (r->rq.type == NBD_CMD_READ && cl->structured) {
    /* Structured replies were negotiated: a READ must never get a
     * simple reply, not even an error.
     */
    if (r->err)
      hlen = nbd_encode_error_chunk (hdr, r->rq.cookie, r->err,
                                     strerror (r->err));
    else if (r->rq.len == 0)
      hlen = nbd_encode_none_chunk (hdr, r->rq.cookie);
    else {
      hlen = nbd_encode_read_chunk (hdr, r->rq.cookie, r->rq.offset,
                                    r->rq.len);
      payload = r->payload ? r->payload : r->buf;
      plen = r->rq.len;
    }
  }
  else {
    /* Every other reply carries no payload, and the spec lets it be a
     * simple reply even with structured replies negotiated.
     */
    hlen = nbd_encode_simple_reply (hdr, r->rq.cookie, r->err);
    if (r->rq.type == NBD_CMD_READ && !r->err) {
      payload = r->payload ? r->payload : r->buf;
      plen = r->rq.len;
    }
  }
  conn_send (cl->conn, hdr, hlen, payload, plen, req_sent, r);
}

static void req_submit_chunk (struct nbd_req *r);

static void
req_io_done (struct bdev_io *io, int err)
{
  struct nbd_req *r = io->opaque;

  r->done_bytes += io->len;
  if (!err && r->done_bytes < r->rq.len) {
    req_submit_chunk (r);         /* next piece of a large TRIM / ZERO */
    return;
  }
  if (err) {
    r->err = nbd_errno_to_nbd (err);
    log_debug ("%s: %s offset %" PRIu64 " length %" PRIu32 ": %s",
               r->cl->name, nbd_cmd_name (r->rq.type), r->rq.offset,
               r->rq.len, strerror (err));
  }
  nbd_order_leave (r->cl->srv, r);
  nbd_req_reply (r);
}

/* The bdev flags of r's command.  FUA means nothing for a read. */
static uint32_t
req_flags (const struct nbd_req *r)
{
  uint32_t flags = 0;

  if (r->rq.type == NBD_CMD_READ)
    return 0;
  if (r->rq.flags & NBD_CMD_FLAG_FUA)
    flags |= BDEV_FUA;
  if (r->rq.type == NBD_CMD_WRITE_ZEROES &&
      (r->rq.flags & NBD_CMD_FLAG_NO_HOLE))
    flags |= BDEV_NO_HOLE;
  return flags;
}

/* TRIM and WRITE_ZEROES may be larger than the bdev's max_io (they have
 * no payload, so the spec lets clients send up to 4 GiB); issue them in
 * max_io pieces, one after the other.
 */
static void
req_submit_chunk (struct nbd_req *r)
{
  struct nbd_server *s = r->cl->srv;
  uint64_t left = r->rq.len - r->done_bytes;
  uint64_t offset = r->rq.offset + r->done_bytes;
  uint32_t len = left > s->max_io ? s->max_io : (uint32_t) left;

  /* Either may complete (and free r) at once. */
  if (r->rq.type == NBD_CMD_TRIM)
    bdev_trim (s->dev, &r->io, offset, len, req_flags (r));
  else
    bdev_zero (s->dev, &r->io, offset, len, req_flags (r));
}

static void
req_submit (struct nbd_req *r)
{
  struct nbd_server *s = r->cl->srv;

  r->io.done = req_io_done;
  r->io.opaque = r;

  if (r->rq.type == NBD_CMD_FLUSH) {
    bdev_flush (s->dev, &r->io);
    return;
  }
  /* Zero-length requests touch nothing; do not trouble the layers below
   * with an edge case they need not handle.
   */
  if (r->rq.len == 0) {
    nbd_req_reply (r);
    return;
  }
  /* Writes take their turn against read-modify-writes (rule 6,
   * nbd_unaligned.c); a waiting one is started when its turn comes.
   */
  if (r->rq.type != NBD_CMD_READ && !nbd_order_enter (s, r))
    return;
  nbd_req_start (r);
}

void
nbd_req_start (struct nbd_req *r)
{
  struct nbd_server *s = r->cl->srv;

  if (r->slow) {
    nbd_slow_start (r);
    return;
  }
  /* Each may complete (and free r) at once. */
  switch (r->rq.type) {
  case NBD_CMD_READ:
    bdev_read (s->dev, &r->io, r->rq.offset, r->rq.len, r->buf, 0);
    break;
  case NBD_CMD_WRITE:
    bdev_write (s->dev, &r->io, r->rq.offset, r->rq.len, r->buf,
                req_flags (r));
    break;
  case NBD_CMD_TRIM:
  case NBD_CMD_WRITE_ZEROES:
    req_submit_chunk (r);
    break;
  default:
    abort ();                   /* nbd_check_request let through only these */
  }
}

static struct nbd_req *
req_new (struct nbd_client *cl, const struct nbd_request *rq, size_t buf_len)
{
  struct nbd_server *s = cl->srv;
  struct nbd_req *r = s->req_cache;
  void *buf = NULL;
  size_t cap = 0;

  if (r) {
    s->req_cache = r->io.layer_priv;
    s->nreq_cache--;
    s->req_cache_bytes -= r->buf_cap;
    buf = r->buf;
    cap = r->buf_cap;
    memset (r, 0, sizeof *r);
  }
  else if ((r = calloc (1, sizeof *r)) == NULL)
    return NULL;
  if (buf_len > cap) {
    free (buf);
    buf = NULL;
    cap = 0;
    if (posix_memalign (&buf, NBD_BUF_ALIGN, buf_len) != 0) {
      free (r);
      return NULL;
    }
    cap = buf_len;
  }
  r->buf = buf;
  r->buf_cap = cap;
  r->cl = cl;
  r->rq = *rq;
  r->buf_len = buf_len;
  cl->inflight++;
  cl->inflight_bytes += buf_len;
  return r;
}

static uint64_t refused_requests;     /* every server of the process */

uint64_t
frontend_refused_count (void)
{
  return refused_requests;
}

/* Report a request the client got wrong: once per connection as a
 * warning (and that rate-limited per address, like the reasons a
 * connection is closed for), after that only for debugging, so a broken
 * client cannot flood the log.
 */
static void
bad_request (struct nbd_client *cl, const struct nbd_request *rq,
             const char *why)
{
  char line[512];

  refused_requests++;
  snprintf (line, sizeof line, "%s: %s (offset %" PRIu64 " length %" PRIu32
            " flags 0x%x): %s; replying with an error", cl->name,
            nbd_cmd_name (rq->type), rq->offset, rq->len, rq->flags, why);
  if (cl->warned)
    log_debug ("%s", line);
  else if (cl->accepted)
    ratelimit_warn (&cl->srv->listener.log, listener_peer_key (cl->peer),
                    "%s", line);
  else                          /* the kernel's socket: no listener */
    log_warn ("%s", line);
  cl->warned = true;
}

static void
on_write_payload (struct conn *c, void *opaque)
{
  struct nbd_req *r = opaque;
  struct nbd_client *cl = r->cl;

  cl->expecting = false;
  cl->receiving = NULL;
  if (cl->srv->stopping) {
    req_free (r);               /* arrived after stop: not acknowledged */
    return;
  }
  if (r->err)
    nbd_req_reply (r);          /* payload read only to skip it */
  else
    req_submit (r);
  client_read_next (cl);
}

static void
on_request (struct conn *c, void *opaque)
{
  struct nbd_client *cl = opaque;
  struct nbd_server *s = cl->srv;
  struct nbd_request rq;
  enum nbd_verdict v;
  struct nbd_req *r;
  uint32_t err;
  const char *why;
  size_t buf_len = 0;

  cl->expecting = false;
  if (cl->draining)
    return;                     /* stopping: take nothing new */

  nbd_decode_request (cl->hdr, &rq);
  v = nbd_check_request (&rq, &cl->exp, &err, &why);
  if (v == NBD_REQ_HANG_UP) {
    conn_close (c, "%s (magic 0x%08x type %u length %" PRIu32 ")",
                why, rq.magic, rq.type, rq.len);
    return;
  }
  if (rq.type == NBD_CMD_DISC) {
    log_debug ("%s: NBD_CMD_DISC", cl->name);
    cl->draining = true;        /* finish what is in flight, then close */
    nbd_kick (s);
    return;
  }
  if (v == NBD_REQ_ERROR)
    bad_request (cl, &rq, why);

  /* A WRITE's payload has to be read even when the request is refused,
   * to stay in step with the stream; nbd_check_request has already
   * bounded its length.
   */
  if (rq.type == NBD_CMD_WRITE || (v == NBD_REQ_OK && rq.type == NBD_CMD_READ))
    buf_len = rq.len;
  if (v == NBD_REQ_OK && !cl->sizes_agreed)
    buf_len = nbd_slow_buf_len (s, &rq, buf_len);
  r = req_new (cl, &rq, buf_len);
  if (!r) {
    conn_close (c, "out of memory for a %" PRIu32 "-byte request", rq.len);
    return;
  }
  r->err = err;
  /* No block sizes agreed: unaligned and oversized requests are served
   * by the slow path (nbd_unaligned.c).
   */
  if (v == NBD_REQ_OK && !cl->sizes_agreed && nbd_slow_prepare (s, r) < 0)
    r->err = NBD_ENOMEM;

  if (rq.type == NBD_CMD_WRITE && rq.len > 0) {
    cl->receiving = r;
    cl->expecting = true;
    conn_expect (c, r->buf, rq.len, on_write_payload, r);
    return;
  }
  if (r->err)
    nbd_req_reply (r);
  else
    req_submit (r);             /* r may be gone after this */
  client_read_next (cl);
}

/* Ask for the next request header unless something holds us back. */
static void
client_read_next (struct nbd_client *cl)
{
  if (!cl->conn || !cl->transmission || cl->expecting || cl->draining)
    return;
  if (cl->inflight >= NBD_MAX_INFLIGHT ||
      cl->inflight_bytes >= NBD_MAX_INFLIGHT_BYTES)
    return;                     /* req_free kicks us again */
  cl->expecting = true;
  conn_expect (cl->conn, cl->hdr, NBD_REQUEST_LEN, on_request, cl);
}

void
nbd_enter_transmission (struct nbd_client *cl)
{
  struct nbd_server *s = cl->srv;

  loop_timer_cancel (s->loop, &cl->handshake_timer);
  cl->transmission = true;
  /* A client that did not agree on block sizes gets the spec's defaults:
   * any byte range, payloads up to NBD_LOOSE_MAX_PAYLOAD.
   */
  cl->exp = s->exp;
  if (!cl->sizes_agreed) {
    cl->exp.min_block = 1;
    cl->exp.max_payload = MAX (s->exp.max_payload, NBD_LOOSE_MAX_PAYLOAD);
  }
  log_debug ("%s: transmission phase%s", cl->name,
             cl->structured ? " (structured replies)" : "");
  client_read_next (cl);
}

static void
on_conn_close (struct conn *c, void *opaque)
{
  struct nbd_client *cl = opaque;

  cl->conn = NULL;
  cl->expecting = false;
  if (cl->receiving) {
    req_free (cl->receiving);   /* half-received WRITE: never submitted */
    cl->receiving = NULL;
  }
  log_debug ("%s: closed (%u requests still with the bdev)", cl->name,
             cl->inflight);
  nbd_kick (cl->srv);           /* frees cl once inflight reaches 0 */
}

/* ---- listening ---- */

static void
peer_name (struct nbd_server *s, int fd, uint64_t id, char *buf, size_t len)
{
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char addr[INET6_ADDRSTRLEN] = "?";
  int port = 0;

  if (s->is_tcp && getpeername (fd, (struct sockaddr *) &ss, &sl) == 0) {
    if (ss.ss_family == AF_INET) {
      struct sockaddr_in *sin = (struct sockaddr_in *) &ss;
      inet_ntop (AF_INET, &sin->sin_addr, addr, sizeof addr);
      port = ntohs (sin->sin_port);
    }
    else if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;
      inet_ntop (AF_INET6, &sin6->sin6_addr, addr, sizeof addr);
      port = ntohs (sin6->sin6_port);
    }
    snprintf (buf, len, "nbd client %" PRIu64 " (%s:%d)", id, addr, port);
  }
  else
    snprintf (buf, len, "nbd client %" PRIu64, id);
}

/* A connection on fd (taken: closed on failure), linked into s. */
static struct nbd_client *
client_new (struct nbd_server *s, int fd)
{
  struct nbd_client *cl = calloc (1, sizeof *cl);

  if (!cl) {
    close (fd);
    return NULL;
  }
  cl->srv = s;
  peer_name (s, fd, ++s->next_id, cl->name, sizeof cl->name);
  cl->conn = conn_new (s->loop, fd, cl->name, on_conn_close, cl);
  if (!cl->conn) {
    log_warn ("%s: cannot set up the connection", cl->name);
    close (fd);
    free (cl);
    return NULL;
  }
  conn_set_stall_timeout (cl->conn, NBD_STALL_MS);
  cl->next = s->clients;
  s->clients = cl;
  s->nclients++;
  log_debug ("%s: connected", cl->name);
  return cl;
}

/* The listener's: a new connection, already counted against
 * NBD_MAX_CLIENTS, nonblocking, with TCP_NODELAY on TCP.
 */
static void
on_accept (struct listener *l, int fd, void *opaque)
{
  struct nbd_server *s = opaque;
  struct listener_peer *peer = listener_take_peer (l);
  struct nbd_client *cl = client_new (s, fd);

  if (!cl) {
    listener_peer_closed (l, peer);
    return;
  }
  cl->accepted = true;
  cl->peer = peer;
  conn_set_log_limit (cl->conn, &l->log, listener_peer_key (peer));
  nbd_handshake_start (cl);
}

/* ---- frontend_ops ---- */

static bool
is_pow2 (uint32_t x)
{
  return x && !(x & (x - 1));
}

/* *sp: a server for f->dev advertising tflags, not yet serving anyone.
 * 0, or a negative errno after logging why.
 */
static int
server_new (struct frontend *f, uint16_t tflags, struct nbd_server **sp)
{
  struct nbd_server *s = calloc (1, sizeof *s);
  const struct bdev_info *info = &f->dev->info;
  uint32_t min, max;

  *sp = NULL;
  if (!s) {
    log_error ("nbd: out of memory");
    return -ENOMEM;
  }
  s->fe = f;
  s->loop = f->loop;
  s->dev = f->dev;
  s->listen_fd = -1;
  snprintf (s->label, sizeof s->label, "nbd: %s", f->export_name);

  /* The block size constraints the spec allows: minimum a power of two
   * up to 64 KiB, preferred a power of two >= max(minimum, 512),
   * maximum payload >= preferred.
   */
  min = info->block_size ? info->block_size : 1;
  if (!is_pow2 (min) || min > 65536) {
    log_error ("nbd: block size %" PRIu32 " cannot be advertised over NBD", min);
    goto fail;
  }
  max = info->max_io ? info->max_io : NBD_DEFAULT_MAX_IO;
  max -= max % min;
  s->exp.pref_block = MAX (min, 4096);
  if (s->exp.pref_block > max)
    s->exp.pref_block = MAX (min, 512);
  if (max < s->exp.pref_block) {
    log_error ("nbd: largest request %" PRIu32 " is below the %" PRIu32
               "-byte preferred block size", max, s->exp.pref_block);
    goto fail;
  }
  s->max_io = max;
  s->exp.size = info->size;
  s->exp.tflags = tflags;
  s->exp.min_block = min;
  s->exp.max_payload = max;
  if (info->size % min)
    log_warn ("nbd: volume size is not a multiple of the %" PRIu32
              "-byte block size; the tail is unreachable", min);
  snprintf (s->description, sizeof s->description, "repvol volume %s",
            f->export_name);
  *sp = s;
  return 0;

 fail:
  free (s);
  return -EINVAL;
}

static int
nbd_start (struct frontend *f, const char *spec)
{
  struct nbd_server *s;
  int r = server_new (f, NBD_EXPORT_FLAGS, &s);

  if (r < 0)
    return r;
  f->priv = s;
  r = nbd_server_listen (s, spec, on_accept);
  if (r < 0) {
    nbd_server_unlisten (s);
    return r;
  }
  snprintf (f->where, sizeof f->where, "%s", spec);
  log_info ("nbd: serving '%s' on %s (%" PRIu64 " bytes, block %" PRIu32
            ", max request %" PRIu32 ")", f->export_name, spec, s->exp.size,
            s->exp.min_block, s->exp.max_payload);
  return 0;
}

struct nbd_server *
nbd_serve_connected_fd (struct frontend *f, int fd, uint16_t tflags)
{
  struct nbd_server *s;
  struct nbd_client *cl;

  if (server_new (f, tflags, &s) < 0) {
    close (fd);
    return NULL;
  }
  if (!(cl = client_new (s, fd))) {
    log_error ("nbd: %s: cannot serve the connection", f->export_name);
    free (s);
    return NULL;
  }
  /* The peer learnt size and flags out of band: no handshake, so no
   * structured replies either; the kernel keeps to the block size it
   * was given.
   */
  cl->sizes_agreed = true;
  nbd_enter_transmission (cl);
  return s;
}

static void
stop_timeout (struct loop_timer *t)
{
  struct nbd_server *s = t->opaque;
  struct nbd_client *cl;

  /* Clients that do not read their replies would hold detach forever.
   * Their requests still finish in the bdev before stopped runs.
   */
  for (cl = s->clients; cl; cl = cl->next)
    if (cl->conn)
      conn_close (cl->conn, "still busy %d s after stop; disconnecting",
                  NBD_STOP_GRACE_MS / 1000);
  nbd_kick (s);
}

void
nbd_server_stop (struct nbd_server *s, void (*stopped) (void *), void *opaque)
{
  if (s->stopping)
    return;
  log_info ("nbd: %s: stopping (%u connections)", s->fe->export_name,
            s->nclients);
  s->stopping = true;
  s->stopped = stopped;
  s->stopped_opaque = opaque;
  nbd_server_unlisten (s);
  loop_timer_arm (s->loop, &s->stop_timer, NBD_STOP_GRACE_MS, stop_timeout, s);
  nbd_kick (s);                 /* never call stopped from inside stop */
}

void
nbd_server_free (struct nbd_server *s)
{
  if (!s)
    return;
  if (s->clients || s->kick.queued) {
    /* Requests still reference s; freeing it would be a use after free
     * later.  Leaking is the lesser evil for a caller that skipped stop.
     */
    log_error ("nbd: %s: freed while %u connections remain; leaking",
               s->fe->export_name, s->nclients);
    return;
  }
  nbd_server_unlisten (s);
  loop_timer_cancel (s->loop, &s->stop_timer);
  while (s->req_cache) {
    struct nbd_req *r = s->req_cache;
    s->req_cache = r->io.layer_priv;
    free (r->buf);
    free (r);
  }
  free (s);
}

void
nbd_server_resized (struct nbd_server *s, bool connected_too)
{
  s->exp.size = s->dev->info.size;
  if (connected_too)
    for (struct nbd_client *cl = s->clients; cl; cl = cl->next)
      if (cl->transmission)
        cl->exp.size = s->exp.size;
}

/* A client learnt the size in its handshake and checks its requests
 * against it: it sees the new one when it connects again.
 */
static int
nbd_resized (struct frontend *f, const char **when)
{
  nbd_server_resized (f->priv, false);
  *when = "for each NBD client from its next connection";
  return 0;
}

static void
nbd_stop (struct frontend *f, void (*stopped) (void *), void *opaque)
{
  nbd_server_stop (f->priv, stopped, opaque);
}

static void
nbd_free (struct frontend *f)
{
  nbd_server_free (f->priv);
  f->priv = NULL;
}

const struct frontend_ops nbd_frontend_ops = {
  .name = "nbd",
  .start = nbd_start,
  .stop = nbd_stop,
  .free = nbd_free,
  .resized = nbd_resized,
};
