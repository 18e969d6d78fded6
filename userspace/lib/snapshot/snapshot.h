/* snapshot.h - point-in-time snapshots of a live volume, and restores.
 *
 * The snapshot layer takes a consistent image of a volume while it
 * serves I/O, stores it in an object store as deduplicated chunks and a
 * manifest, and serves a volume restored from one before it is all
 * back.  It may call core/ (the loop, mailboxes, the bdev wrappers) and
 * objstore/; attach/ stacks its bdev layers and the CLI ("repvol
 * snapshot list|delete|restore", through catalog.h) calls it.  The
 * pieces: this header (the two bdev layers), catalog.h (the layout in
 * the store: manifest.c, chunk.c, gc.c) and upload.h (the upload
 * thread behind cow).
 *
 * Two bdev layers that "repvol attach" stacks between the frontend and
 * the engine:
 *
 *   frontend -> cow (cow.c) -> hydrate (hydrate.c, while restoring) -> engine
 *
 * cow keeps the change map (which chunks were written since the last
 * snapshot) and takes snapshots.  The point in time is a barrier: new
 * writes wait while those in flight finish (nothing else stalls them),
 * then the change map is frozen as the set of chunks to upload, and an
 * empty one starts.  From then on the first write to a frozen chunk not
 * yet read first copies the chunk's old contents (copy-on-write, in the
 * engine, so every replica keeps serving only live data); an upload
 * thread (upload.c) takes the chunks as they are captured, compresses,
 * hashes and stores them, and writes the manifest last.
 *
 * hydrate serves a volume restored from a snapshot before all of it has
 * been written: a read or a partial write of a chunk not yet restored
 * fetches it first, and a background task fetches the rest.
 *
 * Events of a snapshot or restore are reported as text lines (they go
 * over the attach's control socket unchanged):
 *   point NAME UNIXTIME
 *   progress DONE TOTAL BYTES_READ BYTES_UPLOADED
 *   ok NAME PARENT TOTAL BYTES_READ BYTES_UPLOADED SECONDS
 *   error: MESSAGE
 */
#ifndef REPVOL_SNAPSHOT_H
#define REPVOL_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "core/bdev.h"
#include "core/loop.h"

/* ---- event.c ---------------------------------------------------------- */

enum snap_event_kind {
  SNAP_EV_POINT = 1, SNAP_EV_PROGRESS, SNAP_EV_OK, SNAP_EV_ERROR,
};

struct snap_event {
  enum snap_event_kind kind;
  char name[128], parent[128];  /* parent "" for a full snapshot */
  int64_t time;                 /* POINT: unix time */
  uint64_t done, total;         /* chunks (OK: total) */
  uint64_t bytes_read, bytes_uploaded;
  double seconds;               /* OK */
  const char *error;            /* ERROR: the message, in the line */
};

/* An event line into *ev: 0, or -1 for a line that is none of them. */
int snap_event_parse (const char *line, struct snap_event *ev);
/* The event as one line for a person ("snapshot s1 complete: ..."). */
const char *snap_event_describe (const struct snap_event *ev, char *buf,
                                 size_t len);

/* ---- cow.c ------------------------------------------------------------ */

/* Wrap lower.  cbt is the change map to start from (ceil (size /
 * chunk_size) bits, malloc'd; the layer owns it), or NULL when it is
 * not known (every chunk counts as changed).
 */
struct bdev *cow_new (struct loop *loop, struct bdev *lower,
                      uint32_t chunk_size, uint8_t *cbt);

/* The current change map, for saving at detach (bits, length in bytes);
 * NULL when unknown.  Valid until the layer is closed.
 */
const uint8_t *cow_cbt (struct bdev *cow, size_t *len);

/* Keeping the change map durable (see cow.c).  persist() is called on
 * the loop thread with a map (malloc'd, len bytes) to make durable for
 * the base of generation gen; one at a time; its answer is
 * cow_journal_done (on the loop thread), which takes the map back: err
 * 0, it is durable; else the writes waiting for it fail with EIO (the
 * journal gives up only when the attach stops).
 */
struct cow_journal {
  void (*persist) (void *opaque, uint8_t *map, size_t len, uint64_t gen);
  void *opaque;
};
/* Start journaling, or say the base moved (a snapshot is recorded as
 * the new base).  saved: the map already durable for that base (the
 * layer owns it), or NULL for none yet.  0 or -ENOMEM (saved freed).
 */
int cow_journal_start (struct bdev *cow, const struct cow_journal *j,
                       uint8_t *saved);
void cow_journal_done (struct bdev *cow, uint8_t *map, uint64_t gen, int err);
/* No journal any more: writes go down without waiting. */
void cow_journal_stop (struct bdev *cow);

struct snap_params {
  const char *url;              /* where to store it */
  const char *name;
  const char *volume, *volume_uuid;
  uint64_t volume_size;
  /* The snapshot the change map counts from: the upload is incremental
   * (reads only changed chunks) if it is in the same store.  "" if none.
   */
  const char *base_url, *base_name;
  bool cbt_valid;               /* the map is complete since the base */
  /* The store's settings (see objstore_open_env); NULL: this process's. */
  char *const *env;
};

/* Take a snapshot now.  line() gets each event (see above) on the loop
 * thread; the last is "ok ..." or "error: ...", after which done(err)
 * runs.  0, or a negative errno (line() not called): -EBUSY if one is
 * already running, -ENOMEM.
 */
int cow_snapshot (struct bdev *cow, const struct snap_params *p,
                  void (*line) (void *opaque, const char *line),
                  void (*done) (void *opaque, int err, const char *name,
                                const char *url),
                  void *opaque);

/* ---- hydrate.c -------------------------------------------------------- */

struct hydrate_hooks {
  /* Persist the map of hydrated chunks (bits) and the count, durably;
   * writes into those chunks wait for this.  0 or an errno.
   */
  int (*save) (void *opaque, const uint8_t *map, size_t len,
               uint64_t hydrated, uint64_t total);
  /* Every chunk is in place (err 0), or hydration stopped (err, why). */
  void (*finished) (void *opaque, int err, const char *why);
  void *opaque;
};

/* Wrap lower (the new volume's engine) to serve snapshot name of url.
 * map: the chunks already hydrated (malloc'd, owned), NULL for none.
 * background: fetch the rest at depth without waiting for reads.
 * NULL with err filled if the snapshot cannot be read.
 */
struct bdev *hydrate_new (struct loop *loop, struct bdev *lower,
                          const char *url, const char *name, uint8_t *map,
                          bool background, const struct hydrate_hooks *hooks,
                          struct error *err);

/* Chunks hydrated so far and in all. */
void hydrate_progress (struct bdev *h, uint64_t *done, uint64_t *total,
                       uint64_t *bytes);

/* Bytes of a map with one bit per chunk of a volume (change map,
 * hydration map), and helpers shared by both layers.
 */
static inline size_t
chunk_map_bytes (uint64_t volume_size, uint32_t chunk_size)
{
  return ((volume_size + chunk_size - 1) / chunk_size + 7) / 8;
}

static inline bool
bit_test (const uint8_t *map, uint64_t i)
{
  return map[i >> 3] & (1u << (i & 7));
}

static inline void
bit_set (uint8_t *map, uint64_t i)
{
  map[i >> 3] |= 1u << (i & 7);
}

#endif
