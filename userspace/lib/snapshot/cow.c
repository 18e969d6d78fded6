/* cow.c - change tracking and point-in-time snapshots (see snapshot.h).
 *
 * Every write, trim and write-zeroes sets its chunks' bits in the change
 * map.  A snapshot:
 *   1. the upload thread opens the store and finds the parent;
 *   2. barrier: new writes are held while those in flight complete, so
 *      every write acknowledged before this moment is on the replicas;
 *   3. the point: the chunks to store (the change map, or every chunk
 *      when the map cannot be trusted) become PENDING, a fresh map
 *      starts, held writes go on;
 *   4. a PENDING chunk is read (captured) either when the upload thread
 *      asks for more, or before the first write into it, which waits for
 *      that one read: the old contents go to the upload, the write to
 *      the volume.  Writes to other chunks never wait.
 * If the snapshot fails, its chunks are marked changed again so the next
 * one stores them.
 *
 * With a journal (cow_journal_start), the map survives a crash: a write
 * goes down only once its chunks' bits are in a map the journal has made
 * durable (docs/DESIGN.md, "Change tracking").  Writes to chunks already
 * marked pay nothing; the first write into a chunk since the base waits
 * for one persist, which carries every bit wanted meanwhile.  Until the
 * owner moves the base (cow_journal_start again), what is persisted also
 * keeps the bits of the map a snapshot froze, so it stays complete
 * relative to the base the registry names.
 *
 * Over 800 lines: the write path, the journal, resize and the snapshot
 * job all work on the one private struct cow and its barrier; the seam
 * to cut along (a cow_internal.h, resize and the journal in files of
 * their own) is noted for the next change here.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/freelist.h"
#include "core/util.h"
#include "snapshot/snapshot.h"
#include "snapshot/upload.h"

enum chunk_state {
  CH_IDLE = 0,                  /* not part of the snapshot, or captured */
  CH_PENDING,                   /* to capture */
  CH_CAPTURING,                 /* being read; writes into it wait */
};

struct job {
  struct upload *up;
  struct mailbox mb;
  uint8_t *state;               /* enum chunk_state per chunk */
  uint8_t *frozen;              /* the chunks of this snapshot (bits) */
  uint64_t next;                /* scan position for the next capture */
  int credit;                   /* captures the thread has room for */
  uint64_t capturing;           /* reads in flight */
  bool failed;
  struct loop_defer end_later;  /* never end inside a completion */
  bool ending;                  /* the thread finished: end once no */
  int end_err;                  /* capture is in flight any more */
  char end_line[600];
  void (*line) (void *opaque, const char *line);
  void (*done) (void *opaque, int err, const char *name, const char *url);
  void *opaque;
};

/* A write waiting for the barrier or for a capture, linked through
 * io->layer_priv.
 */
struct cow {
  struct bdev bdev;
  struct bdev *lower;
  struct loop *loop;
  uint32_t chunk_size;
  unsigned shift;
  uint64_t nchunks;
  uint8_t *cbt;                 /* NULL: unknown, everything changed */
  size_t cbt_len;
  uint64_t writes_inflight;
  bool barrier;                 /* hold new writes */
  struct bdev_io *held, *held_tail;       /* behind the barrier */
  struct bdev_io *blocked, *blocked_tail; /* behind a capture */
  struct job *job;
  void (*drained) (void *opaque);       /* drain waits for the job */
  void *drained_opaque;

  /* The journal: NULL persist when there is none. */
  struct cow_journal journal;
  uint8_t *saved;               /* bits known durable for this base */
  uint8_t *unbased;             /* frozen bits kept until the base moves */
  uint64_t jgen;                /* counts cow_journal_start calls */
  bool persisting;              /* one persist at a time */
  struct bdev_io *jwait, *jwait_tail;   /* writes waiting for a persist */
  struct freelist wrapped_free;         /* done write wrappers, for reuse */
};

struct wrapped {
  struct bdev_io io;            /* what goes down */
  struct bdev_io *orig;
  struct cow *c;
};

static void take_point (struct cow *c);
static void maybe_drained (struct cow *c);
static void send_write (struct cow *c, struct bdev_io *io);
static void cow_submit (struct bdev *b, struct bdev_io *io);

