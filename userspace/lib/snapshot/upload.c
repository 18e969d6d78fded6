/* upload.c - the upload thread of a snapshot (see upload.h, snapshot.h).
 *
 * Chunks arrive already read at the point in time.  Each is hashed
 * (SHA-256 names it), skipped if all zero or already in the store as far
 * as this snapshot knows (the parent's chunks, and this upload's own),
 * else compressed and PUT.  Hashing and compressing run on a worker
 * pool (upload_workers.c), one thread per CPU, while this thread keeps
 * up to UPLOAD_DEPTH PUTs in flight and the loop thread reads the next
 * chunks.  Chunks finish in any order; the manifest is indexed by chunk
 * number and goes last: until it exists the snapshot does not.
 *
 * Slightly over 800 lines since the worker pipeline came in; the
 * pipeline (feeding workers, collecting, PUTs) is the seam to move out.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>
#include <sys/statvfs.h>

#include "core/util.h"
#include "snapshot/catalog.h"
#include "snapshot/upload.h"
#include "snapshot/upload_workers.h"

/* PUTs in flight at once. */
#define UPLOAD_DEPTH 16
/* Chunks given to the worker pool (queued, being hashed or compressed,
 * or done and not yet collected) per worker: two, so a worker never
 * waits for this thread to hand it the next chunk.
 */
#define UPLOAD_AHEAD_PER_WORKER 2
/* Chunks captured by writes wait in memory up to this much (or
 * $REPVOL_SNAPSHOT_MEM), counting every buffer already in the pipeline
 * (in the pool, compressed, in flight), then in an unlinked spill file
 * in $TMPDIR or /var/tmp, so a busy volume cannot make the attach grow
 * without bound during a snapshot.
 */
#define UPLOAD_MEM_MAX (256u << 20)
#define ZSTD_LEVEL 3

/* ---- a set of chunk hashes (open addressing) ---------------------------- */

struct hashset {
  uint8_t (*slot)[CHUNK_HASH_LEN];
  bool *used;
  size_t cap, n;
};

static size_t
hs_pos (const uint8_t *h, size_t cap)
{
  uint64_t k;
  memcpy (&k, h, sizeof k);     /* SHA-256 bits are already uniform */
  return k & (cap - 1);
}

static bool
hs_has (const struct hashset *s, const uint8_t *h)
{
  if (s->cap == 0)
    return false;
  for (size_t i = hs_pos (h, s->cap); s->used[i]; i = (i + 1) & (s->cap - 1))
    if (memcmp (s->slot[i], h, CHUNK_HASH_LEN) == 0)
      return true;
  return false;
}

/* 0 or -ENOMEM. */
static int
hs_add (struct hashset *s, const uint8_t *h)
{
  if (hs_has (s, h))
    return 0;
  if ((s->n + 1) * 2 > s->cap) {
    struct hashset g = { .cap = s->cap ? s->cap * 2 : 1024 };
    g.slot = malloc (g.cap * sizeof *g.slot);
    g.used = calloc (g.cap, sizeof *g.used);
    if (!g.slot || !g.used) {
      free (g.slot);
      free (g.used);
      return -ENOMEM;
    }
    for (size_t i = 0; i < s->cap; i++)
      if (s->used[i])
        hs_add (&g, s->slot[i]);
    free (s->slot);
    free (s->used);
    *s = g;
  }
  size_t i = hs_pos (h, s->cap);
  while (s->used[i])
    i = (i + 1) & (s->cap - 1);
  memcpy (s->slot[i], h, CHUNK_HASH_LEN);
  s->used[i] = true;
  s->n++;
  return 0;
}

static void
hs_free (struct hashset *s)
{
  free (s->slot);
  free (s->used);
}

/* ---- talking to the loop -------------------------------------------------- */

static void
post (struct upload *u, enum upload_msg_kind kind, int n, const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));

