/* nbd_unaligned.c - the NBD server's slow path: requests from clients
 * that did not negotiate block sizes (NBD_OPT_EXPORT_NAME, or
 * NBD_OPT_GO without NBD_INFO_BLOCK_SIZE).  The spec says a server
 * SHOULD then serve any byte range, with payloads of at least 32 MiB;
 * the bdev below takes only whole blocks and at most max_io bytes.
 *
 *   READ   reads the blocks covering the range (in max_io pieces) into
 *          one buffer and replies with the slice asked for.
 *   WRITE, WRITE_ZEROES not aligned: read-modify-write.  The partial
 *          first and last blocks are read, the new bytes (or zeroes)
 *          merged into them, and the whole blocks written with the
 *          aligned middle (in max_io pieces).
 *   WRITE, READ over max_io but aligned: the same pieces, no edges.
 *   TRIM   shrunk to the whole blocks it covers (a trim is advisory).
 *
 * Ordering (docs/DESIGN.md rule 6).  A read-modify-write is a read
 * followed by a write of bytes the client did not send: a write that
 * lands on its edge blocks between the two would be undone.  So every
 * write, trim and write-zeroes of every connection is in the server's
 * active list while it runs, and a read-modify-write waits for every
 * overlapping one in flight (and everything waits for an overlapping
 * read-modify-write); waiters start in arrival order relative to those
 * they overlap, as in the engine.  What the engine receives is then a
 * sequence of whole-block writes in one order, which it applies to
 * every replica in that order (rule 6 below it), so the replicas stay
 * identical.  With no read-modify-write in flight and nobody waiting,
 * an aligned write only enters and leaves the list (no scan): clients
 * that negotiated block sizes keep the fast path.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "frontend/nbd_internal.h"

struct nbd_span {
  enum bdev_op op;
  uint64_t off, len;
  uint8_t *ptr;                 /* NULL for WRITE_ZEROES */
};

struct nbd_piece {
  struct bdev_io io;
  struct nbd_req *r;
  bool used;
};

enum { PH_EDGES, PH_MAIN };

struct nbd_slow {
  int phase;
  struct nbd_span span[3];
  int nspans, cur;
  uint64_t cur_done;            /* bytes of span[cur] issued */
  int inflight, err;
  bool pumping, again;
  uint32_t bs;
  uint8_t *edge;                /* two blocks: the first and last */
  uint64_t head, tail;          /* their offsets (tail == head: one block) */
  bool need_head, need_tail;
  struct nbd_piece piece[NBD_SLOW_PIECES];
};

static uint64_t
down (uint64_t x, uint32_t bs)
{
  return x - x % bs;
}

static uint64_t
up (uint64_t x, uint32_t bs)
{
  return down (x + bs - 1, bs);
}

/* ---- ordering -------------------------------------------------------- */

static bool
overlap (const struct nbd_req *a, const struct nbd_req *b)
{
  return a->lo < b->hi && b->lo < a->hi;
}

/* r must wait for an active request: one of the two reads before it
 * writes, and they overlap.
 */
static bool
blocked_by_active (const struct nbd_server *s, const struct nbd_req *r)
{
  if (!r->rmw && s->ord_rmw == 0)
    return false;
  for (const struct nbd_req *a = s->ord_active; a; a = a->ord_next)
    if ((r->rmw || a->rmw) && overlap (a, r))
      return true;
  return false;
}

static void
active_push (struct nbd_server *s, struct nbd_req *r)
{
  r->ord_prev = NULL;
  r->ord_next = s->ord_active;
  if (s->ord_active)
    s->ord_active->ord_prev = r;
  s->ord_active = r;
  r->ordered = true;
  if (r->rmw)
    s->ord_rmw++;
}

bool
nbd_order_enter (struct nbd_server *s, struct nbd_req *r)
{
  if (!r->slow) {
    r->lo = r->rq.offset;
    r->hi = r->rq.offset + r->rq.len;
  }
  bool wait = blocked_by_active (s, r);
  for (struct nbd_req *w = s->ord_wait_head; w && !wait; w = w->ord_next)
    wait = overlap (w, r);
  if (!wait) {
    active_push (s, r);
    return true;
  }
  r->ord_next = NULL;
  r->ord_prev = s->ord_wait_tail;
  if (s->ord_wait_tail)
    s->ord_wait_tail->ord_next = r;
  else
    s->ord_wait_head = r;
  s->ord_wait_tail = r;
  return false;
}

