/* test_tls.c - core/tls.c and TLS in core/conn.c: a server conn's
 * handshake on the event loop against a blocking client on a thread,
 * frames larger than a TLS record both ways, the peer's identity, and
 * the refusals: a plaintext first byte, a client certificate from
 * another CA (the client learns why from the alert), a wrong PSK, and
 * plaintext bytes that arrive before the handshake (the STARTTLS
 * injection rule).
 *
 * Certificates come from scripts/tls-certs.sh into a temporary
 * directory, so the test needs certtool and psktool (gnutls-bin).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "core/conn.h"
#include "core/loop.h"
#include "core/tls.h"
#include "core/util.h"

#define BIG (100 * 1024)        /* several TLS records */

static char pki[64];            /* the temporary directory */

struct t {
  struct loop *loop;
  struct conn *c;
  struct tls_creds *server;
  int done_err;
  char done_why[256];
  char peer[TLS_ID_MAX];
  bool handshake_over;
  char *buf;
  struct loop_timer stop;
  /* the client thread */
  int peer_fd;
  const char *client_dir, *client_psk;
  int client_err;
  char client_why[512];
  char *echo;
  bool plaintext;               /* the client sends this instead of TLS */
  bool drop_server_creds;       /* run_pair frees the server creds at once */
};

static void
on_close (struct conn *c, void *opaque)
{
  struct t *t = opaque;
  t->c = NULL;
  loop_stop (t->loop);
}

static void
stop_cb (struct loop_timer *tm)
{
  loop_stop (((struct t *) tm->opaque)->loop);
}

static void
echoed (void *opaque, int err)
{
  struct t *t = opaque;
  loop_stop (t->loop);
}

static void
got_big (struct conn *c, void *opaque)
{
  struct t *t = opaque;
  conn_send (c, "hdr!", 4, t->buf, BIG, echoed, t);
}

static void
on_tls (struct conn *c, int err, const char *why, void *opaque)
{
  struct t *t = opaque;

  t->handshake_over = true;
  t->done_err = err;
  snprintf (t->done_why, sizeof t->done_why, "%s", why ? why : "");
  if (err < 0) {
    loop_stop (t->loop);
    return;
  }
  snprintf (t->peer, sizeof t->peer, "%s", conn_peer_id (c));
  conn_expect (c, t->buf, BIG, got_big, t);
}

/* The client: handshake, send BIG bytes, read back "hdr!" + BIG. */
static void *
client (void *arg)
{
  struct t *t = arg;
  struct tls_creds *cc = NULL;
  struct tls_session *s = NULL;
  struct error err = { 0 };
  char *out = malloc (BIG);
  size_t got = 0;

  for (size_t i = 0; i < BIG; i++)
    out[i] = (char) (i * 7 + 1);
  if (t->plaintext) {
    assert_int_equal (write (t->peer_fd, "RLOVHELO", 8), 8);
    free (out);
    return NULL;
  }
  t->client_err = tls_creds_load (&cc, TLS_CLIENT, t->client_dir,
                                  t->client_psk, &err);
  if (t->client_err == 0)
    t->client_err = tls_session_new (&s, cc, t->peer_fd, "localhost", &err);
  if (t->client_err == 0)
    t->client_err = tls_handshake (s, 5000, &err);
  for (size_t sent = 0; t->client_err == 0 && sent < BIG; ) {
    ssize_t r = tls_send (s, out + sent, BIG - sent);
    if (r < 0) {
      t->client_err = (int) r;
      snprintf (err.msg, sizeof err.msg, "%s", tls_last_error (s));
    }
    else
      sent += r;
  }
  t->echo = calloc (1, BIG + 4);
  while (t->client_err == 0 && got < BIG + 4) {
    ssize_t r = tls_recv (s, t->echo + got, BIG + 4 - got);
    if (r <= 0) {
      t->client_err = r ? (int) r : -ECONNRESET;
      snprintf (err.msg, sizeof err.msg, "%s", tls_last_error (s));
    }
    else
      got += r;
  }
  if (t->client_err == 0)
    assert_memory_equal (t->echo + 4, out, BIG);
  snprintf (t->client_why, sizeof t->client_why, "%s", err.msg);
  tls_session_free (s);
  tls_creds_free (cc);
  free (out);
  return NULL;
}