static void
append (struct bdev_io **head, struct bdev_io **tail, struct bdev_io *io)
{
  io->layer_priv = NULL;
  if (*tail)
    (*tail)->layer_priv = io;
  else
    *head = io;
  *tail = io;
}

static bool
is_write (const struct bdev_io *io)
{
  return io->op == BDEV_WRITE || io->op == BDEV_TRIM ||
         io->op == BDEV_WRITE_ZEROES;
}

/* ---- captures --------------------------------------------------------------- */

struct capture_io {
  struct bdev_io io;
  struct cow *c;
  uint64_t index;
};

static void job_fail (struct cow *c, const char *why);
static void job_end_later (struct cow *c);
static void retry_blocked (struct cow *c);

static void
captured (struct bdev_io *io, int err)
{
  struct capture_io *ci = (struct capture_io *) io;
  struct cow *c = ci->c;
  struct job *j = c->job;

  j->state[ci->index] = CH_IDLE;
  if (err) {
    char why[128];
    snprintf (why, sizeof why, "reading chunk %" PRIu64 " from the volume: %s",
              ci->index, strerror (err));
    free (io->buf);
    job_fail (c, why);
  }
  else if (j->failed)
    free (io->buf);
  else {
    struct capture *cap = malloc (sizeof *cap);
    if (cap == NULL) {
      free (io->buf);
      job_fail (c, "out of memory");
    }
    else {
      char why[400];
      cap->index = ci->index;
      cap->len = c->chunk_size;
      cap->buf = io->buf;
      if (upload_give (j->up, cap, why, sizeof why) < 0) {
        free (cap->buf);
        free (cap);
        job_fail (c, why);
      }
    }
  }
  free (ci);
  j->capturing--;
  retry_blocked (c);
  if (j->ending && j->capturing == 0)
    job_end_later (c);
}

static void
capture (struct cow *c, uint64_t i)
{
  struct job *j = c->job;
  uint64_t off = i << c->shift;
  uint32_t len = c->bdev.info.size - off < c->chunk_size
                 ? (uint32_t) (c->bdev.info.size - off) : c->chunk_size;
  struct capture_io *ci = calloc (1, sizeof *ci);
  /* A last, short chunk is stored padded with zeroes (repvol-snapshot.5). */
  void *buf = ci ? (len < c->chunk_size ? calloc (1, c->chunk_size)
                    : malloc (len)) : NULL;

  if (buf == NULL) {
    free (ci);
    job_fail (c, "out of memory");
    return;
  }
  j->state[i] = CH_CAPTURING;
  j->capturing++;
  ci->c = c;
  ci->index = i;
  ci->io.done = captured;
  bdev_read (c->lower, &ci->io, off, len, buf, 0);
}

/* Capture as many chunks as the upload thread has room for. */
static void
feed (struct cow *c)
{
  struct job *j = c->job;

  while (j && !j->failed && j->credit > 0 && j->next < c->nchunks) {
    if (j->state[j->next] == CH_PENDING) {
      j->credit--;
      capture (c, j->next);
    }
    j->next++;
  }
}

/* May io go down now?  Starts the captures it waits for. */
static bool
may_write (struct cow *c, const struct bdev_io *io)
{
  struct job *j = c->job;
  bool ok = true;

  if (j == NULL || j->failed || io->len == 0)
    return true;
  uint64_t first = io->offset >> c->shift;
  uint64_t last = (io->offset + io->len - 1) >> c->shift;
  for (uint64_t i = first; i <= last && i < c->nchunks; i++) {
    if (j->state[i] == CH_PENDING)
      capture (c, i);           /* copy before write */
    if (j->state[i] == CH_CAPTURING)
      ok = false;
  }
  return ok;
}

static void
retry_blocked (struct cow *c)
{
  struct bdev_io *io = c->blocked;

  c->blocked = c->blocked_tail = NULL;
  while (io) {
    struct bdev_io *next = io->layer_priv;
    if (may_write (c, io))
      send_write (c, io);
    else
      append (&c->blocked, &c->blocked_tail, io);
    io = next;
  }
}

