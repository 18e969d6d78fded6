/* engine.c - the engine layer: fans each write out to every replica,
 * keeps overlapping writes in order, and reads from the replica that
 * answers fastest.
 *
 * Ack (DESIGN.md rule 1): a write, trim or write-zeroes completes only
 * when every replica has completed it; a flush or FUA request only when
 * every replica has made it stable.  Any replica failing fails the
 * request with EIO (degraded operation is the failover work's).
 *
 * Ordering (rule 6): two writes whose ranges overlap are never in flight
 * at the same time.  A write that overlaps one in flight waits, and
 * waiting writes start strictly in arrival order relative to the writes
 * they overlap, so every replica applies overlapping writes in the same
 * order whatever the network or the replica's disk does.
 * Non-overlapping writes go out at once, in parallel.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "util.h"

struct eng_req {
  struct engine *e;
  struct bdev_io *parent;
  int pending;                  /* child ios outstanding */
  int err;
  int read_from;                /* replica index for READ */
  uint32_t tried;               /* READ: replicas already tried (mask) */
  uint64_t start, end;          /* byte range, for the overlap check */
  bool is_write;
  struct eng_req *prev, *next;  /* active or waiting list */
  struct bdev_io child[ENGINE_MAX_REPLICAS];
};

struct engine {
  struct bdev bdev;
  struct loop *loop;
  int n;
  struct bdev *rep[ENGINE_MAX_REPLICAS];
  char *name[ENGINE_MAX_REPLICAS];
  unsigned reads;

  struct eng_req *active;       /* writes in flight (unordered) */
  struct eng_req *wait_head, *wait_tail;  /* overlapping writes, FIFO */
  int inflight;                 /* all requests, for drain */
  bool releasing, release_again;

  void (*drain_done) (void *);
  void *drain_opaque;
};

static void start_write (struct engine *e, struct eng_req *r);

static bool
overlaps (const struct eng_req *a, const struct eng_req *b)
{
  return a->start < b->end && b->start < a->end;
}

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
maybe_drained (struct engine *e)
{
  if (e->drain_done && e->inflight == 0) {
    void (*done) (void *) = e->drain_done;
    e->drain_done = NULL;
    done (e->drain_opaque);
  }
}

static void
finish (struct engine *e, struct eng_req *r)
{
  struct bdev_io *parent = r->parent;
  int err = r->err;

  free (r);
  e->inflight--;
  parent->done (parent, err);
  maybe_drained (e);
}

/* A write left the active set: start waiting writes that no longer
 * overlap anything active or anything waiting ahead of them.
 */
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

static void
write_child_done (struct bdev_io *child, int err)
{
  struct eng_req *r = child->opaque;
  struct engine *e = r->e;

  if (err) {
    int i = child - r->child;
    log_error ("replica %s: %s at offset %llu failed: %s", e->name[i],
               child->op == BDEV_FLUSH ? "flush" : "write",
               (unsigned long long) child->offset, strerror (err));
    if (!r->err)
      r->err = EIO;
  }
  if (--r->pending > 0)
    return;
  if (r->is_write) {
    list_remove (&e->active, NULL, r);
    release_waiters (e);
  }
  finish (e, r);
}

static void
start_write (struct engine *e, struct eng_req *r)
{
  if (r->is_write) {
    r->next = e->active;
    if (e->active)
      e->active->prev = r;
    e->active = r;
  }
  r->pending = e->n;
  /* One wire checksum for every replica (rule 7), not one each. */
  if (r->parent->op == BDEV_WRITE && !(r->parent->flags & BDEV_HAS_CRC)) {
    r->parent->crc = crc32c (0, r->parent->buf, r->parent->len);
    r->parent->flags |= BDEV_HAS_CRC;
  }
  /* Children may complete synchronously: keep r alive by counting
   * pending before the first submit.
   */
  for (int i = 0; i < e->n; i++) {
    r->child[i] = *r->parent;
    r->child[i].done = write_child_done;
    r->child[i].opaque = r;
    r->child[i].layer_priv = NULL;
  }
  for (int i = 0; i < e->n; i++)
    bdev_submit (e->rep[i], &r->child[i]);
}

/* Pick the replica that answers fastest.  Every 32nd read goes round
 * robin so a replica that got faster is noticed.
 */
