/* util.c - logging, parsing and socket helpers. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "core/util.h"

static const char *log_prog = "repvol";
bool log_debug_enabled;

void
log_init (const char *progname)
{
  log_prog = progname;
  log_debug_enabled = getenv ("REPVOL_DEBUG") != NULL;
}

void
server_process_init (void)
{
  signal (SIGPIPE, SIG_IGN);
  mallopt (M_MMAP_THRESHOLD, 64 << 20);
  mallopt (M_TRIM_THRESHOLD, 256 << 20);
}

static void
log_v (const char *level, const char *fmt, va_list ap)
{
  char line[1024];
  int n = snprintf (line, sizeof line, "%s: %s", log_prog, level);
  vsnprintf (line + n, sizeof line - n, fmt, ap);
  fprintf (stderr, "%s\n", line);
}

#define LOG_FN(fn, level)                       \
  void fn (const char *fmt, ...)                \
  {                                             \
    va_list ap;                                 \
    va_start (ap, fmt);                         \
    log_v (level, fmt, ap);                     \
    va_end (ap);                                \
  }
LOG_FN (log_info, "")
LOG_FN (log_warn, "warning: ")
LOG_FN (log_error, "error: ")

void
log_debug (const char *fmt, ...)
{
  va_list ap;
  if (!log_debug_enabled)
    return;
  va_start (ap, fmt);
  log_v ("debug: ", fmt, ap);
  va_end (ap);
}

int
parse_uint (const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
  char *end;
  unsigned long long v;

  if (s == NULL || !isdigit ((unsigned char) s[0])) {
    errno = EINVAL;
    return -1;
  }
  errno = 0;
  v = strtoull (s, &end, 10);
  if (errno == ERANGE || v < min || v > max) {
    errno = ERANGE;
    return -1;
  }
  if (*end != '\0') {
    errno = EINVAL;
    return -1;
  }
  *out = v;
  return 0;
}

int
parse_duration (const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
  static const struct { char unit; uint64_t mult; } units[] = {
    { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
  };
  char num[24];
  uint64_t v, mult = 1;
  size_t len = s ? strlen (s) : 0;

  if (len == 0 || len >= sizeof num) {
    errno = EINVAL;
    return -1;
  }
  memcpy (num, s, len + 1);
  for (size_t i = 0; i < ARRAY_SIZE (units); i++)
    if (len > 1 && num[len - 1] == units[i].unit) {
      mult = units[i].mult;
      num[len - 1] = '\0';
    }
  if (parse_uint (num, 0, UINT64_MAX / 86400, &v) == -1)
    return -1;
  v *= mult;
  if (v < min || v > max) {
    errno = ERANGE;
    return -1;
  }
  *out = v;
  return 0;
}

int
parse_size (const char *s, uint64_t *out)
{
  char *end;
  unsigned long long v;
  unsigned shift = 0;

  if (s == NULL || !isdigit ((unsigned char) s[0])) {
    errno = EINVAL;
    return -1;
  }
  errno = 0;
  v = strtoull (s, &end, 10);
  if (errno == ERANGE) {
    errno = ERANGE;
    return -1;
  }
  switch (toupper ((unsigned char) *end)) {
  case '\0': break;
  case 'K': shift = 10; end++; break;
  case 'M': shift = 20; end++; break;
  case 'G': shift = 30; end++; break;
  case 'T': shift = 40; end++; break;
  case 'P': shift = 50; end++; break;
  case 'B': break;
  default: errno = EINVAL; return -1;
  }
  /* Accept an optional "B" or "iB" after a unit ("64MiB", "10GB"),
   * or a lone "B" after a plain number ("4096B").
   */
  if (shift && *end == 'i')
    end++;
  if (*end == 'B' || *end == 'b')
    end++;
  if (*end != '\0') {
    errno = EINVAL;
    return -1;
  }
  if (shift && v > (UINT64_MAX >> shift)) {
    errno = ERANGE;
    return -1;
  }
  *out = (uint64_t) v << shift;
  return 0;
}

const char *
format_size (uint64_t bytes, char *buf, size_t len)
{
  static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB",
                                 "EiB" };
  unsigned i = 0;
  double v = bytes;

  while (v >= 1024 && i + 1 < ARRAY_SIZE (units)) {
    v /= 1024;
    i++;
  }
  if (i == 0 || v == (uint64_t) v)
    snprintf (buf, len, "%.0f %s", v, units[i]);
  else
    snprintf (buf, len, "%.1f %s", v, units[i]);
  return buf;
}

bool
valid_name (const char *s)
{
  size_t n = 0;

  if (s == NULL || s[0] == '\0' || s[0] == '.' || s[0] == '-')
    return false;
  for (; s[n]; n++) {
    unsigned char c = s[n];
    if (!(isalnum (c) || c == '.' || c == '_' || c == '-'))
      return false;
    if (n >= 63)
      return false;
  }
  return true;
}

int
hostport_split (const char *s, char *host, size_t hostlen, const char **port)
{
  const char *colon;

  if (s == NULL || *s == '\0')
    return -EINVAL;
  if (s[0] == '[') {                    /* [v6]:port */
    const char *close = strchr (s, ']');
    if (!close || close[1] != ':' || (size_t) (close - s - 1) >= hostlen)
      return -EINVAL;
    memcpy (host, s + 1, close - s - 1);
    host[close - s - 1] = '\0';
    *port = close + 2;
  }
  else {
    colon = strrchr (s, ':');
    if (!colon || colon == s || (size_t) (colon - s) >= hostlen)
      return -EINVAL;
    memcpy (host, s, colon - s);
    host[colon - s] = '\0';
    *port = colon + 1;
  }
  return 0;
}