static void
run_pair (struct t *t, const char *server_dir, const char *server_psk)
{
  struct error err = { 0 };
  pthread_t th;
  int sv[2];

  t->loop = loop_new ();
  assert_int_equal (tls_creds_load (&t->server, TLS_SERVER, server_dir,
                                    server_psk, &err), 0);
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
  t->buf = malloc (BIG);
  t->c = conn_new (t->loop, sv[0], "test", on_close, t);
  t->peer_fd = sv[1];
  conn_start_tls (t->c, t->server, on_tls, t);
  if (t->drop_server_creds) {   /* replaced (repvold's SIGHUP) before the handshake */
    tls_creds_free (t->server);
    t->server = NULL;
  }
  assert_int_equal (pthread_create (&th, NULL, client, t), 0);
  loop_timer_arm (t->loop, &t->stop, 10000, stop_cb, t);
  loop_run (t->loop);
  if (t->c)
    conn_close (t->c, NULL);
  loop_timer_cancel (t->loop, &t->stop);
  /* The client sees the close (or finished): let it end. */
  pthread_join (th, NULL);
  close (t->peer_fd);
  loop_free (t->loop);
  tls_creds_free (t->server);
  free (t->buf);
  free (t->echo);
}

static char *
path (const char *rel)
{
  static char p[4][128];
  static int i;
  i = (i + 1) % 4;
  snprintf (p[i], sizeof p[i], "%s/%s", pki, rel);
  return p[i];
}

static void
test_x509_round_trip (void **state)
{
  struct t t = { .client_dir = path ("") };
  run_pair (&t, pki, NULL);
  assert_true (t.handshake_over);
  assert_int_equal (t.done_err, 0);
  assert_string_equal (t.peer, "admin");
  assert_int_equal (t.client_err, 0);
}

/* The server's credentials are dropped by their owner right after the
 * connection took them: the connection and its session hold their own
 * references, so the handshake and the transfer still work (valgrind
 * sees any use after free).
 */
static void
test_creds_dropped_midway (void **state)
{
  struct t t = { .client_dir = path (""), .drop_server_creds = true };
  run_pair (&t, pki, NULL);
  assert_int_equal (t.done_err, 0);
  assert_string_equal (t.peer, "admin");
  assert_int_equal (t.client_err, 0);
}

static void
test_psk_round_trip (void **state)
{
  struct t t = { .client_psk = path ("app.psk") };
  run_pair (&t, NULL, path ("keys.psk"));
  assert_int_equal (t.done_err, 0);
  assert_string_equal (t.peer, "app");
  assert_int_equal (t.client_err, 0);
}

static void
test_plaintext_client (void **state)
{
  struct t t = { .plaintext = true };
  run_pair (&t, pki, NULL);
  assert_int_equal (t.done_err, -EPROTONOSUPPORT);
}

static void
test_rogue_client_cert (void **state)
{
  struct t t = { .client_dir = path ("rogue") };
  run_pair (&t, pki, NULL);
  assert_int_equal (t.done_err, -EACCES);
  assert_non_null (strstr (t.done_why, "issuer is unknown"));
  /* TLS 1.3: the client hears it from the alert, after its handshake. */
  assert_int_equal (t.client_err, -EACCES);
  assert_non_null (strstr (t.client_why, "CA is unknown"));
}

static void
test_wrong_psk (void **state)
{
  struct t t = { .client_psk = path ("wrong.psk") };
  run_pair (&t, NULL, path ("keys.psk"));
  assert_int_equal (t.done_err, -EACCES);
  assert_non_null (strstr (t.done_why, "PSK user or key"));
  assert_int_equal (t.client_err, -EACCES);
}

