/* tls.c - TLS 1.3 sessions and credentials over GnuTLS (see tls.h).
 *
 * No TLS of our own: GnuTLS does the protocol, the certificate checks
 * and the PSK binder.  What lives here is the policy (TLS 1.3 only,
 * mutual authentication, AES-GCM before ChaCha20 for PSK, whose
 * SHA-256 binder otherwise lets ChaCha20 win on machines with AES-NI),
 * turning GnuTLS's codes into reasons a user can act on, and the
 * non-blocking rules (-EAGAIN means "call again the same way").
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "core/tls.h"

/* TLS 1.3 only, AES-GCM first: AES-128-GCM (NORMAL would put
 * AES-256-GCM first; both are sound for TLS 1.3, and 128 has fewer
 * rounds per record), then AES-256-GCM; ChaCha20 last for X.509 peers
 * without AES instructions (about 10x slower with them), and not at
 * all for PSK (psktool keys' SHA-256 binder would make it win).
 */
#define PRIO_CIPHERS ":-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM"
#define PRIO_X509 "NORMAL:-VERS-ALL:+VERS-TLS1.3" PRIO_CIPHERS \
                  ":+CHACHA20-POLY1305"
#define PRIO_PSK  "NORMAL:-VERS-ALL:+VERS-TLS1.3:+ECDHE-PSK:+DHE-PSK:+PSK" \
                  PRIO_CIPHERS

struct tls_creds {
  unsigned refs;                /* the loader's, and one per session */
  enum tls_role role;
  bool psk;
  gnutls_certificate_credentials_t x509;
  gnutls_psk_server_credentials_t psk_server;
  gnutls_psk_client_credentials_t psk_client;
  char identity[TLS_ID_MAX];
  char describe[PATH_MAX + 16];
};

struct tls_session {
  gnutls_session_t s;
  struct tls_creds *creds;
  bool established;
  char peer_id[TLS_ID_MAX];
  char desc[160];
  char last_error[256];
};

/* ---- credentials ------------------------------------------------------ */

static struct tls_creds *
creds_alloc (enum tls_role role, bool psk, const char *what,
             const char *path)
{
  struct tls_creds *c = calloc (1, sizeof *c);
  if (c) {
    c->refs = 1;
    c->role = role;
    c->psk = psk;
    snprintf (c->describe, sizeof c->describe, "%s from %s", what, path);
  }
  return c;
}

/* The CN of a certificate: PEM (a file's first) or DER. */
static int
cert_common_name (const gnutls_datum_t *d, gnutls_x509_crt_fmt_t fmt,
                  char *cn, size_t cnlen)
{
  gnutls_x509_crt_t crt;
  size_t len = cnlen;
  int r;

  cn[0] = '\0';
  if (gnutls_x509_crt_init (&crt) < 0)
    return -ENOMEM;
  r = gnutls_x509_crt_import (crt, d, fmt);
  if (r >= 0)
    r = gnutls_x509_crt_get_dn_by_oid (crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0,
                                       cn, &len);
  gnutls_x509_crt_deinit (crt);
  if (r < 0) {
    cn[0] = '\0';
    return -EINVAL;
  }
  return 0;
}

static int
need_file (const char *path, struct error *err)
{
  if (access (path, R_OK) == 0)
    return 0;
  int e = errno;
  return error_set (err, e, "%s: %s", path, strerror (e));
}