/* ---- the write path ------------------------------------------------------- */

/* One wrapper per write, kept once done for the next write instead of
 * a malloc and free each time.
 */
static struct wrapped *
wrapped_get (struct cow *c)
{
  return freelist_get (&c->wrapped_free, sizeof (struct wrapped));
}

static void
wrapped_put (struct cow *c, struct wrapped *w)
{
  freelist_put (&c->wrapped_free, w);
}

static void
write_done (struct bdev_io *io, int err)
{
  struct wrapped *w = (struct wrapped *) io;
  struct cow *c = w->c;
  struct bdev_io *orig = w->orig;

  orig->crc = io->crc;
  wrapped_put (c, w);
  c->writes_inflight--;
  orig->done (orig, err);
  if (c->barrier && c->writes_inflight == 0)
    take_point (c);
}

static void
send_write (struct cow *c, struct bdev_io *io)
{
  struct wrapped *w = wrapped_get (c);

  if (w == NULL) {
    io->done (io, ENOMEM);
    return;
  }
  w->io = *io;
  w->io.done = write_done;
  w->io.opaque = NULL;
  w->io.layer_priv = NULL;
  w->orig = io;
  w->c = c;
  c->writes_inflight++;
  bdev_submit (c->lower, &w->io);
}

static void
mark_changed (struct cow *c, const struct bdev_io *io)
{
  if (c->cbt == NULL || io->len == 0)
    return;
  uint64_t first = io->offset >> c->shift;
  uint64_t last = (io->offset + io->len - 1) >> c->shift;
  for (uint64_t i = first; i <= last && i < c->nchunks; i++)
    bit_set (c->cbt, i);
}

/* ---- the journal ------------------------------------------------------------ */

static bool
journaled (const struct cow *c, const struct bdev_io *io)
{
  if (c->journal.persist == NULL || c->cbt == NULL || io->len == 0)
    return true;                /* nothing to keep, or nothing trusted */
  uint64_t first = io->offset >> c->shift;
  uint64_t last = (io->offset + io->len - 1) >> c->shift;
  for (uint64_t i = first; i <= last && i < c->nchunks; i++)
    if (!bit_test (c->saved, i))
      return false;
  return true;
}

/* Persist what is wanted now (the map, and the frozen bits the base
 * still needs), unless a persist is on its way.
 */
static void
journal_kick (struct cow *c)
{
  if (c->persisting || c->jwait == NULL)
    return;
  uint8_t *map = malloc (c->cbt_len);
  if (map == NULL) {
    cow_journal_done (&c->bdev, NULL, c->jgen, ENOMEM);
    return;
  }
  for (size_t i = 0; i < c->cbt_len; i++)
    map[i] = (c->cbt ? c->cbt[i] : 0xff) | (c->unbased ? c->unbased[i] : 0);
  c->persisting = true;
  c->journal.persist (c->journal.opaque, map, c->cbt_len, c->jgen);
}

void
cow_journal_done (struct bdev *b, uint8_t *map, uint64_t gen, int err)
{
  struct cow *c = b->priv;
  struct bdev_io *io = c->jwait;

  c->persisting = false;
  if (err == 0 && gen == c->jgen) {
    free (c->saved);
    c->saved = map;
  }
  else
    free (map);                 /* for a base no longer ours, or failed */
  /* Go through the top again: a barrier may have come meanwhile. */
  c->jwait = c->jwait_tail = NULL;
  while (io) {
    struct bdev_io *next = io->layer_priv;
    if (err && (gen == c->jgen || c->journal.persist == NULL))
      io->done (io, EIO);       /* the journal gave up (detach) */
    else
      cow_submit (&c->bdev, io);
    io = next;
  }
  maybe_drained (c);
}

int
cow_journal_start (struct bdev *b, const struct cow_journal *j,
                   uint8_t *saved)
{
  struct cow *c = b->priv;

  if (saved == NULL && (saved = calloc (1, c->cbt_len)) == NULL)
    return -ENOMEM;
  free (c->saved);
  c->saved = saved;             /* what is durable for the new base */
  free (c->unbased);
  c->unbased = NULL;
  c->journal = *j;
  c->jgen++;
  return 0;
}

