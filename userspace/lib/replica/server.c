/* server.c - the replication protocol, server side: connections, the
 * handshake with epoch fencing, reading requests, replies, shutdown.
 * server_io.c carries the requests out against the store.
 *
 * Per connection (struct rs_conn) a small state machine over conn.h:
 *
 *   HELLO -> WELCOME -> { header [-> payload] -> dispatch } ...
 *
 * Each request (struct rs_req) lives from its header until its reply
 * has been written (or the connection is gone): it holds its id in the
 * connection's in-flight table, its buffers, and a reference on the
 * connection, so an I/O that finishes after the peer vanished completes
 * into a live struct and just frees itself.  Back-pressure: while
 * RV_MAX_INFLIGHT requests (or RS_MAX_CONN_BYTES of buffers) are
 * outstanding we set no expectation, so conn stops reading the socket.
 *
 * Decisions a client can rely on (also in repvol-protocol.7):
 * - a data (non-admin) HELLO with an epoch above the volume's, by at
 *   most RV_EPOCH_JUMP_MAX, persists it before WELCOME; further above it
 *   gets WELCOME status ERANGE (logged), below it EPERM, and a close.
 *   Requests on a connection whose epoch has since been overtaken by a
 *   newer HELLO get RV_EPERM: a fenced engine can no longer write.
 * - admin connections may CREATE, DELETE, STAT, READ and CHECKSUM
 *   (read-only, for verify) and SET_EPOCH (data connections: RV_EPERM);
 *   WRITE, TRIM, WRITE_ZEROES, FLUSH and the dirty-map commands
 *   (MARK_DIRTY, DIRTY_GET, DIRTY_CLEAR) there get RV_EPERM.
 * - CHECKSUM is range-checked like READ and answered with the crc32c of
 *   the stored bytes (RV_CHECKSUM_SIZE bytes, little-endian); it holds a
 *   scratch buffer in the store while it runs, counted against the
 *   connection's buffer budget.
 * - RV_F_DIRTY on WRITE / TRIM / WRITE_ZEROES, and MARK_DIRTY, are
 *   answered only once the dirty bits for the range are durable.
 * - a data connection's volume is the one that existed at HELLO or that
 *   it created itself; data requests without one close the connection.
 * - DELETE while another open data connection uses the volume: RV_EBUSY;
 *   the volume stays.
 * - RESIZE (docs/DESIGN.md 3.10) on a data connection is fenced and
 *   needs a volume like a data request, only grows (smaller: RV_EINVAL)
 *   and runs after the volume's requests in flight; on an admin
 *   connection it may shrink too, RV_EBUSY while an attach uses it.
 * - with TLS (replica_server_set_tls) a client that does not start TLS
 *   gets, for its plaintext HELLO, WELCOME status RV_ETLSREQ and a close;
 *   CREATE, DELETE, SET_EPOCH, RESIZE, READ and CHECKSUM on an admin
 *   connection whose identity is not one of the admins get RV_EACCES
 *   (docs/DESIGN.md, "Trust").
 */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <inttypes.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "core/ratelimit.h"
#include "core/util.h"
#include "replica/server_internal.h"

static void read_header (struct rs_conn *rc);
static void id_remove (struct rs_conn *rc, struct rs_req *req);
static void maybe_finish_shutdown (struct replica_server *srv);

/* ---- connection lifetime ------------------------------------------ */

static void
rc_put (struct rs_conn *rc)
{
  struct replica_server *srv = rc->srv;

  if (--rc->refs > 0)
    return;
  if (rc->prev) rc->prev->next = rc->next; else srv->conns = rc->next;
  if (rc->next) rc->next->prev = rc->prev;
  srv->nconns--;
  metric_gauge_add (srv->mx.open, -1);
  listener_peer_closed (&srv->listener, rc->peer);
  if (rc->vol)
    store_vol_put (rc->vol);
  conn_put (rc->c);
  free (rc);
  maybe_finish_shutdown (srv);
}

static void
on_close (struct conn *c, void *opaque)
{
  struct rs_conn *rc = opaque;

  rc->closed = true;
  rs_metrics_conn (rc, -1);
  /* A request still reading its payload never reaches dispatch. */
  if (rc->pending) {
    struct rs_req *r = rc->pending;
    rc->pending = NULL;
    id_remove (rc, r);
    rc->bytes -= r->buflen;
    rc->inflight--;
    rs_req_put (rc->srv, r);
    rc->refs--;                 /* not the last: the open ref remains */
  }
  /* Release the volume now so DELETE elsewhere is not blocked by a dead
   * connection; in-flight I/O holds its own references in the store.
   */
  if (rc->vol) {
    store_vol_put (rc->vol);
    rc->vol = NULL;
  }
  rc_put (rc);
}

