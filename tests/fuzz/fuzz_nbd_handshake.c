/* libFuzzer harness for frontend/nbd_handshake.c, the NBD option haggling
 * state machine, driven from a buffer: the input is one flags byte (TLS
 * required or not, the TLS handshake succeeding or not, which export
 * name) and then the client's byte stream (client flags, then options).
 *
 * No socket and no event loop: nbd_handshake.c talks to the world only
 * through conn_expect / conn_send / conn_close / conn_start_tls,
 * loop_timer_arm and nbd.c's nbd_enter_transmission / nbd_kick, so this
 * file defines those (a link seam: the harness's definitions win, and
 * conn.o, loop.o and nbd.o are never pulled out of librepvol.a).
 * conn_expect's bytes are served from the input, conn_send's frames are
 * checked, send callbacks run on the next step as the real conn does.
 *
 * Invariants (abort on violation):
 *   - at most one read outstanding, never into more than optbuf, never
 *     after close or during the TLS handshake; nothing sent after close;
 *   - every frame after the greeting is an option reply for the option
 *     being handled whose length field matches what follows, or the
 *     EXPORT_NAME reply right before transmission;
 *   - with TLS required and not up, nothing but TLS_REQD (or STARTTLS's
 *     and ABORT's answers) comes back and transmission never starts;
 *   - transmission starts only after GO / EXPORT_NAME for this export,
 *     GO's last reply being the ACK;
 *   - no more than 256 options; the handshake timer closes a connection
 *     left in the handshake; every send callback runs, inflight ends 0.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tls.h"
#include "core/wire.h"
#include "frontend/nbd_internal.h"

/* ---- the fake connection ------------------------------------------------ */

#define MAX_DONE 16

static struct {
  struct nbd_client *cl;
  bool closed;
  bool expecting;
  void *buf;
  size_t len;
  conn_read_cb cb;
  void *opaque;
  /* send callbacks not yet run */
  int ndone;
  conn_sent_cb done[MAX_DONE];
  void *done_opaque[MAX_DONE];
  /* TLS handshake asked for */
  conn_tls_cb tls_cb;
  void *tls_opaque;
  /* timer */
  void (*timer_cb) (struct loop_timer *);
  struct loop_timer *timer;
  /* what was sent */
  int sends;
  bool greeted;
  bool export_name_reply;       /* the 10-byte EXPORT_NAME answer */
  uint32_t last_reply;          /* type of the last option reply */
  int transmissions;
} F;

void
conn_expect (struct conn *c, void *buf, size_t len, conn_read_cb cb,
             void *opaque)
{
  struct nbd_client *cl = F.cl;
  if (F.closed || F.expecting || F.tls_cb || F.transmissions)
    abort ();
  if ((char *) buf < (char *) cl || (char *) buf + len > (char *) (cl + 1))
    abort ();                   /* not into the client's buffers */
  if (buf == cl->optbuf && len > sizeof cl->optbuf)
    abort ();
  if (cl->n_options > 256)
    abort ();                   /* read on past NBD_MAX_OPTIONS */
  F.expecting = true;
  F.buf = buf;
  F.len = len;
  F.cb = cb;
  F.opaque = opaque;
}

void
conn_send (struct conn *c, const void *hdr, size_t hdr_len,
           const void *payload, size_t payload_len, conn_sent_cb done,
           void *opaque)
{
  struct nbd_client *cl = F.cl;
  if (F.closed || hdr_len > CONN_HDR_MAX || (payload_len && payload == NULL))
    abort ();
  F.sends++;
  if (!F.greeted) {
    if (hdr_len != NBD_GREETING_LEN || getbe64 (hdr) != NBD_MAGIC ||
        getbe64 ((const char *) hdr + 8) != NBD_OPTS_MAGIC || payload_len)
      abort ();
    F.greeted = true;
  } else if (hdr_len == NBD_EXPORT_NAME_REPLY_LEN) {
    if (cl->opt.option != NBD_OPT_EXPORT_NAME ||
        getbe64 (hdr) != cl->srv->exp.size ||
        payload_len != (cl->no_zeroes ? 0 : NBD_EXPORT_NAME_ZEROES))
      abort ();
    F.export_name_reply = true;
  } else {
    const char *h = hdr;
    if (hdr_len < NBD_OPTION_REPLY_LEN || getbe64 (h) != NBD_REP_MAGIC ||
        getbe32 (h + 8) != cl->opt.option ||
        getbe32 (h + 16) != hdr_len - NBD_OPTION_REPLY_LEN + payload_len)
      abort ();
    uint32_t reply = getbe32 (h + 12);
    F.last_reply = reply;
    if (cl->srv->tls && !cl->tls) {
      bool ok = reply == NBD_REP_ERR_TLS_REQD ||
        (cl->opt.option == NBD_OPT_STARTTLS &&
         (reply == NBD_REP_ACK || reply == NBD_REP_ERR_INVALID)) ||
        (cl->opt.option == NBD_OPT_ABORT && reply == NBD_REP_ACK);
      if (!ok)
        abort ();               /* an answer before TLS */
    }
    if (reply == NBD_REP_INFO && hdr_len >= NBD_OPTION_REPLY_LEN + 12 &&
        getbe16 (h + 20) == NBD_INFO_EXPORT &&
        (getbe64 (h + 22) != cl->srv->exp.size ||
         getbe16 (h + 30) != cl->srv->exp.tflags))
      abort ();
  }
  if (done) {
    if (F.ndone == MAX_DONE)
      abort ();
    F.done[F.ndone] = done;
    F.done_opaque[F.ndone++] = opaque;
  }
}

