/* delayrelay.c - a TCP relay that holds every byte for a one-way delay, so
 * that a replica on loopback sits one "network round trip" away (the
 * cross-zone rows of tests/perf/bench.sh, test 104).
 *
 *   delayrelay --listen ADDR:PORT --target ADDR:PORT [--delay-us US]
 *              [--queue-bytes N] [--max-conns N]
 *
 * Every connection accepted on --listen gets a connection of its own to
 * --target, and bytes are forwarded both ways.  Each chunk read from one
 * side is written to the other no earlier than --delay-us microseconds
 * (default 500: 0.5 ms each way, a 1 ms round trip) after it was read,
 * on CLOCK_MONOTONIC.  Order is kept: chunks are due in the order read.
 *
 * Memory is bounded whatever the peers do: each direction of each
 * connection queues at most --queue-bytes (default 4 MiB, counting each
 * chunk's header too); a side whose queue is full is not read from (its
 * EPOLLIN is dropped) until the queue drains, so a slow or stalled
 * receiver pushes back on the sender through TCP.  At most --max-conns
 * (default 64) connections are relayed at once; more wait in the listen
 * backlog.  So the relay's data never exceed
 * 2 * queue-bytes * max-conns, plus one 64 KiB read buffer.
 *
 * One thread, one epoll set: the sockets, a timerfd armed (absolute,
 * monotonic) for the earliest chunk not yet due, and a signalfd for
 * SIGTERM / SIGINT, which close everything and exit 0.  The timer slack
 * is set to 1 ns so that sub-millisecond delays are kept.  A half-close
 * is forwarded (shutdown(SHUT_WR)) once the queue before it is written;
 * an error on either side closes both.  Bad arguments: one line on
 * stderr, exit 2.  Runtime failure to set up: exit 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define READ_MAX (64 * 1024)

struct chunk {
  struct chunk *next;
  uint64_t due_ns;        /* write no earlier than this (monotonic) */
  size_t len, off;        /* bytes in data, bytes already written */
  char data[];
};

/* One direction: bytes read from src, queued, written to dst. */
struct dir {
  struct chunk *head, *tail;
  size_t queued;          /* bytes held, headers included */
  bool eof;               /* src said EOF: shut dst's write side once drained */
  bool shut;              /* done: EOF forwarded */
  bool blocked;           /* dst's send buffer is full: wait for EPOLLOUT */
};

struct conn;

/* One socket of a connection; epoll's data points here. */
struct end {
  struct conn *c;
  int fd;
  int side;               /* 0: the client we accepted, 1: the target */
  uint32_t events;        /* what epoll watches now */
  bool removed;           /* out of the epoll set: nothing more to do */
};

struct conn {
  struct end e[2];
  struct dir d[2];        /* d[i]: read from e[i], written to e[1 - i] */
  bool connecting;        /* e[1]'s connect has not completed */
  struct conn *prev, *next;
};

static struct {
  uint64_t delay_ns;
  size_t queue_max;
  int max_conns;
  int epfd, lfd, tfd, sfd;
  int nconns;
  bool listening;         /* lfd is in the epoll set */
  struct sockaddr_storage target;
  socklen_t target_len;
  struct conn *conns;
  struct conn *dead;      /* closed in this batch, freed after it */
  struct end lend, tend, send;
} R;

static char rbuf[READ_MAX];

static uint64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static int
usage_error (const char *fmt, const char *arg)
{
  fprintf (stderr, "delayrelay: ");
  fprintf (stderr, fmt, arg);
  fprintf (stderr, "\nusage: delayrelay --listen ADDR:PORT --target ADDR:PORT "
           "[--delay-us US] [--queue-bytes N] [--max-conns N]\n");
  return 2;
}

/* ADDR:PORT (numeric IPv4, or [IPv6]:PORT, or a host name) -> sockaddr. */
static int
parse_hostport (const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
  char host[256];
  const char *colon = strrchr (s, ':'), *h = s;
  size_t hl;

  if (!colon || colon == s || colon[1] == '\0')
    return -1;
  hl = (size_t) (colon - s);
  if (s[0] == '[' && colon[-1] == ']') {
    h = s + 1;
    hl -= 2;
  }
  if (hl == 0 || hl >= sizeof host)
    return -1;
  memcpy (host, h, hl);
  host[hl] = '\0';
  char *end;
  errno = 0;
  unsigned long port = strtoul (colon + 1, &end, 10);
  if (errno || *end || port > 65535)
    return -1;

  struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                            .ai_flags = AI_NUMERICSERV }, *res;
  if (getaddrinfo (host, colon + 1, &hints, &res) != 0)
    return -1;
  memcpy (ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo (res);
  return 0;
}

