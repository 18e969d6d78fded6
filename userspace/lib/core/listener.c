/* listener.c - the accept loop every server shares (see listener.h). */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "core/util.h"
#include "core/listener.h"

#define ACCEPT_BATCH 64
#define PAUSE_MS 100
#define REFUSAL_LOG_NS (10ull * 1000000000ull)

static void
resume (struct loop_timer *t)
{
  struct listener *l = t->opaque;

  if (l->running)
    loop_mod (l->loop, &l->watch, EPOLLIN);
}

static void
refuse (struct listener *l, int fd)
{
  uint64_t now = now_ns ();

  close (fd);
  l->refused++;
  if (l->last_refusal_log_ns == 0 ||
      now - l->last_refusal_log_ns >= REFUSAL_LOG_NS) {
    log_warn ("%s: %u connections open (the limit): refused %" PRIu64
              " so far", l->what, l->nconns, l->refused);
    l->last_refusal_log_ns = now;
  }
}

static void
on_readable (struct loop_watch *w, uint32_t revents)
{
  struct listener *l = w->opaque;

  for (int i = 0; i < ACCEPT_BATCH && l->running; i++) {
    int fd = accept4 (l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd == -1) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        /* The connection stays queued and the socket readable:
         * level-triggered, so stop watching a moment rather than spin.
         */
        log_warn ("%s: accept: %s; pausing accepts for %d ms", l->what,
                  strerror (errno), PAUSE_MS);
        loop_mod (l->loop, &l->watch, 0);
        loop_timer_arm (l->loop, &l->pause, PAUSE_MS, resume, l);
      }
      else if (errno != EAGAIN && errno != EWOULDBLOCK)
        log_warn ("%s: accept: %s", l->what, strerror (errno));
      return;
    }
    if (l->max_conns && l->nconns >= l->max_conns) {
      refuse (l, fd);
      continue;
    }
    if (l->tcp_nodelay)
      set_tcp_nodelay (fd);
    l->nconns++;
    l->accept (l, fd, l->opaque);
  }
}

int
listener_init (struct listener *l, struct loop *loop, int fd,
               const char *what, unsigned max_conns,
               listener_accept_fn accept, void *opaque)
{
  memset (l, 0, sizeof *l);
  l->loop = loop;
  l->fd = fd;
  l->what = what;
  l->max_conns = max_conns;
  l->accept = accept;
  l->opaque = opaque;
  if (set_nonblock (fd) == -1)
    return -errno;
  if (loop_add (loop, &l->watch, fd, EPOLLIN, on_readable, l) == -1)
    return -errno;
  l->running = true;
  return 0;
}

void
listener_fini (struct listener *l)
{
  if (!l->running)
    return;
  l->running = false;
  loop_timer_cancel (l->loop, &l->pause);
  loop_del (l->loop, &l->watch);
}

void
listener_conn_closed (struct listener *l)
{
  if (l->nconns > 0)
    l->nconns--;
}