/* Bytes buffered in plaintext when the handshake is to start. */
static void
got_four (struct conn *c, void *opaque)
{
  struct t *t = opaque;
  conn_start_tls (c, t->server, on_tls, t);
}

static void
test_bytes_before_handshake (void **state)
{
  struct t t = { 0 };
  struct error err = { 0 };
  char four[4];
  int sv[2];

  t.loop = loop_new ();
  assert_int_equal (tls_creds_load (&t.server, TLS_SERVER, pki, NULL, &err), 0);
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
  t.c = conn_new (t.loop, sv[0], "test", on_close, &t);
  assert_int_equal (write (sv[1], "STLS\x16\x03\x01\x00", 8), 8);
  conn_expect (t.c, four, 4, got_four, &t);
  loop_timer_arm (t.loop, &t.stop, 5000, stop_cb, &t);
  while (!t.handshake_over && t.c)
    loop_run (t.loop);
  assert_int_equal (t.done_err, -EPROTO);
  if (t.c)
    conn_close (t.c, NULL);
  loop_timer_cancel (t.loop, &t.stop);
  close (sv[1]);
  loop_free (t.loop);
  tls_creds_free (t.server);
}

static void
test_bad_files (void **state)
{
  struct tls_creds *c = NULL;
  struct error err = { 0 };
  FILE *f;

  assert_int_equal (tls_creds_load_x509 (&c, TLS_SERVER, "/nonexistent",
                                         &err), -ENOENT);
  assert_non_null (strstr (err.msg, "/nonexistent/ca-cert.pem"));
  assert_null (c);
  f = fopen (path ("bad.psk"), "w");
  fputs ("# comment\nuser:abc\n", f);
  fclose (f);
  assert_int_equal (tls_creds_load_psk (&c, TLS_CLIENT, path ("bad.psk"),
                                        &err), -EINVAL);
  assert_non_null (strstr (err.msg, "line 2"));
  /* A key that is not the certificate's. */
  assert_int_equal (tls_creds_load_x509 (&c, TLS_SERVER, path ("mismatch"),
                                         &err), -EINVAL);
  assert_non_null (strstr (err.msg, "does not belong to"));
}

static int
make_pki (void **state)
{
  char cmd[1024];

  snprintf (pki, sizeof pki, "/tmp/test_tls.XXXXXX");
  assert_non_null (mkdtemp (pki));
  snprintf (cmd, sizeof cmd,
            "set -e; c=scripts/tls-certs.sh; d=%s; exec >/dev/null;"
            "$c ca $d; $c server $d; $c client $d admin;"
            "$c ca $d/rogue-ca; $c client $d/rogue-ca admin --out $d/rogue;"
            "cp $d/ca-cert.pem $d/rogue/ca-cert.pem;"
            "$c psk $d/keys.psk app; cp $d/keys.psk $d/app.psk;"
            "$c psk $d/wrong.psk app; mkdir $d/mismatch;"
            "cp $d/ca-cert.pem $d/server-cert.pem $d/mismatch/;"
            "cp $d/client-key.pem $d/mismatch/server-key.pem", pki);
  return system (cmd) == 0 ? 0 : -1;
}

static int
remove_pki (void **state)
{
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf %s", pki);
  return system (cmd) == 0 ? 0 : -1;
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_x509_round_trip),
    cmocka_unit_test (test_creds_dropped_midway),
    cmocka_unit_test (test_psk_round_trip),
    cmocka_unit_test (test_plaintext_client),
    cmocka_unit_test (test_rogue_client_cert),
    cmocka_unit_test (test_wrong_psk),
    cmocka_unit_test (test_bytes_before_handshake),
    cmocka_unit_test (test_bad_files),
  };
  return cmocka_run_group_tests (tests, make_pki, remove_pki);
}
