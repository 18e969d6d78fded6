/* fake_bdev.c - an in-memory replica and its bdev with fault injection
 * (see fake_bdev.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fake_bdev.h"
#include "core/util.h"
#include "core/wire.h"
#include "replica/proto.h"

static void *
xcalloc (size_t n, size_t size)
{
  void *p = calloc (n ? n : 1, size);
  if (!p)
    abort ();
  return p;
}

/* ---- the replica ---------------------------------------------------- */

struct fake_replica *
fake_replica_new (uint64_t size)
{
  struct fake_replica *r = xcalloc (1, sizeof *r);

  r->size = size;
  r->data = xcalloc (1, size);
  r->region = rv_dirty_region (size);
  r->nregions = (size + r->region - 1) / r->region;
  r->dirty = xcalloc (1, (r->nregions + 7) / 8);
  return r;
}

void
fake_replica_free (struct fake_replica *r)
{
  if (!r)
    return;
  free (r->data);
  free (r->dirty);
  free (r->writes);
  free (r);
}

bool
fake_replica_dirty (const struct fake_replica *r, uint64_t region)
{
  return region < r->nregions && (r->dirty[region / 8] >> (region % 8)) & 1;
}

uint64_t
fake_replica_dirty_count (const struct fake_replica *r)
{
  uint64_t n = 0;
  for (uint64_t k = 0; k < r->nregions; k++)
    n += fake_replica_dirty (r, k);
  return n;
}

void
fake_replica_forget_log (struct fake_replica *r)
{
  memset (r->done, 0, sizeof r->done);
  r->bytes_written = 0;
  r->nwrites = 0;
}

/* As the store does: every region [offset, offset + len) touches. */
static void
mark (struct fake_replica *r, uint64_t offset, uint32_t len)
{
  if (len == 0)
    return;
  for (uint64_t k = offset / r->region;
       k <= (offset + len - 1) / r->region && k < r->nregions; k++)
    r->dirty[k / 8] |= 1u << (k % 8);
}

static void
log_write (struct fake_replica *r, const struct bdev_io *io)
{
  if (r->nwrites == r->writes_cap) {
    r->writes_cap = r->writes_cap ? 2 * r->writes_cap : 64;
    r->writes = realloc (r->writes, r->writes_cap * sizeof *r->writes);
    if (!r->writes)
      abort ();
  }
  r->writes[r->nwrites++] = (struct fake_range) {
    .op = io->op, .offset = io->offset, .len = io->len, .flags = io->flags,
  };
  r->bytes_written += io->len;
}

/* Carry io out on the image; 0 or an errno, as the store would. */
static int
apply (struct fake_replica *r, struct bdev_io *io)
{
  size_t maplen = (r->nregions + 7) / 8;
  uint32_t crc;

  if ((io->flags & BDEV_DIRTY) && io->op != BDEV_WRITE &&
      io->op != BDEV_TRIM && io->op != BDEV_WRITE_ZEROES)
    return EINVAL;
  switch (io->op) {
  case BDEV_READ:
    memcpy (io->buf, r->data + io->offset, io->len);
    break;
  case BDEV_WRITE:
    memcpy (r->data + io->offset, io->buf, io->len);
    break;
  case BDEV_TRIM:
  case BDEV_WRITE_ZEROES:
    memset (r->data + io->offset, 0, io->len);
    break;
  case BDEV_FLUSH:
    break;
  case BDEV_MARK_DIRTY:
    mark (r, io->offset, io->len);
    break;
  case BDEV_DIRTY_GET:
    /* Asked for at least the map (the replica client takes a shorter
     * reply, from a server with larger regions).
     */
    if (io->len < RV_DIRTY_HDR_SIZE + maplen)
      return EINVAL;
    putle32 (io->buf, r->region);
    putle32 ((uint8_t *) io->buf + 4, 0);
    putle64 ((uint8_t *) io->buf + 8, r->nregions);
    memcpy ((uint8_t *) io->buf + RV_DIRTY_HDR_SIZE, r->dirty, maplen);
    break;
  case BDEV_DIRTY_CLEAR:
    memset (r->dirty, 0, maplen);
    break;
  case BDEV_CHECKSUM:
    crc = crc32c (0, r->data + io->offset, io->len);
    memcpy (io->buf, &crc, sizeof crc);
    break;
  case BDEV_RESIZE: {
    /* Test volumes stay far below the 512 GiB where the region size
     * would change (rv_dirty_region): the bits keep their meaning.
     */
    uint64_t n = (io->offset + r->region - 1) / r->region;
    uint8_t *data = realloc (r->data, io->offset);
    uint8_t *dirty = realloc (r->dirty, (n + 7) / 8 + 1);
    if (!data || !dirty)
      abort ();
    if (io->offset > r->size)
      memset (data + r->size, 0, io->offset - r->size);
    if ((n + 7) / 8 + 1 > maplen)
      memset (dirty + maplen, 0, (n + 7) / 8 + 1 - maplen);
    r->data = data;
    r->dirty = dirty;
    r->size = io->offset;
    r->nregions = n;
    break;
  }
  default:
    return EINVAL;
  }
  if (io->flags & BDEV_DIRTY)
    mark (r, io->offset, io->len);
  if (FAKE_OP (io->op) & FAKE_DATA_OPS)
    log_write (r, io);
  r->done[io->op]++;
  return 0;
}