static void
post (struct upload *u, enum upload_msg_kind kind, int n, const char *fmt, ...)
{
  struct upload_msg *m = calloc (1, sizeof *m);
  if (m == NULL)
    return;                     /* progress lost; UP_DONE is retried below */
  m->kind = kind;
  m->n = n;
  if (fmt) {
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (m->text, sizeof m->text, fmt, ap);
    va_end (ap);
  }
  mailbox_post (u->mb, &m->m);
}

/* Up to max of the loop's captures (and whether the point is taken, or
 * why the loop gave up).  Spilled ones are read back here.  Each moves
 * from the queue's bytes to the pipeline's, charged PIPE_CHARGE: the
 * chunk and room for its compressed copy.
 */
#define PIPE_CHARGE(len) (2 * (uint64_t) (len))
static struct capture *
take_ready (struct upload *u, int max, bool *point, bool *more, char *why,
            size_t whylen)
{
  struct capture *head = NULL, **tail = &head;

  pthread_mutex_lock (&u->lock);
  while (u->ready && max-- > 0) {
    struct capture *c = u->ready;
    if ((u->ready = c->next) == NULL)
      u->ready_tail = NULL;
    if (c->buf)
      u->ready_bytes -= c->len;
    u->pipe_bytes += PIPE_CHARGE (c->len);
    c->next = NULL;
    *tail = c;
    tail = &c->next;
  }
  *point = u->point_taken;
  *more = u->ready != NULL;
  if (u->abort)
    snprintf (why, whylen, "%s", u->abort_why);
  int fd = u->spill_fd;
  pthread_mutex_unlock (&u->lock);

  for (struct capture *c = head; c; c = c->next)
    if (c->buf == NULL && (c->buf = malloc (c->len)) != NULL &&
        pread (fd, c->buf, c->len, (off_t) c->index * u->chunk_size) != c->len) {
      free (c->buf);
      c->buf = NULL;
    }
  return head;
}

/* ---- the thread ------------------------------------------------------------- */

struct run;

/* A chunk taken from the queue, until it is finished: a worker hashes
 * it and, if it is new, compresses it; then this thread PUTs it.
 */
struct chunk_job {
  struct uw_job w;              /* first */
  struct run *r;                /* for the known set */
  struct chunk_job *next_put;   /* waiting for a PUT slot */
  uint64_t index;
  uint32_t len;
  void *buf;                    /* the chunk, until compressed */
  uint64_t charge;              /* bytes counted in u->pipe_bytes */
  enum { CJ_ZERO, CJ_KNOWN, CJ_PUT, CJ_ENOMEM } result;
  uint8_t hash[CHUNK_HASH_LEN];
  void *encoded;
  struct obj_req req;
};

struct run {
  struct upload *u;
  struct objstore *os;
  struct upload_workers *pool;
  int nworkers;
  struct manifest m, parent;
  bool have_parent;
  pthread_mutex_t known_lock;   /* workers look up and claim hashes */
  struct hashset known;
  uint64_t total, done, bytes_read, bytes_uploaded;
  int credit;                   /* chunks to ask the loop for */
  int in_pool;                  /* chunks given to the pool, not collected */
  int in_pipe;                  /* chunks taken from the queue, not done */
  struct chunk_job *put_wait, *put_wait_tail;   /* compressed, to PUT */
  bool marker;                  /* our inprogress/ marker is in the store */
  struct error err;             /* why, once e is set */
  int e;                        /* the first error: a positive errno, as
                                   UP_DONE carries it to the loop */
};

