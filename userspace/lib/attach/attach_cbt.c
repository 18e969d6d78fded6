/* attach_cbt.c - the change map (which chunks changed since the last
 * snapshot) across attaches and crashes.
 *
 * The map lives in the volume's "cbt" blob.  Loaded at attach when the
 * record says it can be trusted, it is kept durable while attached by a
 * journal: the cow layer holds the first write into a chunk since the
 * base until a map with that chunk's bit is in the blob, which a thread
 * of its own writes (a registry call may block for seconds; the loop
 * never waits on one).  So a host that dies leaves a map that is
 * complete for its base, and the next snapshot is still incremental
 * (docs/DESIGN.md, "Change tracking").  The blob names the base it
 * counts from, and is trusted only when that is the base the record
 * names: a crash between recording a new base and the first map for it
 * costs one full snapshot, never a wrong one.
 *
 * Blob: "RVCBT001", u16 url length, u16 name length (little endian),
 * the base's URL and name, then the map (one bit per chunk).  A blob of
 * exactly the map's length is the older form, written at a clean detach
 * and trusted as the record's base.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attach/attach_internal.h"
#include "core/mailbox.h"
#include "core/util.h"
#include "snapshot/snapshot.h"

#define CBT_MAGIC "RVCBT001"
#define CBT_HDR 12              /* magic + two u16 */

struct cbt_job {
  struct mailbox_msg msg;       /* first: the answer to the loop */
  uint8_t *map;
  size_t len;
  uint64_t gen;
  char base_url[sizeof ((struct reg_cbt *) 0)->base_url];
  char base_name[sizeof ((struct reg_cbt *) 0)->base_name];
  int err;
};

struct cbt_journal {
  struct attach *a;
  struct registry *reg;         /* the thread's own handle */
  struct mailbox mb;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct cbt_job *job;          /* to persist; one at a time */
  bool stop;
};

/* The blob: header naming base, then map. */
static uint8_t *
encode (const char *url, const char *name, const uint8_t *map, size_t len,
        size_t *out)
{
  size_t ul = strlen (url), nl = strlen (name);
  uint8_t *b = malloc (CBT_HDR + ul + nl + len);

  if (b == NULL)
    return NULL;
  memcpy (b, CBT_MAGIC, 8);
  b[8] = ul & 0xff; b[9] = ul >> 8;
  b[10] = nl & 0xff; b[11] = nl >> 8;
  memcpy (b + CBT_HDR, url, ul);
  memcpy (b + CBT_HDR + ul, name, nl);
  memcpy (b + CBT_HDR + ul + nl, map, len);
  *out = CBT_HDR + ul + nl + len;
  return b;
}

/* The map in blob b if it counts from base (url, name) and has want
 * bytes; else NULL (with why).
 */
static const uint8_t *
decode (const uint8_t *b, size_t blen, const char *url, const char *name,
        size_t want, const char **why)
{
  if (blen == want)
    return b;                   /* the older form: the record's base */
  if (blen < CBT_HDR || memcmp (b, CBT_MAGIC, 8) != 0) {
    *why = "not a change map";
    return NULL;
  }
  size_t ul = b[8] | (size_t) b[9] << 8, nl = b[10] | (size_t) b[11] << 8;
  if (CBT_HDR + ul + nl + want != blen) {
    *why = "a change map of another size";
    return NULL;
  }
  if (ul != strlen (url) || memcmp (b + CBT_HDR, url, ul) != 0 ||
      nl != strlen (name) || memcmp (b + CBT_HDR + ul, name, nl) != 0) {
    *why = "a change map for another base (a crash just after a snapshot)";
    return NULL;
  }
  return b + CBT_HDR + ul + nl;
}

static int
put_map (struct registry *reg, const char *vol, const char *url,
         const char *name, const uint8_t *map, size_t len, struct error *err)
{
  size_t blen;
  uint8_t *blob = encode (url, name, map, len, &blen);

  if (blob == NULL)
    return error_set (err, ENOMEM, "out of memory");
  int r = registry_blob_put (reg, vol, "cbt", blob, blen, err);
  free (blob);
  return r;
}

/* ---- the journal's thread ------------------------------------------------- */