/* ---- the connection ------------------------------------------------- */

static void
push (struct fake_req **v, int *n, int *cap, struct fake_req q)
{
  if (*n == *cap) {
    *cap = *cap ? 2 * *cap : 32;
    *v = realloc (*v, *cap * sizeof **v);
    if (!*v)
      abort ();
  }
  (*v)[(*n)++] = q;
}

static void
maybe_drained (struct fake_bdev *f)
{
  if (f->drain_done && f->nheld == 0 && f->nqueue == 0) {
    void (*done) (void *) = f->drain_done;
    f->drain_done = NULL;
    done (f->drain_opaque);
  }
}

static void
finish (struct fake_bdev *f, struct fake_req q)
{
  int err = q.err;

  if (!err && (f->failing || f->dead || f->closed))
    err = EIO;
  if (!err)
    err = apply (f->rep, q.io);
  if (!err && q.io->op == BDEV_RESIZE)
    f->bdev.info.size = q.io->offset;
  q.io->done (q.io, err);
}

/* Complete the n requests of v in f->order.  v is a copy: completions
 * may submit more.
 */
static void
finish_batch (struct fake_bdev *f, struct fake_req *v, int n)
{
  if (f->order == FAKE_SHUFFLE)
    for (int k = n - 1; k > 0; k--) {
      int j = rand_r (&f->seed) % (k + 1);
      struct fake_req t = v[k];
      v[k] = v[j];
      v[j] = t;
    }
  for (int k = 0; k < n; k++)
    finish (f, v[f->order == FAKE_REVERSE ? n - 1 - k : k]);
}

/* Take every request out of v into a fresh array, for finish_batch. */
static struct fake_req *
take (struct fake_req **v, int *n, int *cap, int *count)
{
  struct fake_req *all = *v;

  *count = *n;
  *v = NULL;
  *n = *cap = 0;
  return all;
}

/* A completion may close f (the layer above owns it): f is freed only
 * once nothing here still uses it.
 */
static void
enter (struct fake_bdev *f)
{
  f->busy++;
}

static void
leave (struct fake_bdev *f)
{
  if (--f->busy == 0 && f->closed && !f->defer.queued) {
    free (f->held);
    free (f->queue);
    free (f);
    return;
  }
  if (!f->closed)
    maybe_drained (f);
}

static void
run_queue (struct loop_defer *d)
{
  struct fake_bdev *f = d->opaque;
  int n;
  struct fake_req *v;

  enter (f);
  v = take (&f->queue, &f->nqueue, &f->queue_cap, &n);
  finish_batch (f, v, n);
  free (v);
  leave (f);
}

static bool
is_data_write (const struct bdev_io *io)
{
  return FAKE_OP (io->op) & FAKE_DATA_OPS;
}

static void
count_overlaps (struct fake_bdev *f, const struct fake_req *v, int n,
                const struct bdev_io *io)
{
  for (int k = 0; k < n; k++) {
    const struct bdev_io *p = v[k].io;
    if (is_data_write (p) &&
        p->offset < io->offset + io->len && io->offset < p->offset + p->len)
      f->overlap_seen++;
  }
}

static void
fake_submit (struct bdev *b, struct bdev_io *io)
{
  struct fake_bdev *f = b->priv;
  struct fake_req q = { .io = io };

  f->submitted++;
  if ((unsigned) io->op < FAKE_NOPS)
    f->count[io->op]++;
  if (f->dead) {
    io->done (io, EIO);
    return;
  }
  if (f->submitted == f->fail_nth || (f->fail_ops & FAKE_OP (io->op)))
    q.err = f->fail_err ? f->fail_err : EIO;
  if (is_data_write (io)) {
    count_overlaps (f, f->held, f->nheld, io);
    count_overlaps (f, f->queue, f->nqueue, io);
  }
  if (f->hold_ops & FAKE_OP (io->op))
    push (&f->held, &f->nheld, &f->held_cap, q);
  else if (f->loop) {
    push (&f->queue, &f->nqueue, &f->queue_cap, q);
    loop_defer (f->loop, &f->defer, run_queue, f);
  }
  else {
    enter (f);
    finish (f, q);
    leave (f);
  }
}

