/* metrics_http.c - GET /metrics over HTTP, with libmicrohttpd.
 *
 * One thread of libmicrohttpd's own polls the listening socket and the
 * connections; a scrape renders the registry there (metrics_render,
 * which takes only the registry's mutex), so nothing here ever waits
 * for the event loop or holds it up.  The bounds (docs/DESIGN.md 2.9):
 * METRICS_HTTP_CONNS connections at once (more wait in the listen
 * backlog until one goes),
 * METRICS_HTTP_TIMEOUT_S of silence closes one, and a request's line
 * and headers must fit METRICS_HTTP_MEM bytes (libmicrohttpd answers a
 * larger one 431, a malformed one 400).  GET and HEAD of /metrics get
 * 200; another path 404; another method 405.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <microhttpd.h>

#include "metrics/metrics.h"

#define METRICS_HTTP_CONNS     8
#define METRICS_HTTP_TIMEOUT_S 10
#define METRICS_HTTP_MEM       (32u << 10)

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics_http {
  struct MHD_Daemon *d;
  struct metrics *m;
};

static enum MHD_Result
reply (struct MHD_Connection *c, unsigned status, const char *text,
       const char *allow)
{
  struct MHD_Response *r =
    MHD_create_response_from_buffer (strlen (text), (void *) text,
                                     MHD_RESPMEM_PERSISTENT);
  enum MHD_Result ret;

  if (!r)
    return MHD_NO;              /* closes the connection */
  MHD_add_response_header (r, MHD_HTTP_HEADER_CONTENT_TYPE,
                           "text/plain; charset=utf-8");
  if (allow)
    MHD_add_response_header (r, MHD_HTTP_HEADER_ALLOW, allow);
  ret = MHD_queue_response (c, status, r);
  MHD_destroy_response (r);
  return ret;
}

static enum MHD_Result
on_request (void *cls, struct MHD_Connection *c, const char *url,
            const char *method, const char *version, const char *upload,
            size_t *upload_size, void **con_cls)
{
  struct metrics_http *h = cls;
  struct MHD_Response *r;
  enum MHD_Result ret;
  size_t len;
  char *text;

  /* A body is not wanted: answer at the first call, before any of it
   * is read (libmicrohttpd then closes rather than reading it all).
   */
  if (strcmp (method, MHD_HTTP_METHOD_GET) && strcmp (method,
                                                      MHD_HTTP_METHOD_HEAD))
    return reply (c, MHD_HTTP_METHOD_NOT_ALLOWED,
                  "only GET and HEAD are served\n", "GET, HEAD");
  if (strcmp (url, "/metrics"))
    return reply (c, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n", NULL);
  if ((text = metrics_render (h->m, &len)) == NULL)
    return reply (c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", NULL);
  r = MHD_create_response_from_buffer (len, text, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free (text);
    return MHD_NO;
  }
  MHD_add_response_header (r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
  ret = MHD_queue_response (c, MHD_HTTP_OK, r);
  MHD_destroy_response (r);
  return ret;
}

/* libmicrohttpd's complaints (a client that misbehaves) are the
 * client's business: debug lines only.
 */
static void
on_log (void *cls, const char *fmt, va_list ap)
{
  char line[256];

  vsnprintf (line, sizeof line, fmt, ap);
  line[strcspn (line, "\n")] = '\0';
  log_debug ("metrics http: %s", line);
}

struct metrics_http *
metrics_http_start (struct metrics *m, const char *hostport,
                    struct error *err)
{
  struct sockaddr_storage ss;
  socklen_t sslen;
  struct metrics_http *h;
  sigset_t all, old;
  int fd;

  if (parse_hostport (hostport, &ss, &sslen) < 0) {
    error_set (err, EINVAL, "bad --metrics address '%s' (want ADDR:PORT)",
               hostport);
    return NULL;
  }
  if ((fd = tcp_listen (hostport)) < 0) {
    error_set (err, errno, "--metrics: cannot listen on %s: %s", hostport,
               strerror (errno));
    return NULL;
  }
  if ((h = calloc (1, sizeof *h)) == NULL) {
    close (fd);
    error_set (err, ENOMEM, "--metrics: out of memory");
    return NULL;
  }
  h->m = m;
  /* The thread inherits this mask: every signal stays with the loop. */
  sigfillset (&all);
  pthread_sigmask (SIG_BLOCK, &all, &old);
  h->d = MHD_start_daemon (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                           MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, h,
                           MHD_OPTION_LISTEN_SOCKET, fd,
                           MHD_OPTION_CONNECTION_LIMIT,
                           (unsigned) METRICS_HTTP_CONNS,
                           MHD_OPTION_CONNECTION_TIMEOUT,
                           (unsigned) METRICS_HTTP_TIMEOUT_S,
                           MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                           (size_t) METRICS_HTTP_MEM,
                           MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,
                           MHD_OPTION_END);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (!h->d) {
    close (fd);
    free (h);
    error_set (err, EIO, "--metrics %s: cannot start the HTTP server",
               hostport);
    return NULL;
  }
  log_info ("metrics: serving http://%s/metrics", hostport);
  return h;
}

void
metrics_http_stop (struct metrics_http *h)
{
  if (!h)
    return;
  /* MHD_stop_daemon closes the listening socket it was given. */
  MHD_stop_daemon (h->d);
  free (h);
}