void
cow_journal_stop (struct bdev *b)
{
  struct cow *c = b->priv;

  memset (&c->journal, 0, sizeof c->journal);
  c->jgen++;                    /* an answer still coming is not for us */
}

/* ---- resize ------------------------------------------------------------------ */

/* A grow on its way down, with the maps for the new size made first so
 * that running out of memory is found before the volume grows.
 */
struct cow_resize {
  struct bdev_io io;
  struct bdev_io *orig;
  struct cow *c;
  uint8_t *maps[3];             /* cbt, saved, unbased (NULL where ours is) */
  size_t len;
};

static uint8_t *
grown_map (const uint8_t *old, size_t old_len, size_t len)
{
  uint8_t *m = calloc (1, len);
  if (m && old)
    memcpy (m, old, old_len);
  return m;
}

static void
cow_resized (struct bdev_io *io, int err)
{
  struct cow_resize *w = (struct cow_resize *) io;
  struct cow *c = w->c;
  struct bdev_io *orig = w->orig;
  uint8_t **mine[3] = { &c->cbt, &c->saved, &c->unbased };

  if (!err) {
    uint64_t old_size = c->bdev.info.size;
    for (int k = 0; k < 3; k++) {
      free (*mine[k]);
      *mine[k] = w->maps[k];
    }
    c->cbt_len = w->len;
    c->bdev.info.size = c->lower->info.size;
    c->nchunks = (c->bdev.info.size + c->chunk_size - 1) / c->chunk_size;
    /* A partial last chunk is longer now: a snapshot reads it again.
     * The chunks after it read as zeroes until written, which marks
     * them (upload.c takes a smaller parent as holes beyond its end).
     */
    if (c->cbt && old_size % c->chunk_size)
      bit_set (c->cbt, old_size >> c->shift);
  }
  else
    for (int k = 0; k < 3; k++)
      free (w->maps[k]);
  free (w);
  orig->done (orig, err);
}

static void
cow_resize (struct cow *c, struct bdev_io *io)
{
  const uint8_t *mine[3] = { c->cbt, c->saved, c->unbased };
  struct cow_resize *w;

  /* A snapshot freezes the volume's chunks at its size. */
  if (c->job) {
    io->done (io, EBUSY);
    return;
  }
  if ((w = calloc (1, sizeof *w)) == NULL) {
    io->done (io, ENOMEM);
    return;
  }
  w->orig = io;
  w->c = c;
  w->len = chunk_map_bytes (io->offset, c->chunk_size);
  for (int k = 0; k < 3; k++)
    if (mine[k] && (w->maps[k] = grown_map (mine[k], c->cbt_len,
                                            MAX (w->len, c->cbt_len))) == NULL) {
      cow_resized (&w->io, ENOMEM);
      return;
    }
  w->io = *io;
  w->io.done = cow_resized;
  w->io.opaque = w;
  bdev_submit (c->lower, &w->io);
}

/* ---- the write path, continued ------------------------------------------------ */

static void
cow_submit (struct bdev *b, struct bdev_io *io)
{
  struct cow *c = b->priv;

  if (io->op == BDEV_RESIZE) {
    cow_resize (c, io);
    return;
  }
  if (!is_write (io)) {
    bdev_submit (c->lower, io);
    return;
  }
  if (c->barrier) {
    append (&c->held, &c->held_tail, io);
    return;
  }
  mark_changed (c, io);
  if (!journaled (c, io)) {
    append (&c->jwait, &c->jwait_tail, io);
    journal_kick (c);
    return;
  }
  if (may_write (c, io))
    send_write (c, io);
  else
    append (&c->blocked, &c->blocked_tail, io);
}

/* ---- the snapshot ------------------------------------------------------------ */

static void
release_held (struct cow *c)
{
  struct bdev_io *io = c->held;

  c->held = c->held_tail = NULL;
  c->barrier = false;
  while (io) {
    struct bdev_io *next = io->layer_priv;
    cow_submit (&c->bdev, io);
    io = next;
  }
}