int
parse_hostport (const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
  char host[256];
  const char *port;
  struct addrinfo hints = { 0 }, *res;
  uint64_t portnum;
  int r;

  if (hostport_split (s, host, sizeof host, &port) < 0)
    goto bad;
  if (parse_uint (port, 1, 65535, &portnum) == -1)
    goto bad;

  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  r = getaddrinfo (host, port, &hints, &res);
  if (r != 0) {
    errno = EHOSTUNREACH;
    return -1;
  }
  memcpy (ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo (res);
  return 0;

 bad:
  errno = EINVAL;
  return -1;
}

int
set_nonblock (int fd)
{
  int fl = fcntl (fd, F_GETFL);
  if (fl == -1)
    return -1;
  return fcntl (fd, F_SETFL, fl | O_NONBLOCK);
}

void
set_tcp_nodelay (int fd)
{
  int one = 1;
  /* Replies are small and latency bound: never wait for Nagle. */
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int
tcp_listen (const char *hostport)
{
  struct sockaddr_storage ss;
  socklen_t len;
  int fd, one = 1;

  if (parse_hostport (hostport, &ss, &len) == -1)
    return -1;
  fd = socket (ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return -1;
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind (fd, (struct sockaddr *) &ss, len) == -1 || listen (fd, 128) == -1) {
    int e = errno;
    close (fd);
    errno = e;
    return -1;
  }
  return fd;
}

int
tcp_connect (const char *hostport, int timeout_ms)
{
  struct sockaddr_storage ss;
  socklen_t len;
  struct pollfd pfd;
  int fd, r, err = 0;
  socklen_t errlen = sizeof err;

  if (parse_hostport (hostport, &ss, &len) == -1)
    return -1;
  fd = socket (ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd == -1)
    return -1;
  r = connect (fd, (struct sockaddr *) &ss, len);
  if (r == -1 && errno != EINPROGRESS)
    goto fail;
  if (r == -1) {
    pfd.fd = fd;
    pfd.events = POLLOUT;
    do
      r = poll (&pfd, 1, timeout_ms);
    while (r == -1 && errno == EINTR);
    if (r == 0) {
      errno = ETIMEDOUT;
      goto fail;
    }
    if (r == -1)
      goto fail;
    if (getsockopt (fd, SOL_SOCKET, SO_ERROR, &err, &errlen) == -1)
      goto fail;
    if (err) {
      errno = err;
      goto fail;
    }
  }
  /* Callers get a blocking socket; event-loop users set O_NONBLOCK. */
  fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) & ~O_NONBLOCK);
  set_tcp_nodelay (fd);
  return fd;

 fail:
  err = errno;
  close (fd);
  errno = err;
  return -1;
}

int
unix_sockaddr (const char *path, struct sockaddr_un *sun)
{
  memset (sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  if (strlen (path) >= sizeof sun->sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy (sun->sun_path, path);
  return 0;
}

int
unix_listen (const char *path)
{
  struct sockaddr_un sun;
  int fd;

  if (unix_sockaddr (path, &sun) == -1)
    return -1;
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return -1;
  /* Owner only, set before listen: until then nobody can connect, so
   * there is no window in which another local user could.
   */
  if (bind (fd, (struct sockaddr *) &sun, sizeof sun) == -1) {
    int e = errno;
    close (fd);
    errno = e;
    return -1;
  }
  if (chmod (path, 0600) == -1 || listen (fd, 128) == -1) {
    int e = errno;
    unlink (path);
    close (fd);
    errno = e;
    return -1;
  }
  return fd;
}

uint64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int
error_set (struct error *e, int code, const char *fmt, ...)
{
  if (code <= 0)
    code = EIO;
  if (e) {
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (e->msg, sizeof e->msg, fmt, ap);
    va_end (ap);
    e->code = code;
  }
  return -code;
}

void
error_prefix (struct error *e, const char *fmt, ...)
{
  char head[sizeof e->msg], old[sizeof e->msg];
  va_list ap;

  if (e == NULL)
    return;
  va_start (ap, fmt);
  vsnprintf (head, sizeof head - 1, fmt, ap);
  va_end (ap);
  snprintf (old, sizeof old, "%s", error_msg (e));
  /* Truncation keeps the head: the context reads first. */
  size_t n = strlen (head);
  memcpy (e->msg, head, n);
  snprintf (e->msg + n, sizeof e->msg - n, "%s", old);
}

const char *
error_msg (const struct error *e)
{
  if (e->msg[0])
    return e->msg;
  return strerror (e->code ? e->code : EIO);
}

bool
mem_is_zero (const void *data, size_t len)
{
  const unsigned char *p = data;
  /* All bytes equal the first, and the first is zero: memcmp of the
   * buffer against itself shifted by one runs at memcmp speed.
   */
  return len == 0 || (p[0] == 0 && memcmp (p, p + 1, len - 1) == 0);
}

static char this_host_buf[64];

static void
this_host_init (void)
{
  const char *env = getenv ("REPVOL_HOST");
  if (env && *env)
    snprintf (this_host_buf, sizeof this_host_buf, "%s", env);
  else if (gethostname (this_host_buf, sizeof this_host_buf) == -1)
    snprintf (this_host_buf, sizeof this_host_buf, "localhost");
  this_host_buf[sizeof this_host_buf - 1] = '\0';
}

const char *
this_host_name (void)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once (&once, this_host_init);
  return this_host_buf;
}
