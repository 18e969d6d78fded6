/* test_listener.c - core/listener.c on a real loopback TCP socket:
 * every connection is handed over nonblocking; at the limit a new one
 * is closed at once (the client reads EOF) and counted; a closed
 * connection frees its place; listener_fini stops accepting.
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
  int n;
  int want;                     /* stop the loop at this many */
};

static void
on_conn (struct listener *l, int fd, void *opaque)
{
  struct ctx *c = opaque;

  assert_true (fcntl (fd, F_GETFL) & O_NONBLOCK);
  assert_true (fcntl (fd, F_GETFD) & FD_CLOEXEC);
  assert_true (c->n < (int) ARRAY_SIZE (c->fds));
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

static int
dial (uint16_t port)
{
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons (port),
                             .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  assert_true (fd >= 0);
  assert_int_equal (connect (fd, (struct sockaddr *) &sin, sizeof sin), 0);
  return fd;
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

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_limit),
    cmocka_unit_test (test_unlimited),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