static void
take_point (struct cow *c)
{
  struct job *j = c->job;
  size_t maplen = c->cbt_len;
  uint64_t total = 0;
  char line[200];

  /* The registry names the old base until the owner moves it: what the
   * journal persists meanwhile must still hold the old map's bits.
   */
  if (c->journal.persist && c->cbt) {
    if (c->unbased == NULL)
      c->unbased = calloc (1, maplen);
    if (c->unbased == NULL) {
      release_held (c);
      job_fail (c, "out of memory");
      return;
    }
    for (size_t i = 0; i < maplen; i++)
      c->unbased[i] |= c->cbt[i];
  }
  /* The upload decided (in prepare) whether the map can be used. */
  if (j->up->incremental && c->cbt) {
    j->frozen = c->cbt;
    c->cbt = calloc (1, maplen);
    if (c->cbt == NULL) {
      c->cbt = j->frozen;
      j->frozen = NULL;
    }
  }
  else {
    j->frozen = malloc (maplen);
    if (j->frozen)
      memset (j->frozen, 0xff, maplen);
    if (c->cbt)
      memset (c->cbt, 0, maplen);
    else
      c->cbt = calloc (1, maplen);   /* known from this point on */
  }
  if (j->frozen == NULL) {
    release_held (c);
    job_fail (c, "out of memory");
    return;
  }
  for (uint64_t i = 0; i < c->nchunks; i++)
    if (bit_test (j->frozen, i)) {
      j->state[i] = CH_PENDING;
      total++;
    }
  snprintf (line, sizeof line, "point %s %lld", j->up->name,
            (long long) time (NULL));
  j->line (j->opaque, line);
  upload_point (j->up, total);
  release_held (c);
  feed (c);
}

static void
job_end (struct cow *c)
{
  struct job *j = c->job;

  c->job = NULL;                /* done() may start the next snapshot */
  j->line (j->opaque, j->end_line);
  j->done (j->opaque, j->end_err, j->up->name, j->up->url);
  mailbox_fini (&j->mb);
  upload_free (j->up);
  free (j->state);
  free (j->frozen);
  free (j);
  maybe_drained (c);
}

/* A drain goes down once no snapshot runs and no write waits here. */
static void
maybe_drained (struct cow *c)
{
  if (c->drained && c->job == NULL && c->jwait == NULL && !c->persisting) {
    void (*cb) (void *) = c->drained;
    c->drained = NULL;
    bdev_drain (c->lower, cb, c->drained_opaque);
  }
}

static void
job_end_deferred (struct loop_defer *d)
{
  job_end (d->opaque);
}

/* Callers may be deep in the write path, still using the job. */
static void
job_end_later (struct cow *c)
{
  loop_defer (c->loop, &c->job->end_later, job_end_deferred, c);
}

/* Give up on the snapshot: writes go on, its chunks count as changed. */
static void
job_fail (struct cow *c, const char *why)
{
  struct job *j = c->job;

  if (j->failed)
    return;
  j->failed = true;
  if (j->frozen && c->cbt)
    for (size_t i = 0; i < c->cbt_len; i++)
      c->cbt[i] |= j->frozen[i];
  for (uint64_t i = 0; i < c->nchunks; i++)
    if (j->state[i] == CH_PENDING)
      j->state[i] = CH_IDLE;
  upload_abort (j->up, why);
  retry_blocked (c);
}

static void
on_upload_msg (struct mailbox *mb, struct mailbox_msg *msg)
{
  struct cow *c = mb->opaque;
  struct upload_msg *m = (struct upload_msg *) msg;
  struct job *j = c->job;

  switch (m->kind) {
  case UP_READY:
    c->barrier = true;
    if (c->writes_inflight == 0)
      take_point (c);
    break;
  case UP_CREDIT:
    j->credit += m->n;
    feed (c);
    break;
  case UP_LINE:
    j->line (j->opaque, m->text);
    break;
  case UP_DONE:
    if (m->n && !j->failed)
      job_fail (c, m->text);
    if (c->barrier)             /* failed before the point */
      release_held (c);
    j->ending = true;
    j->end_err = m->n;
    snprintf (j->end_line, sizeof j->end_line, "%s", m->text);
    if (j->capturing == 0)
      job_end_later (c);
    break;
  }
  free (m);
}

