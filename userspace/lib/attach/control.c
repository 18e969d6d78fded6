/* control.c - the attach's control channel (see control.h): a unix
 * socket listener (core/listener.h), one command line per connection,
 * and the client that sends one.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "core/conn.h"
#include "core/listener.h"
#include "attach/control.h"
#include "core/util.h"
#include "core/fsutil.h"

#define LINE_MAX_LEN 16384   /* a snapshot command carries AWS settings */

struct control {
  struct loop *loop;
  struct listener listener;
  int fd;
  char *path;
  struct stat st;               /* of the socket we made at path */
  void (*handler) (struct control_req *, const char *, void *);
  void *opaque;
};

struct control_req {
  struct control *ctl;
  struct conn *c;
  char line[LINE_MAX_LEN];
  size_t len;
  char ch;
  char *final;                  /* the last line, until sent */
  bool finished, closed;
};

static void
req_closed (struct conn *c, void *opaque)
{
  struct control_req *req = opaque;

  req->closed = true;
  listener_conn_closed (&req->ctl->listener);
  if (req->finished)
    free (req);
}

static void
sent_free (void *opaque, int err)
{
  free (opaque);
}

static void
send_line (struct control_req *req, const char *line)
{
  size_t n = strlen (line);
  char *copy;

  if (req->closed || (copy = malloc (n + 1)) == NULL)
    return;
  memcpy (copy, line, n);
  copy[n] = '\n';
  conn_send (req->c, NULL, 0, copy, n + 1, sent_free, copy);
}

char *
control_quote (const char *s)
{
  char *out = malloc (3 * strlen (s) + 1), *o = out;

  for (; out && *s; s++)
    if ((unsigned char) *s <= ' ' || *s == '%' || (unsigned char) *s >= 0x7f)
      o += sprintf (o, "%%%02X", (unsigned char) *s);
    else
      *o++ = *s;
  if (out)
    *o = '\0';
  return out;
}

void
control_unquote (char *s)
{
  char *o = s;
  unsigned v;

  for (; *s; s++)
    if (*s == '%' && sscanf (s + 1, "%2x", &v) == 1 && v) {
      *o++ = (char) v;
      s += 2;
    }
    else
      *o++ = *s;
  *o = '\0';
}

void
control_reply (struct control_req *req, const char *line)
{
  send_line (req, line);
}

static void
finished_sent (void *opaque, int err)
{
  struct control_req *req = opaque;

  free (req->final);
  req->final = NULL;
  if (!req->closed)
    conn_close (req->c, NULL);  /* frees req through req_closed */
}

void
control_finish (struct control_req *req, const char *line)
{
  size_t n = strlen (line);

  req->finished = true;
  if (req->closed || (req->final = malloc (n + 1)) == NULL) {
    if (req->closed)
      free (req);
    else
      conn_close (req->c, NULL);
    return;
  }
  memcpy (req->final, line, n);
  req->final[n] = '\n';
  conn_send (req->c, NULL, 0, req->final, n + 1, finished_sent, req);
}

static void
got_char (struct conn *c, void *opaque)
{
  struct control_req *req = opaque;

  if (req->ch != '\n') {
    if (req->len + 1 >= sizeof req->line) {
      conn_close (c, "control: command line too long");
      return;
    }
    req->line[req->len++] = req->ch;
    conn_expect (c, &req->ch, 1, got_char, req);
    return;
  }
  req->line[req->len] = '\0';
  req->ctl->handler (req, req->line, req->ctl->opaque);
}

static void
on_accept (struct listener *l, int fd, void *opaque)
{
  struct control *ctl = opaque;
  struct control_req *req = calloc (1, sizeof *req);

  if (!req) {
    close (fd);
    listener_conn_closed (l);
    return;
  }
  req->ctl = ctl;
  req->c = conn_new (ctl->loop, fd, "control", req_closed, req);
  if (!req->c) {
    close (fd);
    free (req);
    listener_conn_closed (l);
    return;
  }
  conn_set_stall_timeout (req->c, 10000);
  conn_expect (req->c, &req->ch, 1, got_char, req);
}