struct bdev_io *
fake_bdev_held (struct fake_bdev *f, int k)
{
  return k < f->nheld ? f->held[k].io : NULL;
}

void
fake_bdev_complete (struct fake_bdev *f, int k)
{
  struct fake_req q = f->held[k];

  f->held[k] = f->held[--f->nheld];
  enter (f);
  finish (f, q);
  leave (f);
}

void
fake_bdev_release (struct fake_bdev *f)
{
  int n;
  struct fake_req *v = take (&f->held, &f->nheld, &f->held_cap, &n);

  enter (f);
  finish_batch (f, v, n);
  free (v);
  leave (f);
}

/* Fail everything in flight, held first, as the client's fail_all. */
static void
fail_all (struct fake_bdev *f)
{
  int nh, nq;
  struct fake_req *h = take (&f->held, &f->nheld, &f->held_cap, &nh);
  struct fake_req *q = take (&f->queue, &f->nqueue, &f->queue_cap, &nq);

  for (int k = 0; k < nh; k++)
    h[k].io->done (h[k].io, EIO);
  for (int k = 0; k < nq; k++)
    q[k].io->done (q[k].io, EIO);
  free (h);
  free (q);
}

void
fake_bdev_kill (struct fake_bdev *f)
{
  f->dead = true;
  enter (f);
  fail_all (f);
  leave (f);
}

static void
fake_drain (struct bdev *b, void (*done) (void *), void *opaque)
{
  struct fake_bdev *f = b->priv;

  f->drain_done = done;
  f->drain_opaque = opaque;
  maybe_drained (f);
}

static void
fake_health (struct bdev *b, struct bdev_health *h)
{
  struct fake_bdev *f = b->priv;

  h->up = !f->dead;
  h->latency_ns = f->latency_ns;
}

static void
fake_close (struct bdev *b)
{
  struct fake_bdev *f = b->priv;

  enter (f);
  f->dead = f->closed = true;
  f->rep->open--;
  if (f->rep->conn == f)
    f->rep->conn = NULL;
  fail_all (f);
  /* A queued run_queue, or a batch under way, still points at f. */
  leave (f);
}

static const struct bdev_ops fake_ops = {
  .name = "fake",
  .submit = fake_submit,
  .drain = fake_drain,
  .health = fake_health,
  .close = fake_close,
};

struct fake_bdev *
fake_bdev_new (struct fake_replica *r, struct loop *loop,
               const struct bdev_info *info)
{
  struct fake_bdev *f = xcalloc (1, sizeof *f);

  f->rep = r;
  f->loop = loop;
  f->seed = 1;
  f->bdev.ops = &fake_ops;
  f->bdev.priv = f;
  if (info)
    f->bdev.info = *info;
  else
    f->bdev.info = (struct bdev_info) {
      .size = r->size, .block_size = 512, .max_io = RV_MAX_PAYLOAD,
      .volatile_cache = 1,
    };
  r->open++;
  r->conn = f;
  return f;
}

/* ---- running the loop ------------------------------------------------ */

struct until {
  struct loop *loop;
  bool (*cond) (void *);
  void *opaque;
  uint64_t ticks_left;
  bool met;
  struct loop_timer timer;
};

static void
until_check (struct loop_timer *t)
{
  struct until *u = t->opaque;

  u->met = u->cond (u->opaque);
  if (u->met || u->ticks_left-- == 0) {
    loop_stop (u->loop);
    return;
  }
  loop_timer_arm (u->loop, &u->timer, 1, until_check, u);
}

bool
fake_run_until (struct loop *loop, bool (*cond) (void *), void *opaque,
                unsigned timeout_ms)
{
  struct until u = { .loop = loop, .cond = cond, .opaque = opaque,
                     .ticks_left = timeout_ms };

  if (cond (opaque))
    return true;
  loop_timer_arm (loop, &u.timer, 1, until_check, &u);
  loop_run (loop);
  loop_timer_cancel (loop, &u.timer);
  return u.met;
}

static bool
never (void *opaque)
{
  return false;
}

void
fake_run_for (struct loop *loop, unsigned ms)
{
  fake_run_until (loop, never, NULL, ms);
}

struct held_wait {
  struct fake_bdev *f;
  int n;
};

static bool
holds_enough (void *opaque)
{
  struct held_wait *w = opaque;
  return w->f->nheld >= w->n;
}

bool
fake_run_until_held (struct loop *loop, struct fake_bdev *f, int n,
                     unsigned timeout_ms)
{
  struct held_wait w = { f, n };
  return fake_run_until (loop, holds_enough, &w, timeout_ms);
}
