/* replica_admin.c - blocking admin client of the replication protocol.
 *
 * One request at a time on a blocking socket whose every send and
 * receive is bounded by SO_SNDTIMEO / SO_RCVTIMEO, so a server that
 * accepts and then says nothing costs the CLI a timeout, not a hang.
 * Every reply is checked (magic, id, status, payload length, crc32c)
 * before any field is believed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/util.h"
#include "replica/proto.h"
#include "replica/admin.h"

/* Set err to a one-line reason and errno to e; returns -1. */
static int __attribute__ ((format (printf, 4, 5)))
fail (int e, char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  if (err && errlen)
    vsnprintf (err, errlen, fmt, ap);
  va_end (ap);
  errno = e;
  return -1;
}

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
  case RV_EIO: return "I/O error on the server";
  default: return "server error";
  }
}

/* Receive exactly len bytes; distinguishes timeout from a closed peer. */
static int
recv_all (struct replica_admin *ra, void *buf, size_t len, const char *what,
          char *err, size_t errlen)
{
  char *p = buf;
  while (len > 0) {
    ssize_t r = recv (ra->fd, p, len, 0);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return fail (ETIMEDOUT, err, errlen,
                   "timed out after %d ms waiting for %s",
                   ra->timeout_ms, what);
    if (r == -1)
      return fail (errno, err, errlen, "receiving %s: %s", what, strerror (errno));
    if (r == 0)
      return fail (ECONNRESET, err, errlen,
                   "server closed the connection instead of sending %s", what);
    p += r;
    len -= r;
  }
  return 0;
}