void
rs_conn_warn (struct rs_conn *rc, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  ratelimit_vwarn (&rc->srv->listener.log, listener_peer_key (rc->peer), fmt,
                   ap);
  va_end (ap);
}

/* The volume this connection works on, dropping a deleted one. */
struct store_vol *
rs_conn_vol (struct rs_conn *rc)
{
  if (rc->vol && store_vol_deleted (rc->vol)) {
    store_vol_put (rc->vol);
    rc->vol = NULL;
  }
  /* Admin connections follow the name: a volume created or deleted by
   * someone else since HELLO is seen as it is now.
   */
  if (!rc->vol && rc->admin) {
    rc->vol = store_lookup (rc->srv->store, rc->volname);
    if (rc->vol) {
      store_vol_get (rc->vol);
      rs_metrics_bind (rc, rc->vol);
    }
  }
  return rc->vol;
}

/* ---- the in-flight id table --------------------------------------- */

static unsigned
id_hash (uint64_t id)
{
  return (unsigned) ((id * UINT64_C (0x9e3779b97f4a7c15)) >> 56) % ID_BUCKETS;
}

static bool
id_busy (struct rs_conn *rc, uint64_t id)
{
  for (struct rs_req *r = rc->ids[id_hash (id)]; r; r = r->hnext)
    if (r->req.id == id)
      return true;
  return false;
}

static void
id_remove (struct rs_conn *rc, struct rs_req *req)
{
  for (struct rs_req **pp = &rc->ids[id_hash (req->req.id)]; *pp;
       pp = &(*pp)->hnext)
    if (*pp == req) {
      *pp = req->hnext;
      return;
    }
}

/* ---- replies -------------------------------------------------------- */

static bool
rc_may_read (const struct rs_conn *rc)
{
  return rc->inflight < RV_MAX_INFLIGHT && rc->bytes < RS_MAX_CONN_BYTES;
}

static void
req_free (struct rs_req *req)
{
  struct rs_conn *rc = req->rc;

  id_remove (rc, req);
  rc->inflight--;
  rc->bytes -= req->buflen;
  rs_req_put (rc->srv, req);

  if (!rc->closed) {
    if (rc->srv->stopping) {
      if (rc->inflight == 0)
        conn_close (rc->c, NULL);
    }
    else if (rc->paused && rc_may_read (rc)) {
      rc->paused = false;
      read_header (rc);
    }
  }
  rc_put (rc);
}

static void
reply_sent (void *opaque, int err)
{
  req_free (opaque);
}

void
rs_reply (struct rs_req *req, uint32_t status, const void *payload,
          uint32_t len)
{
  struct rs_conn *rc = req->rc;
  uint8_t hdr[RV_REP_SIZE];
  struct rv_rep rep = {
    .status = status,
    .id = req->req.id,
  };

  if (rc->closed) {
    req_free (req);
    return;
  }
  if (status != RV_OK)
    len = 0;
  rep.length = len;
  rep.crc = len ? crc32c (0, payload, len) : 0;
  rv_encode_rep (&rep, hdr);
  /* conn_send calls reply_sent (with an error) if the conn is closed. */
  conn_send (rc->c, hdr, sizeof hdr, len ? payload : NULL, len,
             reply_sent, req);
}

/* ---- reading requests ---------------------------------------------- */

static void
on_payload (struct conn *c, void *opaque)
{
  struct rs_conn *rc = opaque;
  struct rs_req *req = rc->pending;

  rc->pending = NULL;
  if (!req->pre_status &&
      crc32c (0, req->buf, req->req.length) != req->req.crc) {
    rs_conn_warn (rc, "%s: %s id %" PRIu64 ": payload checksum mismatch",
                  c->name, rv_cmd_name (req->req.cmd), req->req.id);
    rs_refused (rc, RS_REFUSE_CRC);
    req->pre_status = RV_ECRC;
  }
  rs_dispatch (req);
  read_header (rc);
}

/* Authorization (docs/DESIGN.md, "Trust"): what an admin connection of
 * an identity outside --admins may not do.  Data connections are
 * governed by the epoch instead.
 */