void
conn_close (struct conn *c, const char *fmt, ...)
{
  if (F.closed)
    abort ();
  F.closed = true;
  F.expecting = false;
}

void
conn_start_tls (struct conn *c, struct tls_creds *creds, conn_tls_cb done,
                void *opaque)
{
  if (F.closed || F.expecting || F.tls_cb || creds == NULL)
    abort ();
  F.tls_cb = done;
  F.tls_opaque = opaque;
}

const char *
conn_peer_id (const struct conn *c)
{
  return "client.example";
}

const char *
tls_session_describe (struct tls_session *s)
{
  return "(TLS1.3)";
}

void
loop_timer_arm (struct loop *loop, struct loop_timer *t, uint64_t ms,
                void (*cb) (struct loop_timer *), void *opaque)
{
  t->opaque = opaque;
  F.timer = t;
  F.timer_cb = cb;
}

void
nbd_kick (struct nbd_server *s)
{
}

void
nbd_enter_transmission (struct nbd_client *cl)
{
  struct nbd_server *s = cl->srv;
  const char *name = s->fe->export_name;
  if (F.closed || F.expecting || F.transmissions++)
    abort ();
  if (s->tls && !cl->tls)
    abort ();                   /* served in plaintext */
  if (cl->opt.option == NBD_OPT_GO) {
    if (F.last_reply != NBD_REP_ACK)
      abort ();
  } else if (cl->opt.option != NBD_OPT_EXPORT_NAME || !F.export_name_reply)
    abort ();
  /* The name asked for is in optbuf: this export or the default. */
  uint32_t nlen = cl->opt.option == NBD_OPT_GO ? getbe32 (cl->optbuf)
    : cl->opt.len;
  const char *n = cl->optbuf + (cl->opt.option == NBD_OPT_GO ? 4 : 0);
  if (nlen != 0 && (nlen != strlen (name) || memcmp (n, name, nlen) != 0))
    abort ();
  cl->transmission = true;
}

/* ---- the driver ---------------------------------------------------------- */

static void
run_done (int err)
{
  while (F.ndone > 0) {
    conn_sent_cb cb = F.done[0];
    void *op = F.done_opaque[0];
    memmove (F.done, F.done + 1, --F.ndone * sizeof F.done[0]);
    memmove (F.done_opaque, F.done_opaque + 1, F.ndone * sizeof F.done_opaque[0]);
    cb (op, err);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *const names[] = { "vol", "", "a-longer-volume-name" };
  static char creds_token;
  static struct nbd_client cl;
  static struct nbd_server srv;
  static struct frontend fe;
  static struct conn conn;

  if (size == 0)
    return 0;
  uint8_t flags = *data++;
  size--;

  memset (&F, 0, sizeof F);
  memset (&cl, 0, sizeof cl);
  memset (&srv, 0, sizeof srv);
  memset (&fe, 0, sizeof fe);
  memset (&conn, 0, sizeof conn);
  fe.export_name = (char *) names[(flags >> 2) % 3];
  srv.fe = &fe;
  srv.exp = (struct nbd_export) {
    .size = UINT64_C (1) << 30,
    .tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA,
    .min_block = 512, .pref_block = 4096, .max_payload = 32u << 20,
  };
  snprintf (srv.description, sizeof srv.description, "fuzz volume");
  srv.tls = (flags & 1) ? (struct tls_creds *) &creds_token : NULL;
  srv.is_tcp = true;
  cl.srv = &srv;
  cl.conn = &conn;
  snprintf (cl.name, sizeof cl.name, "nbd: fuzz");
  F.cl = &cl;

  nbd_handshake_start (&cl);
  if (!F.greeted || F.timer_cb == NULL)
    abort ();

  size_t pos = 0;
  for (;;) {
    run_done (F.closed ? ECONNRESET : 0);
    if (F.tls_cb) {
      conn_tls_cb cb = F.tls_cb;
      F.tls_cb = NULL;
      /* tls_done logs the session (log_info): not on every run. */
      static FILE *devnull;
      if (devnull == NULL && (devnull = fopen ("/dev/null", "w")) == NULL)
        abort ();
      FILE *saved = stderr;
      stderr = devnull;
      cb (&conn, (flags & 2) ? -EIO : 0, "handshake failed", F.tls_opaque);
      stderr = saved;
      continue;
    }
    if (F.closed || F.transmissions || !F.expecting || F.len > size - pos)
      break;
    F.expecting = false;
    memcpy (F.buf, data + pos, F.len);
    pos += F.len;
    F.cb (&conn, F.opaque);
  }
  /* The input ran out: the handshake timer fires on what is left. */
  if (!F.closed && !F.transmissions) {
    F.expecting = false;
    F.timer_cb (F.timer);
    if (!F.closed)
      abort ();
  }
  run_done (ECONNRESET);
  if (cl.inflight != 0)
    abort ();
  return 0;
}
