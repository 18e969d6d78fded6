/* datapath.c - the engine's client I/O: fans each write out to the
 * replicas, keeps overlapping writes in order, acknowledges, and reads
 * from the replica that answers fastest.
 *
 * Ack (docs/DESIGN.md rule 1): a write, trim or write-zeroes completes only
 * when every in-sync replica has completed it; a flush or FUA request
 * only when every in-sync replica has made it stable.
 *
 * Ordering (docs/DESIGN.md rule 6): two writes whose ranges overlap are never
 * in flight at the same time.  A write that overlaps one in flight
 * waits, and waiting writes start strictly in arrival order relative to
 * the writes they overlap, so every replica applies overlapping writes
 * in the same order whatever the network or the replica's disk does.
 * Resync copies and verify regions (resync.c, verify.c) take their
 * place in the same order, as writes of their own.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "core/util.h"

static void start_write (struct engine *e, struct eng_req *r);
static void submit_read (struct engine *e, struct eng_req *r);

static void
list_remove (struct eng_req **head, struct eng_req **tail, struct eng_req *r)
{
  if (r->prev)
    r->prev->next = r->next;
  else
    *head = r->next;
  if (r->next)
    r->next->prev = r->prev;
  else if (tail)
    *tail = r->prev;
  r->prev = r->next = NULL;
}

static void
list_push (struct eng_req **head, struct eng_req *r)
{
  r->prev = NULL;
  r->next = *head;
  if (*head)
    (*head)->prev = r;
  *head = r;
}

/* ---- regions written since the last flush --------------------------- */

static void
set_bits (uint8_t *map, uint64_t start, uint64_t end, uint32_t region)
{
  for (uint64_t r = start / region; r * region < end; r++)
    map[r / 8] |= 1u << (r % 8);
}

static void
rset_add (struct region_set *rs, uint64_t start, uint64_t end,
          uint32_t region)
{
  uint64_t first = start / region / 8, last = (end - 1) / region / 8 + 1;

  set_bits (rs->bits, start, end, region);
  if (rs->lo >= rs->hi) {
    rs->lo = first;
    rs->hi = last;
  }
  rs->lo = MIN (rs->lo, first);
  rs->hi = MAX (rs->hi, last);
}

static void
rset_merge (struct region_set *dst, const struct region_set *src)
{
  if (src->lo >= src->hi)
    return;
  for (uint64_t k = src->lo; k < src->hi; k++)
    dst->bits[k] |= src->bits[k];
  if (dst->lo >= dst->hi) {
    dst->lo = src->lo;
    dst->hi = src->hi;
  }
  dst->lo = MIN (dst->lo, src->lo);
  dst->hi = MAX (dst->hi, src->hi);
}

static void
rset_clear (struct region_set *rs)
{
  if (rs->lo < rs->hi)
    memset (rs->bits + rs->lo, 0, rs->hi - rs->lo);
  rs->lo = rs->hi = 0;
}

/* ---- ordering: active and waiting writes ---------------------------- */

static void
release_waiters (struct engine *e)
{
  /* Starting a write can complete it at once (a dead replica fails
   * synchronously) and re-enter here: the outer call rescans instead.
   */
  if (e->releasing) {
    e->release_again = true;
    return;
  }
  e->releasing = true;
  do {
    e->release_again = false;
    for (struct eng_req *w = e->wait_head; w; w = w->next) {
      bool blocked = false;
      for (struct eng_req *a = e->active; a && !blocked; a = a->next)
        blocked = overlaps (a, w);
      for (struct eng_req *p = e->wait_head; p != w && !blocked; p = p->next)
        blocked = overlaps (p, w);
      if (!blocked) {
        list_remove (&e->wait_head, &e->wait_tail, w);
        start_write (e, w);
        e->release_again = true;
        break;
      }
    }
  } while (e->release_again);
  e->releasing = false;
}

/* Start r now, or queue it behind an overlapping write. */
void
eng_order_write (struct engine *e, struct eng_req *r)
{
  for (struct eng_req *a = e->active; a; a = a->next)
    if (overlaps (a, r))
      goto wait;
  for (struct eng_req *w = e->wait_head; w; w = w->next)
    if (overlaps (w, r))
      goto wait;
  start_write (e, r);
  return;

 wait:
  r->prev = e->wait_tail;
  r->next = NULL;
  if (e->wait_tail)
    e->wait_tail->next = r;
  else
    e->wait_head = r;
  e->wait_tail = r;
}

void
eng_leave_active (struct engine *e, struct eng_req *r)
{
  list_remove (&e->active, NULL, r);
  release_waiters (e);
}

/* ---- writes and flushes ------------------------------------------- */

