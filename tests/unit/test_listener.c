/* test_listener.c - core/listener.c on a real loopback TCP socket:
 * every connection is handed over nonblocking; at the limit a new one
 * is closed at once (the client reads EOF) and counted; a closed
 * connection frees its place; listener_fini stops accepting; the
 * per-address limit refuses one source address (127.0.0.2) while
 * another (127.0.0.1) still gets in.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "core/util.h"
#include "core/loop.h"
#include "core/listener.h"

struct ctx {
  struct loop *loop;
  int fds[16];
  struct listener_peer *peers[16];
  int n;
  int want;                     /* stop the loop at this many */
  bool take;                    /* take each connection's peer */
};

static void
on_conn (struct listener *l, int fd, void *opaque)
{
  struct ctx *c = opaque;

  assert_true (fcntl (fd, F_GETFL) & O_NONBLOCK);
  assert_true (fcntl (fd, F_GETFD) & FD_CLOEXEC);
  assert_true (c->n < (int) ARRAY_SIZE (c->fds));
  c->peers[c->n] = c->take ? listener_take_peer (l) : NULL;
  c->fds[c->n++] = fd;
  if (c->n == c->want)
    loop_stop (c->loop);
}

static void
bound (struct loop_timer *t)
{
  loop_stop (t->opaque);
}

/* Run the loop until c->want connections arrived or 5 s passed. */
static void
run_until (struct ctx *c, int want)
{
  struct loop_timer t = { 0 };

  c->want = want;
  loop_timer_arm (c->loop, &t, 5000, bound, c->loop);
  loop_run (c->loop);
  loop_timer_cancel (c->loop, &t);
}

/* Run the loop until l has refused n connections (bounded: 5 s). */
static void
poll_refused (struct ctx *c, struct listener *l, uint64_t n)
{
  uint64_t deadline = now_ns () + 5000000000ull;
  struct loop_timer t = { 0 };

  while (l->refused < n && now_ns () < deadline) {
    loop_timer_arm (c->loop, &t, 5, bound, c->loop);
    loop_run (c->loop);
  }
}

/* A listening socket on 127.0.0.1, any free port. */
static int
listen_any (void)
{
  struct sockaddr_in sin = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  assert_true (fd >= 0);
  assert_int_equal (bind (fd, (struct sockaddr *) &sin, sizeof sin), 0);
  assert_int_equal (listen (fd, 16), 0);
  return fd;
}

/* Connect to 127.0.0.1:port from 127.0.0.<from>. */
static int
dial_from (uint16_t port, int from)
{
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons (port),
                             .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  struct sockaddr_in src = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl (0x7f000000 | from) };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  assert_true (fd >= 0);
  assert_int_equal (bind (fd, (struct sockaddr *) &src, sizeof src), 0);
  assert_int_equal (connect (fd, (struct sockaddr *) &sin, sizeof sin), 0);
  return fd;
}

static int
dial (uint16_t port)
{
  return dial_from (port, 1);
}

static void
test_limit (void **state)
{
  struct ctx c = { .loop = loop_new () };
  struct listener l;
  struct sockaddr_in sin;
  socklen_t len = sizeof sin;
  int lfd = listen_any (), cl[4];
  char ch;

  assert_true (lfd >= 0);
  assert_int_equal (getsockname (lfd, (struct sockaddr *) &sin, &len), 0);
  uint16_t port = ntohs (sin.sin_port);
  assert_int_equal (listener_init (&l, c.loop, lfd, "test", 2, on_conn, &c),
                    0);

  cl[0] = dial (port);
  cl[1] = dial (port);
  run_until (&c, 2);
  assert_int_equal (c.n, 2);
  assert_int_equal (l.nconns, 2);

  /* The third is refused: closed by the server, EOF at the client. */
  cl[2] = dial (port);
  poll_refused (&c, &l, 1);
  assert_int_equal (c.n, 2);
  assert_int_equal (l.refused, 1);
  assert_int_equal (read (cl[2], &ch, 1), 0);

  /* One goes away: there is room again. */
  close (c.fds[0]);
  listener_conn_closed (&l);
  assert_int_equal (l.nconns, 1);
  cl[3] = dial (port);
  run_until (&c, 3);
  assert_int_equal (c.n, 3);
  assert_int_equal (l.nconns, 2);

  /* After fini nothing is accepted; the socket stays open (not ours). */
  listener_fini (&l);
  listener_fini (&l);
  int extra = dial (port);
  loop_stop (c.loop);
  loop_run (c.loop);                    /* one pass: nothing to see */
  assert_int_equal (c.n, 3);
  /* ...it waits in the backlog, for whoever listens next. */
  int taken = accept4 (lfd, NULL, NULL, SOCK_CLOEXEC);
  assert_true (taken >= 0);

  close (taken);
  close (extra);
  for (int i = 0; i < 4; i++)
    close (cl[i]);
  for (int i = 1; i < c.n; i++)
    close (c.fds[i]);
  close (lfd);
  loop_free (c.loop);
}

