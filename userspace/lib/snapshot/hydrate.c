/* hydrate.c - serve a volume while it is restored from a snapshot
 * (see snapshot.h).
 *
 * Each chunk of the snapshot is in one state:
 *   NEED      not on the replicas yet
 *   FAILED    its fetch failed (missing, corrupt, store unreachable): I/O
 *             touching it fails with EIO until the next attach tries again;
 *             every other chunk is still served
 *   FETCHING  being fetched from the store, or written to the replicas
 *   VOLATILE  on the replicas, not yet recorded as such
 *   DONE      on the replicas and recorded (or holds no data: the new
 *             volume reads zeroes there already)
 * A read waits until its chunks are at least VOLATILE; a write, trim or
 * write-zeroes until they are DONE.  That order is what makes a restart
 * safe: a chunk is fetched again after a crash only if it was never
 * recorded, and then no write can have landed in it, so fetching it
 * again cannot overwrite newer data.
 *
 * The store is driven by a fetcher thread; chunks come back through a
 * mailbox already decompressed and checked against their hash.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "core/mailbox.h"
#include "snapshot/catalog.h"
#include "snapshot/snapshot.h"

#define FETCH_DEPTH 8           /* background fetches in flight */
#define SAVE_MS 1000            /* record progress at least this often */

/* Ordered: a read needs at least H_VOLATILE, a write H_DONE. */
enum { H_NEED = 0, H_FAILED, H_FETCHING, H_VOLATILE, H_DONE };

struct fetched {
  struct mailbox_msg m;         /* first */
  uint64_t index;
  void *buf;
  uint32_t len;
  struct error err;             /* code 0: fetched */
};

struct fetch_req {
  struct fetch_req *next;
  uint64_t index;
};

struct hydrate {
  struct bdev bdev;
  struct bdev *lower;
  struct loop *loop;
  struct manifest m;
  unsigned shift;
  uint8_t *state;               /* H_* per chunk */
  uint8_t *map;                 /* recorded chunks (bits) */
  size_t maplen;
  struct hydrate_hooks hooks;
  bool background, closing, failed, finished;
  uint64_t total, done, bytes;  /* chunks with data; recorded or volatile */
  uint64_t nvolatile, inflight, bg_next;
  struct bdev_io *parked, *parked_tail;  /* linked by layer_priv */
  struct loop_timer save_timer;
  struct loop_defer save_now;
  void (*drained) (void *opaque);
  void *drained_opaque;

  /* The fetcher thread. */
  struct objstore *os;
  struct mailbox mb;
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t lock;
  struct fetch_req *queue, *queue_tail;
  bool quit;
};

static void rescan (struct hydrate *h);
static void save_timer (struct loop_timer *t);
static void feed (struct hydrate *h);

static uint32_t
chunk_len (const struct hydrate *h, uint64_t i)
{
  uint64_t off = i << h->shift;
  uint64_t left = h->m.volume_size - off;
  return left < h->m.chunk_size ? (uint32_t) left : h->m.chunk_size;
}

/* ---- the fetcher thread ---------------------------------------------------- */

struct get {
  struct obj_req req;
  uint64_t index;
};

static void
fetch_finish (struct hydrate *h, struct get *g)
{
  struct fetched *f = calloc (1, sizeof *f);

  if (f == NULL)
    abort ();                   /* cannot report anything any more */
  f->index = g->index;
  f->len = chunk_len (h, g->index);
  if (g->req.err.code)
    f->err = g->req.err;
  else if ((f->buf = malloc (h->m.chunk_size)) == NULL)
    error_set (&f->err, ENOMEM, "out of memory");
  /* Chunks are stored whole; the last one's tail past the volume's end
   * is zeroes, and only f->len bytes are written.
   */
  else if (chunk_decode (g->req.out, g->req.out_len, h->m.hashes[g->index],
                         f->buf, h->m.chunk_size, &f->err) < 0) {
    free (f->buf);
    f->buf = NULL;
  }
  free (g->req.out);
  free (g);
  mailbox_post (&h->mb, &f->m);
}