static int
pick_reader (struct engine *e, uint32_t tried)
{
  int best = -1;
  uint64_t best_lat = UINT64_MAX;
  bool explore = (++e->reads % 32) == 0;

  for (int k = 0; k < e->n; k++) {
    int i = explore ? (int) ((e->reads / 32 + k) % e->n) : k;
    struct bdev_health h = { .up = 1 };
    if (tried & (1u << i))
      continue;
    if (e->rep[i]->ops->health)
      e->rep[i]->ops->health (e->rep[i], &h);
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

static void submit_read (struct engine *e, struct eng_req *r);

static void
read_done (struct bdev_io *child, int err)
{
  struct eng_req *r = child->opaque;
  struct engine *e = r->e;

  if (err && err != EINVAL) {
    log_warn ("replica %s: read at offset %llu failed (%s), trying another",
              e->name[r->read_from], (unsigned long long) child->offset,
              strerror (err));
    submit_read (e, r);
    return;
  }
  r->err = err;
  finish (e, r);
}

static void
submit_read (struct engine *e, struct eng_req *r)
{
  int i = pick_reader (e, r->tried);

  if (i < 0) {
    r->err = EIO;
    finish (e, r);
    return;
  }
  r->tried |= 1u << i;
  r->read_from = i;
  r->child[0] = *r->parent;
  r->child[0].done = read_done;
  r->child[0].opaque = r;
  r->child[0].layer_priv = NULL;
  bdev_submit (e->rep[i], &r->child[0]);
}

static void
engine_submit (struct bdev *b, struct bdev_io *io)
{
  struct engine *e = b->priv;
  struct eng_req *r = calloc (1, sizeof *r);

  if (!r) {
    io->done (io, ENOMEM);
    return;
  }
  r->e = e;
  r->parent = io;
  e->inflight++;

  switch (io->op) {
  case BDEV_READ:
    submit_read (e, r);
    return;
  case BDEV_FLUSH:
    start_write (e, r);
    return;
  case BDEV_WRITE:
  case BDEV_TRIM:
  case BDEV_WRITE_ZEROES:
    r->is_write = true;
    r->start = io->offset;
    r->end = io->offset + io->len;
    /* Wait behind any overlapping write, active or already waiting. */
    for (struct eng_req *a = e->active; a; a = a->next)
      if (overlaps (a, r))
        goto wait;
    for (struct eng_req *w = e->wait_head; w; w = w->next)
      if (overlaps (w, r))
        goto wait;
    start_write (e, r);
    return;
  }
  e->inflight--;
  free (r);
  io->done (io, EINVAL);
  return;

 wait:
  r->prev = e->wait_tail;
  if (e->wait_tail)
    e->wait_tail->next = r;
  else
    e->wait_head = r;
  e->wait_tail = r;
}

static void
engine_drain (struct bdev *b, void (*done) (void *), void *opaque)
{
  struct engine *e = b->priv;

  e->drain_done = done;
  e->drain_opaque = opaque;
  maybe_drained (e);
}

static void
engine_health (struct bdev *b, struct bdev_health *h)
{
  struct engine *e = b->priv;

  h->up = 1;
  h->latency_ns = 0;
  for (int i = 0; i < e->n; i++) {
    struct bdev_health rh = { .up = 1 };
    if (e->rep[i]->ops->health)
      e->rep[i]->ops->health (e->rep[i], &rh);
    if (!rh.up)
      h->up = 0;
  }
}

static void
engine_close (struct bdev *b)
{
  struct engine *e = b->priv;

  for (int i = 0; i < e->n; i++) {
    e->rep[i]->ops->close (e->rep[i]);
    free (e->name[i]);
  }
  free (e);
}

static const struct bdev_ops engine_ops = {
  .name = "engine",
  .submit = engine_submit,
  .drain = engine_drain,
  .health = engine_health,
  .close = engine_close,
};

struct bdev *
engine_new (struct loop *loop, struct bdev **replicas,
            const char *const *names, int n, const struct bdev_info *info)
{
  struct engine *e;

  if (n < 1 || n > ENGINE_MAX_REPLICAS) {
    errno = EINVAL;
    return NULL;
  }
  e = calloc (1, sizeof *e);
  if (!e)
    return NULL;
  e->loop = loop;
  e->n = n;
  for (int i = 0; i < n; i++) {
    e->rep[i] = replicas[i];
    e->name[i] = strdup (names[i]);
  }
  e->bdev.ops = &engine_ops;
  e->bdev.priv = e;
  e->bdev.info = *info;
  return &e->bdev;
}