static void
test_unlimited (void **state)
{
  struct ctx c = { .loop = loop_new () };
  struct listener l;
  struct sockaddr_in sin;
  socklen_t len = sizeof sin;
  int lfd = listen_any (), cl[10];

  assert_true (lfd >= 0);
  assert_int_equal (getsockname (lfd, (struct sockaddr *) &sin, &len), 0);
  assert_int_equal (listener_init (&l, c.loop, lfd, "test", 0, on_conn, &c),
                    0);
  for (int i = 0; i < 10; i++)
    cl[i] = dial (ntohs (sin.sin_port));
  run_until (&c, 10);
  assert_int_equal (c.n, 10);
  assert_int_equal (l.refused, 0);
  listener_fini (&l);
  for (int i = 0; i < 10; i++) {
    close (cl[i]);
    close (c.fds[i]);
  }
  close (lfd);
  loop_free (c.loop);
}

static void
test_per_peer (void **state)
{
  struct ctx c = { .loop = loop_new (), .take = true };
  struct listener l;
  struct sockaddr_in sin;
  socklen_t len = sizeof sin;
  int lfd = listen_any (), cl[6];
  char ch;

  assert_int_equal (getsockname (lfd, (struct sockaddr *) &sin, &len), 0);
  uint16_t port = ntohs (sin.sin_port);
  assert_int_equal (listener_init (&l, c.loop, lfd, "test", 0, on_conn, &c),
                    0);
  l.max_per_peer = 2;

  cl[0] = dial_from (port, 2);
  cl[1] = dial_from (port, 2);
  run_until (&c, 2);
  assert_int_equal (c.n, 2);
  assert_true (c.peers[0] && c.peers[0] == c.peers[1]);
  assert_string_equal (listener_peer_key (c.peers[0]), "127.0.0.2");
  assert_int_equal (c.peers[0]->nconns, 2);

  /* A third from 127.0.0.2 is refused; 127.0.0.1 still gets in. */
  cl[2] = dial_from (port, 2);
  poll_refused (&c, &l, 1);
  assert_int_equal (read (cl[2], &ch, 1), 0);
  cl[3] = dial_from (port, 1);
  run_until (&c, 3);
  assert_int_equal (c.n, 3);
  assert_string_equal (listener_peer_key (c.peers[2]), "127.0.0.1");
  assert_int_equal (l.refused, 1);
  assert_int_equal (l.nconns, 3);

  /* One of 127.0.0.2's goes: it may have another. */
  close (c.fds[0]);
  listener_peer_closed (&l, c.peers[0]);
  assert_int_equal (c.peers[1]->nconns, 1);
  cl[4] = dial_from (port, 2);
  run_until (&c, 4);
  assert_int_equal (c.n, 4);
  assert_true (c.peers[3] == c.peers[1]);

  /* A callback that does not take the peer is not counted per address. */
  c.take = false;
  l.max_per_peer = 3;
  cl[5] = dial_from (port, 2);
  run_until (&c, 5);
  assert_int_equal (c.n, 5);
  assert_int_equal (c.peers[1]->nconns, 2);
  assert_int_equal (l.nconns, 4);

  listener_fini (&l);
  for (int i = 1; i < c.n; i++) {
    close (c.fds[i]);
    listener_peer_closed (&l, c.peers[i]);      /* the last frees each */
  }
  assert_int_equal (l.nconns, 0);
  for (int i = 0; i < 6; i++)
    close (cl[i]);
  close (lfd);
  loop_free (c.loop);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_limit),
    cmocka_unit_test (test_unlimited),
    cmocka_unit_test (test_per_peer),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