static void *
fetcher (void *arg)
{
  struct hydrate *h = arg;

  for (;;) {
    pthread_mutex_lock (&h->lock);
    struct fetch_req *q = h->queue;
    h->queue = h->queue_tail = NULL;
    bool quit = h->quit;
    pthread_mutex_unlock (&h->lock);
    if (quit && objstore_inflight (h->os) == 0) {
      while (q) {
        struct fetch_req *next = q->next;
        free (q);
        q = next;
      }
      return NULL;
    }
    while (q) {
      struct fetch_req *next = q->next;
      struct get *g = calloc (1, sizeof *g);
      if (g == NULL)
        abort ();
      g->index = q->index;
      g->req.op = OBJ_GET;
      g->req.opaque = g;
      chunk_key (h->m.hashes[q->index], g->req.key);
      objstore_submit (h->os, &g->req);
      free (q);
      q = next;
    }
    struct obj_req *r;
    while ((r = objstore_poll (h->os, 1000)) != NULL) {
      fetch_finish (h, r->opaque);
      if (objstore_inflight (h->os) == 0)
        break;
    }
  }
}

/* Loop side: ask for chunk i. */
static void
fetch (struct hydrate *h, uint64_t i)
{
  struct fetch_req *q = malloc (sizeof *q);

  if (q == NULL)
    return;                     /* retried by the next rescan or feed */
  h->state[i] = H_FETCHING;
  h->inflight++;
  q->index = i;
  q->next = NULL;
  pthread_mutex_lock (&h->lock);
  if (h->queue_tail)
    h->queue_tail->next = q;
  else
    h->queue = q;
  h->queue_tail = q;
  pthread_mutex_unlock (&h->lock);
  objstore_wakeup (h->os);
}

/* ---- recording progress ------------------------------------------------------ */

static void
finish (struct hydrate *h)
{
  if (h->done == h->total && h->nvolatile == 0 && !h->failed && !h->finished) {
    h->finished = true;
    h->hooks.finished (h->hooks.opaque, 0, NULL);
  }
}

static void
save (struct hydrate *h)
{
  if (h->nvolatile == 0) {
    finish (h);
    return;
  }
  uint64_t n = 0;
  for (uint64_t i = 0; i < h->m.nchunks; i++)
    if (h->state[i] == H_VOLATILE) {
      bit_set (h->map, i);
      n++;
    }
  int e = h->hooks.save (h->hooks.opaque, h->map, h->maplen, h->done, h->total);
  if (e) {
    /* Writes into these chunks keep waiting; try again later. */
    log_error ("restore: cannot record hydration progress: %s", strerror (e));
    for (uint64_t i = 0; i < h->m.nchunks; i++)
      if (h->state[i] == H_VOLATILE)
        h->map[i >> 3] &= ~(1u << (i & 7));
    loop_timer_arm (h->loop, &h->save_timer, SAVE_MS, save_timer, h);
    return;
  }
  for (uint64_t i = 0; i < h->m.nchunks && n; i++)
    if (h->state[i] == H_VOLATILE) {
      h->state[i] = H_DONE;
      n--;
    }
  h->nvolatile = 0;
  finish (h);
  rescan (h);
}

static void
save_timer (struct loop_timer *t)
{
  save (t->opaque);
}

static void
save_deferred (struct loop_defer *d)
{
  save (d->opaque);
}

/* ---- the data path ---------------------------------------------------------- */

static bool
is_write (const struct bdev_io *io)
{
  return io->op == BDEV_WRITE || io->op == BDEV_TRIM ||
         io->op == BDEV_WRITE_ZEROES;
}

/* Can io go down now?  Starts the fetches (and saves) it waits for.
 * -1: a chunk it needs cannot be had (the store failed).
 */
static int
ready (struct hydrate *h, struct bdev_io *io)
{
  int need = is_write (io) ? H_DONE : H_VOLATILE;
  int ok = 1;

  if (io->len == 0 || (io->op != BDEV_READ && !is_write (io)))
    return 1;
  uint64_t first = io->offset >> h->shift;
  uint64_t last = (io->offset + io->len - 1) >> h->shift;
  for (uint64_t i = first; i <= last && i < h->m.nchunks; i++) {
    if (h->state[i] >= need)
      continue;
    if (h->state[i] == H_FAILED)
      return -1;
    if (h->state[i] == H_NEED)
      fetch (h, i);
    else if (h->state[i] == H_VOLATILE)
      loop_defer (h->loop, &h->save_now, save_deferred, h);
    ok = 0;
  }
  return ok;
}

