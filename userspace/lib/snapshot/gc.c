/* gc.c - the catalog as a whole: listing snapshots, the upload and
 * collection markers that keep uploads and deletes apart, and deleting
 * a snapshot with mark-and-sweep collection of the chunks no remaining
 * manifest references.  The rules are in catalog.h and
 * man/repvol-snapshot.5 ("DELETION AND GARBAGE COLLECTION",
 * "CONCURRENCY").
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/util.h"
#include "snapshot/catalog.h"

/* Chunk deletes kept in flight during collection. */
#define SWEEP_DEPTH 32

/* ---- listing --------------------------------------------------------- */

struct names {
  char **v;
  size_t n, cap;
};

/* 0 or -ENOMEM. */
static int
names_add (struct names *ns, const char *s, size_t len)
{
  if (ns->n == ns->cap) {
    size_t cap = ns->cap ? 2 * ns->cap : 64;
    char **v = realloc (ns->v, cap * sizeof *v);
    if (v == NULL)
      return -ENOMEM;
    ns->v = v;
    ns->cap = cap;
  }
  if ((ns->v[ns->n] = strndup (s, len)) == NULL)
    return -ENOMEM;
  ns->n++;
  return 0;
}

static void
names_free (struct names *ns)
{
  for (size_t i = 0; i < ns->n; i++)
    free (ns->v[i]);
  free (ns->v);
  ns->v = NULL;
  ns->n = ns->cap = 0;
}

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* snapshots/NAME.json -> NAME; other keys under snapshots/ are not
 * manifests and are left alone.
 */
static int
add_manifest_name (void *opaque, const struct obj_entry *e)
{
  const char *k = e->key + strlen ("snapshots/");
  size_t n = strlen (k);
  if (n <= 5 || strcmp (k + n - 5, ".json") != 0)
    return 0;
  char name[SNAP_NAME_MAX];
  if (n - 5 >= sizeof name)
    return 0;
  memcpy (name, k, n - 5);
  name[n - 5] = '\0';
  if (!snapshot_name_valid (name))
    return 0;
  return names_add (opaque, name, n - 5);
}

/* Every manifest's name, sorted.  0 or a negative errno. */
static int
list_manifests (struct objstore *os, struct names *ns, struct error *err)
{
  int r = objstore_list (os, "snapshots/", add_manifest_name, ns, err);
  if (r == -ENOMEM)
    error_set (err, ENOMEM, "listing snapshots/: out of memory");
  if (r != 0) {
    names_free (ns);
    return r;
  }
  if (ns->n)
    qsort (ns->v, ns->n, sizeof *ns->v, cmp_str);
  return 0;
}

int
snapshot_list (struct objstore *os,
               int (*fn) (void *opaque, const struct manifest *m),
               void *opaque, struct error *err)
{
  struct names ns = { 0 };
  int ret = list_manifests (os, &ns, err);
  if (ret < 0)
    return ret;
  for (size_t i = 0; i < ns.n && ret == 0; i++) {
    struct manifest m;
    struct error why = { 0 };
    int e = manifest_read (os, ns.v[i], &m, &why);
    if (e == -ENOENT)
      continue;                 /* deleted since the listing */
    if (e == -EINVAL) {
      /* One bad manifest must not hide the others. */
      log_warn ("skipping snapshot '%s': %s", ns.v[i], error_msg (&why));
      continue;
    }
    if (e < 0) {
      if (err)
        *err = why;
      ret = e;
      break;
    }
    ret = fn (opaque, &m);
    manifest_free (&m);
  }
  names_free (&ns);
  return ret;
}

/* ---- upload markers -------------------------------------------------- */

/* An upload or a collection that has not touched its marker for this
 * long is taken to have died with its process.
 */
#define UPLOAD_STALE_SECS (24 * 3600)
#define COLLECT_STALE_SECS 3600
/* How long snapshot_begin_upload waits for running collections. */
#define COLLECT_WAIT_SECS 600

struct young {
  time_t now, max_age;
  char key[OBJ_KEY_MAX];        /* the first young marker found */
};

static int
find_young (void *opaque, const struct obj_entry *e)
{
  struct young *y = opaque;
  if (y->now - e->mtime < y->max_age) {
    snprintf (y->key, sizeof y->key, "%s", e->key);
    return 1;
  }
  return 0;
}

/* 1 and the key in y->key if a marker under prefix is younger than
 * max_age, 0 if none, a negative errno (err filled) on error.
 */
static int
young_marker (struct objstore *os, const char *prefix, time_t max_age,
              struct young *y, struct error *err)
{
  y->now = time (NULL);
  y->max_age = max_age;
  y->key[0] = '\0';
  int r = objstore_list (os, prefix, find_young, y, err);
  return r < 0 ? r : r > 0;
}

/* The key of snapshot name's marker under dir ("inprogress",
 * "collecting").  0, or -EINVAL for a name that is not valid.
 */
static int
marker_key (const char *dir, const char *name, char key[OBJ_KEY_MAX],
            struct error *err)
{
  int e = snapshot_name_check (name, err);
  if (e == 0)
    snprintf (key, OBJ_KEY_MAX, "%s/%s", dir, name);
  return e;
}

