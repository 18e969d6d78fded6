/* nbd_handshake.c - the NBD handshake: from the greeting to the
 * transmission phase.
 *
 * A connection the listener accepted is greeted (fixed newstyle, no
 * zeroes), reads the client's flags, then option after option: LIST,
 * STRUCTURED_REPLY, INFO, ABORT, and GO or the old EXPORT_NAME, which
 * end the handshake (nbd_enter_transmission, nbd.c).  Every option
 * reply is a small frame built by nbd_proto.c and sent with conn_send.
 *
 * A TCP export with TLS credentials (attach --tls-dir/--tls-psk)
 * requires STARTTLS, as nbdkit's --tls=require does: before TLS every
 * option but STARTTLS and ABORT gets NBD_REP_ERR_TLS_REQD, and
 * EXPORT_NAME, which cannot carry an error, hangs up.  STARTTLS is
 * ACKed, and once the ACK is written the TLS handshake runs on the
 * socket (conn_start_tls, which refuses plaintext bytes sent after the
 * option: they would be injected into the TLS session); the options
 * then start again inside TLS.  Without credentials STARTTLS is
 * NBD_REP_ERR_UNSUP like any unknown option.
 * A client gets NBD_HANDSHAKE_MS from accept to GO and at most
 * NBD_MAX_OPTIONS options; past either it is disconnected.
 */
#include <endian.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "frontend/nbd_internal.h"

#define NBD_MAX_OPTIONS         256     /* per handshake: a looping client is broken */
#define NBD_HANDSHAKE_MS        30000   /* from accept to GO */

static const char zeroes[NBD_EXPORT_NAME_ZEROES];

static void on_opt_hdr (struct conn *c, void *opaque);


/* Send an option reply: header, a small fixed part copied with it, and
 * optionally a string that must stay valid until sent (the export name
 * or description, which live as long as the server).
 */
static void
opt_reply (struct nbd_client *cl, uint32_t reply, const void *part,
           size_t part_len, const char *str, size_t str_len)
{
  char hdr[CONN_HDR_MAX];
  size_t n = nbd_encode_option_reply (hdr, cl->opt.option, reply,
                                      part_len + str_len);

  if (part_len)
    memcpy (hdr + n, part, part_len);
  conn_send (cl->conn, hdr, n + part_len, str, str_len, NULL, NULL);
}

