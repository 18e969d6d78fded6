/* upload.c - the upload thread of a snapshot (see upload.h, snapshot.h).
 *
 * Chunks arrive already read at the point in time.  Each is hashed
 * (SHA-256 names it), skipped if all zero or already in the store as far
 * as this snapshot knows (the parent's chunks, and this upload's own),
 * else compressed and PUT; many PUTs are in flight at once while the
 * loop thread reads the next chunks.  The manifest goes last: until it
 * exists the snapshot does not.
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

/* Chunks in the pipeline (being read, compressed or stored) at once. */
#define UPLOAD_DEPTH 16
/* Chunks captured by writes wait in memory up to this much (or
 * $REPVOL_SNAPSHOT_MEM), then in an unlinked spill file in $TMPDIR or
 * /var/tmp, so a busy volume cannot make the attach grow without bound
 * during a snapshot.
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
 * why the loop gave up).  Spilled ones are read back here.
 */
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

struct put {
  struct obj_req req;
  void *encoded;
};

struct run {
  struct upload *u;
  struct objstore *os;
  struct manifest m, parent;
  bool have_parent;
  struct hashset known;
  uint64_t total, done, bytes_read, bytes_uploaded;
  int credit;                   /* chunks to ask the loop for */
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

/* One captured chunk: into the manifest, and to the store if new. */
static void
store_chunk (struct run *r, struct capture *c)
{
  uint8_t h[CHUNK_HASH_LEN];

  if (c->buf == NULL) {
    fail (r, EIO, "reading chunk %" PRIu64 " back from the spill file failed",
          c->index);
    goto finished;
  }
  r->bytes_read += c->len;
  if (mem_is_zero (c->buf, c->len)) {
    r->m.present[c->index] = false;
    goto finished;
  }
  chunk_hash (c->buf, c->len, h);
  memcpy (r->m.hashes[c->index], h, CHUNK_HASH_LEN);
  r->m.present[c->index] = true;
  if (hs_has (&r->known, h))
    goto finished;              /* already stored: dedup */

  struct put *p = calloc (1, sizeof *p);
  size_t len;
  if (p == NULL || chunk_encode (c->buf, c->len, ZSTD_LEVEL, &p->encoded,
                                 &len) < 0 || hs_add (&r->known, h) < 0) {
    if (p)
      free (p->encoded);
    free (p);
    fail (r, ENOMEM, "out of memory compressing chunk %" PRIu64, c->index);
    goto finished;
  }
  p->req.op = OBJ_PUT;
  chunk_key (h, p->req.key);
  p->req.data = p->encoded;
  p->req.len = len;
  p->req.opaque = p;
  objstore_submit (r->os, &p->req);
  free (c->buf);
  free (c);
  return;

 finished:
  r->done++;
  r->credit++;
  free (c->buf);
  free (c);
}

static void
put_done (struct run *r, struct obj_req *req)
{
  struct put *p = req->opaque;

  if (req->err.code)
    fail (r, req->err.code, "%s", error_msg (&req->err));
  else
    r->bytes_uploaded += req->len;
  r->done++;
  r->credit++;
  free (p->encoded);
  free (p);
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

static void *
upload_main (void *arg)
{
  struct run r = { .u = arg };
  struct upload *u = r.u;
  uint64_t t0 = now_ns (), last_progress = 0;
  char why[256] = "";
  bool point = false;

  if (prepare (&r) < 0)
    goto out;
  post (u, UP_READY, 0, NULL);

  /* Wait for the point (the loop wakes the store's poll).  Writes may
   * already have captured chunks by the time we look.
   */
  struct capture *early = NULL;
  bool more = false;
  while (!point && !why[0]) {
    early = take_ready (u, INT_MAX, &point, &more, why, sizeof why);
    if (!point && !why[0])
      objstore_poll (r.os, 1000);
  }
  if (why[0]) {
    while (early) {
      struct capture *next = early->next;
      free (early->buf);
      free (early);
      early = next;
    }
    fail (&r, EIO, "%s", why);
    goto out;
  }
  r.m.created = time (NULL);
  pthread_mutex_lock (&u->lock);
  r.total = u->chunks_total;
  pthread_mutex_unlock (&u->lock);
  r.credit = UPLOAD_DEPTH;

  while (r.done < r.total && !r.e) {
    if (r.credit > 0) {
      post (u, UP_CREDIT, r.credit, NULL);
      r.credit = 0;
    }
    /* Only as many as the pipeline has room for: the rest stay queued
     * (and spilled), not compressed into memory all at once.
     */
    int room = UPLOAD_DEPTH - objstore_inflight (r.os);
    struct capture *c = take_ready (u, room > 0 ? room : 0, &point, &more,
                                    why, sizeof why);
    if (early) {                /* taken with the point: first */
      struct capture *last = early;
      while (last->next)
        last = last->next;
      last->next = c;
      c = early;
      early = NULL;
    }
    if (why[0])
      fail (&r, EIO, "%s", why);
    while (c) {
      struct capture *next = c->next;
      store_chunk (&r, c);
      c = next;
    }
    struct obj_req *req;
    while ((req = objstore_poll (r.os, more && room > 0 ? 0 : 200)) != NULL) {
      put_done (&r, req);
      if (objstore_inflight (r.os) == 0)
        break;
    }
    uint64_t now = now_ns ();
    if (now - last_progress >= 500000000ull) {
      last_progress = now;
      post (u, UP_LINE, 0, "progress %" PRIu64 " %" PRIu64 " %" PRIu64
            " %" PRIu64, r.done, r.total, r.bytes_read, r.bytes_uploaded);
    }
  }
  /* Whatever happened, collect every request still in flight. */
  while (objstore_inflight (r.os) > 0) {
    struct obj_req *req = objstore_poll (r.os, 1000);
    if (req)
      put_done (&r, req);
  }
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
  if (u->ready_bytes + c->len > u->mem_max) {
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
