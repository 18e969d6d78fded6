/* listener.c - the accept loop every server shares (see listener.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "core/util.h"
#include "core/listener.h"

#define ACCEPT_BATCH 64
#define PAUSE_MS 100

/* ---- peers, by source address ------------------------------------- */

/* The numeric address of a TCP peer into buf; false for other sockets. */
static bool
peer_addr (const struct sockaddr_storage *ss, char *buf, size_t len)
{
  const void *a;

  if (ss->ss_family == AF_INET)
    a = &((const struct sockaddr_in *) ss)->sin_addr;
  else if (ss->ss_family == AF_INET6)
    a = &((const struct sockaddr_in6 *) ss)->sin6_addr;
  else
    return false;
  return inet_ntop (ss->ss_family, a, buf, len) != NULL;
}

/* FNV-1a, seeded per listener so that nobody can aim at one chain. */
static unsigned
peer_hash (const struct listener *l, const char *addr)
{
  uint32_t h = 2166136261u ^ l->hash_seed;

  for (; *addr; addr++)
    h = (h ^ (unsigned char) *addr) * 16777619u;
  return h % LISTENER_PEER_BUCKETS;
}

/* addr's record, made if missing (NULL only when out of memory). */
static struct listener_peer *
peer_get (struct listener *l, const char *addr)
{
  struct listener_peer **head = &l->peers[peer_hash (l, addr)], *p;

  for (p = *head; p; p = p->next)
    if (!strcmp (p->addr, addr))
      return p;
  p = calloc (1, sizeof *p);
  if (!p)
    return NULL;
  snprintf (p->addr, sizeof p->addr, "%s", addr);
  p->next = *head;
  *head = p;
  return p;
}

/* One connection of p's fewer; the record goes with the last. */
static void
peer_release (struct listener *l, struct listener_peer *p)
{
  if (p->nconns > 0 && --p->nconns > 0)
    return;
  for (struct listener_peer **pp = &l->peers[peer_hash (l, p->addr)]; *pp;
       pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      free (p);
      return;
    }
}

const char *
listener_peer_key (const struct listener_peer *p)
{
  return p ? p->addr : "local";
}

/* ---- accepting ------------------------------------------------------ */

static void
resume (struct loop_timer *t)
{
  struct listener *l = t->opaque;

  if (l->running)
    loop_mod (l->loop, &l->watch, EPOLLIN);
}

/* Close fd at once: a refused peer hears EOF, nothing waits for it. */
static void
refuse (struct listener *l, int fd, const char *key, const char *why)
{
  close (fd);
  l->refused++;
  ratelimit_warn (&l->log, key, "%s: refused a connection from %s: %s "
                  "(%" PRIu64 " refused so far)", l->what, key, why,
                  l->refused);
}

/* Count and hand over one accepted connection, or refuse it. */
static void
admit (struct listener *l, int fd, const struct sockaddr_storage *ss)
{
  char addr[sizeof l->peers[0]->addr], why[96];
  bool ip = peer_addr (ss, addr, sizeof addr);
  const char *key = ip ? addr : listener_peer_key (NULL);
  struct listener_peer *p = NULL;

  if (l->max_conns && l->nconns >= l->max_conns) {
    snprintf (why, sizeof why, "%u connections open (the limit)", l->nconns);
    refuse (l, fd, key, why);
    return;
  }
  if (ip) {
    p = peer_get (l, addr);
    if (!p) {
      refuse (l, fd, key, "out of memory");
      return;
    }
    if (l->max_per_peer && p->nconns >= l->max_per_peer) {
      snprintf (why, sizeof why, "%u connections open from that address "
                "(the per-address limit)", p->nconns);
      refuse (l, fd, key, why);
      return;
    }
    p->nconns++;
  }
  if (l->tcp_nodelay)
    set_tcp_nodelay (fd);
  l->nconns++;
  l->accepting = p;
  l->accept (l, fd, l->opaque);
  if (l->accepting) {           /* not taken: counted in the total only */
    peer_release (l, l->accepting);
    l->accepting = NULL;
  }
}

static void
on_readable (struct loop_watch *w, uint32_t revents)
{
  struct listener *l = w->opaque;

  for (int i = 0; i < ACCEPT_BATCH && l->running; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4 (l->fd, (struct sockaddr *) &ss, &sl,
                      SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd == -1) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        /* The connection stays queued and the socket readable:
         * level-triggered, so stop watching a moment rather than spin.
         */
        ratelimit_warn (&l->log, "accept", "%s: accept: %s; pausing accepts "
                        "for %d ms", l->what, strerror (errno), PAUSE_MS);
        loop_mod (l->loop, &l->watch, 0);
        loop_timer_arm (l->loop, &l->pause, PAUSE_MS, resume, l);
      }
      else if (errno != EAGAIN && errno != EWOULDBLOCK)
        ratelimit_warn (&l->log, "accept", "%s: accept: %s", l->what,
                        strerror (errno));
      return;
    }
    if (sl > sizeof ss)
      ss.ss_family = AF_UNSPEC;
    admit (l, fd, &ss);
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
  if (getrandom (&l->hash_seed, sizeof l->hash_seed, GRND_NONBLOCK) !=
      sizeof l->hash_seed)
    l->hash_seed = (uint32_t) now_ns ();
  ratelimit_init (&l->log, loop, RATELIMIT_INTERVAL_MS);
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
  ratelimit_fini (&l->log);
}

void
listener_conn_closed (struct listener *l)
{
  if (l->nconns > 0)
    l->nconns--;
}

struct listener_peer *
listener_take_peer (struct listener *l)
{
  struct listener_peer *p = l->accepting;

  l->accepting = NULL;
  return p;
}

void
listener_peer_closed (struct listener *l, struct listener_peer *p)
{
  if (p)
    peer_release (l, p);
  listener_conn_closed (l);
}