static int
put_marker (struct objstore *os, const char *key, struct error *err)
{
  char host[256] = "";
  if (gethostname (host, sizeof host - 1) == -1)
    snprintf (host, sizeof host, "unknown");
  json_object *o = json_object_new_object ();
  if (o == NULL)
    return error_set (err, ENOMEM, "%s: out of memory", key);
  json_object_object_add (o, "host", json_object_new_string (host));
  json_object_object_add (o, "pid", json_object_new_int64 (getpid ()));
  json_object_object_add (o, "started", json_object_new_int64 (time (NULL)));
  const char *s = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN);
  int e = objstore_put (os, key, s, strlen (s), err);
  json_object_put (o);
  return e;
}

/* Uploads and collections each write their marker first and look for
 * the other kind second.  The store is read-after-write and
 * list-after-write consistent (a local directory; S3 since 2020), so of
 * an upload and a collection running at once at least one sees the
 * other's marker: either the collection skips, or the upload waits here
 * until the collection is over before it trusts (deduplicates against)
 * any existing chunk.
 */
int
snapshot_begin_upload (struct objstore *os, const char *name,
                       struct error *err)
{
  char key[OBJ_KEY_MAX];
  int e = marker_key ("inprogress", name, key, err);
  if (e < 0 || (e = put_marker (os, key, err)) < 0)
    return e;
  struct young y;
  time_t deadline = time (NULL) + COLLECT_WAIT_SECS;
  bool said = false;
  int r;
  while ((r = young_marker (os, "collecting/", COLLECT_STALE_SECS, &y,
                            err)) == 1) {
    if (time (NULL) >= deadline) {
      error_set (err, EBUSY, "%s: a snapshot delete is still collecting "
                 "chunks after %d s; try again later", y.key,
                 COLLECT_WAIT_SECS);
      objstore_delete (os, key, NULL);
      return -EBUSY;
    }
    if (!said)
      log_info ("waiting for a snapshot delete to finish collecting chunks "
                "(%s)", y.key);
    said = true;
    sleep (1);
  }
  if (r < 0) {
    objstore_delete (os, key, NULL);
    return r;
  }
  return 0;
}

int
snapshot_end_upload (struct objstore *os, const char *name,
                     struct error *err)
{
  char key[OBJ_KEY_MAX];
  int e = marker_key ("inprogress", name, key, err);
  return e < 0 ? e : objstore_delete (os, key, err);
}

/* ---- delete and collection ------------------------------------------- */

static int
cmp_hash (const void *a, const void *b)
{
  return memcmp (a, b, CHUNK_HASH_LEN);
}

struct marks {
  uint8_t (*h)[CHUNK_HASH_LEN];
  size_t n, cap;
};

/* Add m's hashes to mk.  0 or -ENOMEM. */
static int
mark_manifest (struct marks *mk, const struct manifest *m)
{
  for (uint64_t i = 0; i < m->nchunks; i++) {
    if (!m->present[i])
      continue;
    if (mk->n == mk->cap) {
      size_t cap = mk->cap ? 2 * mk->cap : 1024;
      void *h = realloc (mk->h, cap * sizeof *mk->h);
      if (h == NULL)
        return -ENOMEM;
      mk->h = h;
      mk->cap = cap;
    }
    memcpy (mk->h[mk->n++], m->hashes[i], CHUNK_HASH_LEN);
  }
  return 0;
}

struct sweep {
  const struct marks *mk;
  struct names dead;            /* keys to delete */
  uint64_t *dead_size;
  size_t dead_cap;
  uint64_t kept;
  bool nomem;
};

/* chunks/HH/HEX with HH the first two digits of HEX; anything else
 * under chunks/ is not ours to delete.
 */
static int
sweep_entry (void *opaque, const struct obj_entry *e)
{
  struct sweep *sw = opaque;
  const char *k = e->key + strlen ("chunks/");
  uint8_t h[CHUNK_HASH_LEN];
  if (strlen (k) != 3 + CHUNK_HEX_LEN || k[2] != '/' ||
      strncmp (k, k + 3, 2) != 0 || hex_to_hash (k + 3, h) < 0)
    return 0;
  if (sw->mk->n && bsearch (h, sw->mk->h, sw->mk->n, CHUNK_HASH_LEN,
                            cmp_hash) != NULL) {
    sw->kept++;
    return 0;
  }
  if (sw->dead.n == sw->dead_cap) {
    size_t cap = sw->dead_cap ? 2 * sw->dead_cap : 64;
    uint64_t *s = realloc (sw->dead_size, cap * sizeof *s);
    if (s == NULL)
      goto nomem;
    sw->dead_size = s;
    sw->dead_cap = cap;
  }
  sw->dead_size[sw->dead.n] = e->size;
  if (names_add (&sw->dead, e->key, strlen (e->key)) < 0)
    goto nomem;
  return 0;
 nomem:
  sw->nomem = true;
  return -ENOMEM;
}

/* Delete every key in sw->dead, SWEEP_DEPTH at a time.  0, or the
 * first error negated (err filled) after trying them all.
 */