int
cow_snapshot (struct bdev *b, const struct snap_params *p,
              void (*line) (void *opaque, const char *line),
              void (*done) (void *opaque, int err, const char *name,
                            const char *url),
              void *opaque)
{
  struct cow *c = b->priv;

  if (c->job)
    return -EBUSY;
  struct job *j = calloc (1, sizeof *j);
  struct upload *u = calloc (1, sizeof *u);
  if (j == NULL || u == NULL ||
      (j->state = calloc (c->nchunks, 1)) == NULL ||
      mailbox_init (&j->mb, c->loop, on_upload_msg, c) == -1) {
    if (j)
      free (j->state);
    free (j);
    free (u);
    return -ENOMEM;
  }
  u->url = strdup (p->url);
  u->name = strdup (p->name);
  u->volume = strdup (p->volume);
  u->volume_uuid = strdup (p->volume_uuid);
  u->base_url = strdup (p->base_url);
  u->base_name = strdup (p->base_name);
  u->volume_size = p->volume_size;
  u->chunk_size = c->chunk_size;
  u->cbt_valid = p->cbt_valid && c->cbt != NULL;
  if (p->env) {
    size_t n = 0;
    while (p->env[n])
      n++;
    if ((u->env = calloc (n + 1, sizeof *u->env)) != NULL)
      for (size_t i = 0; i < n; i++)
        u->env[i] = strdup (p->env[i]);   /* a NULL ends it early: safe */
  }
  u->mb = &j->mb;
  j->up = u;
  j->line = line;
  j->done = done;
  j->opaque = opaque;
  c->job = j;
  if (!u->url || !u->name || !u->volume || !u->volume_uuid || !u->base_url ||
      !u->base_name || upload_start (u) < 0) {
    c->job = NULL;
    mailbox_fini (&j->mb);
    free (u->url); free (u->name); free (u->volume); free (u->volume_uuid);
    free (u->base_url); free (u->base_name);
    objstore_env_free (u->env);
    free (u);
    free (j->state);
    free (j);
    return -ENOMEM;
  }
  return 0;
}

/* ---- the rest of the table ----------------------------------------------------- */

static void
cow_drain (struct bdev *b, void (*done) (void *opaque), void *opaque)
{
  struct cow *c = b->priv;

  c->drained = done;
  c->drained_opaque = opaque;
  /* A snapshot cannot outlive the attach: stop it, then drain. */
  if (c->job)
    job_fail (c, "the volume is being detached");
  else
    maybe_drained (c);
}

static void
cow_health (struct bdev *b, struct bdev_health *h)
{
  struct cow *c = b->priv;
  bdev_health (c->lower, h);
}

static void
cow_close (struct bdev *b)
{
  struct cow *c = b->priv;
  bdev_close (c->lower);
  freelist_fini (&c->wrapped_free);
  free (c->cbt);
  free (c->saved);
  free (c->unbased);
  free (c);
}

static const struct bdev_ops cow_ops = {
  .name = "cow",
  .submit = cow_submit,
  .drain = cow_drain,
  .health = cow_health,
  .close = cow_close,
};

struct bdev *
cow_new (struct loop *loop, struct bdev *lower, uint32_t chunk_size,
         uint8_t *cbt)
{
  struct cow *c = calloc (1, sizeof *c);

  if (c == NULL)
    return NULL;
  c->bdev.ops = &cow_ops;
  c->bdev.info = lower->info;
  c->bdev.priv = c;
  c->lower = lower;
  c->loop = loop;
  c->chunk_size = chunk_size;
  c->shift = __builtin_ctz (chunk_size);
  c->nchunks = (lower->info.size + chunk_size - 1) / chunk_size;
  c->cbt = cbt;
  c->cbt_len = chunk_map_bytes (lower->info.size, chunk_size);
  return &c->bdev;
}

const uint8_t *
cow_cbt (struct bdev *b, size_t *len)
{
  struct cow *c = b->priv;
  *len = c->cbt_len;
  return c->cbt;
}