static void
park (struct hydrate *h, struct bdev_io *io)
{
  io->layer_priv = NULL;
  if (h->parked_tail)
    h->parked_tail->layer_priv = io;
  else
    h->parked = io;
  h->parked_tail = io;
}

static void
check_drained (struct hydrate *h)
{
  if (h->drained && h->inflight == 0 && h->parked == NULL) {
    void (*done) (void *) = h->drained;
    h->drained = NULL;
    save (h);
    bdev_drain (h->lower, done, h->drained_opaque);
  }
}

/* Send io down if every chunk it touches is in, fail it if one cannot
 * be fetched, else park it until the fetcher brings them.
 */
static void
route (struct hydrate *h, struct bdev_io *io)
{
  int r = ready (h, io);

  if (r == 1)
    bdev_submit (h->lower, io);
  else if (r == -1)
    io->done (io, EIO);
  else
    park (h, io);
}

static void
rescan (struct hydrate *h)
{
  struct bdev_io *io = h->parked;

  h->parked = h->parked_tail = NULL;
  while (io) {
    struct bdev_io *next = io->layer_priv;
    route (h, io);
    io = next;
  }
  check_drained (h);
}

static void
hydrate_submit (struct bdev *b, struct bdev_io *io)
{
  /* Its chunk table is the snapshot's: the volume grows once the
   * restore is over and the volume attached again.
   */
  if (io->op == BDEV_RESIZE) {
    io->done (io, EBUSY);
    return;
  }
  route (b->priv, io);
}

struct hwrite {
  struct bdev_io io;
  struct hydrate *h;
  uint64_t index;
};

static void
hydrated (struct bdev_io *io, int err)
{
  struct hwrite *w = (struct hwrite *) io;
  struct hydrate *h = w->h;
  uint64_t i = w->index;

  h->inflight--;
  free (io->buf);
  free (w);
  if (err) {
    log_error ("restore: writing chunk %" PRIu64 " to the volume: %s", i,
               strerror (err));
    h->state[i] = H_NEED;       /* a read will try again */
  }
  else {
    h->state[i] = H_VOLATILE;
    h->nvolatile++;
    h->done++;
    h->bytes += chunk_len (h, i);
    if (h->done == h->total)
      loop_defer (h->loop, &h->save_now, save_deferred, h);
    else if (!h->save_timer.armed)
      loop_timer_arm (h->loop, &h->save_timer, SAVE_MS, save_timer, h);
  }
  rescan (h);
  feed (h);
}

/* A chunk came back from the store: write it to the replicas. */
static void
on_fetched (struct mailbox *mb, struct mailbox_msg *msg)
{
  struct hydrate *h = mb->opaque;
  struct fetched *f = (struct fetched *) msg;
  struct hwrite *w;

  if (h->closing) {             /* late answers at close: drop them */
    free (f->buf);
    free (f);
    return;
  }
  if (f->err.code || (w = calloc (1, sizeof *w)) == NULL) {
    h->inflight--;
    h->state[f->index] = H_FAILED;
    if (f->err.code == 0)
      error_set (&f->err, ENOMEM, "out of memory");
    log_error ("restore: %s", error_msg (&f->err));
    if (!h->failed) {         /* the background stops; reads go on */
      h->failed = true;
      h->hooks.finished (h->hooks.opaque, f->err.code, error_msg (&f->err));
    }
    free (f->buf);
    free (f);
    rescan (h);                 /* what waited for it fails */
    return;
  }
  w->h = h;
  w->index = f->index;
  w->io.done = hydrated;
  bdev_write (h->lower, &w->io, f->index << h->shift, f->len, f->buf, 0);
  free (f);
}

/* Background hydration: keep FETCH_DEPTH fetches going. */
static void
feed (struct hydrate *h)
{
  while (h->background && !h->failed && !h->drained &&
         h->inflight < FETCH_DEPTH && h->bg_next < h->m.nchunks) {
    if (h->state[h->bg_next] == H_NEED)
      fetch (h, h->bg_next);
    h->bg_next++;
  }
}

/* ---- the rest of the table -------------------------------------------------- */