int
tls_creds_load_x509 (struct tls_creds **out, enum tls_role role,
                     const char *dir, struct error *err)
{
  const char *who = role == TLS_SERVER ? "server" : "client";
  char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
  struct tls_creds *c;
  gnutls_datum_t pem = { NULL, 0 };
  int r;

  *out = NULL;
  snprintf (ca, sizeof ca, "%s/ca-cert.pem", dir);
  snprintf (cert, sizeof cert, "%s/%s-cert.pem", dir, who);
  snprintf (key, sizeof key, "%s/%s-key.pem", dir, who);
  if ((r = need_file (ca, err)) < 0 || (r = need_file (cert, err)) < 0 ||
      (r = need_file (key, err)) < 0)
    return r;
  if ((c = creds_alloc (role, false, "X.509", dir)) == NULL)
    return error_set (err, ENOMEM, "out of memory");
  if (gnutls_certificate_allocate_credentials (&c->x509) < 0) {
    free (c);
    return error_set (err, ENOMEM, "out of memory");
  }
  r = gnutls_certificate_set_x509_trust_file (c->x509, ca,
                                              GNUTLS_X509_FMT_PEM);
  if (r <= 0) {
    tls_creds_free (c);
    return error_set (err, EINVAL, "%s: %s", ca, r == 0 ?
                      "no certificate in it" : gnutls_strerror (r));
  }
  r = gnutls_certificate_set_x509_key_file (c->x509, cert, key,
                                            GNUTLS_X509_FMT_PEM);
  if (r < 0) {
    tls_creds_free (c);
    if (r == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
      return error_set (err, EINVAL, "%s does not belong to %s", key, cert);
    return error_set (err, EINVAL, "%s, %s: %s", cert, key,
                      gnutls_strerror (r));
  }
  if (gnutls_load_file (cert, &pem) == 0) {
    cert_common_name (&pem, GNUTLS_X509_FMT_PEM, c->identity,
                      sizeof c->identity);
    gnutls_free (pem.data);
  }
  *out = c;
  return 0;
}

/* Check a psktool file: one "user:hexkey" per line, at least one.  The
 * first user goes to first_user, its key to first_key.
 */
static int
parse_psk_file (const char *file, char *first_user, size_t ulen,
                char *first_key, size_t klen, struct error *err)
{
  FILE *fp = fopen (file, "re");
  char line[1024];
  int n = 0, lineno = 0;

  if (!fp) {
    int e = errno;
    return error_set (err, e, "%s: %s", file, strerror (e));
  }
  while (fgets (line, sizeof line, fp)) {
    char *colon, *hex;
    size_t hl;

    lineno++;
    line[strcspn (line, "\r\n")] = '\0';
    if (line[0] == '\0' || line[0] == '#')
      continue;
    colon = strchr (line, ':');
    hex = colon ? colon + 1 : NULL;
    hl = hex ? strlen (hex) : 0;
    if (!colon || colon == line || (size_t) (colon - line) >= ulen ||
        hl == 0 || hl % 2 || hl >= klen ||
        strspn (hex, "0123456789abcdefABCDEF") != hl) {
      fclose (fp);
      return error_set (err, EINVAL,
                        "%s line %d: not \"username:hexkey\" (make one with "
                        "psktool -u USER -p %s)", file, lineno, file);
    }
    if (n++ == 0) {
      /* Both fit: checked above. */
      memcpy (first_user, line, colon - line);
      first_user[colon - line] = '\0';
      memcpy (first_key, hex, hl + 1);
    }
  }
  fclose (fp);
  if (n == 0)
    return error_set (err, EINVAL, "%s: no key in it", file);
  return 0;
}

int
tls_creds_load_psk (struct tls_creds **out, enum tls_role role,
                    const char *file, struct error *err)
{
  char user[TLS_ID_MAX], hex[512];
  struct tls_creds *c;
  int r;

  *out = NULL;
  if ((r = parse_psk_file (file, user, sizeof user, hex, sizeof hex,
                           err)) < 0)
    return r;
  if ((c = creds_alloc (role, true, "PSK", file)) == NULL)
    return error_set (err, ENOMEM, "out of memory");
  if (role == TLS_SERVER) {
    r = gnutls_psk_allocate_server_credentials (&c->psk_server);
    if (r >= 0)
      r = gnutls_psk_set_server_credentials_file (c->psk_server, file);
  }
  else {
    gnutls_datum_t key = { (unsigned char *) hex, strlen (hex) };
    r = gnutls_psk_allocate_client_credentials (&c->psk_client);
    if (r >= 0)
      r = gnutls_psk_set_client_credentials (c->psk_client, user, &key,
                                             GNUTLS_PSK_KEY_HEX);
    snprintf (c->identity, sizeof c->identity, "%s", user);
  }
  explicit_bzero (hex, sizeof hex);
  if (r < 0) {
    tls_creds_free (c);
    return error_set (err, EINVAL, "%s: %s", file, gnutls_strerror (r));
  }
  *out = c;
  return 0;
}

int
tls_creds_load (struct tls_creds **out, enum tls_role role, const char *dir,
                const char *psk, struct error *err)
{
  *out = NULL;
  if (psk && *psk)
    return tls_creds_load_psk (out, role, psk, err);
  if (dir && *dir)
    return tls_creds_load_x509 (out, role, dir, err);
  return 0;
}

struct tls_creds *
tls_creds_ref (struct tls_creds *c)
{
  __atomic_add_fetch (&c->refs, 1, __ATOMIC_RELAXED);
  return c;
}

void
tls_creds_free (struct tls_creds *c)
{
  if (!c || __atomic_sub_fetch (&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
    return;
  if (c->x509)
    gnutls_certificate_free_credentials (c->x509);
  if (c->psk_server)
    gnutls_psk_free_server_credentials (c->psk_server);
  if (c->psk_client)
    gnutls_psk_free_client_credentials (c->psk_client);
  free (c);
}

const char *
tls_creds_describe (const struct tls_creds *c)
{
  return c->describe;
}

const char *
tls_creds_identity (const struct tls_creds *c)
{
  return c->identity;
}

/* ---- the process's client credentials --------------------------------- */

static struct tls_creds *client_creds;
static char client_dir[PATH_MAX];   /* X.509 only: where they came from */

int
tls_client_setup (const char *dir, const char *psk, struct error *err)
{
  int r;

  if (client_creds)
    return 0;
  if (!dir && !psk) {
    dir = getenv ("REPVOL_TLS_DIR");
    psk = getenv ("REPVOL_TLS_PSK");
  }
  r = tls_creds_load (&client_creds, TLS_CLIENT, dir, psk, err);
  if (r < 0)
    error_prefix (err, "TLS credentials: ");
  else if (client_creds && !psk && dir)
    snprintf (client_dir, sizeof client_dir, "%s", dir);
  return r;
}

const char *
tls_client_dir (void)
{
  return client_creds && client_dir[0] ? client_dir : NULL;
}

struct tls_creds *
tls_client_creds (void)
{
  return client_creds;
}

void
tls_client_cleanup (void)
{
  tls_creds_free (client_creds);
  client_creds = NULL;
  client_dir[0] = '\0';
}

/* ---- sessions --------------------------------------------------------- */

static bool
is_ip_literal (const char *host)
{
  unsigned char buf[sizeof (struct in6_addr)];
  return inet_pton (AF_INET, host, buf) == 1 ||
    inet_pton (AF_INET6, host, buf) == 1;
}

int
tls_session_new (struct tls_session **out, struct tls_creds *creds, int fd,
                 const char *server_host, struct error *err)
{
  struct tls_session *t = calloc (1, sizeof *t);
  bool server = creds->role == TLS_SERVER;
  const char *errpos = NULL;
  int r;

  *out = NULL;
  if (!t)
    return error_set (err, ENOMEM, "out of memory");
  r = gnutls_init (&t->s, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                   GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
  if (r < 0) {
    free (t);
    return error_set (err, ENOMEM, "gnutls_init: %s", gnutls_strerror (r));
  }
  r = gnutls_priority_set_direct (t->s, creds->psk ? PRIO_PSK : PRIO_X509,
                                  &errpos);
  if (r >= 0 && creds->psk)
    r = gnutls_credentials_set (t->s, GNUTLS_CRD_PSK, server ?
                                (void *) creds->psk_server :
                                (void *) creds->psk_client);
  else if (r >= 0)
    r = gnutls_credentials_set (t->s, GNUTLS_CRD_CERTIFICATE, creds->x509);
  if (r >= 0 && !creds->psk && server) {
    /* Verified after the handshake (verify_client), so that the alert
     * the client gets names the reason.
     */
    gnutls_certificate_server_set_request (t->s, GNUTLS_CERT_REQUIRE);
  }
  else if (r >= 0 && !creds->psk) {
    const char *host = server_host && *server_host ? server_host : "localhost";
    if (!is_ip_literal (host))
      r = gnutls_server_name_set (t->s, GNUTLS_NAME_DNS, host, strlen (host));
    gnutls_session_set_verify_cert (t->s, host, 0);
  }
  if (r < 0) {
    gnutls_deinit (t->s);
    free (t);
    return error_set (err, EINVAL, "TLS session: %s", gnutls_strerror (r));
  }
  /* GnuTLS uses the credentials for the session's life (a renewed set
   * may replace ours meanwhile: tls_creds_free is an unref).
   */
  t->creds = tls_creds_ref (creds);
  gnutls_transport_set_int (t->s, fd);
  *out = t;
  return 0;
}

void
tls_session_free (struct tls_session *t)
{
  if (!t)
    return;
  /* One close_notify if it fits in the socket now; never wait for it. */
  if (t->established)
    gnutls_bye (t->s, GNUTLS_SHUT_WR);
  gnutls_deinit (t->s);
  tls_creds_free (t->creds);
  free (t);
}

static void
fill_peer (struct tls_session *t)
{
  char *d;

  if (t->creds->psk) {
    const char *u = t->creds->role == TLS_SERVER ?
      gnutls_psk_server_get_username (t->s) : t->creds->identity;
    snprintf (t->peer_id, sizeof t->peer_id, "%s", u ? u : "");
  }
  else {
    unsigned n = 0;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers (t->s, &n);
    if (chain && n > 0)
      cert_common_name (&chain[0], GNUTLS_X509_FMT_DER, t->peer_id,
                        sizeof t->peer_id);
  }
  d = gnutls_session_get_desc (t->s);
  snprintf (t->desc, sizeof t->desc, "%s", d ? d : "TLS");
  gnutls_free (d);
}

/* Trailing blanks off GnuTLS's sentences. */
static void
trim (char *s)
{
  size_t n = strlen (s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n'))
    s[--n] = '\0';
}

/* A server's check of the client's certificate: signed by our CA,
 * current, for TLS client use.  On failure the client gets an alert
 * that says which (GnuTLS's own verification during the handshake would
 * send "internal error").
 */
static int
verify_client (struct tls_session *t, struct error *err)
{
  gnutls_typed_vdata_st purpose = {
    .type = GNUTLS_DT_KEY_PURPOSE_OID,
    .data = (void *) GNUTLS_KP_TLS_WWW_CLIENT,
  };
  gnutls_datum_t out = { NULL, 0 };
  unsigned status = 0;
  int r, e;

  r = gnutls_certificate_verify_peers (t->s, &purpose, 1, &status);
  if (r == 0 && status == 0)
    return 0;
  if (r < 0) {
    gnutls_alert_send (t->s, GNUTLS_AL_FATAL, GNUTLS_A_BAD_CERTIFICATE);
    return error_set (err, EACCES, "the client's certificate cannot be "
                      "checked: %s", gnutls_strerror (r));
  }
  gnutls_alert_send (t->s, GNUTLS_AL_FATAL,
                     status & GNUTLS_CERT_EXPIRED ?
                     GNUTLS_A_CERTIFICATE_EXPIRED :
                     status & GNUTLS_CERT_SIGNER_NOT_FOUND ?
                     GNUTLS_A_UNKNOWN_CA : GNUTLS_A_BAD_CERTIFICATE);
  gnutls_certificate_verification_status_print (status, GNUTLS_CRT_X509,
                                                &out, 0);
  if (out.data)
    trim ((char *) out.data);
  e = error_set (err, EACCES, "the client's certificate is not accepted: %s",
                 out.data ? (char *) out.data : "verification failed");
  gnutls_free (out.data);
  return e;
}

/* Why a handshake failed, in words that point at the fix. */
static int
handshake_error (struct tls_session *t, int r, struct error *err)
{
  bool server = t->creds->role == TLS_SERVER;
  const char *peer = server ? "client" : "server";

  switch (r) {
  case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
  case GNUTLS_E_CERTIFICATE_ERROR: {
    unsigned status = gnutls_session_get_verify_cert_status (t->s);
    gnutls_datum_t out = { NULL, 0 };
    int e;
    gnutls_certificate_verification_status_print (status, GNUTLS_CRT_X509,
                                                  &out, 0);
    if (out.data)
      trim ((char *) out.data);
    e = error_set (err, EACCES, "the %s's certificate is not accepted: %s",
                   peer, out.data ? (char *) out.data : gnutls_strerror (r));
    gnutls_free (out.data);
    return e;
  }
  case GNUTLS_E_NO_CERTIFICATE_FOUND:
    return error_set (err, EACCES, "the %s presented no certificate", peer);
  case GNUTLS_E_FATAL_ALERT_RECEIVED: {
    gnutls_alert_description_t a = gnutls_alert_get (t->s);
    return error_set (err, EACCES, "the %s refused the TLS handshake "
                      "(alert: %s)%s", peer, gnutls_alert_get_name (a),
                      a == GNUTLS_A_HANDSHAKE_FAILURE ? "; do both ends use "
                      "the same kind of credentials, X.509 or PSK?" :
                      t->creds->psk ? "; is the PSK user and key the "
                      "server's?" : "");
  }
  case GNUTLS_E_PREMATURE_TERMINATION:
  case GNUTLS_E_PULL_ERROR:
  case GNUTLS_E_PUSH_ERROR:
    return error_set (err, ECONNRESET, "the %s closed the connection during "
                      "the TLS handshake (does it use TLS%s?)", peer,
                      t->creds->psk ? " with this PSK" : "");
  case GNUTLS_E_UNEXPECTED_PACKET:
  case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
  case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
    return error_set (err, EPROTO, "the %s does not speak TLS 1.3 (%s)", peer,
                      gnutls_strerror (r));
  case GNUTLS_E_INSUFFICIENT_CREDENTIALS:
  case GNUTLS_E_NO_CIPHER_SUITES:
    return error_set (err, EACCES, "the %s uses other credentials (X.509 "
                      "against PSK?): %s", peer, gnutls_strerror (r));
  case GNUTLS_E_ILLEGAL_PARAMETER:
  case GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER:
  case GNUTLS_E_DECRYPTION_FAILED:
    if (t->creds->psk)
      return error_set (err, EACCES, "the %s's PSK user or key is not one of "
                        "ours", peer);
    /* fall through */
  default:
    return error_set (err, EPROTO, "TLS handshake: %s", gnutls_strerror (r));
  }
}

int
tls_handshake_step (struct tls_session *t, struct error *err)
{
  int r = gnutls_handshake (t->s);

  if (r == 0) {
    if (t->creds->role == TLS_SERVER && !t->creds->psk &&
        (r = verify_client (t, err)) < 0)
      return r;
    t->established = true;
    fill_peer (t);
    return 0;
  }
  if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
    return -EAGAIN;
  if (!gnutls_error_is_fatal (r))
    return -EAGAIN;             /* a warning alert: go on */
  int code = r;
  r = handshake_error (t, code, err);
  /* Tell the peer why, so that its user sees more than a closed socket
   * (with TLS 1.3 a client learns its certificate was refused only from
   * this alert).
   */
  if (t->creds->role == TLS_SERVER && t->creds->psk &&
      (code == GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER ||
       code == GNUTLS_E_ILLEGAL_PARAMETER ||
       code == GNUTLS_E_DECRYPTION_FAILED))
    /* A TLS 1.3 binder that does not check out: unknown user or key. */
    gnutls_alert_send (t->s, GNUTLS_AL_FATAL, GNUTLS_A_UNKNOWN_PSK_IDENTITY);
  else if (t->creds->role == TLS_SERVER &&
           (code == GNUTLS_E_INSUFFICIENT_CREDENTIALS ||
            code == GNUTLS_E_NO_CIPHER_SUITES))
    gnutls_alert_send (t->s, GNUTLS_AL_FATAL, GNUTLS_A_HANDSHAKE_FAILURE);
  else if (t->creds->role == TLS_SERVER)
    gnutls_alert_send_appropriate (t->s, code);
  return r;
}

bool
tls_wants_write (const struct tls_session *t)
{
  return gnutls_record_get_direction (t->s) == 1;
}

int
tls_handshake (struct tls_session *t, int timeout_ms, struct error *err)
{
  int fd = gnutls_transport_get_int (t->s);
  int flags = fcntl (fd, F_GETFL);
  uint64_t deadline = now_ns () + (uint64_t) timeout_ms * 1000000u;
  int r;

  if (flags != -1 && !(flags & O_NONBLOCK))
    fcntl (fd, F_SETFL, flags | O_NONBLOCK);
  while ((r = tls_handshake_step (t, err)) == -EAGAIN) {
    uint64_t now = now_ns ();
    struct pollfd p = {
      .fd = fd, .events = tls_wants_write (t) ? POLLOUT : POLLIN,
    };
    if (now >= deadline) {
      r = error_set (err, ETIMEDOUT, "TLS handshake timed out after %d ms",
                     timeout_ms);
      break;
    }
    if (poll (&p, 1, (int) ((deadline - now) / 1000000u) + 1) == -1 &&
        errno != EINTR) {
      int e = errno;
      r = error_set (err, e, "poll: %s", strerror (e));
      break;
    }
  }
  if (flags != -1 && !(flags & O_NONBLOCK))
    fcntl (fd, F_SETFL, flags);
  return r;
}

/* A send failed because the peer closed: an alert saying why may be
 * waiting in the socket (a server refusing our certificate under TLS 1.3
 * sends it after our handshake has finished).  Look for it.
 */
static bool
alert_waiting (struct tls_session *t)
{
  char b;
  ssize_t r = gnutls_record_recv (t->s, &b, 1);

  if (r != GNUTLS_E_FATAL_ALERT_RECEIVED)
    return false;
  snprintf (t->last_error, sizeof t->last_error,
            "TLS alert \"%s\"",
            gnutls_alert_get_name (gnutls_alert_get (t->s)));
  return true;
}

static ssize_t
record_error (struct tls_session *t, ssize_t r)
{
  if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
    return -EAGAIN;
  if (r == GNUTLS_E_FATAL_ALERT_RECEIVED) {
    snprintf (t->last_error, sizeof t->last_error,
              "TLS alert \"%s\"",
              gnutls_alert_get_name (gnutls_alert_get (t->s)));
    return -EACCES;
  }
  if ((r == GNUTLS_E_PUSH_ERROR || r == GNUTLS_E_PREMATURE_TERMINATION) &&
      t->established && alert_waiting (t))
    return -EACCES;
  snprintf (t->last_error, sizeof t->last_error, "%s", gnutls_strerror (r));
  if (r == GNUTLS_E_PREMATURE_TERMINATION || r == GNUTLS_E_PUSH_ERROR ||
      r == GNUTLS_E_PULL_ERROR)
    return -ECONNRESET;
  return -EPROTO;
}

ssize_t
tls_recv (struct tls_session *t, void *buf, size_t len)
{
  ssize_t r = gnutls_record_recv (t->s, buf, len);
  return r >= 0 ? r : record_error (t, r);
}

ssize_t
tls_send (struct tls_session *t, const void *buf, size_t len)
{
  ssize_t r = gnutls_record_send (t->s, buf, len);
  return r >= 0 ? r : record_error (t, r);
}

size_t
tls_pending (const struct tls_session *t)
{
  return gnutls_record_check_pending (t->s);
}

const char *
tls_last_error (const struct tls_session *t)
{
  return t->last_error[0] ? t->last_error : "TLS error";
}

const char *
tls_peer_id (const struct tls_session *t)
{
  return t->peer_id;
}

const char *
tls_session_describe (struct tls_session *t)
{
  return t->desc[0] ? t->desc : "TLS";
}