/* All children of r are done: decide, maybe mark, then ack. */
void
eng_complete_write (struct engine *e, struct eng_req *r)
{
  uint32_t in_sync = mask_of (e, ENGINE_IN_SYNC);

  if (!r->err && ((r->kind == REQ_WRITE && e->marks_pending > 0) ||
                  e->records_pending > 0)) {
    r->park_next = e->parked;       /* acked after the barrier, or once */
    e->parked = r;                  /* the registry recorded a degrade */
    return;
  }
  if (in_sync == 0 || e->broken || (r->failed & in_sync))
    r->err = EIO;
  if (r->kind == REQ_FLUSH && !r->err) {
    /* Writes that completed before this flush are now stable. */
    if (r->start == e->flush_seq)
      rset_clear (&e->unflushed_flushing);
  }
  if (r->kind == REQ_RESIZE && !r->err) {
    /* Every replica that counts holds the new size: announce it. */
    e->bdev.info.size = r->parent->offset;
    e->nregions = (e->bdev.info.size + e->region - 1) / e->region;
  }
  if (r->kind == REQ_WRITE || r->kind == REQ_RESIZE)
    eng_leave_active (e, r);
  eng_finish (e, r);
}

/* The MARK_DIRTY barriers are durable: ack the writes held for them. */
void
eng_release_parked (struct engine *e)
{
  while (e->marks_pending == 0 && e->records_pending == 0 && e->parked) {
    struct eng_req *r = e->parked;
    e->parked = r->park_next;
    eng_complete_write (e, r);
  }
}

static void
mark_missed_done (struct eng_req *m)
{
  struct eng_req *r = m->buf;   /* the write waiting for its mark */
  struct engine *e = m->e;

  if (m->err)
    r->err = EIO;
  free (m);
  eng_complete_write (e, r);
}

static void
write_child_done (struct bdev_io *child, int err)
{
  struct eng_req *r = child->opaque;
  struct engine *e = r->e;

  if (!eng_child_done (child, err))
    return;

  /* A replica missed this write and the survivors were not told to
   * track it: mark it dirty on them before the ack.
   */
  if (r->kind == REQ_WRITE && (r->failed & ~mask_of (e, ENGINE_IN_SYNC)) &&
      !r->dirty_sent && !(r->failed & mask_of (e, ENGINE_IN_SYNC)) &&
      e->have_hooks) {
    struct eng_req *m = calloc (1, sizeof *m);
    if (m) {
      m->e = e;
      m->start = r->start;
      m->end = r->end;
      m->buf = r;
      m->internal_done = mark_missed_done;
      eng_send_mark (e, m);
      return;
    }
    r->err = EIO;
  }
  eng_complete_write (e, r);
}

static void
start_write (struct engine *e, struct eng_req *r)
{
  uint32_t to = mask_of (e, ENGINE_IN_SYNC) | mask_of (e, ENGINE_RESYNC);
  bool track = degraded (e) && e->have_hooks;

  if (r->kind == REQ_COPY || r->kind == REQ_VERIFY) {
    list_push (&e->active, r);
    r->internal_done (r);       /* its own state machine */
    return;
  }
  if (r->kind == REQ_RESIZE) {
    list_push (&e->active, r);
    eng_resize_start (e, r);    /* resize.c */
    return;
  }
  if (r->kind == REQ_WRITE)
    list_push (&e->active, r);
  if (mask_of (e, ENGINE_IN_SYNC) == 0 || e->broken) {
    r->err = EIO;
    if (r->kind == REQ_WRITE)
      eng_leave_active (e, r);
    eng_finish (e, r);
    return;
  }
  if (r->kind == REQ_WRITE) {
    /* One wire checksum for every replica (docs/DESIGN.md rule 7), not one each. */
    if (r->parent->op == BDEV_WRITE && !(r->parent->flags & BDEV_HAS_CRC)) {
      r->parent->crc = crc32c (0, r->parent->buf, r->parent->len);
      r->parent->flags |= BDEV_HAS_CRC;
    }
    rset_add (&e->unflushed_cur, r->start, r->end, e->region);
    r->dirty_sent = track;
  }
  else {                        /* FLUSH: cur becomes what it covers */
    rset_merge (&e->unflushed_flushing, &e->unflushed_cur);
    rset_clear (&e->unflushed_cur);
    r->start = ++e->flush_seq;
    e->unflushed_ticks = 0;
  }
  r->sent = to;
  r->pending = __builtin_popcount (to);
  /* Children may complete synchronously: count them all first. */
  for (int i = 0; i < e->n; i++) {
    if (!(to & (1u << i)))
      continue;
    r->child[i] = *r->parent;
    r->child[i].done = write_child_done;
    r->child[i].opaque = r;
    r->child[i].layer_priv = NULL;
    if (track && r->kind == REQ_WRITE && e->state[i] == ENGINE_IN_SYNC)
      r->child[i].flags |= BDEV_DIRTY;
  }
  /* A child that fails inside its submit can empty a later slot of to
   * (its replica degraded, docs/DESIGN.md rule 2): eng_submit_slot fails
   * that child instead of submitting it to no bdev.  r->to[i] is set
   * first: a child may complete (and r be freed) before the call returns.
   */
  for (int i = 0; i < e->n; i++)
    r->to[i] = (to & (1u << i)) ? e->rep[i] : NULL;
  for (int i = 0; i < e->n; i++)
    if (to & (1u << i))
      eng_submit_slot (e, i, &r->child[i]);
}

