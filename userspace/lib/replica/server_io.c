/* server_io.c - the replica server's requests, carried out against the
 * store: data requests (READ, WRITE, FLUSH, TRIM, WRITE_ZEROES, the
 * dirty-map commands, CHECKSUM) become bdev I/O on the connection's
 * volume, answered when it completes; CREATE, DELETE, STAT and
 * SET_EPOCH act on the store at once; RESIZE is a bdev request on a
 * data connection and acts at once on an admin one.  server.c has
 * checked the header, the range and the payload checksum, and decided
 * fencing, before a request gets here.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "core/wire.h"
#include "replica/server_internal.h"

_Static_assert (RV_DIRTY_REGION_MIN == STORE_DIRTY_REGION_MIN &&
                RV_DIRTY_MAX_REGIONS == STORE_DIRTY_MAX_REGIONS,
                "dirty region size rule");
_Static_assert (RV_DIRTY_HDR_SIZE == STORE_DIRTY_HDR_SIZE, "dirty header");

static void
io_done (struct bdev_io *io, int err)
{
  struct rs_req *req = io->opaque;

  metrics_io_done (&req->rc->vm.io, io->op, io->len, req->start_ns, err);
  if (err) {
    log_debug ("%s: %s %" PRIu64 "+%u: %s", req->rc->c->name,
               rv_cmd_name (req->req.cmd), req->req.offset, req->req.length,
               strerror (err));
    rs_reply (req, rv_errno_to_status (err), NULL, 0);
  }
  else if (req->req.cmd == RV_READ)
    rs_reply (req, RV_OK, req->buf, req->req.length);
  else if (req->req.cmd == RV_DIRTY_GET)
    rs_reply (req, RV_OK, req->buf, req->buflen);
  else if (req->req.cmd == RV_CHECKSUM) {
    uint32_t crc;                 /* host order from the store */
    memcpy (&crc, req->buf, sizeof crc);
    putle32 (req->buf, crc);
    rs_reply (req, RV_OK, req->buf, RV_CHECKSUM_SIZE);
  }
  else
    rs_reply (req, RV_OK, NULL, 0);
}

static void
do_create (struct rs_req *req)
{
  struct rs_conn *rc = req->rc;
  struct rv_create cr;
  struct store_vol *v;
  struct error e = { 0 };
  const char *why;
  uint64_t epoch;
  int err;

  if (rv_decode_create (req->buf, &cr, &why) < 0) {
    rs_conn_warn (rc, "%s: CREATE %s refused: %s", rc->c->name, rc->volname,
                  why);
    rs_reply (req, RV_EINVAL, NULL, 0);
    return;
  }
  if (rs_conn_vol (rc) || store_lookup (rc->srv->store, rc->volname)) {
    rs_reply (req, RV_EEXIST, NULL, 0);
    return;
  }
  epoch = cr.epoch;
  if (!rc->admin)
    epoch = MAX (epoch, rc->epoch);
  err = store_create (rc->srv->store, rc->volname, cr.size, cr.block_size,
                      cr.flags & RV_F_RESERVE ? STORE_F_RESERVED : 0, epoch,
                      &v, &e);
  if (err < 0) {
    rs_conn_warn (rc, "%s: CREATE %s refused: %s", rc->c->name, rc->volname,
                  error_msg (&e));
    rs_reply (req, err == -EOPNOTSUPP ? RV_ENOTSUP : rv_errno_to_status (-err),
              NULL, 0);
    return;
  }
  store_vol_get (v);
  rc->vol = v;
  rs_metrics_bind (rc, v);
  rs_metrics_conn (rc, 1);
  rs_reply (req, RV_OK, NULL, 0);
}

/* Another open data connection using v (an attach), or NULL: DELETE,
 * SET_EPOCH, and an admin READ or CHECKSUM are refused while there is
 * one.
 */
static struct rs_conn *
data_user (struct rs_conn *rc, struct store_vol *v)
{
  for (struct rs_conn *o = rc->srv->conns; o; o = o->next)
    if (o != rc && !o->closed && !o->admin && o->vol == v)
      return o;
  return NULL;
}

/* The volume req's admin command acts on, answering ENOENT (none) or
 * EBUSY (a data connection uses it, logged) itself and returning NULL.
 */
static struct store_vol *
idle_vol (struct rs_req *req)
{
  struct rs_conn *rc = req->rc, *o;
  struct store_vol *v = rs_conn_vol (rc);

  if (!v) {
    rs_reply (req, RV_ENOENT, NULL, 0);
    return NULL;
  }
  if ((o = data_user (rc, v)) != NULL) {
    rs_conn_warn (rc, "%s: %s %s refused: in use by %s", rc->c->name,
                  rv_cmd_name (req->req.cmd), rc->volname, o->c->name);
    rs_refused (rc, RS_REFUSE_BUSY);
    rs_reply (req, RV_EBUSY, NULL, 0);
    return NULL;
  }
  return v;
}

