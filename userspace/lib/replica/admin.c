/* admin.c - blocking admin client of the replication protocol.
 *
 * One request at a time on a blocking socket whose every send and
 * receive is bounded by SO_SNDTIMEO / SO_RCVTIMEO, so a server that
 * accepts and then says nothing costs the CLI a timeout, not a hang.
 * Every reply is checked (magic, id, status, payload length, crc32c)
 * before any field is believed.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/util.h"
#include "replica/proto.h"
#include "replica/admin.h"
#include "store/store.h"            /* STORE_MAX_SIZE: the servers' bound */

/* What a protocol status means to someone running the CLI. */
static const char *
status_reason (uint32_t status)
{
  switch (status) {
  case RV_EPERM: return "refused: fenced by a newer epoch";
  case RV_ENOENT: return "no such volume on this server";
  case RV_EEXIST: return "volume already exists on this server";
  case RV_EINVAL: return "server refused the request as invalid";
  case RV_ENOSPC: return "no space left on the server";
  case RV_ECRC: return "checksum mismatch";
  case RV_ENOTSUP: return "not supported by this server";
  case RV_EACCES: return "permission denied";
  case RV_ETLSREQ:
    return "this server requires TLS (give --tls-dir DIR or --tls-psk FILE, "
      "or set REPVOL_TLS_DIR)";
  case RV_EBUSY: return "the volume is in use by an attach on this server";
  case RV_ERANGE: return "refused: the epoch is too far ahead of the replica's";
  case RV_EIO: return "I/O error on the server";
  case RV_EFBIG: return "volume too large for this server";
  default: return "server error";
  }
}

/* One recv or send on the socket or through TLS: a count or -errno. */
static ssize_t
ra_recv (struct replica_admin *ra, void *buf, size_t len)
{
  ssize_t r;
  if (ra->tls)
    return tls_recv (ra->tls, buf, len);
  r = recv (ra->fd, buf, len, 0);
  return r >= 0 ? r : -errno;
}

static ssize_t
ra_send (struct replica_admin *ra, const void *buf, size_t len)
{
  ssize_t r;
  if (ra->tls)
    return tls_send (ra->tls, buf, len);
  r = send (ra->fd, buf, len, MSG_NOSIGNAL);
  return r >= 0 ? r : -errno;
}

/* Why a TLS connection failed, for the user: with TLS 1.3 a server that
 * refuses a client's certificate says so only after the client's
 * handshake is done, so the refusal shows up here, at the first read.
 */
static int
io_error (struct replica_admin *ra, ssize_t r, bool receiving,
          const char *what, struct error *err)
{
  if (r == -EAGAIN || r == -EWOULDBLOCK)
    return error_set (err, ETIMEDOUT, "timed out after %d ms %s %s",
                      ra->timeout_ms, receiving ? "waiting for" : "sending",
                      what);
  if (ra->tls && r == -EACCES)
    return error_set (err, EACCES, "the server refused our TLS credentials "
                      "(%s)", tls_last_error (ra->tls));
  if (r == 0 || r == -ECONNRESET || r == -EPIPE)
    return error_set (err, ECONNRESET, receiving ?
                      "server closed the connection instead of sending %s" :
                      "server closed the connection while we sent %s", what);
  return error_set (err, (int) -r, "%s %s: %s",
                    receiving ? "receiving" : "sending", what, ra->tls ?
                    tls_last_error (ra->tls) : strerror ((int) -r));
}

/* Receive exactly len bytes; distinguishes timeout from a closed peer. */
static int
recv_all (struct replica_admin *ra, void *buf, size_t len, const char *what,
          struct error *err)
{
  char *p = buf;
  while (len > 0) {
    ssize_t r = ra_recv (ra, p, len);
    if (r == -EINTR)
      continue;
    if (r <= 0)
      return io_error (ra, r, true, what, err);
    p += r;
    len -= r;
  }
  return 0;
}

static int
send_all (struct replica_admin *ra, const void *buf, size_t len,
          const char *what, struct error *err)
{
  const char *p = buf;
  while (len > 0) {
    ssize_t r = ra_send (ra, p, len);
    if (r == -EINTR)
      continue;
    if (r <= 0)
      return io_error (ra, r ? r : -EIO, false, what, err);
    p += r;
    len -= r;
  }
  return 0;
}