/* A non-negative integer with an optional K/M/G (powers of 1024) suffix,
 * at most max.  -1 when it is not one. */
static long long
parse_size (const char *s, long long max)
{
  char *end;
  errno = 0;
  if (*s < '0' || *s > '9')
    return -1;
  long long v = strtoll (s, &end, 10);
  if (errno)
    return -1;
  int shift = 0;
  switch (*end) {
  case 'K': case 'k': shift = 10; end++; break;
  case 'M': case 'm': shift = 20; end++; break;
  case 'G': case 'g': shift = 30; end++; break;
  }
  if (*end || v > (max >> shift))
    return -1;
  return v << shift;
}

static void
set_events (struct end *e, uint32_t ev)
{
  if (e->fd < 0 || e->removed || e->events == ev)
    return;
  struct epoll_event ee = { .events = ev, .data.ptr = e };
  if (epoll_ctl (R.epfd, EPOLL_CTL_MOD, e->fd, &ee) < 0) {
    perror ("delayrelay: epoll_ctl");
    exit (1);
  }
  e->events = ev;
}

static void
free_dir (struct dir *d)
{
  struct chunk *ch, *n;
  for (ch = d->head; ch; ch = n) {
    n = ch->next;
    free (ch);
  }
  d->head = d->tail = NULL;
  d->queued = 0;
}

/* Close both sockets and drop the queues.  The struct itself is freed
 * after the current batch of events (a later event of the batch may
 * still point at it; its fds are -1 then and it is skipped). */
static void
close_conn (struct conn *c)
{
  for (int i = 0; i < 2; i++) {
    if (c->e[i].fd >= 0)
      close (c->e[i].fd);     /* also leaves the epoll set */
    c->e[i].fd = -1;
    free_dir (&c->d[i]);
  }
  if (c->prev)
    c->prev->next = c->next;
  else
    R.conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->next = R.dead;
  R.dead = c;
  R.nconns--;
}

/* What each socket of c waits for now, from the state of both directions. */
static void
update_events (struct conn *c)
{
  for (int i = 0; i < 2; i++) {
    uint32_t ev = 0;
    struct dir *in = &c->d[i], *out = &c->d[1 - i];
    /* Read to EOF and written to EOF: only EPOLLHUP could still come,
     * and would come every time; leave the set. */
    if (in->eof && out->shut) {
      if (!c->e[i].removed)
        epoll_ctl (R.epfd, EPOLL_CTL_DEL, c->e[i].fd, NULL);
      c->e[i].removed = true;
      continue;
    }
    if (!in->eof && in->queued < R.queue_max)
      ev |= EPOLLIN;
    if ((i == 1 && c->connecting) || out->blocked)
      ev |= EPOLLOUT;
    set_events (&c->e[i], ev);
  }
}

/* Read what e's socket has (at most what its queue has room for).
 * -1: the connection is to be closed. */
static int
do_read (struct end *e)
{
  struct conn *c = e->c;
  struct dir *d = &c->d[e->side];

  while (!d->eof && d->queued + sizeof (struct chunk) < R.queue_max) {
    size_t room = R.queue_max - d->queued - sizeof (struct chunk);
    ssize_t n = read (e->fd, rbuf, room < READ_MAX ? room : READ_MAX);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN)
        return 0;
      return -1;
    }
    if (n == 0) {
      d->eof = true;
      return 0;
    }
    struct chunk *ch = malloc (sizeof *ch + (size_t) n);
    if (!ch) {
      fprintf (stderr, "delayrelay: out of memory\n");
      return -1;
    }
    ch->next = NULL;
    ch->due_ns = now_ns () + R.delay_ns;
    ch->len = (size_t) n;
    ch->off = 0;
    memcpy (ch->data, rbuf, (size_t) n);
    if (d->tail)
      d->tail->next = ch;
    else
      d->head = ch;
    d->tail = ch;
    d->queued += sizeof *ch + (size_t) n;
  }
  return 0;
}

/* Write the chunks of d that are due to fd.  -1: close the connection. */
static int
flush_dir (struct conn *c, int i, uint64_t now)
{
  struct dir *d = &c->d[i];
  int fd = c->e[1 - i].fd;

  if (i == 0 && c->connecting)
    return 0;
  d->blocked = false;
  while (d->head && d->head->due_ns <= now) {
    struct chunk *ch = d->head;
    ssize_t n = send (fd, ch->data + ch->off, ch->len - ch->off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN) {
        d->blocked = true;
        return 0;
      }
      return -1;
    }
    ch->off += (size_t) n;
    if (ch->off < ch->len)
      continue;
    d->head = ch->next;
    if (!d->head)
      d->tail = NULL;
    d->queued -= sizeof *ch + ch->len;
    free (ch);
  }
  if (!d->head && d->eof && !d->shut) {
    shutdown (fd, SHUT_WR);
    d->shut = true;
  }
  return 0;
}