static int
delete_keys (struct objstore *os, struct sweep *sw, struct delete_stats *st,
             struct error *err)
{
  struct obj_req *reqs = calloc (SWEEP_DEPTH, sizeof *reqs);
  if (reqs == NULL)
    return error_set (err, ENOMEM, "out of memory");
  struct obj_req *idle[SWEEP_DEPTH];
  int nidle = SWEEP_DEPTH, inflight = 0, first = 0;
  for (int i = 0; i < SWEEP_DEPTH; i++)
    idle[i] = &reqs[SWEEP_DEPTH - 1 - i];
  size_t next = 0;

  while (next < sw->dead.n || inflight > 0) {
    while (next < sw->dead.n && nidle > 0) {
      struct obj_req *r = idle[--nidle];
      memset (r, 0, sizeof *r);
      r->op = OBJ_DELETE;
      snprintf (r->key, sizeof r->key, "%s", sw->dead.v[next]);
      r->opaque = (void *) (uintptr_t) next;
      objstore_submit (os, r);
      inflight++;
      next++;
    }
    struct obj_req *r = objstore_poll (os, 1000);
    if (r == NULL)
      continue;
    inflight--;
    if (r->err.code == 0) {
      st->chunks_deleted++;
      st->bytes_freed += sw->dead_size[(uintptr_t) r->opaque];
    }
    else if (first == 0) {
      first = -r->err.code;
      if (err)
        *err = r->err;
    }
    idle[nidle++] = r;
  }
  free (reqs);
  return first;
}

/* Why concurrent deletes are safe: a delete removes its own manifest
 * before it marks, and marks from a listing of the manifests taken after
 * that.  A manifest that survives every concurrent delete is never
 * removed, so it is in every delete's listing and every delete marks its
 * chunks; a delete only sweeps chunks that no manifest in its listing
 * references.  The chunks that only the deleted snapshots reference can
 * be swept by either delete, or by both (a DELETE of a missing object is
 * not an error).  A manifest that cannot be read is never assumed to
 * reference nothing: collection stops instead.  New manifests are the
 * uploads' business: see the markers above.
 */
int
snapshot_delete (struct objstore *os, const char *name,
                 struct delete_stats *st, struct error *err)
{
  char key[OBJ_KEY_MAX], mkey[OBJ_KEY_MAX];
  memset (st, 0, sizeof *st);
  int e = marker_key ("collecting", name, mkey, err);
  if (e < 0)
    return e;
  manifest_key (name, key);
  /* Only existence matters: a manifest too damaged to parse must still
   * be deletable.
   */
  e = objstore_head (os, key, NULL, err);
  if (e == -ENOENT)
    error_set (err, ENOENT, "no snapshot '%s' in %s", name, objstore_url (os));
  if (e < 0 || (e = objstore_delete (os, key, err)) < 0)
    return e;

  if ((e = put_marker (os, mkey, err)) < 0)
    return e;

  struct young y;
  struct names ns = { 0 };
  struct marks mk = { 0 };
  struct sweep sw = { .mk = &mk };
  int r = young_marker (os, "inprogress/", UPLOAD_STALE_SECS, &y, err);
  if (r < 0) {
    e = r;
    goto out;
  }
  if (r == 1) {
    st->collection_skipped = true;
    snprintf (st->skip_reason, sizeof st->skip_reason,
              "an upload is in progress (%s)", y.key);
    goto out;
  }

  /* Mark. */
  if ((e = list_manifests (os, &ns, err)) < 0)
    goto out;
  for (size_t i = 0; i < ns.n; i++) {
    struct manifest m;
    struct error why = { 0 };
    int me = manifest_read (os, ns.v[i], &m, &why);
    if (me == -ENOENT)
      continue;                 /* deleted meanwhile: its chunks are fair game */
    if (me < 0) {
      st->collection_skipped = true;
      snprintf (st->skip_reason, sizeof st->skip_reason,
                "cannot read a remaining manifest: %.200s", error_msg (&why));
      log_warn ("not collecting chunks: %s", error_msg (&why));
      goto out;
    }
    e = mark_manifest (&mk, &m);
    manifest_free (&m);
    if (e < 0) {
      error_set (err, -e, "out of memory");
      goto out;
    }
  }
  if (mk.n)
    qsort (mk.h, mk.n, CHUNK_HASH_LEN, cmp_hash);

  /* Sweep. */
  r = objstore_list (os, "chunks/", sweep_entry, &sw, err);
  if (r != 0) {
    if (sw.nomem)
      error_set (err, ENOMEM, "out of memory");
    e = sw.nomem ? -ENOMEM : r;
    goto out;
  }
  st->chunks_kept = sw.kept;
  e = delete_keys (os, &sw, st, err);

 out:
  {
    struct error e2 = { 0 };
    /* Best effort: a marker left behind only delays uploads until it
     * goes stale.
     */
    if (objstore_delete (os, mkey, &e2) != 0)
      log_warn ("%s", error_msg (&e2));
  }
  names_free (&ns);
  names_free (&sw.dead);
  free (sw.dead_size);
  free (mk.h);
  return e;
}
