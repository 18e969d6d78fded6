/* tls.h - TLS 1.3 on a stream socket, through GnuTLS.
 *
 * Two objects.  struct tls_creds is what a process loads once: X.509
 * from a directory in the layout nbdkit and qemu use (ca-cert.pem, and
 * server-cert.pem/server-key.pem or client-cert.pem/client-key.pem), or
 * a pre-shared key file in psktool's "username:hexkey" format.  A
 * struct tls_session is one connection: the handshake (non-blocking,
 * stepped by the caller's event loop, or bounded and blocking for the
 * CLI), then records in and out.
 *
 * Both ends authenticate: a server asks for and verifies the client's
 * certificate, a client verifies the server's certificate against the
 * host it dialled.  The peer's identity is its certificate's CN or its
 * PSK username (docs/DESIGN.md, "Trust").
 *
 * Process-wide client credentials (tls_client_setup) are how every
 * client in a process -- the CLI's admin connections, the attach
 * engine's replica connections -- presents the same identity without
 * threading credentials through every call.
 *
 * Everything returns 0 or a negative errno with the reason in err
 * (core/util.h); I/O returns a byte count or a negative errno, -EAGAIN
 * when the socket is not ready.
 */
#ifndef REPVOL_TLS_H
#define REPVOL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/util.h"

enum tls_role { TLS_SERVER, TLS_CLIENT };

#define TLS_ID_MAX 128          /* identity (CN or PSK user), with its NUL */

struct tls_creds;
struct tls_session;

/* X.509 from dir: ca-cert.pem plus ROLE-cert.pem and ROLE-key.pem. */
int tls_creds_load_x509 (struct tls_creds **out, enum tls_role role,
                         const char *dir, struct error *err);
/* A PSK file.  A server accepts every user in it; a client presents the
 * first line's.
 */
int tls_creds_load_psk (struct tls_creds **out, enum tls_role role,
                        const char *file, struct error *err);
/* Either, from the options (dir or psk may be NULL; psk wins, as with
 * nbdkit).  *out is NULL and 0 is returned when both are NULL.
 */
int tls_creds_load (struct tls_creds **out, enum tls_role role,
                    const char *dir, const char *psk, struct error *err);
/* Credentials are reference-counted: every session holds a reference,
 * so the holder of a set may replace it with a renewed one (repvold on
 * SIGHUP) and free its own while sessions still use the old.  Loading
 * gives the one reference; tls_creds_free drops one (NULL: nothing).
 * Thread-safe.
 */
struct tls_creds *tls_creds_ref (struct tls_creds *c);
void tls_creds_free (struct tls_creds *c);
/* "X.509 from DIR" or "PSK from FILE", for log lines. */
const char *tls_creds_describe (const struct tls_creds *c);
/* The identity these credentials present ("" for a server's PSK). */
const char *tls_creds_identity (const struct tls_creds *c);

/* The process's client credentials: loaded once from dir/psk, else
 * from $REPVOL_TLS_DIR / $REPVOL_TLS_PSK.  tls_client_creds() is NULL
 * when none were given (plaintext).
 */
int tls_client_setup (const char *dir, const char *psk, struct error *err);
struct tls_creds *tls_client_creds (void);
/* The directory the process's X.509 client credentials were loaded
 * from (ca-cert.pem, client-cert.pem, client-key.pem), for clients that
 * hand the files to another TLS library (the etcd registry's libcurl);
 * NULL with no credentials or with a PSK.
 */
const char *tls_client_dir (void);
void tls_client_cleanup (void);

/* A session on fd (not owned).  A client names the host it dialled
 * (a DNS name or an IP address), which the server's certificate must
 * match.
 */
int tls_session_new (struct tls_session **out, struct tls_creds *creds,
                     int fd, const char *server_host, struct error *err);
void tls_session_free (struct tls_session *s);

/* One step of the handshake: 0 done, -EAGAIN again when the socket is
 * ready (tls_wants_write says which way), anything else failed and err
 * says why, naming the cause (certificate not trusted, wrong key...).
 */
int tls_handshake_step (struct tls_session *s, struct error *err);
bool tls_wants_write (const struct tls_session *s);
/* The whole handshake on a socket of any mode, bounded by timeout_ms. */
int tls_handshake (struct tls_session *s, int timeout_ms, struct error *err);

/* Records: bytes moved, 0 (recv) at an orderly end, or a negative
 * errno: -EAGAIN not ready, -ECONNRESET an unclean end, -EPROTO a bad
 * record (the reason in tls_last_error).  After -EAGAIN from tls_send,
 * call it again with the same buffer and length.
 */
ssize_t tls_recv (struct tls_session *s, void *buf, size_t len);
ssize_t tls_send (struct tls_session *s, const void *buf, size_t len);
/* Decrypted bytes waiting inside GnuTLS, which poll cannot see. */
size_t tls_pending (const struct tls_session *s);
/* The GnuTLS reason for the last failed tls_recv/tls_send. */
const char *tls_last_error (const struct tls_session *s);

/* After the handshake: the peer's identity, and "TLS1.3 AES-256-GCM"... */
const char *tls_peer_id (const struct tls_session *s);
const char *tls_session_describe (struct tls_session *s);

/* A TLS record starts with this byte (a handshake record): how a
 * server tells a TLS client from a plaintext one by its first byte.
 */
#define TLS_RECORD_HANDSHAKE 0x16

#endif