static void
do_delete (struct rs_req *req)
{
  struct rs_conn *rc = req->rc;
  struct store_vol *v = idle_vol (req);
  int err;

  if (!v)
    return;
  err = store_delete (rc->srv->store, v);
  if (err < 0) {
    rs_reply (req, rv_errno_to_status (-err), NULL, 0);
    return;
  }
  store_vol_put (rc->vol);
  rc->vol = NULL;
  rs_reply (req, RV_OK, NULL, 0);
}

/* The operator's repair of a wrong epoch (docs/DESIGN.md rule 8):
 * admin connections only, and only while no attach has the volume open,
 * so no live attachment is fenced or unfenced under its feet.
 */
static void
do_set_epoch (struct rs_req *req)
{
  struct rs_conn *rc = req->rc;
  struct store_vol *v;
  const char *why;
  uint64_t epoch, was;
  int err;

  if (!rc->admin) {
    rs_reply (req, RV_EPERM, NULL, 0);
    return;
  }
  if (rv_decode_set_epoch (req->buf, &epoch, &why) < 0) {
    rs_conn_warn (rc, "%s: SET_EPOCH %s refused: %s", rc->c->name,
                  rc->volname, why);
    rs_reply (req, RV_EINVAL, NULL, 0);
    return;
  }
  if ((v = idle_vol (req)) == NULL)
    return;
  was = store_vol_meta (v)->epoch;
  err = store_vol_reset_epoch (v, epoch);
  if (err < 0) {
    rs_reply (req, rv_errno_to_status (-err), NULL, 0);
    return;
  }
  rs_metrics_epoch (rc, v);
  log_info ("%s: volume %s epoch %" PRIu64 " -> %" PRIu64 " (SET_EPOCH on an "
            "admin connection)", rc->c->name, rc->volname, was, epoch);
  rs_reply (req, RV_OK, NULL, 0);
}

/* "64 MiB -> 128 MiB" */
static const char *
sizes (uint64_t from, uint64_t to, char *buf, size_t len)
{
  char a[32], b[32];

  snprintf (buf, len, "%s -> %s", format_size (from, a, sizeof a),
            format_size (to, b, sizeof b));
  return buf;
}

static void
resize_done (struct bdev_io *io, int err)
{
  struct rs_req *req = io->opaque;
  struct rs_conn *rc = req->rc;
  char buf[80];

  sizes (req->old_size, req->req.offset, buf, sizeof buf);
  if (err) {
    rs_conn_warn (rc, "%s: RESIZE %s %s refused: %s", rc->c->name,
                  rc->volname, buf, strerror (err));
    rs_reply (req, rv_errno_to_status (err), NULL, 0);
    return;
  }
  if (req->old_size != req->req.offset)
    log_info ("%s: volume %s resized %s", rc->c->name, rc->volname, buf);
  rs_reply (req, RV_OK, NULL, 0);
}

/* RESIZE (docs/DESIGN.md 3.10).  On a data connection (fencing and the
 * volume decided by server.c) it only grows, after the volume's
 * requests in flight: a bdev request.  On an admin connection it may
 * shrink, and only while no attach has the volume open, like
 * SET_EPOCH: the store at once.
 */
static void
do_resize (struct rs_req *req)
{
  struct rs_conn *rc = req->rc;
  struct store_vol *v = rc->admin ? idle_vol (req) : rc->vol;
  uint64_t size = req->req.offset;
  bool reserve = req->req.flags & RV_F_RESERVE;
  struct error e = { 0 };
  const struct store_meta *m;
  char buf[80];
  int err;

  if (!v)
    return;                     /* answered by idle_vol */
  m = store_vol_meta (v);
  req->old_size = m->size;
  sizes (m->size, size, buf, sizeof buf);
  if (!rc->admin && (size < m->size || size % m->block_size)) {
    rs_conn_warn (rc, "%s: RESIZE %s %s refused: %s", rc->c->name,
                  rc->volname, buf, size < m->size
                  ? "a data connection only grows a volume"
                  : "not a multiple of the block size");
    rs_reply (req, RV_EINVAL, NULL, 0);
    return;
  }
  if (!rc->admin) {
    memset (&req->io, 0, sizeof req->io);
    req->io.done = resize_done;
    req->io.opaque = req;
    bdev_resize (store_vol_bdev (v), &req->io, size,
                 reserve ? BDEV_RESERVE : 0);
    return;
  }
  err = store_vol_resize (v, size, reserve, &e);
  if (err < 0) {
    rs_conn_warn (rc, "%s: RESIZE %s %s refused: %s", rc->c->name,
                  rc->volname, buf, error_msg (&e));
    rs_reply (req, rv_errno_to_status (-err), NULL, 0);
    return;
  }
  if (m->size != req->old_size)
    log_info ("%s: volume %s resized %s (admin connection)", rc->c->name,
              rc->volname, buf);
  rs_reply (req, RV_OK, NULL, 0);
}