static void
fail (struct run *r, int e, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

static void
fail (struct run *r, int e, const char *fmt, ...)
{
  if (r->e)
    return;                     /* keep the first reason */
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (r->err.msg, sizeof r->err.msg, fmt, ap);
  va_end (ap);
  r->e = e ? e : EIO;
  r->err.code = r->e;
}

/* Change what j counts in the pipeline's bytes to charge. */
static void
recharge (struct run *r, struct chunk_job *j, uint64_t charge)
{
  pthread_mutex_lock (&r->u->lock);
  r->u->pipe_bytes = r->u->pipe_bytes - j->charge + charge;
  pthread_mutex_unlock (&r->u->lock);
  j->charge = charge;
}

/* On a worker: zero, known, or compressed for a PUT. */
static void
chunk_work (struct uw_job *w)
{
  struct chunk_job *j = (struct chunk_job *) w;
  struct run *r = j->r;
  size_t len;

  if (mem_is_zero (j->buf, j->len)) {
    j->result = CJ_ZERO;
    return;
  }
  chunk_hash (j->buf, j->len, j->hash);
  /* Claimed before compressing: of identical chunks in the pipeline at
   * once exactly one is stored, as when they went one at a time.
   */
  pthread_mutex_lock (&r->known_lock);
  bool known = hs_has (&r->known, j->hash);
  int e = known ? 0 : hs_add (&r->known, j->hash);
  pthread_mutex_unlock (&r->known_lock);
  if (known)
    j->result = CJ_KNOWN;
  else if (e < 0 || chunk_encode (j->buf, j->len, ZSTD_LEVEL, &j->encoded,
                                  &len) < 0)
    j->result = CJ_ENOMEM;
  else {
    free (j->buf);
    j->buf = NULL;
    j->req.len = len;
    j->result = CJ_PUT;
  }
}

/* j leaves the pipeline: it no longer holds memory or a slot. */
static void
finish (struct run *r, struct chunk_job *j)
{
  recharge (r, j, 0);
  r->done++;
  r->credit++;
  r->in_pipe--;
  free (j->buf);
  free (j->encoded);
  free (j);
}

/* One captured chunk, into the pipeline (takes c). */
static void
start_chunk (struct run *r, struct capture *c)
{
  struct chunk_job *j = calloc (1, sizeof *j);

  if (j == NULL) {
    pthread_mutex_lock (&r->u->lock);
    r->u->pipe_bytes -= PIPE_CHARGE (c->len);
    pthread_mutex_unlock (&r->u->lock);
    fail (r, ENOMEM, "out of memory");
    r->done++;
    free (c->buf);
    free (c);
    return;
  }
  j->w.run = chunk_work;
  j->r = r;
  j->index = c->index;
  j->len = c->len;
  j->buf = c->buf;
  j->charge = PIPE_CHARGE (c->len);
  free (c);
  r->in_pipe++;
  if (j->buf == NULL) {
    fail (r, EIO, "reading chunk %" PRIu64 " back from the spill file "
          "failed", j->index);
    finish (r, j);
    return;
  }
  r->bytes_read += j->len;
  r->in_pool++;
  uw_submit (r->pool, &j->w);
}

/* A chunk back from the pool: into the manifest, and on to a PUT if
 * it is new.
 */
static void
collect (struct run *r, struct chunk_job *j)
{
  r->in_pool--;
  switch (j->result) {
  case CJ_ZERO:
    r->m.present[j->index] = false;
    break;
  case CJ_ENOMEM:
    fail (r, ENOMEM, "out of memory compressing chunk %" PRIu64, j->index);
    break;
  case CJ_KNOWN:                /* already stored: dedup */
  case CJ_PUT:
    memcpy (r->m.hashes[j->index], j->hash, CHUNK_HASH_LEN);
    r->m.present[j->index] = true;
    break;
  }
  if (j->result != CJ_PUT || r->e) {
    finish (r, j);
    return;
  }
  recharge (r, j, j->req.len);
  j->req.op = OBJ_PUT;
  chunk_key (j->hash, j->req.key);
  j->req.data = j->encoded;
  j->req.opaque = j;
  if (r->put_wait_tail)
    r->put_wait_tail->next_put = j;
  else
    r->put_wait = j;
  r->put_wait_tail = j;
}

/* Keep UPLOAD_DEPTH PUTs in flight (none once failed). */
static void
submit_puts (struct run *r)
{
  while (r->put_wait && (r->e || objstore_inflight (r->os) < UPLOAD_DEPTH)) {
    struct chunk_job *j = r->put_wait;
    if ((r->put_wait = j->next_put) == NULL)
      r->put_wait_tail = NULL;
    if (r->e)
      finish (r, j);
    else
      objstore_submit (r->os, &j->req);
  }
}

static void
put_done (struct run *r, struct obj_req *req)
{
  struct chunk_job *j = req->opaque;

  if (req->err.code)
    fail (r, req->err.code, "%s", error_msg (&req->err));
  else
    r->bytes_uploaded += req->len;
  finish (r, j);
}

static void
pool_notify (void *opaque)
{
  objstore_wakeup (opaque);
}

/* r failed with e (negative), the reason already in r->err: e. */
static int
failed (struct run *r, int e)
{
  r->e = -e;
  return e;
}

/* Open the store and decide what to build on, before the point.  0 or
 * a negative errno (r->e and r->err set).
 */
static int
prepare (struct run *r)
{
  struct upload *u = r->u;
  char key[OBJ_KEY_MAX];

  r->os = u->env ? objstore_open_env (u->url, u->env, &r->err)
                 : objstore_open (u->url, &r->err);
  if (r->os == NULL)
    return failed (r, -EIO);
  pthread_mutex_lock (&u->lock);
  u->os = r->os;
  pthread_mutex_unlock (&u->lock);

  manifest_key (u->name, key);
  int e = objstore_head (r->os, key, NULL, &r->err);
  if (e == 0)
    return failed (r, error_set (&r->err, EEXIST, "a snapshot named %s "
                                 "already exists in %s", u->name, u->url));
  if (e != -ENOENT)
    return failed (r, e);
  /* Before reading what the store holds: a delete collecting chunks
   * either sees this marker and leaves them, or finishes first.
   */
  if ((e = snapshot_begin_upload (r->os, u->name, &r->err)) < 0)
    return failed (r, e);
  r->marker = true;

  /* The parent: the snapshot the change map counts from, when it is in
   * this store.  Its chunks need no upload, and with a complete change
   * map only the chunks changed since need reading.
   */
  if (u->base_name[0] && strcmp (u->base_url, u->url) == 0) {
    struct error why = { 0 };
    int pe = manifest_read (r->os, u->base_name, &r->parent, &why);

    /* A parent of a smaller volume is one the volume grew from: its
     * chunks count, and the space after its end reads as zeroes unless
     * written since (the change map says so; cow.c marks a partial last
     * chunk when the volume grows).
     */
    if (pe == 0 && r->parent.chunk_size == u->chunk_size &&
        r->parent.volume_size <= u->volume_size)
      r->have_parent = true;
    else {
      if (pe == 0) {
        error_set (&why, EINVAL, "a %" PRIu64 "-byte volume in %" PRIu32
                   "-byte chunks, not %" PRIu64 " in %" PRIu32,
                   r->parent.volume_size, r->parent.chunk_size,
                   u->volume_size, u->chunk_size);
        manifest_free (&r->parent);
      }
      log_warn ("snapshot %s: the last snapshot %s cannot be built on (%s): "
                "reading the whole volume", u->name, u->base_name,
                error_msg (&why));
    }
  }
  if (manifest_init (&r->m, u->volume_size, u->chunk_size) < 0)
    return failed (r, error_set (&r->err, ENOMEM, "out of memory"));
  if (r->have_parent) {
    for (uint64_t i = 0; i < r->parent.nchunks; i++)
      if (r->parent.present[i] &&
          hs_add (&r->known, r->parent.hashes[i]) < 0)
        return failed (r, error_set (&r->err, ENOMEM, "out of memory"));
    snprintf (r->m.parent, sizeof r->m.parent, "%s", u->base_name);
  }
  /* Reading only the changed chunks is right when the map is complete
   * and counts from this store's parent, or from an empty volume.
   */
  u->incremental = u->cbt_valid && (r->have_parent || u->base_name[0] == '\0');
  if (u->incremental && r->have_parent) {
    memcpy (r->m.hashes, r->parent.hashes, r->parent.nchunks * CHUNK_HASH_LEN);
    memcpy (r->m.present, r->parent.present,
            r->parent.nchunks * sizeof (bool));
  }
  snprintf (r->m.name, sizeof r->m.name, "%s", u->name);
  snprintf (r->m.volume, sizeof r->m.volume, "%s", u->volume);
  snprintf (r->m.volume_uuid, sizeof r->m.volume_uuid, "%s", u->volume_uuid);
  return 0;
}

/* Free captures never started (uncharging them). */
static void
drop_captures (struct run *r, struct capture *c)
{
  while (c) {
    struct capture *next = c->next;
    pthread_mutex_lock (&r->u->lock);
    r->u->pipe_bytes -= PIPE_CHARGE (c->len);
    pthread_mutex_unlock (&r->u->lock);
    free (c->buf);
    free (c);
    c = next;
  }
}

/* Up to n captures off the front of *list, as a list. */
static struct capture *
split_captures (struct capture **list, int n)
{
  struct capture *head = *list, **tail = &head;
  while (*tail && n-- > 0)
    tail = &(*tail)->next;
  *list = *tail;
  *tail = NULL;
  return head;
}

/* Whatever happened: the workers stop (those running finish their
 * chunk), every chunk not PUT is dropped, every request still in flight
 * is collected.  Again after it has run: nothing to do.
 */
static void
stop_pipeline (struct run *r, struct capture **backlog)
{
  if (r->pool) {
    for (struct uw_job *w = uw_stop (r->pool), *next; w; w = next) {
      next = w->next;
      r->in_pool--;
      finish (r, (struct chunk_job *) w);
    }
    r->pool = NULL;
  }
  submit_puts (r);              /* failed: finishes the waiting ones */
  while (r->os && objstore_inflight (r->os) > 0) {
    struct obj_req *req = objstore_poll (r->os, 1000);
    if (req)
      put_done (r, req);
  }
  drop_captures (r, *backlog);
  *backlog = NULL;
}

static void *
upload_main (void *arg)
{
  struct run r = { .u = arg };
  struct upload *u = r.u;
  uint64_t t0 = now_ns (), last_progress = 0;
  char why[256] = "";
  bool point = false;
  struct capture *backlog = NULL;

  pthread_mutex_init (&r.known_lock, NULL);
  if (prepare (&r) < 0)
    goto out;
  r.nworkers = uw_default_threads ();
  int ahead = r.nworkers * UPLOAD_AHEAD_PER_WORKER;
  /* The pipeline takes at most half the memory bound, so captures keep
   * the other half before they spill (chunks of 16 MiB and more would
   * fill it otherwise), and never fewer than two chunks.
   */
  uint64_t fit = u->mem_max / 2 / PIPE_CHARGE (u->chunk_size);
  int pipe_max = (int) MIN ((uint64_t) UPLOAD_DEPTH + ahead, MAX (fit, 2));
  ahead = MIN (ahead, pipe_max);
  int pe = uw_start (&r.pool, r.nworkers, ahead, pool_notify, r.os);
  if (pe < 0) {
    fail (&r, -pe, "cannot start the snapshot's worker threads: %s",
          strerror (-pe));
    goto out;
  }
  post (u, UP_READY, 0, NULL);

  /* Wait for the point (the loop wakes the store's poll).  Writes may
   * already have captured chunks by the time we look: they go first.
   */
  bool more = false;
  while (!point && !why[0]) {
    backlog = take_ready (u, INT_MAX, &point, &more, why, sizeof why);
    if (!point && !why[0])
      objstore_poll (r.os, 1000);
  }
  if (why[0]) {
    fail (&r, EIO, "%s", why);
    goto out;
  }
  r.m.created = time (NULL);
  pthread_mutex_lock (&u->lock);
  r.total = u->chunks_total;
  pthread_mutex_unlock (&u->lock);
  /* Enough for a full pipeline: every PUT slot and every worker busy. */
  r.credit = pipe_max;

  while (r.done < r.total && !r.e) {
    if (r.credit > 0) {
      post (u, UP_CREDIT, r.credit, NULL);
      r.credit = 0;
    }
    /* Only as many as the pipeline has room for: the rest stay queued
     * (and spilled), not compressed into memory all at once.
     */
    int room = MIN (ahead - r.in_pool, pipe_max - r.in_pipe);
    struct capture *c = split_captures (&backlog, room);
    for (struct capture *k = c; k; k = k->next)
      room--;
    struct capture *c2 = take_ready (u, room > 0 ? room : 0, &point, &more,
                                     why, sizeof why);
    struct capture **tail = &c;
    while (*tail)
      tail = &(*tail)->next;
    *tail = c2;
    if (why[0])
      fail (&r, EIO, "%s", why);
    while (c) {
      struct capture *next = c->next;
      start_chunk (&r, c);
      c = next;
    }
    for (struct uw_job *w = uw_take_done (r.pool), *next; w; w = next) {
      next = w->next;
      collect (&r, (struct chunk_job *) w);
    }
    submit_puts (&r);
    /* Wait for a PUT to finish; a worker finishing a chunk, or the loop
     * giving one, wakes the poll too.
     */
    struct obj_req *req = objstore_poll (r.os, 200);
    while (req) {
      put_done (&r, req);
      req = objstore_poll (r.os, 0);
    }
    uint64_t now = now_ns ();
    if (now - last_progress >= 500000000ull) {
      last_progress = now;
      post (u, UP_LINE, 0, "progress %" PRIu64 " %" PRIu64 " %" PRIu64
            " %" PRIu64, r.done, r.total, r.bytes_read, r.bytes_uploaded);
    }
  }
  stop_pipeline (&r, &backlog);
  if (r.e)
    goto out;
  post (u, UP_LINE, 0, "progress %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
        r.done, r.total, r.bytes_read, r.bytes_uploaded);

  for (uint64_t i = 0; i < r.m.nchunks; i++)
    if (r.m.present[i])
      r.m.data_bytes += (i + 1 == r.m.nchunks && r.m.volume_size % r.m.chunk_size)
                        ? r.m.volume_size % r.m.chunk_size : r.m.chunk_size;
  r.m.uploaded_bytes = r.bytes_uploaded;
  r.m.completed = time (NULL);
  int e = manifest_write (r.os, &r.m, &r.err);
  if (e < 0)
    failed (&r, e);

 out:
  stop_pipeline (&r, &backlog);
  if (r.marker) {
    struct error err2 = { 0 };
    if (snapshot_end_upload (r.os, u->name, &err2) != 0)
      log_warn ("snapshot %s: cannot remove its in-progress marker: %s",
                u->name, error_msg (&err2));
  }
  if (r.e)
    post (u, UP_DONE, r.e, "error: snapshot %s: %s", u->name,
          error_msg (&r.err));
  else
    post (u, UP_DONE, 0, "ok %s %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %.3f",
          u->name, r.m.parent[0] ? r.m.parent : "-", r.total, r.bytes_read,
          r.bytes_uploaded, (now_ns () - t0) / 1e9);
  pthread_mutex_lock (&u->lock);
  u->os = NULL;
  pthread_mutex_unlock (&u->lock);
  objstore_close (r.os);
  manifest_free (&r.m);
  if (r.have_parent)
    manifest_free (&r.parent);
  hs_free (&r.known);
  pthread_mutex_destroy (&r.known_lock);
  return NULL;
}

/* ---- loop side ------------------------------------------------------------- */

static const char *
spill_dir (void)
{
  const char *d = getenv ("TMPDIR");
  return d && *d ? d : "/var/tmp";
}

static void
wake (struct upload *u)
{
  /* Under the lock: the thread clears u->os before closing the store. */
  if (u->os)
    objstore_wakeup (u->os);
}

int
upload_start (struct upload *u)
{
  const char *m = getenv ("REPVOL_SNAPSHOT_MEM");
  u->spill_fd = -1;
  if (!m || parse_size (m, &u->mem_max) == -1)
    u->mem_max = UPLOAD_MEM_MAX;
  pthread_mutex_init (&u->lock, NULL);
  int e = pthread_create (&u->thread, NULL, upload_main, u);
  if (e != 0)
    pthread_mutex_destroy (&u->lock);
  return -e;
}

/* Put c in the spill file: 0, or -1 with why.  The file may not take
 * the filesystem's last SPILL_RESERVE bytes (nor its last 1%): a
 * snapshot that would fill the disk under the host's other users fails,
 * with the reason, instead.
 */
#define SPILL_RESERVE (16u << 20)
static int
spill (struct upload *u, struct capture *c, char *why, size_t whylen)
{
  struct statvfs fs;

  if (u->spill_fd == -1 &&
      (u->spill_fd = open (spill_dir (), O_TMPFILE | O_RDWR | O_CLOEXEC,
                           0600)) == -1) {
    snprintf (why, whylen, "cannot create the snapshot's spill file in %s: "
              "%s (set TMPDIR to another directory)", spill_dir (),
              strerror (errno));
    return -1;
  }
  if (fstatvfs (u->spill_fd, &fs) == 0) {
    uint64_t avail = (uint64_t) fs.f_bavail * fs.f_frsize;
    uint64_t keep = MAX ((uint64_t) SPILL_RESERVE,
                         (uint64_t) fs.f_blocks * fs.f_frsize / 100);
    if (avail < keep + c->len) {
      char a[32], k[32];
      snprintf (why, whylen, "not enough free space for the snapshot's "
                "spill file in %s: %s free, a chunk needs %u bytes beyond "
                "the %s kept free (set TMPDIR to a roomier filesystem, or "
                "REPVOL_SNAPSHOT_MEM higher)", spill_dir (),
                format_size (avail, a, sizeof a), c->len,
                format_size (keep, k, sizeof k));
      return -1;
    }
  }
  if (pwrite (u->spill_fd, c->buf, c->len,
              (off_t) c->index * u->chunk_size) != c->len) {
    snprintf (why, whylen, "writing to the snapshot's spill file in %s "
              "failed: %s", spill_dir (), errno ? strerror (errno)
              : "short write");
    return -1;
  }
  return 0;
}

int
upload_give (struct upload *u, struct capture *c, char *why, size_t whylen)
{
  c->next = NULL;
  pthread_mutex_lock (&u->lock);
  if (u->ready_bytes + u->pipe_bytes + c->len > u->mem_max) {
    errno = 0;
    if (spill (u, c, why, whylen) < 0) {
      pthread_mutex_unlock (&u->lock);
      return -1;
    }
    free (c->buf);
    c->buf = NULL;
  }
  if (c->buf)
    u->ready_bytes += c->len;
  if (u->ready_tail)
    u->ready_tail->next = c;
  else
    u->ready = c;
  u->ready_tail = c;
  wake (u);
  pthread_mutex_unlock (&u->lock);
  return 0;
}

void
upload_point (struct upload *u, uint64_t total)
{
  pthread_mutex_lock (&u->lock);
  u->point_taken = true;
  u->chunks_total = total;
  wake (u);
  pthread_mutex_unlock (&u->lock);
}

void
upload_abort (struct upload *u, const char *why)
{
  pthread_mutex_lock (&u->lock);
  if (!u->abort) {
    u->abort = true;
    snprintf (u->abort_why, sizeof u->abort_why, "%s", why);
  }
  wake (u);
  pthread_mutex_unlock (&u->lock);
}

void
upload_free (struct upload *u)
{
  pthread_join (u->thread, NULL);
  for (struct capture *c = u->ready, *next; c; c = next) {
    next = c->next;
    free (c->buf);
    free (c);
  }
  if (u->spill_fd >= 0)
    close (u->spill_fd);
  pthread_mutex_destroy (&u->lock);
  free (u->url);
  free (u->name);
  free (u->volume);
  free (u->volume_uuid);
  free (u->base_url);
  free (u->base_name);
  objstore_env_free (u->env);
  free (u);
}