/* Flush both directions and refresh the interest masks; closes c when it
 * failed or both directions are done.  false: c was closed. */
static bool
service (struct conn *c, uint64_t now)
{
  for (int i = 0; i < 2; i++)
    if (flush_dir (c, i, now) < 0) {
      close_conn (c);
      return false;
    }
  if (c->d[0].shut && c->d[1].shut) {
    close_conn (c);
    return false;
  }
  update_events (c);
  return true;
}

static int
add_fd (int fd, struct end *e, uint32_t ev)
{
  struct epoll_event ee = { .events = ev, .data.ptr = e };
  e->fd = fd;
  e->events = ev;
  return epoll_ctl (R.epfd, EPOLL_CTL_ADD, fd, &ee);
}

static void
set_listening (bool on)
{
  if (on == R.listening)
    return;
  struct epoll_event ee = { .events = EPOLLIN, .data.ptr = &R.lend };
  epoll_ctl (R.epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, R.lfd, &ee);
  R.listening = on;
}

static void
do_accept (void)
{
  while (R.nconns < R.max_conns) {
    int cfd = accept4 (R.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
        perror ("delayrelay: accept");
      return;
    }
    int sfd = socket (R.target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct conn *c = calloc (1, sizeof *c);
    if (sfd < 0 || !c) {
      perror ("delayrelay: socket");
      close (cfd);
      if (sfd >= 0)
        close (sfd);
      free (c);
      continue;
    }
    int one = 1;
    setsockopt (cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt (sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->connecting = true;
    if (connect (sfd, (struct sockaddr *) &R.target, R.target_len) == 0)
      c->connecting = false;
    else if (errno != EINPROGRESS) {
      perror ("delayrelay: connect to the target");
      close (cfd);
      close (sfd);
      free (c);
      continue;
    }
    for (int i = 0; i < 2; i++) {
      c->e[i].c = c;
      c->e[i].side = i;
    }
    if (add_fd (cfd, &c->e[0], EPOLLIN) < 0 ||
        add_fd (sfd, &c->e[1], EPOLLIN | EPOLLOUT) < 0) {
      perror ("delayrelay: epoll_ctl");
      exit (1);
    }
    c->next = R.conns;
    if (R.conns)
      R.conns->prev = c;
    R.conns = c;
    R.nconns++;
  }
  set_listening (false);   /* full: the rest wait in the backlog */
}

/* Arm the timer for the earliest chunk not yet due (and not waiting on
 * a full send buffer, which EPOLLOUT wakes instead). */
static void
arm_timer (uint64_t now)
{
  uint64_t first = 0;
  for (struct conn *c = R.conns; c; c = c->next)
    for (int i = 0; i < 2; i++) {
      struct chunk *h = c->d[i].head;
      if (h && !c->d[i].blocked && !(i == 0 && c->connecting) &&
          (!first || h->due_ns < first))
        first = h->due_ns;
    }
  struct itimerspec its = { { 0, 0 }, { 0, 0 } };
  if (first) {
    if (first <= now)
      first = now + 1;
    its.it_value.tv_sec = (time_t) (first / 1000000000u);
    its.it_value.tv_nsec = (long) (first % 1000000000u);
  }
  if (timerfd_settime (R.tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
    perror ("delayrelay: timerfd_settime");
    exit (1);
  }
}

int
main (int argc, char **argv)
{
  const char *listen_arg = NULL, *target_arg = NULL;
  long long v;
  static const struct option opts[] = {
    { "listen", required_argument, NULL, 'l' },
    { "target", required_argument, NULL, 't' },
    { "delay-us", required_argument, NULL, 'd' },
    { "queue-bytes", required_argument, NULL, 'q' },
    { "max-conns", required_argument, NULL, 'c' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  int o;

  R.delay_ns = 500000;
  R.queue_max = 4u << 20;
  R.max_conns = 64;
  opterr = 0;
  while ((o = getopt_long (argc, argv, "", opts, NULL)) != -1) {
    switch (o) {
    case 'l': listen_arg = optarg; break;
    case 't': target_arg = optarg; break;
    case 'd':
      if ((v = parse_size (optarg, 60000000)) < 0)   /* at most 60 s */
        return usage_error ("bad --delay-us '%s' (want 0..60000000 microseconds)", optarg);
      R.delay_ns = (uint64_t) v * 1000;
      break;
    case 'q':
      if ((v = parse_size (optarg, 1ll << 30)) < 4096)
        return usage_error ("bad --queue-bytes '%s' (want 4096..1G, K/M/G allowed)", optarg);
      R.queue_max = (size_t) v;
      break;
    case 'c':
      if ((v = parse_size (optarg, 4096)) < 1)
        return usage_error ("bad --max-conns '%s' (want 1..4096)", optarg);
      R.max_conns = (int) v;
      break;
    case 'h':
      printf ("usage: delayrelay --listen ADDR:PORT --target ADDR:PORT "
              "[--delay-us US] [--queue-bytes N] [--max-conns N]\n");
      return 0;
    default:
      return usage_error ("unknown option or missing value: '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc)
    return usage_error ("unexpected argument '%s'", argv[optind]);
  if (!listen_arg)
    return usage_error ("--listen ADDR:PORT is required%s", "");
  if (!target_arg)
    return usage_error ("--target ADDR:PORT is required%s", "");

  struct sockaddr_storage lss;
  socklen_t llen;
  if (parse_hostport (listen_arg, &lss, &llen) < 0)
    return usage_error ("bad --listen address '%s' (want ADDR:PORT)", listen_arg);
  if (parse_hostport (target_arg, &R.target, &R.target_len) < 0)
    return usage_error ("bad --target address '%s' (want ADDR:PORT)", target_arg);

  prctl (PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  signal (SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset (&mask);
  sigaddset (&mask, SIGTERM);
  sigaddset (&mask, SIGINT);
  sigprocmask (SIG_BLOCK, &mask, NULL);

  int one = 1;
  R.lfd = socket (lss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (R.lfd < 0 || setsockopt (R.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind (R.lfd, (struct sockaddr *) &lss, llen) < 0 || listen (R.lfd, 128) < 0) {
    fprintf (stderr, "delayrelay: cannot listen on %s: %s\n", listen_arg, strerror (errno));
    return 1;
  }
  R.epfd = epoll_create1 (EPOLL_CLOEXEC);
  R.tfd = timerfd_create (CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  R.sfd = signalfd (-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (R.epfd < 0 || R.tfd < 0 || R.sfd < 0 ||
      add_fd (R.tfd, &R.tend, EPOLLIN) < 0 || add_fd (R.sfd, &R.send, EPOLLIN) < 0) {
    perror ("delayrelay: setup");
    return 1;
  }
  R.lend.fd = R.lfd;
  set_listening (true);
  fprintf (stderr, "delayrelay: %s -> %s, %.3f ms each way, queue %zu bytes "
           "per direction, at most %d connections\n", listen_arg, target_arg,
           (double) R.delay_ns / 1e6, R.queue_max, R.max_conns);

  for (;;) {
    struct epoll_event evs[64];
    int n = epoll_wait (R.epfd, evs, 64, -1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      perror ("delayrelay: epoll_wait");
      return 1;
    }
    for (int k = 0; k < n; k++) {
      struct end *e = evs[k].data.ptr;
      if (e == &R.send) {
        struct signalfd_siginfo si;
        if (read (R.sfd, &si, sizeof si) == (ssize_t) sizeof si) {
          fprintf (stderr, "delayrelay: signal %u, closing %d connections\n",
                   si.ssi_signo, R.nconns);
          while (R.conns)
            close_conn (R.conns);
          return 0;
        }
        continue;
      }
      if (e == &R.tend) {
        uint64_t ticks;
        if (read (R.tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
          perror ("delayrelay: timerfd");
        continue;          /* the sweep below writes what is due */
      }
      if (e == &R.lend) {
        do_accept ();
        continue;
      }
      /* A connection's socket; skipped when an earlier event of this
       * batch closed its connection (see close_conn). */
      struct conn *c = e->c;
      if (e->fd < 0)
        continue;
      if ((evs[k].events & EPOLLERR) && !c->connecting) {
        close_conn (c);
        continue;
      }
      if (e->side == 1 && c->connecting && (evs[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt (e->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
          fprintf (stderr, "delayrelay: connect to %s: %s\n", target_arg, strerror (err));
          close_conn (c);
          continue;
        }
        c->connecting = false;
      }
      if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (do_read (e) < 0) {
          close_conn (c);
          continue;
        }
      }
    }
    /* Write whatever is due, everywhere, then sleep until the next due. */
    uint64_t now = now_ns ();
    struct conn *c, *next;
    for (c = R.conns; c; c = next) {
      next = c->next;
      service (c, now);
    }
    while (R.dead) {
      c = R.dead;
      R.dead = c->next;
      free (c);
    }
    if (R.nconns < R.max_conns)
      set_listening (true);
    arm_timer (now);
  }
}