static void
fill_volinfo (struct store_vol *v, struct rv_volinfo *vi)
{
  memset (vi, 0, sizeof *vi);
  if (!v)
    return;
  const struct store_meta *m = store_vol_meta (v);
  vi->exists = 1;
  vi->block_size = m->block_size;
  vi->size = m->size;
  vi->epoch = m->epoch;
  vi->allocated = store_vol_allocated (v);
  vi->flags = m->flags & STORE_F_RESERVED ? RV_F_RESERVE : 0;
  vi->state = m->state;
  vi->dirty_regions = store_vol_dirty_count (v);
}

/* Give req a buffer of n bytes (4096-aligned, for O_DIRECT), counting
 * counted bytes of it against the connection's budget.  false when
 * memory ran out: req has then been answered RV_EIO.
 */
static bool
req_buf (struct rs_req *req, size_t n, size_t counted)
{
  if (rs_req_buf (req, n) < 0) {
    rs_reply (req, RV_EIO, NULL, 0);
    return false;
  }
  req->buflen = counted;
  req->rc->bytes += counted;
  return true;
}

static void
do_stat (struct rs_req *req)
{
  struct rv_volinfo vi;

  fill_volinfo (rs_conn_vol (req->rc), &vi);
  if (!req_buf (req, RV_STAT_SIZE, 0))
    return;
  rv_encode_volinfo (&vi, req->buf);
  rs_reply (req, RV_OK, req->buf, RV_STAT_SIZE);
}

void
rs_dispatch (struct rs_req *req)
{
  struct rs_conn *rc = req->rc;
  struct store_vol *v = rc->vol;
  struct bdev_io *io = &req->io;

  if (req->pre_status) {
    rs_reply (req, req->pre_status, NULL, 0);
    return;
  }
  switch (req->req.cmd) {
  case RV_CREATE: do_create (req); return;
  case RV_DELETE: do_delete (req); return;
  case RV_STAT:   do_stat (req); return;
  case RV_SET_EPOCH: do_set_epoch (req); return;
  case RV_RESIZE: do_resize (req); return;
  case RV_PING:   rs_reply (req, RV_OK, NULL, 0); return;
  }
  /* Admin connections never read an attached volume's data
   * (docs/DESIGN.md, "Trust"): its attach answers for it.
   */
  if (rc->admin && !idle_vol (req))
    return;

  memset (io, 0, sizeof *io);
  io->offset = req->req.offset;
  io->len = req->req.length;
  io->done = io_done;
  io->opaque = req;
  if (req->req.flags & RV_F_FUA)
    io->flags |= BDEV_FUA;
  if (req->req.flags & RV_F_DIRTY)
    io->flags |= BDEV_DIRTY;
  switch (req->req.cmd) {
  case RV_READ:
    if (!req_buf (req, req->req.length, req->req.length))
      return;
    io->op = BDEV_READ;
    io->buf = req->buf;
    break;
  case RV_WRITE:
    io->op = BDEV_WRITE;
    io->buf = req->buf;
    break;
  case RV_FLUSH:
    io->op = BDEV_FLUSH;
    break;
  case RV_TRIM:
    io->op = BDEV_TRIM;
    break;
  case RV_WRITE_ZEROES:
    io->op = BDEV_WRITE_ZEROES;
    if (req->req.flags & RV_F_NO_HOLE)
      io->flags |= BDEV_NO_HOLE;
    break;
  case RV_MARK_DIRTY:
    io->op = BDEV_MARK_DIRTY;
    break;
  case RV_DIRTY_GET: {
    size_t n = store_vol_dirty_get_size (v);
    if (n > RV_MAX_PAYLOAD) {
      rs_reply (req, RV_EINVAL, NULL, 0);
      return;
    }
    if (!req_buf (req, n, n))
      return;
    io->op = BDEV_DIRTY_GET;
    io->buf = req->buf;
    io->offset = 0;
    io->len = n;
    break;
  }
  case RV_DIRTY_CLEAR:
    io->op = BDEV_DIRTY_CLEAR;
    break;
  case RV_CHECKSUM:
    /* Count the store's scratch buffer, so a client cannot make us hold
     * RV_MAX_INFLIGHT of them at once.
     */
    if (!req_buf (req, RV_CHECKSUM_SIZE,
                  MIN (req->req.length, STORE_CHECKSUM_CHUNK)))
      return;
    io->op = BDEV_CHECKSUM;
    io->buf = req->buf;
    break;
  }
  req->start_ns = now_ns ();
  bdev_submit (store_vol_bdev (v), io);
}