static bool
needs_admin (const struct rs_conn *rc, uint16_t cmd)
{
  return rc->admin && !rc->may_admin &&
    (cmd == RV_CREATE || cmd == RV_DELETE || cmd == RV_READ ||
     cmd == RV_CHECKSUM || cmd == RV_SET_EPOCH || cmd == RV_RESIZE);
}

static bool
is_data_cmd (uint16_t cmd)
{
  return cmd == RV_READ || cmd == RV_WRITE || cmd == RV_FLUSH ||
         cmd == RV_TRIM || cmd == RV_WRITE_ZEROES || cmd == RV_MARK_DIRTY ||
         cmd == RV_DIRTY_GET || cmd == RV_DIRTY_CLEAR || cmd == RV_CHECKSUM;
}

static void
on_header (struct conn *c, void *opaque)
{
  struct rs_conn *rc = opaque;
  struct rs_req *req;
  struct rv_req r;
  struct store_vol *v;
  const char *why;
  uint32_t pre = 0;

  if (rc->srv->stopping) {
    /* Shutting down: take no new work; close once idle. */
    rc->paused = true;
    if (rc->inflight == 0)
      conn_close (c, NULL);
    return;
  }
  if (rv_decode_req (rc->hdr, &r, &why) < 0) {
    rs_refused (rc, RS_REFUSE_BAD_FRAME);
    conn_close (c, "%s", why);
    return;
  }
  if (id_busy (rc, r.id)) {
    rs_refused (rc, RS_REFUSE_BAD_FRAME);
    conn_close (c, "duplicate in-flight request id %" PRIu64, r.id);
    return;
  }
  v = rs_conn_vol (rc);
  if (needs_admin (rc, r.cmd)) {
    rs_conn_warn (rc, "%s: permission denied: %s may not %s volume %s",
                  c->name, rc->peer_id, rv_cmd_name (r.cmd), rc->volname);
    rs_refused (rc, RS_REFUSE_AUTH);
    pre = RV_EACCES;
  }
  else if (is_data_cmd (r.cmd) || (r.cmd == RV_RESIZE && !rc->admin)) {
    if (!v) {
      rs_refused (rc, RS_REFUSE_BAD_FRAME);
      conn_close (c, "%s before volume %s exists", rv_cmd_name (r.cmd),
                  rc->volname);
      return;
    }
    const struct store_meta *m = store_vol_meta (v);
    if (r.cmd != RV_DIRTY_GET && r.cmd != RV_DIRTY_CLEAR &&
        r.cmd != RV_RESIZE && rv_check_range (&r, m->size, m->block_size, &why) < 0) {
      rs_refused (rc, RS_REFUSE_BAD_FRAME);
      conn_close (c, "%s id %" PRIu64 " offset %" PRIu64 " length %u: %s",
                  rv_cmd_name (r.cmd), r.id, r.offset, r.length, why);
      return;
    }
    if (rc->admin ? r.cmd != RV_READ && r.cmd != RV_CHECKSUM
                  : rc->epoch < m->epoch) {
      pre = RV_EPERM;         /* read-only admin, or fenced */
      rs_refused (rc, rc->admin ? RS_REFUSE_AUTH : RS_REFUSE_FENCED);
    }
  }
  else if (r.cmd == RV_PING && v && !rc->admin &&
           rc->epoch < store_vol_meta (v)->epoch)
    pre = RV_EPERM;           /* an idle fenced engine hears it too */

  req = rs_req_get (rc->srv);
  if (!req) {
    conn_close (c, "out of memory");
    return;
  }
  req->rc = rc;
  req->req = r;
  req->pre_status = pre;
  rc->refs++;
  rc->inflight++;
  unsigned h = id_hash (r.id);
  req->hnext = rc->ids[h];
  rc->ids[h] = req;

  if (rv_req_has_payload (r.cmd)) {
    /* Aligned so O_DIRECT can use it as it is. */
    if (rs_req_buf (req, MAX (r.length, 1u)) < 0) {
      conn_close (c, "out of memory for a %u byte payload", r.length);
      /* on_close did not see it as pending: free it here. */
      req_free (req);
      return;
    }
    req->buflen = r.length;
    rc->bytes += r.length;
    rc->pending = req;
    conn_expect (c, req->buf, r.length, on_payload, rc);
    return;
  }
  rs_dispatch (req);
  read_header (rc);
}

static void
read_header (struct rs_conn *rc)
{
  if (rc->closed || rc->pending)
    return;
  if (!rc_may_read (rc)) {
    rc->paused = true;
    return;
  }
  conn_expect (rc->c, rc->hdr, sizeof rc->hdr, on_header, rc);
}