static void
release_waiters (struct nbd_server *s)
{
  /* Starting one may complete it at once and land back here. */
  if (s->ord_releasing) {
    s->ord_again = true;
    return;
  }
  s->ord_releasing = true;
  do {
    s->ord_again = false;
    for (struct nbd_req *w = s->ord_wait_head; w; w = w->ord_next) {
      bool blocked = blocked_by_active (s, w);
      for (struct nbd_req *p = s->ord_wait_head; p != w && !blocked;
           p = p->ord_next)
        blocked = overlap (p, w);
      if (blocked)
        continue;
      if (w->ord_prev)
        w->ord_prev->ord_next = w->ord_next;
      else
        s->ord_wait_head = w->ord_next;
      if (w->ord_next)
        w->ord_next->ord_prev = w->ord_prev;
      else
        s->ord_wait_tail = w->ord_prev;
      active_push (s, w);
      nbd_req_start (w);
      s->ord_again = true;
      break;
    }
  } while (s->ord_again);
  s->ord_releasing = false;
}

void
nbd_order_leave (struct nbd_server *s, struct nbd_req *r)
{
  if (!r->ordered)
    return;
  if (r->ord_prev)
    r->ord_prev->ord_next = r->ord_next;
  else
    s->ord_active = r->ord_next;
  if (r->ord_next)
    r->ord_next->ord_prev = r->ord_prev;
  r->ord_prev = r->ord_next = NULL;
  r->ordered = false;
  if (r->rmw)
    s->ord_rmw--;
  if (s->ord_wait_head)
    release_waiters (s);
}

/* ---- setting up ------------------------------------------------------ */

static bool
unaligned (const struct nbd_request *rq, uint32_t bs)
{
  return (rq->offset % bs) || (rq->len % bs);
}

size_t
nbd_slow_buf_len (const struct nbd_server *s, const struct nbd_request *rq,
                  size_t len)
{
  uint32_t bs = s->exp.min_block;

  if (rq->type == NBD_CMD_READ && rq->len && unaligned (rq, bs))
    return up (rq->offset + rq->len, bs) - down (rq->offset, bs);
  return len;
}

int
nbd_slow_prepare (struct nbd_server *s, struct nbd_req *r)
{
  struct nbd_request *rq = &r->rq;
  uint32_t bs = s->exp.min_block;
  struct nbd_slow *w;

  if (rq->len == 0)
    return 0;
  if (rq->type == NBD_CMD_TRIM) {
    uint64_t lo = up (rq->offset, bs), hi = down (rq->offset + rq->len, bs);
    rq->offset = lo;
    rq->len = hi > lo ? (uint32_t) (hi - lo) : 0;
    return 0;
  }
  bool rmw = rq->type != NBD_CMD_READ && unaligned (rq, bs);
  if (!unaligned (rq, bs) &&
      (rq->type == NBD_CMD_WRITE_ZEROES || rq->len <= s->max_io))
    return 0;                   /* the fast path takes it */
  if (rq->type != NBD_CMD_READ && rq->type != NBD_CMD_WRITE &&
      rq->type != NBD_CMD_WRITE_ZEROES)
    return 0;
  w = calloc (1, sizeof *w);
  if (!w || (rmw && posix_memalign ((void **) &w->edge, 4096, 2 * bs))) {
    free (w);
    return -ENOMEM;
  }
  w->bs = bs;
  r->slow = w;
  r->rmw = rmw;
  r->lo = down (rq->offset, bs);
  r->hi = up (rq->offset + rq->len, bs);
  if (rmw) {
    w->head = r->lo;
    w->tail = r->hi - bs;
    w->need_head = rq->offset % bs != 0;
    w->need_tail = (rq->offset + rq->len) % bs != 0;
    if (w->tail == w->head)       /* one block: read once */
      w->need_head = w->need_tail = w->need_head || w->need_tail;
  }
  return 0;
}

void
nbd_slow_free (struct nbd_req *r)
{
  if (r->slow) {
    free (r->slow->edge);
    free (r->slow);
    r->slow = NULL;
  }
}

/* ---- running: spans in max_io pieces --------------------------------- */

static void phase_done (struct nbd_req *r);
static void pump (struct nbd_req *r);

static void
piece_done (struct bdev_io *io, int err)
{
  struct nbd_piece *p = container_of (io, struct nbd_piece, io);
  struct nbd_req *r = p->r;
  struct nbd_slow *w = r->slow;

  p->used = false;
  w->inflight--;
  if (err && !w->err)
    w->err = err;
  pump (r);
}

static uint32_t
piece_flags (const struct nbd_req *r, enum bdev_op op)
{
  uint32_t f = 0;

  if (op == BDEV_READ)
    return 0;
  if (r->rq.flags & NBD_CMD_FLAG_FUA)
    f |= BDEV_FUA;
  if (op == BDEV_WRITE_ZEROES && (r->rq.flags & NBD_CMD_FLAG_NO_HOLE))
    f |= BDEV_NO_HOLE;
  return f;
}

