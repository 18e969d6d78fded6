/* server_reqs.c - the server's requests and their buffers, reused.
 *
 * Every request is a struct rs_req, and a WRITE's payload or a READ's
 * reply a 4096-aligned buffer (for O_DIRECT).  At the I/O rate, a
 * calloc, a posix_memalign and two frees per request are a cost of
 * their own, and large buffers freed and allocated again leave the heap
 * at its high-water mark anyway; so finished requests are kept, with
 * their buffers, up to a bound on the bytes kept (RS_CACHE_BYTES), for
 * the next ones.
 */
#include <stdlib.h>
#include <string.h>

#include "replica/server_internal.h"

#define RS_CACHE_MAX   256
#define RS_CACHE_BYTES (8u << 20)

struct rs_req *
rs_req_get (struct replica_server *srv)
{
  struct rs_req *r = srv->req_cache;
  void *buf;
  size_t cap;

  if (r == NULL)
    return calloc (1, sizeof *r);
  srv->req_cache = r->hnext;
  srv->nreq_cache--;
  srv->req_cache_bytes -= r->buf_cap;
  buf = r->buf;
  cap = r->buf_cap;
  memset (r, 0, sizeof *r);
  r->spare = buf;               /* rs_req_buf takes it if it is large enough */
  r->spare_cap = cap;
  return r;
}

int
rs_req_buf (struct rs_req *r, size_t n)
{
  if (r->spare && r->spare_cap >= n) {
    r->buf = r->spare;
    r->buf_cap = r->spare_cap;
    r->spare = NULL;
    return 0;
  }
  free (r->spare);
  r->spare = NULL;
  if (posix_memalign (&r->buf, 4096, n) != 0) {
    r->buf = NULL;
    return -1;
  }
  r->buf_cap = n;
  return 0;
}

void
rs_req_put (struct replica_server *srv, struct rs_req *r)
{
  /* The buffer that goes with it: the one used, or the one not taken. */
  if (r->buf == NULL && r->spare) {
    r->buf = r->spare;
    r->buf_cap = r->spare_cap;
  }
  else
    free (r->spare);
  r->spare = NULL;
  if (r->buf == NULL)
    r->buf_cap = 0;
  if (srv->nreq_cache >= RS_CACHE_MAX ||
      srv->req_cache_bytes + r->buf_cap > RS_CACHE_BYTES) {
    free (r->buf);
    free (r);
    return;
  }
  r->hnext = srv->req_cache;
  srv->req_cache = r;
  srv->nreq_cache++;
  srv->req_cache_bytes += r->buf_cap;
}

void
rs_req_cache_free (struct replica_server *srv)
{
  while (srv->req_cache) {
    struct rs_req *r = srv->req_cache;
    srv->req_cache = r->hnext;
    free (r->buf);
    free (r);
  }
  srv->nreq_cache = 0;
  srv->req_cache_bytes = 0;
}