static void
set_timeouts (int fd, int timeout_ms)
{
  struct timeval tv = {
    .tv_sec = timeout_ms / 1000,
    .tv_usec = (timeout_ms % 1000) * 1000,
  };
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* TLS first, verifying that the server's certificate names the host we
 * dialled.
 */
static int
start_tls (struct replica_admin *ra, const char *addr, struct error *err)
{
  char host[256];
  const char *port;
  int r;

  if (hostport_split (addr, host, sizeof host, &port) < 0)
    return error_set (err, EINVAL, "not a valid ADDR:PORT");
  r = tls_session_new (&ra->tls, tls_client_creds (), ra->fd, host, err);
  if (r == 0)
    r = tls_handshake (ra->tls, ra->timeout_ms, err);
  return r;
}

int
replica_handshake (struct replica_admin *ra, const char *addr,
                   const char *vol, uint64_t epoch, uint32_t flags,
                   int timeout_ms, struct error *err)
{
  uint8_t hbuf[RV_HELLO_SIZE], wbuf[RV_WELCOME_SIZE];
  struct rv_hello h = {
    .version = RV_PROTO_VERSION,
    .flags = flags,
    .epoch = epoch,
  };
  const char *why;
  int r;

  memset (ra, 0, sizeof *ra);
  ra->fd = -1;
  ra->timeout_ms = timeout_ms > 0 ? timeout_ms : REPLICA_ADMIN_TIMEOUT_MS;
  ra->next_id = 1;

  if (!valid_name (vol))
    return error_set (err, EINVAL, "invalid volume name \"%s\"", vol);
  snprintf (h.volume, sizeof h.volume, "%s", vol);
  snprintf (ra->volume, sizeof ra->volume, "%s", vol);

  ra->fd = tcp_connect (addr, ra->timeout_ms);
  if (ra->fd == -1) {
    int e = errno;
    if (e == ETIMEDOUT)
      return error_set (err, e, "connect timed out after %d ms",
                        ra->timeout_ms);
    if (e == EINVAL)
      return error_set (err, e, "not a valid ADDR:PORT");
    if (e == ECONNREFUSED)
      return error_set (err, e,
                        "connection refused (is repvold running there?)");
    if (e == EHOSTUNREACH)
      return error_set (err, e, "cannot resolve or reach the host");
    return error_set (err, e, "cannot connect: %s", strerror (e));
  }
  set_timeouts (ra->fd, ra->timeout_ms);
  if (tls_client_creds () && (r = start_tls (ra, addr, err)) < 0)
    goto err;

  rv_encode_hello (&h, hbuf);
  if ((r = send_all (ra, hbuf, sizeof hbuf, "HELLO", err)) < 0 ||
      (r = recv_all (ra, wbuf, sizeof wbuf, "WELCOME", err)) < 0) {
    /* A server at one of its connection limits closes at once. */
    if (r == -ECONNRESET || r == -EPIPE)
      r = error_set (err, ECONNRESET, "the server closed the connection "
                     "before its WELCOME (at its connection limit? its log "
                     "says)");
    goto err;
  }
  if (rv_decode_welcome (wbuf, &ra->welcome, &why) < 0) {
    r = error_set (err, EPROTO, "bad WELCOME from server: %s", why);
    goto err;
  }
  if (ra->welcome.status != RV_OK) {
    r = error_set (err, rv_status_to_errno (ra->welcome.status),
                   "server refused HELLO: %s",
                   status_reason (ra->welcome.status));
    goto err;
  }
  return 0;

 err:
  replica_admin_close (ra);
  return r;
}

int
replica_admin_open (struct replica_admin *ra, const char *addr,
                    const char *vol, int timeout_ms, struct error *err)
{
  /* Admin requests are not fenced: epoch 0. */
  return replica_handshake (ra, addr, vol, 0, RV_HELLO_ADMIN, timeout_ms,
                            err);
}

void
replica_admin_close (struct replica_admin *ra)
{
  tls_session_free (ra->tls);
  ra->tls = NULL;
  if (ra->fd >= 0)
    close (ra->fd);
  ra->fd = -1;
}

/* "permission denied: app may not delete vol1 on s1" */
static int
permission_denied (struct replica_admin *ra, uint16_t cmd, struct error *err)
{
  struct tls_creds *creds = tls_client_creds ();
  char verb[32];
  size_t i;

  snprintf (verb, sizeof verb, "%s", rv_cmd_name (cmd));
  for (i = 0; verb[i]; i++)
    verb[i] = verb[i] == '_' ? ' ' : tolower ((unsigned char) verb[i]);
  return error_set (err, EACCES, "permission denied: %s may not %s %s on %s",
                    creds && tls_creds_identity (creds)[0] ?
                    tls_creds_identity (creds) : "this client", verb,
                    ra->volume, ra->welcome.server[0] ? ra->welcome.server :
                    "this server");
}

/* Send q (its id filled in here) and payload (q->length bytes, if not
 * NULL), wait for the reply.  A reply payload of exactly rep_len bytes
 * is expected on success (0: none).
 */
static int
exchange (struct replica_admin *ra, struct rv_req q, const void *payload,
          void *rep_buf, uint32_t rep_len, struct error *err)
{
  uint8_t qbuf[RV_REQ_SIZE], rbuf[RV_REP_SIZE];
  uint16_t cmd = q.cmd;
  uint32_t len = payload ? q.length : 0;
  struct rv_rep rep;
  const char *why;
  char what[64];
  int r;

  q.id = ra->next_id++;

  if (ra->fd < 0)
    return error_set (err, EBADF, "not connected");

  rv_encode_req (&q, qbuf);
  snprintf (what, sizeof what, "%s request", rv_cmd_name (cmd));
  if ((r = send_all (ra, qbuf, sizeof qbuf, what, err)) < 0 ||
      (len && (r = send_all (ra, payload, len, what, err)) < 0))
    return r;

  snprintf (what, sizeof what, "the %s reply", rv_cmd_name (cmd));
  if ((r = recv_all (ra, rbuf, sizeof rbuf, what, err)) < 0)
    return r;
  if (rv_decode_rep (rbuf, &rep, &why) < 0)
    return error_set (err, EPROTO, "bad %s reply: %s", rv_cmd_name (cmd), why);
  if (rep.id != q.id)
    return error_set (err, EPROTO,
                      "%s reply carries id %" PRIu64 ", expected %" PRIu64,
                      rv_cmd_name (cmd), rep.id, q.id);
  if (rep.status == RV_EACCES)
    return permission_denied (ra, cmd, err);
  if (rep.status != RV_OK)
    return error_set (err, rv_status_to_errno (rep.status), "%s",
                      status_reason (rep.status));
  if (rep.length != rep_len)
    return error_set (err, EPROTO,
                      "%s reply has a %u byte payload, expected %u",
                      rv_cmd_name (cmd), rep.length, rep_len);
  if (rep_len) {
    if ((r = recv_all (ra, rep_buf, rep_len, what, err)) < 0)
      return r;
    if (crc32c (0, rep_buf, rep_len) != rep.crc)
      return error_set (err, EBADMSG, "%s reply payload checksum mismatch",
                        rv_cmd_name (cmd));
  }
  return 0;
}

/* A request with an optional payload and no offset. */
static int
request (struct replica_admin *ra, uint16_t cmd, uint16_t flags,
         const void *payload, uint32_t len, void *rep_buf, uint32_t rep_len,
         struct error *err)
{
  struct rv_req q = {
    .cmd = cmd,
    .flags = flags,
    .length = len,
    .crc = len ? crc32c (0, payload, len) : 0,
  };

  return exchange (ra, q, len ? payload : NULL, rep_buf, rep_len, err);
}

int
replica_admin_create (struct replica_admin *ra, const struct rv_create *c,
                      struct error *err)
{
  uint8_t buf[RV_CREATE_SIZE];
  char a[32], b[32];
  int r;

  rv_encode_create (c, buf);
  r = request (ra, RV_CREATE, 0, buf, sizeof buf, NULL, 0, err);
  /* The server's bounds (docs/DESIGN.md 3.7), said in the CLI's terms;
   * its log has the figures.
   */
  format_size (c->size, a, sizeof a);
  if (r == -EFBIG && c->size > STORE_MAX_SIZE)
    error_set (err, EFBIG, "volume size %s exceeds this server's maximum "
               "of %s", a, format_size (STORE_MAX_SIZE, b, sizeof b));
  else if (r == -EFBIG)
    error_set (err, EFBIG, "volume size %s needs more dirty-map memory "
               "than this server has left (see its log)", a);
  else if (r == -ENOSPC && (c->flags & RV_F_RESERVE))
    error_set (err, ENOSPC, "cannot reserve %s: the server's free space "
               "minus its --reserve-margin is less (see its log)", a);
  return r;
}

int
replica_admin_delete (struct replica_admin *ra, struct error *err)
{
  return request (ra, RV_DELETE, 0, NULL, 0, NULL, 0, err);
}

int
replica_admin_stat (struct replica_admin *ra, struct rv_volinfo *vi,
                    struct error *err)
{
  uint8_t buf[RV_STAT_SIZE];
  const char *why;
  int r;

  r = request (ra, RV_STAT, 0, NULL, 0, buf, sizeof buf, err);
  if (r < 0)
    return r;
  if (rv_decode_volinfo (buf, vi, &why) < 0)
    return error_set (err, EPROTO, "bad STAT reply: %s", why);
  return 0;
}

int
replica_admin_set_epoch (struct replica_admin *ra, uint64_t epoch,
                         struct error *err)
{
  uint8_t buf[RV_SET_EPOCH_SIZE];
  rv_encode_set_epoch (epoch, buf);
  return request (ra, RV_SET_EPOCH, 0, buf, sizeof buf, NULL, 0, err);
}

int
replica_admin_resize (struct replica_admin *ra, uint64_t size, uint32_t flags,
                      struct error *err)
{
  struct rv_req q = { .cmd = RV_RESIZE, .flags = flags, .offset = size };
  const char *srv = ra->welcome.server[0] ? ra->welcome.server
                    : "this server";
  char a[32], b[32];
  int r;

  if (!(ra->welcome.features & RV_FEAT_RESIZE))
    return error_set (err, ENOTSUP, "server %s is too old to resize volumes",
                      srv);
  r = exchange (ra, q, NULL, NULL, 0, err);
  /* The server's bounds (docs/DESIGN.md 3.7, 3.10) in the CLI's terms;
   * its log has the figures.
   */
  format_size (size, a, sizeof a);
  switch (r) {
  case -EFBIG:
    if (size > STORE_MAX_SIZE)
      error_set (err, EFBIG, "volume size %s exceeds this server's maximum "
                 "of %s", a, format_size (STORE_MAX_SIZE, b, sizeof b));
    else
      error_set (err, EFBIG, "volume size %s needs more dirty-map memory "
                 "than this server has left (see its log)", a);
    break;
  case -ENOSPC:
    error_set (err, ENOSPC, "cannot reserve the grown range up to %s: the "
               "server's free space minus its --reserve-margin is less (see "
               "its log)", a);
    break;
  case -EBUSY:
    error_set (err, EBUSY, "the volume is in use by an attach on this "
               "server: resize it through the attach, or detach it first");
    break;
  case -EINVAL:
    error_set (err, EINVAL, "size %s refused: zero, or not a multiple of "
               "the volume's block size", a);
    break;
  case -ENOTSUP:
    error_set (err, ENOTSUP, "the server's filesystem cannot reserve space "
               "(fallocate)");
    break;
  }
  return r;
}

int
replica_admin_read (struct replica_admin *ra, uint64_t offset, void *buf,
                    uint32_t len, struct error *err)
{
  struct rv_req q = { .cmd = RV_READ, .offset = offset, .length = len };

  return exchange (ra, q, NULL, buf, len, err);
}

int
replica_admin_stat_once (const char *addr, const char *vol, int timeout_ms,
                         struct rv_welcome *w, struct rv_volinfo *vi,
                         struct error *err)
{
  struct replica_admin ra;
  int r;

  r = replica_admin_open (&ra, addr, vol, timeout_ms, err);
  if (r < 0)
    return r;
  if (w)
    *w = ra.welcome;
  r = replica_admin_stat (&ra, vi, err);
  replica_admin_close (&ra);
  return r;
}