static int
send_all (struct replica_admin *ra, const void *buf, size_t len,
          const char *what, char *err, size_t errlen)
{
  const char *p = buf;
  while (len > 0) {
    ssize_t r = send (ra->fd, p, len, MSG_NOSIGNAL);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return fail (ETIMEDOUT, err, errlen, "timed out after %d ms sending %s",
                   ra->timeout_ms, what);
    if (r == -1)
      return fail (errno, err, errlen, "sending %s: %s", what, strerror (errno));
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

int
replica_handshake (struct replica_admin *ra, const char *addr,
                   const char *vol, uint64_t epoch, uint32_t flags,
                   int timeout_ms, char *err, size_t errlen)
{
  uint8_t hbuf[RV_HELLO_SIZE], wbuf[RV_WELCOME_SIZE];
  struct rv_hello h = {
    .version = RV_PROTO_VERSION,
    .flags = flags,
    .epoch = epoch,
  };
  const char *why;

  memset (ra, 0, sizeof *ra);
  ra->fd = -1;
  ra->timeout_ms = timeout_ms > 0 ? timeout_ms : REPLICA_ADMIN_TIMEOUT_MS;
  ra->next_id = 1;

  if (!valid_name (vol))
    return fail (EINVAL, err, errlen, "invalid volume name \"%s\"", vol);
  snprintf (h.volume, sizeof h.volume, "%s", vol);

  ra->fd = tcp_connect (addr, ra->timeout_ms);
  if (ra->fd == -1) {
    int e = errno;
    if (e == ETIMEDOUT)
      return fail (e, err, errlen, "connect timed out after %d ms",
                   ra->timeout_ms);
    if (e == EINVAL)
      return fail (e, err, errlen, "not a valid ADDR:PORT");
    if (e == ECONNREFUSED)
      return fail (e, err, errlen, "connection refused (is repvold running there?)");
    if (e == EHOSTUNREACH)
      return fail (e, err, errlen, "cannot resolve or reach the host");
    return fail (e, err, errlen, "cannot connect: %s", strerror (e));
  }
  set_timeouts (ra->fd, ra->timeout_ms);

  rv_encode_hello (&h, hbuf);
  if (send_all (ra, hbuf, sizeof hbuf, "HELLO", err, errlen) == -1 ||
      recv_all (ra, wbuf, sizeof wbuf, "WELCOME", err, errlen) == -1)
    goto err;
  if (rv_decode_welcome (wbuf, &ra->welcome, &why) < 0) {
    fail (EPROTO, err, errlen, "bad WELCOME from server: %s", why);
    goto err;
  }
  if (ra->welcome.status != RV_OK) {
    fail (rv_status_to_errno (ra->welcome.status), err, errlen,
          "server refused HELLO: %s", status_reason (ra->welcome.status));
    goto err;
  }
  return 0;

 err:;
  int e = errno;
  close (ra->fd);
  ra->fd = -1;
  errno = e;
  return -1;
}

int
replica_admin_open (struct replica_admin *ra, const char *addr,
                    const char *vol, int timeout_ms, char *err, size_t errlen)
{
  /* Admin requests are not fenced: epoch 0. */
  return replica_handshake (ra, addr, vol, 0, RV_HELLO_ADMIN, timeout_ms,
                            err, errlen);
}

void
replica_admin_close (struct replica_admin *ra)
{
  if (ra->fd >= 0)
    close (ra->fd);
  ra->fd = -1;
}

/* Send q (its id filled in here) and payload (q->length bytes, if not
 * NULL), wait for the reply.  A reply payload of exactly rep_len bytes
 * is expected on success (0: none).
 */
static int
exchange (struct replica_admin *ra, struct rv_req q, const void *payload,
          void *rep_buf, uint32_t rep_len, char *err, size_t errlen)
{
  uint8_t qbuf[RV_REQ_SIZE], rbuf[RV_REP_SIZE];
  uint16_t cmd = q.cmd;
  uint32_t len = payload ? q.length : 0;
  struct rv_rep rep;
  const char *why;
  char what[64];

  q.id = ra->next_id++;

  if (ra->fd < 0)
    return fail (EBADF, err, errlen, "not connected");

  rv_encode_req (&q, qbuf);
  snprintf (what, sizeof what, "%s request", rv_cmd_name (cmd));
  if (send_all (ra, qbuf, sizeof qbuf, what, err, errlen) == -1 ||
      (len && send_all (ra, payload, len, what, err, errlen) == -1))
    return -1;

  snprintf (what, sizeof what, "the %s reply", rv_cmd_name (cmd));
  if (recv_all (ra, rbuf, sizeof rbuf, what, err, errlen) == -1)
    return -1;
  if (rv_decode_rep (rbuf, &rep, &why) < 0)
    return fail (EPROTO, err, errlen, "bad %s reply: %s", rv_cmd_name (cmd), why);
  if (rep.id != q.id)
    return fail (EPROTO, err, errlen,
                 "%s reply carries id %" PRIu64 ", expected %" PRIu64,
                 rv_cmd_name (cmd), rep.id, q.id);
  if (rep.status != RV_OK)
    return fail (rv_status_to_errno (rep.status), err, errlen, "%s",
                 status_reason (rep.status));
  if (rep.length != rep_len)
    return fail (EPROTO, err, errlen,
                 "%s reply has a %u byte payload, expected %u",
                 rv_cmd_name (cmd), rep.length, rep_len);
  if (rep_len) {
    if (recv_all (ra, rep_buf, rep_len, what, err, errlen) == -1)
      return -1;
    if (crc32c (0, rep_buf, rep_len) != rep.crc)
      return fail (EBADMSG, err, errlen, "%s reply payload checksum mismatch",
                   rv_cmd_name (cmd));
  }
  return 0;
}

/* A request with an optional payload and no offset. */
static int
request (struct replica_admin *ra, uint16_t cmd, uint16_t flags,
         const void *payload, uint32_t len, void *rep_buf, uint32_t rep_len,
         char *err, size_t errlen)
{
  struct rv_req q = {
    .cmd = cmd,
    .flags = flags,
    .length = len,
    .crc = len ? crc32c (0, payload, len) : 0,
  };

  return exchange (ra, q, len ? payload : NULL, rep_buf, rep_len, err, errlen);
}

int
replica_admin_create (struct replica_admin *ra, const struct rv_create *c,
                      char *err, size_t errlen)
{
  uint8_t buf[RV_CREATE_SIZE];
  rv_encode_create (c, buf);
  return request (ra, RV_CREATE, 0, buf, sizeof buf, NULL, 0, err, errlen);
}

int
replica_admin_delete (struct replica_admin *ra, char *err, size_t errlen)
{
  return request (ra, RV_DELETE, 0, NULL, 0, NULL, 0, err, errlen);
}

int
replica_admin_stat (struct replica_admin *ra, struct rv_volinfo *vi,
                    char *err, size_t errlen)
{
  uint8_t buf[RV_STAT_SIZE];
  const char *why;

  if (request (ra, RV_STAT, 0, NULL, 0, buf, sizeof buf, err, errlen) == -1)
    return -1;
  if (rv_decode_volinfo (buf, vi, &why) < 0)
    return fail (EPROTO, err, errlen, "bad STAT reply: %s", why);
  return 0;
}

int
replica_admin_read (struct replica_admin *ra, uint64_t offset, void *buf,
                    uint32_t len, char *err, size_t errlen)
{
  struct rv_req q = { .cmd = RV_READ, .offset = offset, .length = len };

  return exchange (ra, q, NULL, buf, len, err, errlen);
}

int
replica_admin_hello (const char *addr, const char *vol, int timeout_ms,
                     struct rv_welcome *w, char *err, size_t errlen)
{
  struct replica_admin ra;
  if (replica_admin_open (&ra, addr, vol, timeout_ms, err, errlen) == -1)
    return -1;
  if (w)
    *w = ra.welcome;
  replica_admin_close (&ra);
  return 0;
}

int
replica_admin_stat_once (const char *addr, const char *vol, int timeout_ms,
                         struct rv_welcome *w, struct rv_volinfo *vi,
                         char *err, size_t errlen)
{
  struct replica_admin ra;
  int r;

  if (replica_admin_open (&ra, addr, vol, timeout_ms, err, errlen) == -1)
    return -1;
  if (w)
    *w = ra.welcome;
  r = replica_admin_stat (&ra, vi, err, errlen);
  int e = errno;
  replica_admin_close (&ra);
  errno = e;
  return r;
}