static void
pump (struct nbd_req *r)
{
  struct nbd_slow *w = r->slow;
  struct nbd_server *s = r->cl->srv;

  if (w->pumping) {             /* a piece completed inside its submit */
    w->again = true;
    return;
  }
  w->pumping = true;
  do {
    w->again = false;
    while (!w->err && w->inflight < NBD_SLOW_PIECES && w->cur < w->nspans) {
      struct nbd_span *sp = &w->span[w->cur];
      if (w->cur_done >= sp->len) {
        w->cur++;
        w->cur_done = 0;
        continue;
      }
      uint32_t len = (uint32_t) MIN (sp->len - w->cur_done, (uint64_t) s->max_io);
      struct nbd_piece *p = NULL;
      for (int k = 0; k < NBD_SLOW_PIECES && !p; k++)
        if (!w->piece[k].used)
          p = &w->piece[k];
      p->used = true;
      p->r = r;
      p->io = (struct bdev_io) {
        .op = sp->op, .flags = piece_flags (r, sp->op),
        .offset = sp->off + w->cur_done, .len = len,
        .buf = sp->ptr ? sp->ptr + w->cur_done : NULL,
        .done = piece_done,
      };
      w->cur_done += len;
      w->inflight++;
      bdev_submit (s->dev, &p->io);
    }
  } while (w->again);
  w->pumping = false;
  if (w->inflight == 0 && (w->err || w->cur >= w->nspans))
    phase_done (r);             /* may free r */
}

static void
add_span (struct nbd_slow *w, enum bdev_op op, uint64_t off, uint64_t len,
          uint8_t *ptr)
{
  if (len)
    w->span[w->nspans++] = (struct nbd_span) { op, off, len, ptr };
}

static void
finish (struct nbd_req *r, int err)
{
  nbd_order_leave (r->cl->srv, r);
  r->err = err ? nbd_errno_to_nbd (err) : 0;
  nbd_req_reply (r);
}

/* Merge the new bytes (or zeroes) into the edge blocks that were read. */
static void
merge_edges (struct nbd_req *r)
{
  struct nbd_slow *w = r->slow;
  uint64_t off = r->rq.offset, end = off + r->rq.len;
  const uint8_t *data = r->buf;
  uint64_t blocks[2] = { w->head, w->tail };

  for (int k = 0; k < (w->tail == w->head ? 1 : 2); k++) {
    uint64_t b = blocks[k];
    uint64_t from = MAX (off, b), to = MIN (end, b + w->bs);
    uint8_t *dst = w->edge + (size_t) k * w->bs + (from - b);
    if (from >= to)
      continue;
    if (r->rq.type == NBD_CMD_WRITE)
      memcpy (dst, data + (from - off), to - from);
    else
      memset (dst, 0, to - from);
  }
}

static void
phase_done (struct nbd_req *r)
{
  struct nbd_slow *w = r->slow;
  uint32_t bs = w->bs;

  if (w->err) {
    finish (r, w->err);
    return;
  }
  if (r->rq.type == NBD_CMD_READ) {
    r->payload = (uint8_t *) r->buf + (r->rq.offset - r->lo);
    finish (r, 0);
    return;
  }
  if (w->phase == PH_MAIN) {
    finish (r, 0);
    return;
  }
  /* The edges are in: write the whole blocks, in one order with every
   * overlapping write (we hold [lo, hi) in the active list).
   */
  merge_edges (r);
  w->phase = PH_MAIN;
  w->nspans = w->cur = 0;
  w->cur_done = 0;
  uint64_t mid_lo = up (r->rq.offset, bs);
  uint64_t mid_hi = down (r->rq.offset + r->rq.len, bs);
  bool one = w->tail == w->head;
  if (w->need_head)
    add_span (w, BDEV_WRITE, w->head, bs, w->edge);
  if (!one && mid_hi > mid_lo)
    add_span (w, r->rq.type == NBD_CMD_WRITE ? BDEV_WRITE : BDEV_WRITE_ZEROES,
              mid_lo, mid_hi - mid_lo, r->rq.type == NBD_CMD_WRITE
              ? (uint8_t *) r->buf + (mid_lo - r->rq.offset) : NULL);
  if (!one && w->need_tail)
    add_span (w, BDEV_WRITE, w->tail, bs, w->edge + bs);
  pump (r);
}

void
nbd_slow_start (struct nbd_req *r)
{
  struct nbd_slow *w = r->slow;
  uint32_t bs = w->bs;

  w->err = 0;
  if (r->rq.type == NBD_CMD_READ) {
    w->phase = PH_MAIN;
    w->nspans = w->cur = 0;
    add_span (w, BDEV_READ, r->lo, r->hi - r->lo, r->buf);
    pump (r);
    return;
  }
  if (!r->rmw) {                /* aligned, only too big for one request */
    w->phase = PH_MAIN;
    w->nspans = w->cur = 0;
    add_span (w, BDEV_WRITE, r->rq.offset, r->rq.len, r->buf);
    pump (r);
    return;
  }
  w->phase = PH_EDGES;
  w->nspans = w->cur = 0;
  if (w->need_head)
    add_span (w, BDEV_READ, w->head, bs, w->edge);
  if (w->need_tail && w->tail != w->head)
    add_span (w, BDEV_READ, w->tail, bs, w->edge + bs);
  if (w->nspans == 0)
    phase_done (r);
  else
    pump (r);
}