/* ---- handshake ------------------------------------------------------ */

static void
welcome_sent (void *opaque, int err)
{
  struct rs_conn *rc = opaque;

  if (rc->close_why && !rc->closed)
    conn_close (rc->c, "%s", rc->close_why);
  else if (!err && !rc->closed)
    read_header (rc);
  rc_put (rc);
}

static void
send_welcome (struct rs_conn *rc, uint32_t status, const char *close_why)
{
  struct replica_server *srv = rc->srv;
  struct rv_welcome w = {
    .version = RV_PROTO_VERSION,
    .status = status,
    .features = RV_FEAT_PING | RV_FEAT_RESIZE,
    .idle_timeout_ms = srv->idle_ms,
  };

  snprintf (w.server, sizeof w.server, "%s", srv->name);
  snprintf (w.zone, sizeof w.zone, "%s", srv->zone);
  if (rc->vol) {
    const struct store_meta *m = store_vol_meta (rc->vol);
    w.exists = 1;
    w.block_size = m->block_size;
    w.size = m->size;
    w.epoch = m->epoch;
  }
  rv_encode_welcome (&w, rc->welcome);
  rc->close_why = close_why;
  rc->refs++;
  conn_send (rc->c, NULL, 0, rc->welcome, sizeof rc->welcome, welcome_sent,
             rc);
}

static void
on_hello (struct conn *c, void *opaque)
{
  struct rs_conn *rc = opaque;
  struct rv_hello h;
  struct store_vol *v;
  const char *why;

  if (rv_decode_hello (rc->hello, &h, &why) < 0) {
    /* Answer a well-framed HELLO of another version so the client can
     * say why; anything else is not our protocol.
     */
    rs_refused (rc, RS_REFUSE_BAD_FRAME);
    if (!strcmp (why, "unsupported protocol version"))
      send_welcome (rc, RV_EINVAL, why);
    else
      conn_close (c, "%s", why);
    return;
  }
  if (rc->tls_refused) {
    rs_refused (rc, RS_REFUSE_TLS);
    send_welcome (rc, RV_ETLSREQ, "plaintext client refused: this server "
                  "requires TLS");
    return;
  }
  memcpy (rc->volname, h.volume, RV_NAME_MAX);
  rc->admin = h.flags & RV_HELLO_ADMIN;
  rc->epoch = h.epoch;
  v = store_lookup (rc->srv->store, rc->volname);
  if (v) {
    store_vol_get (v);
    rc->vol = v;
    rs_metrics_bind (rc, v);
  }
  if (v && !rc->admin) {
    uint64_t stored = store_vol_meta (v)->epoch;
    int verdict = rv_hello_epoch_check (stored, h.epoch);
    if (verdict < 0) {
      /* Older: fenced.  Too far ahead: refused, so that no message can
       * push the epoch out of every attach's reach (docs/DESIGN.md
       * rule 8); the stored epoch, and whoever holds it, are untouched.
       */
      static char why_buf[200];
      if (verdict == -EPERM)
        snprintf (why_buf, sizeof why_buf, "fenced: HELLO epoch %" PRIu64
                  " < volume %s epoch %" PRIu64, h.epoch, rc->volname, stored);
      else
        snprintf (why_buf, sizeof why_buf, "HELLO epoch %" PRIu64 " refused: "
                  "more than %u above volume %s epoch %" PRIu64, h.epoch,
                  RV_EPOCH_JUMP_MAX, rc->volname, stored);
      /* The close after the WELCOME logs why, once. */
      rs_refused (rc, RS_REFUSE_EPOCH);
      send_welcome (rc, rv_errno_to_status (-verdict), why_buf);
      return;
    }
    if (h.epoch > stored) {
      /* Persist before WELCOME: once the engine hears OK, no older
       * engine can write here again, even across a crash.
       */
      if (store_vol_set_epoch (v, h.epoch) < 0) {
        send_welcome (rc, RV_EIO, "cannot persist the new epoch");
        return;
      }
      log_info ("%s: volume %s epoch %" PRIu64 " -> %" PRIu64, c->name,
                rc->volname, stored, h.epoch);
      rs_metrics_epoch (rc, v);
    }
    rs_metrics_conn (rc, 1);
  }
  log_debug ("%s: HELLO %s volume %s epoch %" PRIu64 "%s%s", c->name,
             rc->admin ? "admin" : "data", rc->volname, h.epoch,
             rc->peer_id[0] ? " from " : "", rc->peer_id);
  send_welcome (rc, RV_OK, NULL);
}