static void
hydrate_drain (struct bdev *b, void (*done) (void *opaque), void *opaque)
{
  struct hydrate *h = b->priv;

  h->drained = done;
  h->drained_opaque = opaque;
  check_drained (h);
}

static void
hydrate_health (struct bdev *b, struct bdev_health *hl)
{
  struct hydrate *h = b->priv;
  bdev_health (h->lower, hl);
}

static void
hydrate_close (struct bdev *b)
{
  struct hydrate *h = b->priv;

  h->closing = true;
  if (h->thread_started) {
    pthread_mutex_lock (&h->lock);
    h->quit = true;
    pthread_mutex_unlock (&h->lock);
    objstore_wakeup (h->os);
    pthread_join (h->thread, NULL);
    mailbox_fini (&h->mb);  /* frees what the thread still posted */
  }
  loop_timer_cancel (h->loop, &h->save_timer);
  bdev_close (h->lower);
  objstore_close (h->os);
  manifest_free (&h->m);
  pthread_mutex_destroy (&h->lock);
  free (h->state);
  free (h->map);
  free (h);
}

static const struct bdev_ops hydrate_ops = {
  .name = "hydrate",
  .submit = hydrate_submit,
  .drain = hydrate_drain,
  .health = hydrate_health,
  .close = hydrate_close,
};

struct bdev *
hydrate_new (struct loop *loop, struct bdev *lower, const char *url,
             const char *name, uint8_t *map, bool background,
             const struct hydrate_hooks *hooks, struct error *err)
{
  struct hydrate *h = calloc (1, sizeof *h);

  if (h == NULL) {
    error_set (err, ENOMEM, "out of memory");
    free (map);
    return NULL;
  }
  pthread_mutex_init (&h->lock, NULL);
  h->lower = lower;
  h->loop = loop;
  h->hooks = *hooks;
  h->background = background;
  h->map = map;
  if ((h->os = objstore_open (url, err)) == NULL ||
      manifest_read (h->os, name, &h->m, err) < 0)
    goto fail;
  if (h->m.volume_size != lower->info.size) {
    error_set (err, EINVAL, "snapshot %s is of a %" PRIu64 "-byte volume, "
               "not %" PRIu64, name, h->m.volume_size, lower->info.size);
    goto fail;
  }
  h->shift = __builtin_ctz (h->m.chunk_size);
  h->maplen = chunk_map_bytes (h->m.volume_size, h->m.chunk_size);
  if (h->map == NULL)
    h->map = calloc (1, h->maplen);
  h->state = calloc (h->m.nchunks, 1);
  if (h->map == NULL || h->state == NULL) {
    error_set (err, ENOMEM, "out of memory");
    goto fail;
  }
  for (uint64_t i = 0; i < h->m.nchunks; i++) {
    if (!h->m.present[i]) {
      h->state[i] = H_DONE;     /* zeroes: the new volume has them */
      continue;
    }
    h->total++;
    if (bit_test (h->map, i)) {
      h->state[i] = H_DONE;
      h->done++;
    }
  }
  if (mailbox_init (&h->mb, loop, on_fetched, h) == -1) {
    error_set (err, errno, "cannot set up: %s", strerror (errno));
    goto fail;
  }
  if (pthread_create (&h->thread, NULL, fetcher, h) != 0) {
    mailbox_fini (&h->mb);
    error_set (err, EAGAIN, "cannot start the fetcher thread");
    goto fail;
  }
  h->thread_started = true;
  h->bdev.ops = &hydrate_ops;
  h->bdev.info = lower->info;
  h->bdev.priv = h;
  h->save_timer.opaque = h;
  if (h->done == h->total)
    loop_defer (loop, &h->save_now, save_deferred, h);   /* nothing to do */
  feed (h);
  return &h->bdev;

 fail:
  objstore_close (h->os);
  manifest_free (&h->m);
  pthread_mutex_destroy (&h->lock);
  free (h->state);
  free (h->map);
  free (h);
  return NULL;
}

void
hydrate_progress (struct bdev *b, uint64_t *done, uint64_t *total,
                  uint64_t *bytes)
{
  struct hydrate *h = b->priv;
  *done = h->done;
  *total = h->total;
  *bytes = h->bytes;
}
