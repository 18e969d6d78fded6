/* replica_server_thread.c - a real replica server on a thread of its
 * own, for the replica layer's unit tests (see the header).
 */
#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "replica_server_thread.h"

static void
server_stopped (void *opaque)
{
  loop_stop (opaque);
}

/* On the server's loop: the test asks it to shut down. */
static void
on_mail (struct mailbox *mb, struct mailbox_msg *msg)
{
  struct server *s = mb->opaque;

  replica_server_shutdown (s->srv, 2000, server_stopped, s->loop);
}

static void *
server_thread (void *arg)
{
  struct server *s = arg;

  loop_run (s->loop);
  return NULL;
}

/* A TCP socket bound to a free loopback port; its "ADDR:PORT" in addr. */
int
test_loopback_socket (char *addr, size_t addrlen)
{
  struct sockaddr_in sin = { .sin_family = AF_INET };
  socklen_t len = sizeof sin;
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  assert_true (fd >= 0);
  sin.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  assert_int_equal (bind (fd, (struct sockaddr *) &sin, sizeof sin), 0);
  assert_int_equal (getsockname (fd, (struct sockaddr *) &sin, &len), 0);
  snprintf (addr, addrlen, "127.0.0.1:%u", ntohs (sin.sin_port));
  return fd;
}

int
test_server_setup (void **state, unsigned idle_ms)
{
  struct server *s = calloc (1, sizeof *s);
  int lfd;

  assert_non_null (s);
  snprintf (s->dir, sizeof s->dir, "/tmp/repvol-test-server.XXXXXX");
  assert_non_null (mkdtemp (s->dir));
  s->loop = loop_new ();
  assert_non_null (s->loop);
  s->store = store_open (s->loop, s->dir, "libaio", STORE_CACHE_WRITEBACK,
                         NULL);
  assert_non_null (s->store);

  lfd = test_loopback_socket (s->addr, sizeof s->addr);
  assert_int_equal (listen (lfd, 16), 0);

  s->srv = replica_server_new (s->loop, s->store, lfd, "test-srv", "zone-a");
  assert_non_null (s->srv);
  replica_server_set_idle_timeout (s->srv, idle_ms);
  assert_int_equal (mailbox_init (&s->mb, s->loop, on_mail, s), 0);
  assert_int_equal (pthread_create (&s->thread, NULL, server_thread, s), 0);
  *state = s;
  return 0;
}

int
test_server_teardown (void **state)
{
  struct server *s = *state;
  DIR *d;
  struct dirent *e;

  mailbox_post (&s->mb, &s->stop);
  assert_int_equal (pthread_join (s->thread, NULL), 0);
  /* As repvold does: the store drains, then the server goes. */
  store_close (s->store);
  replica_server_free (s->srv);
  mailbox_fini (&s->mb);
  loop_free (s->loop);

  d = opendir (s->dir);
  assert_non_null (d);
  while ((e = readdir (d)) != NULL)
    if (e->d_name[0] != '.' || (e->d_name[1] && strcmp (e->d_name, "..")))
      unlinkat (dirfd (d), e->d_name, 0);
  closedir (d);
  assert_int_equal (rmdir (s->dir), 0);
  free (s);
  return 0;
}

/* ---- the client side ---- */

void
wait_timeout (struct loop_timer *t)
{
  struct waiter *w = t->opaque;

  w->timed_out = true;
  loop_stop (w->loop);
}

void
slot_done (struct bdev_io *io, int err)
{
  struct slot_io *s = container_of (io, struct slot_io, io);

  s->w->err[s->slot] = err;
  if (--s->w->pending == 0)
    loop_stop (s->w->loop);
}

void
wait_all (struct waiter *w)
{
  loop_timer_arm (w->loop, &w->timer, 10000, wait_timeout, w);
  if (w->pending)
    loop_run (w->loop);
  loop_timer_cancel (w->loop, &w->timer);
  assert_false (w->timed_out);
}