static void *
journal_thread (void *arg)
{
  struct cbt_journal *j = arg;
  const char *vol = j->a->vol.name;   /* fixed while attached */

  pthread_mutex_lock (&j->lock);
  for (;;) {
    while (!j->job && !j->stop)
      pthread_cond_wait (&j->cond, &j->lock);
    if (!j->job)
      break;
    struct cbt_job *job = j->job;
    unsigned backoff_ms = 100;
    pthread_mutex_unlock (&j->lock);
    /* Until it lands: the writes waiting for it are held (like those
     * behind a degrade still to record), so a registry away for a while
     * delays writes into fresh chunks, never loses a bit.
     */
    for (;;) {
      struct error err = { 0 };
      if (put_map (j->reg, vol, job->base_url, job->base_name, job->map,
                   job->len, &err) == 0) {
        job->err = 0;
        break;
      }
      log_warn ("%s: cannot save the change map (%s); writes into chunks "
                "not yet marked wait", vol, error_msg (&err));
      pthread_mutex_lock (&j->lock);
      bool stop = j->stop;
      if (!stop) {
        struct timespec ts;
        clock_gettime (CLOCK_REALTIME, &ts);
        ts.tv_sec += backoff_ms / 1000;
        ts.tv_nsec += (long) (backoff_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
          ts.tv_sec++;
          ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait (&j->cond, &j->lock, &ts);
        stop = j->stop;
      }
      pthread_mutex_unlock (&j->lock);
      if (stop) {
        job->err = EIO;
        break;
      }
      backoff_ms = MIN (backoff_ms * 2, 2000u);
    }
    pthread_mutex_lock (&j->lock);
    j->job = NULL;
    mailbox_post (&j->mb, &job->msg);
  }
  pthread_mutex_unlock (&j->lock);
  return NULL;
}

static void
journal_answer (struct mailbox *mb, struct mailbox_msg *msg)
{
  struct cbt_journal *j = mb->opaque;
  struct cbt_job *job = (struct cbt_job *) msg;

  /* Once stopping, the loop no longer runs: the writes still waiting
   * fail rather than go down into an engine that is being closed.
   */
  if (j->a->cow)
    cow_journal_done (j->a->cow, job->map, job->gen,
                      j->stop ? EIO : job->err);
  else
    free (job->map);
  free (job);
}

/* cow's persist: hand the map to the thread with the base it counts
 * from (the record's base as this attach knows it).
 */
static void
journal_persist (void *opaque, uint8_t *map, size_t len, uint64_t gen)
{
  struct cbt_journal *j = opaque;
  struct cbt_job *job = calloc (1, sizeof *job);

  if (job == NULL) {
    cow_journal_done (j->a->cow, map, gen, ENOMEM);
    return;
  }
  job->map = map;
  job->len = len;
  job->gen = gen;
  snprintf (job->base_url, sizeof job->base_url, "%s", j->a->vol.cbt.base_url);
  snprintf (job->base_name, sizeof job->base_name, "%s",
            j->a->vol.cbt.base_name);
  pthread_mutex_lock (&j->lock);
  j->job = job;
  pthread_cond_signal (&j->cond);
  pthread_mutex_unlock (&j->lock);
}

/* Stop the journal's thread: a persist still retrying gives up. */
static void
stop_and_free (struct attach *a)
{
  struct cbt_journal *j = a->cbt_journal;

  if (j == NULL)
    return;
  pthread_mutex_lock (&j->lock);
  j->stop = true;
  pthread_cond_signal (&j->cond);
  pthread_mutex_unlock (&j->lock);
  pthread_join (j->thread, NULL);
  mailbox_fini (&j->mb);        /* delivers a last answer */
  registry_close (j->reg);
  pthread_mutex_destroy (&j->lock);
  pthread_cond_destroy (&j->cond);
  free (j);
  a->cbt_journal = NULL;
}

static int
untrust (struct reg_volume *v, void *arg)
{
  if (!attach_owns (v, arg))
    return ESTALE;
  v->cbt.valid = false;         /* until a clean detach saves it */
  return 0;
}

/* A copy of the cow's map, and that copy put in the blob for the base
 * in a->vol.cbt, now (on the loop thread, like the record's update it
 * comes with); NULL if either fails.
 */
/* A copy of the cow's map (len set), or NULL (unknown, or no memory). */
static uint8_t *
map_copy (struct attach *a, size_t *len)
{
  const uint8_t *map = cow_cbt (a->cow, len);
  uint8_t *copy = map ? malloc (*len) : NULL;

  if (copy)
    memcpy (copy, map, *len);
  return copy;
}

static uint8_t *
save_now (struct attach *a)
{
  size_t len;
  uint8_t *copy = map_copy (a, &len);
  struct error err = { 0 };

  if (copy == NULL)
    return NULL;
  if (put_map (a->reg, a->vol.name, a->vol.cbt.base_url,
               a->vol.cbt.base_name, copy, len, &err) < 0) {
    log_warn ("%s: cannot save the change map now (%s): the journal will",
              a->vol.name, error_msg (&err));
    free (copy);
    return NULL;
  }
  return copy;
}

/* Journal from now on, for the base in a->vol.cbt (a snapshot just
 * recorded as the base, or the one the loaded map counts from); saved is
 * what the blob already holds for it (taken over), or NULL.
 */
static void
journal_start (struct attach *a, uint8_t *saved)
{
  struct cbt_journal *j = a->cbt_journal;
  struct error err = { 0 };

  if (!a->vol.cbt.base_name[0] || a->cow == NULL) {
    free (saved);
    return;                     /* no base: the next snapshot is full */
  }
  if (j == NULL) {
    if ((j = calloc (1, sizeof *j)) == NULL)
      goto fail;
    j->a = a;
    pthread_mutex_init (&j->lock, NULL);
    pthread_cond_init (&j->cond, NULL);
    if ((j->reg = registry_open_again (a->reg, &err)) == NULL ||
        mailbox_init (&j->mb, a->loop, journal_answer, j) < 0) {
      registry_close (j->reg);
      free (j);
      goto fail;
    }
    if (pthread_create (&j->thread, NULL, journal_thread, j) != 0) {
      mailbox_fini (&j->mb);
      registry_close (j->reg);
      free (j);
      goto fail;
    }
    a->cbt_journal = j;
  }
  struct cow_journal cj = { .persist = journal_persist, .opaque = j };
  int r = cow_journal_start (a->cow, &cj, saved);
  saved = NULL;
  if (r == 0)
    return;
 fail:
  free (saved);
  /* Without a journal the map stays in memory only: the record must not
   * call the saved one trusted until a clean detach saves it again.
   */
  log_warn ("%s: cannot keep the change map durable%s%s: a crash would "
            "make the next snapshot read every chunk", a->vol.name,
            err.msg[0] ? ": " : "", err.msg);
  if (a->cow)
    cow_journal_stop (a->cow);
  stop_and_free (a);
  if (registry_update (a->reg, a->vol.name, untrust, a, &err) < 0)
    log_error ("%s: cannot mark the saved change map untrusted: %s",
               a->vol.name, error_msg (&err));
}

/* ---- at attach and detach -------------------------------------------------- */

static int
take_cbt (struct reg_volume *v, void *arg)
{
  struct attach *a = arg;

  if (!attach_owns (v, a))
    return ESTALE;
  /* With a base the journal keeps the blob complete; without one there
   * is nothing to keep, and the flag says so until a clean detach.
   */
  if (!v->cbt.base_name[0])
    v->cbt.valid = false;
  return 0;
}

uint8_t *
attach_cbt_load (struct attach *a)
{
  size_t want = chunk_map_bytes (a->vol.size, a->vol.chunk_size);
  void *blob = NULL;
  const uint8_t *map = NULL;
  uint8_t *copy = NULL;
  const char *why = "";
  size_t len;
  struct error rerr = { 0 };

  if (!a->vol.cbt.valid)
    return NULL;
  if (registry_blob_get (a->reg, a->vol.name, "cbt", &blob, &len, &rerr) < 0) {
    if (rerr.code != ENOENT)
      return NULL;
    copy = calloc (1, want);    /* none saved yet: nothing changed */
  }
  else if ((map = decode (blob, len, a->vol.cbt.base_url,
                          a->vol.cbt.base_name, want, &why)) == NULL)
    log_info ("%s: the saved change map is %s: the next snapshot reads "
              "every chunk", a->vol.name, why);
  else if ((copy = malloc (want)) != NULL)
    memcpy (copy, map, want);
  free (blob);
  if (copy == NULL)
    return NULL;
  if (registry_update (a->reg, a->vol.name, take_cbt, a, &rerr) < 0) {
    if (rerr.code != ESTALE && rerr.code != ENOENT)
      log_error ("%s", error_msg (&rerr));
    free (copy);
    return NULL;
  }
  a->cbt_loaded = true;
  return copy;
}

static int
record_valid (struct reg_volume *v, void *arg)
{
  struct attach *a = arg;

  if (!attach_owns (v, a))
    return ESTALE;
  v->cbt = a->vol.cbt;
  v->cbt.valid = true;
  return 0;
}

/* A snapshot is done and recorded as the base (a->vol.cbt): the map
 * counts from its point, and the journal from now on for it.
 */
void
attach_cbt_rebased (struct attach *a)
{
  a->cbt_loaded = true;
  /* Saved for the new base before the record names it: a crash right
   * after this snapshot still finds a map that counts from it.
   */
  journal_start (a, a->vol.cbt.base_name[0] ? save_now (a) : NULL);
}

/* At attach: the map just loaded is what the blob holds. */
void
attach_cbt_journal (struct attach *a)
{
  size_t len;

  journal_start (a, map_copy (a, &len));
}

/* The map is complete since the base: the next attach starts from it. */
void
attach_cbt_save (struct attach *a)
{
  size_t len;
  const uint8_t *map;
  struct error rerr = { 0 };

  stop_and_free (a);
  if (a->cow == NULL || (map = cow_cbt (a->cow, &len)) == NULL)
    return;
  if (put_map (a->reg, a->vol.name, a->vol.cbt.base_url,
               a->vol.cbt.base_name, map, len, &rerr) < 0 ||
      registry_update (a->reg, a->vol.name, record_valid, a, &rerr) < 0)
    log_warn ("%s: cannot save the change map (%s): the next snapshot "
              "reads the whole volume", a->vol.name, error_msg (&rerr));
}

/* Every path out of an attach: no thread outlives it. */
void
attach_cbt_fini (struct attach *a)
{
  stop_and_free (a);
}
