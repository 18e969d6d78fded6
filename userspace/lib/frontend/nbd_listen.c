/* nbd_listen.c - the NBD frontend's listening socket: unix:PATH (a
 * stale socket of a dead server is replaced, a live one or a non-socket
 * is refused) or tcp:ADDR:PORT (with STARTTLS when the frontend has TLS
 * credentials), and its removal, which leaves a path another server
 * has taken over alone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "core/util.h"
#include "frontend/nbd_internal.h"

/* Remove a socket left behind by a server that died, but never one a
 * live server is listening on, nor something that is not a socket.
 * 0, or -EEXIST (not a socket), -EADDRINUSE (live), another -errno.
 */
static int
clear_stale_socket (const char *path)
{
  struct stat st;
  struct sockaddr_un sun;
  int fd, r, e;

  if (lstat (path, &st) == -1)
    return errno == ENOENT ? 0 : -errno;
  if (!S_ISSOCK (st.st_mode))
    return -EEXIST;
  if (unix_sockaddr (path, &sun) == -1)
    return -errno;
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return -errno;
  r = connect (fd, (struct sockaddr *) &sun, sizeof sun);
  e = errno;
  close (fd);
  if (r == 0)
    return -EADDRINUSE;
  if (e != ECONNREFUSED)
    return -e;
  return unlink (path) == -1 ? -errno : 0;
}

int
nbd_server_listen (struct nbd_server *s, const char *spec,
                   listener_accept_fn on_accept)
{
  struct stat st;
  int r;

  if (strncmp (spec, "unix:", 5) == 0 && spec[5] != '\0') {
    const char *path = spec + 5;

    r = clear_stale_socket (path);
    if (r < 0) {
      log_error ("nbd: cannot listen on %s: %s", spec,
                 r == -EEXIST ? "the path exists and is not a socket"
                 : r == -EADDRINUSE ? "another server is listening there"
                 : strerror (-r));
      return r;
    }
    s->listen_fd = unix_listen (path);
    if (s->listen_fd == -1 || !(s->unix_path = strdup (path))) {
      r = -errno;
      log_error ("nbd: cannot listen on %s: %s", spec, strerror (-r));
      return r;
    }
    if (stat (path, &st) == 0) {
      s->unix_dev = st.st_dev;
      s->unix_ino = st.st_ino;
    }
  }
  else if (strncmp (spec, "tcp:", 4) == 0 && spec[4] != '\0') {
    s->is_tcp = true;
    s->tls = s->fe->tls;        /* unix sockets stay plaintext */
    s->listen_fd = tcp_listen (spec + 4);
    if (s->listen_fd == -1) {
      r = -errno;
      log_error ("nbd: cannot listen on %s: %s", spec, strerror (-r));
      return r;
    }
  }
  else {
    log_error ("nbd: cannot parse '%s': expected unix:PATH or tcp:ADDR:PORT",
               spec);
    return -EINVAL;
  }
  r = listener_init (&s->listener, s->loop, s->listen_fd, s->label,
                     NBD_MAX_CLIENTS, on_accept, s);
  if (r < 0) {
    log_error ("nbd: cannot watch %s: %s", spec, strerror (-r));
    return r;
  }
  s->listener.tcp_nodelay = s->is_tcp;
  return 0;
}

void
nbd_server_unlisten (struct nbd_server *s)
{
  struct stat st;

  listener_fini (&s->listener);
  if (s->listen_fd >= 0) {
    close (s->listen_fd);
    s->listen_fd = -1;
  }
  /* Only if it is still the socket we made: a newer server may have
   * taken the path over.
   */
  if (s->unix_path) {
    if (stat (s->unix_path, &st) == 0 && st.st_dev == s->unix_dev &&
        st.st_ino == s->unix_ino)
      unlink (s->unix_path);
    free (s->unix_path);
    s->unix_path = NULL;
  }
}