/* ---- accepting -------------------------------------------------------- */

static bool
is_admin_id (const struct replica_server *srv, const char *id)
{
  if (!srv->admins)
    return true;
  for (unsigned i = 0; i < srv->nadmins; i++)
    if (strcmp (srv->admins[i], id) == 0)
      return true;
  return false;
}

/* The TLS handshake is over: the HELLO comes next, through TLS. */
static void
on_tls (struct conn *c, int err, const char *why, void *opaque)
{
  struct rs_conn *rc = opaque;

  if (err == -EPROTONOSUPPORT)
    rc->tls_refused = true;     /* read its HELLO to answer it */
  else if (err < 0) {
    metric_inc (rc->srv->mx.tls_failed);
    conn_close (c, "TLS handshake failed: %s", why);
    return;
  }
  else {
    snprintf (rc->peer_id, sizeof rc->peer_id, "%s", conn_peer_id (c));
    rc->may_admin = is_admin_id (rc->srv, rc->peer_id);
  }
  conn_expect (c, rc->hello, sizeof rc->hello, on_hello, rc);
}

static void
peer_name (int fd, char *buf, size_t len)
{
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char host[64], port[16];

  if (getpeername (fd, (struct sockaddr *) &ss, &sl) == -1 ||
      getnameinfo ((struct sockaddr *) &ss, sl, host, sizeof host, port,
                   sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    snprintf (buf, len, "client fd %d", fd);
  else
    snprintf (buf, len, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
              host, port);
}

/* A connection with requests in flight is not idle, however long the
 * store takes.
 */
static bool
rc_busy (struct conn *c, void *opaque)
{
  struct rs_conn *rc = opaque;

  return rc->inflight > 0;
}

/* A connection from the listener; counted there (in all and for its
 * address) until its rs_conn goes (rc_put), requests still finishing
 * included.
 */
static void
on_accept (struct listener *l, int fd, void *opaque)
{
  struct replica_server *srv = opaque;
  struct listener_peer *peer = listener_take_peer (l);
  char name[96];
  struct rs_conn *rc;

  peer_name (fd, name, sizeof name);
  rc = calloc (1, sizeof *rc);
  if (!rc) {
    close (fd);
    listener_peer_closed (l, peer);
    return;
  }
  rc->srv = srv;
  rc->peer = peer;
  rc->refs = 1;
  rc->c = conn_new (srv->loop, fd, name, on_close, rc);
  if (!rc->c) {
    ratelimit_warn (&l->log, listener_peer_key (peer),
                    "%s: cannot set up connection", name);
    close (fd);
    free (rc);
    listener_peer_closed (l, peer);
    return;
  }
  conn_get (rc->c);             /* ours until rc goes */
  conn_set_log_limit (rc->c, &l->log, listener_peer_key (peer));
  conn_set_stall_timeout (rc->c, srv->stall_ms);
  conn_set_idle_timeout (rc->c, srv->idle_ms, rc_busy);
  rc->next = srv->conns;
  if (srv->conns) srv->conns->prev = rc;
  srv->conns = rc;
  srv->nconns++;
  metric_inc (srv->mx.accepted);
  metric_gauge_add (srv->mx.open, 1);
  log_debug ("%s: connected", name);
  if (srv->tls)
    conn_start_tls (rc->c, srv->tls, on_tls, rc);
  else {
    rc->may_admin = true;       /* no identities: nothing to check */
    conn_expect (rc->c, rc->hello, sizeof rc->hello, on_hello, rc);
  }
}

struct replica_server *
replica_server_new (struct loop *loop, struct store *store, int listen_fd,
                    const char *name, const char *zone)
{
  struct replica_server *srv = calloc (1, sizeof *srv);
  int err;

  if (!srv) return NULL;
  srv->loop = loop;
  srv->stall_ms = RS_STALL_MS;
  srv->idle_ms = RS_IDLE_MS;
  srv->store = store;
  srv->lfd = listen_fd;
  snprintf (srv->name, sizeof srv->name, "%s", name);
  snprintf (srv->zone, sizeof srv->zone, "%s", zone ? zone : "");
  err = listener_init (&srv->listener, loop, listen_fd, "replica",
                       replica_server_default_max_conns (), on_accept, srv);
  if (err < 0) {
    log_error ("listen socket: %s", strerror (-err));
    free (srv);
    return NULL;
  }
  srv->listener.tcp_nodelay = true;
  srv->listener.max_per_peer = RS_MAX_CONNS_PER_PEER;
  return srv;
}

/* ---- shutdown --------------------------------------------------------- */

static void
finish_shutdown (struct replica_server *srv)
{
  void (*done) (void *) = srv->stop_done;

  loop_timer_cancel (srv->loop, &srv->stop_timer);
  srv->stop_done = NULL;
  if (done)
    done (srv->stop_opaque);
}

static void
maybe_finish_shutdown (struct replica_server *srv)
{
  if (srv->stopping && srv->nconns == 0 && srv->stop_done)
    finish_shutdown (srv);
}

static void
stop_timeout (struct loop_timer *t)
{
  struct replica_server *srv = t->opaque;

  log_warn ("shutdown: %u connection(s) still busy; closing them",
            srv->nconns);
  for (struct rs_conn *rc = srv->conns, *next; rc; rc = next) {
    next = rc->next;
    if (!rc->closed) {
      rc->refs++;             /* keep rc valid across conn_close */
      conn_close (rc->c, NULL);
      next = rc->next;
      rc_put (rc);
    }
  }
  finish_shutdown (srv);
}

void
replica_server_shutdown (struct replica_server *srv, unsigned timeout_ms,
                         void (*done) (void *), void *opaque)
{
  if (srv->stopping)
    return;
  srv->stopping = true;
  srv->stop_done = done;
  srv->stop_opaque = opaque;
  listener_fini (&srv->listener);
  close (srv->lfd);
  srv->lfd = -1;

  for (struct rs_conn *rc = srv->conns, *next; rc; rc = next) {
    rc->refs++;
    if (!rc->closed && rc->inflight == 0)
      conn_close (rc->c, NULL);
    next = rc->next;
    rc_put (rc);
  }
  if (srv->nconns == 0) {
    finish_shutdown (srv);
    return;
  }
  loop_timer_arm (srv->loop, &srv->stop_timer, timeout_ms, stop_timeout, srv);
}

void
replica_server_replace_tls (struct replica_server *srv,
                            struct tls_creds *creds)
{
  srv->tls = creds;
}

int
replica_server_set_tls (struct replica_server *srv, struct tls_creds *creds,
                        const char *admins)
{
  char *list, *save = NULL;

  srv->tls = creds;
  if (!admins)
    return 0;
  if ((list = strdup (admins)) == NULL)
    return -ENOMEM;
  for (char *id = strtok_r (list, ",", &save); id;
       id = strtok_r (NULL, ",", &save)) {
    char **a = realloc (srv->admins, (srv->nadmins + 1) * sizeof *a);
    if (!a || (a[srv->nadmins] = strdup (id)) == NULL) {
      if (a)
        srv->admins = a;
      free (list);
      return -ENOMEM;
    }
    srv->admins = a;
    srv->nadmins++;
  }
  free (list);
  if (srv->nadmins == 0)
    return -EINVAL;
  return 0;
}

void
replica_server_set_stall_timeout (struct replica_server *srv, unsigned ms)
{
  srv->stall_ms = ms;
}

void
replica_server_set_idle_timeout (struct replica_server *srv, unsigned ms)
{
  srv->idle_ms = ms;
}

void
replica_server_set_log_interval (struct replica_server *srv, unsigned ms)
{
  ratelimit_set_interval (&srv->listener.log, ms);
}

unsigned
replica_server_default_max_conns (void)
{
  struct rlimit rl;
  rlim_t n = 1024;

  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    n = rl.rlim_cur;
  n = n > RS_FD_RESERVE ? (n - RS_FD_RESERVE) / 2 : 0;
  return (unsigned) MIN (MAX (n, RS_MIN_CONNS), (rlim_t) RS_MAX_CONNS_CAP);
}

void
replica_server_set_conn_limits (struct replica_server *srv, unsigned total,
                                unsigned per_peer)
{
  srv->listener.max_conns = total;
  srv->listener.max_per_peer = per_peer;
}

void
replica_server_free (struct replica_server *srv)
{
  if (!srv) return;
  if (srv->nconns)
    /* Requests whose I/O never finished still point here: leak rather
     * than leave them dangling (we are exiting anyway).
     */
    return;
  if (srv->lfd >= 0) {
    listener_fini (&srv->listener);
    close (srv->lfd);
  }
  rs_metrics_fini (srv);
  rs_req_cache_free (srv);
  for (unsigned i = 0; i < srv->nadmins; i++)
    free (srv->admins[i]);
  free (srv->admins);
  free (srv);
}