/* ---- reads ---------------------------------------------------------- */

/* Pick the in-sync replica that answers fastest.  Every 32nd read goes
 * round robin so a replica that got faster is noticed.
 */
int
eng_pick_reader (struct engine *e, uint32_t tried)
{
  int best = -1;
  uint64_t best_lat = UINT64_MAX;
  bool explore = (++e->reads % 32) == 0;

  /* While replicas may disagree (after a host died mid-write), every
   * read goes to the one they are being made equal to.
   */
  if (e->read_pin >= 0 && !(tried & (1u << e->read_pin)) &&
      e->state[e->read_pin] == ENGINE_IN_SYNC && e->rep[e->read_pin])
    return e->read_pin;

  for (int k = 0; k < e->n; k++) {
    int i = explore ? (int) ((e->reads / 32 + k) % e->n) : k;
    struct bdev_health h = { .up = 1 };
    /* In sync and in its slot: a replica that fails is out of sync
     * before its bdev leaves the slot, so both hold together.
     */
    if ((tried & (1u << i)) || e->state[i] != ENGINE_IN_SYNC || !e->rep[i])
      continue;
    bdev_health (e->rep[i], &h);
    if (!h.up)
      continue;
    if (explore)
      return i;
    if (h.latency_ns < best_lat) {
      best = i;
      best_lat = h.latency_ns;
    }
  }
  return best;
}

static void
read_done (struct bdev_io *child, int err)
{
  struct eng_req *r = child->opaque;
  struct engine *e = r->e;

  if (err == EPERM)
    eng_replica_failed (e, r->read_from, err);      /* fenced */
  if (e->fenced) {
    /* Another attachment may have written since: nothing read now is
     * ours to return.
     */
    r->err = EIO;
    eng_finish (e, r);
    return;
  }
  if (err && err != EINVAL) {
    log_warn ("replica %s: read at offset %llu failed (%s), trying another",
              e->name[r->read_from], (unsigned long long) child->offset,
              strerror (err));
    submit_read (e, r);
    return;
  }
  r->err = err;
  eng_finish (e, r);
}

static void
submit_read (struct engine *e, struct eng_req *r)
{
  int i = e->fenced ? -1 : eng_pick_reader (e, r->tried);

  if (i < 0) {
    r->err = EIO;
    eng_finish (e, r);
    return;
  }
  r->tried |= 1u << i;
  r->read_from = i;
  r->child[0] = *r->parent;
  r->child[0].done = read_done;
  r->child[0].opaque = r;
  r->child[0].layer_priv = NULL;
  bdev_submit (e->rep[i], &r->child[0]);    /* eng_pick_reader: in its slot */
}

/* ---- the engine's submit ---------------------------------------------- */

void
eng_submit (struct bdev *b, struct bdev_io *io)
{
  struct engine *e = b->priv;
  struct eng_req *r = eng_req_new (e);

  if (!r) {
    io->done (io, ENOMEM);
    return;
  }
  r->e = e;
  r->parent = io;
  e->inflight++;

  switch (io->op) {
  case BDEV_READ:
    r->kind = REQ_READ;
    submit_read (e, r);
    return;
  case BDEV_FLUSH:
    r->kind = REQ_FLUSH;
    start_write (e, r);
    return;
  case BDEV_WRITE:
  case BDEV_TRIM:
  case BDEV_WRITE_ZEROES:
    r->kind = REQ_WRITE;
    r->start = io->offset;
    r->end = io->offset + io->len;
    eng_order_write (e, r);
    return;
  case BDEV_RESIZE:
    /* Online the volume only grows (docs/DESIGN.md 3.10); the same
     * size is done already.  A resize overlaps every write: it starts
     * once the writes before it are done, and the writes after it wait.
     */
    if (io->offset <= e->bdev.info.size) {
      e->inflight--;
      eng_req_free (e, r);
      io->done (io, io->offset == e->bdev.info.size ? 0 : EINVAL);
      eng_maybe_drained (e);
      return;
    }
    r->kind = REQ_RESIZE;
    r->start = 0;
    r->end = UINT64_MAX;
    eng_order_write (e, r);
    return;
  default:
    break;
  }
  e->inflight--;
  eng_req_free (e, r);
  io->done (io, EINVAL);
}