/* An error reply with a human-readable message (it must fit inline). */
static void
opt_error (struct nbd_client *cl, uint32_t reply, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

static void
opt_error (struct nbd_client *cl, uint32_t reply, const char *fmt, ...)
{
  char msg[CONN_HDR_MAX - NBD_OPTION_REPLY_LEN];
  va_list ap;
  int n;

  va_start (ap, fmt);
  n = vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  if (n < 0)
    n = 0;
  if ((size_t) n >= sizeof msg)
    n = sizeof msg - 1;
  log_debug ("%s: %s: %s", cl->name, nbd_option_name (cl->opt.option), msg);
  opt_reply (cl, reply, msg, n, NULL, 0);
}

static bool
export_matches (struct nbd_server *s, const struct nbd_option *o)
{
  const char *name = s->fe->export_name;

  /* The empty name is the default export, which is this volume. */
  return o->name_len == 0 ||
    (o->name_len == strlen (name) && memcmp (o->name, name, o->name_len) == 0);
}

static void
handle_info_or_go (struct nbd_client *cl, const struct nbd_option *o)
{
  struct nbd_server *s = cl->srv;
  const char *name = s->fe->export_name;
  char part[16];
  size_t n;

  if (!export_matches (s, o)) {
    opt_error (cl, NBD_REP_ERR_UNKNOWN,
               "unknown export '%.*s'; this server exports '%s'",
               (int) MIN (o->name_len, 40), o->name, name);
    goto next;
  }
  n = nbd_encode_info_export (part, s->exp.size, s->exp.tflags);
  opt_reply (cl, NBD_REP_INFO, part, n, NULL, 0);
  if (o->info_wanted & (1u << NBD_INFO_NAME)) {
    n = nbd_encode_info_type (part, NBD_INFO_NAME);
    opt_reply (cl, NBD_REP_INFO, part, n, name, strlen (name));
  }
  if (o->info_wanted & (1u << NBD_INFO_DESCRIPTION)) {
    n = nbd_encode_info_type (part, NBD_INFO_DESCRIPTION);
    opt_reply (cl, NBD_REP_INFO, part, n, s->description,
               strlen (s->description));
  }
  /* Always sent, requested or not: the spec allows it, and clients that
   * understand it (libnbd, qemu) then keep to our alignment.
   */
  n = nbd_encode_info_block_size (part, s->exp.min_block, s->exp.pref_block,
                                  s->exp.max_payload);
  opt_reply (cl, NBD_REP_INFO, part, n, NULL, 0);
  opt_reply (cl, NBD_REP_ACK, NULL, 0, NULL, 0);

  if (o->option == NBD_OPT_GO) {
    /* Only a client that asked for the constraints is held to them;
     * one that did not is served any byte range (nbd_unaligned.c).
     */
    cl->sizes_agreed = (o->info_wanted & (1u << NBD_INFO_BLOCK_SIZE)) != 0;
    nbd_enter_transmission (cl);
    return;
  }
 next:
  conn_expect (cl->conn, cl->optbuf, NBD_OPTION_HDR_LEN, on_opt_hdr, cl);
}

static void
abort_sent (void *opaque, int err)
{
  struct nbd_client *cl = opaque;

  cl->inflight--;               /* the ACK counted as a request */
  nbd_kick (cl->srv);
}

/* The TLS handshake after STARTTLS is over: go on with the options
 * inside TLS, or hang up (a failed handshake leaves nothing to talk on).
 */
static void
tls_done (struct conn *c, int err, const char *why, void *opaque)
{
  struct nbd_client *cl = opaque;

  if (err < 0) {
    conn_close (c, "TLS handshake after NBD_OPT_STARTTLS failed: %s", why);
    return;
  }
  cl->tls = true;
  log_info ("%s: TLS %s, client identity '%s'", cl->name,
            tls_session_describe (c->tls), conn_peer_id (c));
  conn_expect (c, cl->optbuf, NBD_OPTION_HDR_LEN, on_opt_hdr, cl);
}

/* The ACK to STARTTLS is written: the next byte on the socket is TLS. */
static void
starttls_sent (void *opaque, int err)
{
  struct nbd_client *cl = opaque;

  cl->inflight--;               /* the ACK counted as a request */
  if (err == 0 && cl->conn)
    conn_start_tls (cl->conn, cl->srv->tls, tls_done, cl);
  else
    nbd_kick (cl->srv);
}

/* An option on an export that requires TLS: true if it was handled
 * here (STARTTLS, or refused because TLS is not up yet), false if the
 * normal handling goes on.
 */
static bool
tls_gate (struct nbd_client *cl)
{
  char hdr[NBD_OPTION_REPLY_LEN];

  if (cl->opt.option == NBD_OPT_STARTTLS) {
    if (cl->tls)
      opt_error (cl, NBD_REP_ERR_INVALID, "TLS is already on");
    else if (cl->opt.len != 0)
      opt_error (cl, NBD_REP_ERR_INVALID, "NBD_OPT_STARTTLS takes no data");
    else {
      /* No conn_expect until the handshake is over: nothing may be read
       * in plaintext.  inflight keeps cl alive until the ACK is out.
       */
      cl->inflight++;
      nbd_encode_option_reply (hdr, NBD_OPT_STARTTLS, NBD_REP_ACK, 0);
      conn_send (cl->conn, hdr, sizeof hdr, NULL, 0, starttls_sent, cl);
      return true;
    }
    conn_expect (cl->conn, cl->optbuf, NBD_OPTION_HDR_LEN, on_opt_hdr, cl);
    return true;
  }
  if (cl->tls || cl->opt.option == NBD_OPT_ABORT)
    return false;
  if (cl->opt.option == NBD_OPT_EXPORT_NAME) {
    conn_close (cl->conn, "NBD_OPT_EXPORT_NAME before NBD_OPT_STARTTLS: "
                "this export requires TLS");
    return true;
  }
  opt_error (cl, NBD_REP_ERR_TLS_REQD, "this export requires TLS: send "
             "NBD_OPT_STARTTLS first");
  conn_expect (cl->conn, cl->optbuf, NBD_OPTION_HDR_LEN, on_opt_hdr, cl);
  return true;
}

static void
on_opt_payload (struct conn *c, void *opaque)
{
  struct nbd_client *cl = opaque;
  struct nbd_server *s = cl->srv;
  struct nbd_option o;
  uint32_t rc;
  char part[NBD_EXPORT_NAME_REPLY_LEN];
  const char *name = s->fe->export_name;
  uint32_t nlen;

  rc = nbd_parse_option (cl->opt.option, cl->optbuf, cl->opt.len, &o);
  log_debug ("%s: %s (%" PRIu32 " bytes)", cl->name,
             nbd_option_name (cl->opt.option), cl->opt.len);
  if (s->tls && tls_gate (cl))
    return;

  if (cl->opt.option == NBD_OPT_EXPORT_NAME) {
    /* No error reply exists for this option: the spec says to hang up. */
    if (rc != NBD_SUCCESS || !export_matches (s, &o)) {
      conn_close (c, "NBD_OPT_EXPORT_NAME: unknown export '%.*s'",
                  (int) MIN (o.name_len, 64), o.name);
      return;
    }
    nbd_encode_export_name_reply (part, s->exp.size, s->exp.tflags);
    conn_send (c, part, sizeof part, zeroes,
               cl->no_zeroes ? 0 : sizeof zeroes, NULL, NULL);
    nbd_enter_transmission (cl);
    return;
  }

  if (rc != NBD_SUCCESS) {
    opt_error (cl, rc, "%s %s", nbd_option_name (cl->opt.option),
               rc == NBD_REP_ERR_UNSUP ? "is not supported"
               : "has a malformed payload");
    goto next;
  }

  switch (cl->opt.option) {
  case NBD_OPT_ABORT:
    /* ACK, then close once it is out.  The client may already be gone. */
    cl->draining = true;
    cl->inflight++;
    {
      char hdr[NBD_OPTION_REPLY_LEN];
      nbd_encode_option_reply (hdr, NBD_OPT_ABORT, NBD_REP_ACK, 0);
      conn_send (c, hdr, sizeof hdr, NULL, 0, abort_sent, cl);
    }
    return;

  case NBD_OPT_LIST:
    nlen = htobe32 (strlen (name));
    opt_reply (cl, NBD_REP_SERVER, &nlen, 4, name, strlen (name));
    opt_reply (cl, NBD_REP_ACK, NULL, 0, NULL, 0);
    break;

  case NBD_OPT_STRUCTURED_REPLY:
    cl->structured = true;
    opt_reply (cl, NBD_REP_ACK, NULL, 0, NULL, 0);
    break;

  case NBD_OPT_INFO:
  case NBD_OPT_GO:
    handle_info_or_go (cl, &o);
    return;
  }

 next:
  conn_expect (c, cl->optbuf, NBD_OPTION_HDR_LEN, on_opt_hdr, cl);
}

static void
on_opt_hdr (struct conn *c, void *opaque)
{
  struct nbd_client *cl = opaque;
  const char *why;

  why = nbd_decode_option_hdr (cl->optbuf, &cl->opt);
  if (why) {
    conn_close (c, "%s", why);
    return;
  }
  if (++cl->n_options > NBD_MAX_OPTIONS) {
    conn_close (c, "more than %d options in one handshake", NBD_MAX_OPTIONS);
    return;
  }
  conn_expect (c, cl->optbuf, cl->opt.len, on_opt_payload, cl);
}

static void
on_client_flags (struct conn *c, void *opaque)
{
  struct nbd_client *cl = opaque;
  uint32_t flags;
  const char *why = nbd_check_client_flags (cl->optbuf, &flags);

  if (why) {
    conn_close (c, "%s (flags 0x%08x)", why, flags);
    return;
  }
  cl->no_zeroes = flags & NBD_FLAG_C_NO_ZEROES;
  conn_expect (c, cl->optbuf, NBD_OPTION_HDR_LEN, on_opt_hdr, cl);
}

static void
handshake_timeout (struct loop_timer *t)
{
  struct nbd_client *cl = t->opaque;

  if (cl->conn)
    conn_close (cl->conn, "no NBD_OPT_GO within %d s", NBD_HANDSHAKE_MS / 1000);
}

void
nbd_handshake_start (struct nbd_client *cl)
{
  char greeting[NBD_GREETING_LEN];

  loop_timer_arm (cl->srv->loop, &cl->handshake_timer, NBD_HANDSHAKE_MS,
                  handshake_timeout, cl);
  nbd_encode_greeting (greeting, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
  conn_send (cl->conn, greeting, sizeof greeting, NULL, 0, NULL, NULL);
  conn_expect (cl->conn, cl->optbuf, NBD_CLIENT_FLAGS_LEN, on_client_flags, cl);
}