struct control *
control_start (struct loop *loop, const char *path,
               void (*handler) (struct control_req *, const char *, void *),
               void *opaque)
{
  struct control *ctl = calloc (1, sizeof *ctl);
  int err;

  if (!ctl)
    return NULL;
  unlink (path);                /* ours from an attach that died */
  ctl->fd = unix_listen (path);
  if (ctl->fd == -1) {
    log_error ("control socket %s: %s", path, strerror (errno));
    free (ctl);
    return NULL;
  }
  ctl->loop = loop;
  ctl->path = strdup (path);
  if (stat (path, &ctl->st) == -1)
    memset (&ctl->st, 0, sizeof ctl->st);
  ctl->handler = handler;
  ctl->opaque = opaque;
  err = listener_init (&ctl->listener, loop, ctl->fd, "control", 0,
                       on_accept, ctl);
  if (err < 0 || !ctl->path) {
    log_error ("control socket %s: %s", path,
               strerror (err < 0 ? -err : ENOMEM));
    control_stop (ctl);
    return NULL;
  }
  return ctl;
}

void
control_stop (struct control *ctl)
{
  if (!ctl)
    return;
  listener_fini (&ctl->listener);
  close (ctl->fd);
  /* Only if it is still ours: an attach that took the volume over (and
   * fenced us) listens at the same path now.
   */
  struct stat st;
  if (ctl->path && stat (ctl->path, &st) == 0 && st.st_dev == ctl->st.st_dev &&
      st.st_ino == ctl->st.st_ino)
    unlink (ctl->path);
  free (ctl->path);
  free (ctl);
}

int
control_call (const char *path, const char *command)
{
  return control_call_lines (path, command, NULL, NULL);
}

int
control_call_lines (const char *path, const char *command,
                    void (*fn) (void *opaque, const char *line), void *opaque)
{
  int r = control_call_timeout (path, command, fn, opaque, -1);

  switch (r) {
  case CONTROL_OK:
    return 0;
  case CONTROL_ERROR:
    return 1;
  case CONTROL_UNREACHABLE:
    log_error ("cannot reach the attach's control socket %s: %s", path,
               strerror (errno));
    return 1;
  default:
    log_error ("the attach closed its control channel without an answer");
    return 1;
  }
}

static void
print_line (void *opaque, const char *line)
{
  printf ("%s\n", line);
  fflush (stdout);
}

int
control_call_timeout (const char *path, const char *command,
                      void (*fn) (void *opaque, const char *line),
                      void *opaque, int timeout_ms)
{
  struct sockaddr_un sun;
  char buf[4096], last[LINE_MAX_LEN] = "";
  size_t have = 0;
  uint64_t deadline = timeout_ms < 0 ? 0
    : now_ns () + (uint64_t) timeout_ms * 1000000ull;
  int fd;

  if (!fn)
    fn = print_line;
  if (unix_sockaddr (path, &sun) == -1 ||
      (fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
    return CONTROL_UNREACHABLE;
  if (connect (fd, (struct sockaddr *) &sun, sizeof sun) == -1 ||
      write_full (fd, command, strlen (command)) < 0 ||
      write_full (fd, "\n", 1) < 0) {
    int saved = errno;
    close (fd);
    errno = saved;
    return CONTROL_UNREACHABLE;
  }
  for (;;) {
    if (deadline) {
      uint64_t now = now_ns ();
      struct pollfd p = { .fd = fd, .events = POLLIN };
      int ms = now >= deadline ? 0
        : (int) MIN ((deadline - now + 999999) / 1000000, (uint64_t) INT_MAX);
      int n = poll (&p, 1, ms);
      if (n == -1 && errno == EINTR)
        continue;
      if (n == 0) {
        close (fd);
        return CONTROL_TIMEOUT;
      }
    }
    ssize_t r = read (fd, buf + have, sizeof buf - 1 - have);
    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    have += r;
    buf[have] = '\0';
    char *nl;
    while ((nl = strchr (buf, '\n')) != NULL) {
      *nl = '\0';
      fn (opaque, buf);
      snprintf (last, sizeof last, "%s", buf);
      have -= nl + 1 - buf;
      memmove (buf, nl + 1, have + 1);
    }
    if (have == sizeof buf - 1)
      have = 0;                 /* an overlong line: drop it */
  }
  close (fd);
  if (strncmp (last, "ok", 2) == 0)
    return CONTROL_OK;
  if (strncmp (last, "error", 5) == 0)
    return CONTROL_ERROR;
  return CONTROL_NO_ANSWER;
}
