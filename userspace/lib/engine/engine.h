/* engine.h - the volume engine: one bdev over N replica bdevs.
 *
 * engine/ is the layer that makes N replicas one volume: it fans each
 * write out to every replica and acknowledges it once all in-sync ones
 * hold it, keeps overlapping writes in one order, reads from the
 * fastest replica, goes on without a replica that fails (after its
 * owner has recorded that durably), catches it up from the survivors'
 * dirty maps when it comes back, replaces a replica by a new one, and
 * verifies, repairs and reconciles the replicas online.  It may call
 * core/ (the loop, logging, crc32c) and the replica bdevs, only through
 * the checked wrappers of core/bdev.h; from replica/proto.h it takes
 * only the dirty-map format (RV_DIRTY_REGION, RV_DIRTY_HDR_SIZE).  It
 * knows nothing of the network or the registry, which it reaches
 * through struct engine_hooks.  What calls it: attach/ (repvol attach
 * builds it over replica clients and puts the frontend or the snapshot
 * layers on top).
 */
#ifndef REPVOL_ENGINE_H
#define REPVOL_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include "core/bdev.h"
#include "core/loop.h"

#define ENGINE_MAX_REPLICAS 8

enum engine_rep_state {
  ENGINE_IN_SYNC,               /* holds every acknowledged write */
  ENGINE_OUT,                   /* out of sync and not connected */
  ENGINE_RESYNC,                /* connected, being caught up */
};

/* What the engine asks of its owner (repvol attach: the registry and
 * the network).  All run on the loop thread.
 */
struct engine_hooks {
  /* Record replica i out of sync, durably (docs/DESIGN.md rule 2): the engine
   * acknowledges no write replica i missed before this returns 0.
   * Returns 0 or an errno, or EINPROGRESS: the owner records it in the
   * background and calls engine_out_of_sync_recorded() when done; until
   * then the engine holds every write and flush acknowledgement (reads
   * go on), however long the registry takes.
   */
  int (*mark_out_of_sync) (void *opaque, int i);
  /* Record replica i in sync again, once caught up.  0 or an errno. */
  int (*mark_in_sync) (void *opaque, int i);
  /* Try to reach replica i again: return its bdev now, or NULL and
   * later (maybe) call engine_replica_back() from the loop.
   */
  struct bdev *(*reconnect) (void *opaque, int i);
  /* Catch-up progress of replica i, about once a second. */
  void (*progress) (void *opaque, int i, uint64_t done, uint64_t total,
                    uint64_t rate);
  /* Replica i refused this attachment's epoch (EPERM): a newer one has
   * fenced it.  Called once; the engine is fenced already (see
   * engine_fence).  May be NULL.
   */
  void (*fenced) (void *opaque, int i);
  void *opaque;
};

/* The owner's answer to a mark_out_of_sync that returned EINPROGRESS:
 * err 0 releases the held acknowledgements, an errno fails the writes
 * (the engine is then broken, as when the hook fails at once).
 */
struct bdev;
void engine_out_of_sync_recorded (struct bdev *dev, int i, int err);

struct engine_config {
  uint64_t resync_rate;         /* catch-up bytes per second (0: default) */
  unsigned reconnect_ms;        /* between attempts to reach a lost replica */
  /* A FLUSH to every replica this long after the first write no flush
   * covers yet (0: the default, 1000; ENGINE_FLUSH_NEVER: none), so what
   * a lost replica may not have made stable stays bounded
   * (docs/DESIGN.md 2.x, rule 5).
   */
  unsigned flush_interval_ms;
};
#define ENGINE_FLUSH_NEVER UINT32_MAX

/* Build the engine over n replicas.  replicas[i] may be NULL when
 * states[i] is ENGINE_OUT (not reachable now); the engine owns the
 * bdevs.  names label replicas in log lines; info is what the volume
 * promises.  hooks may be NULL (no degraded operation: a failed
 * replica fails the writes it misses, as in unit tests).
 */
struct bdev *engine_new (struct loop *loop, struct bdev **replicas,
                         const char *const *names,
                         const enum engine_rep_state *states, int n,
                         const struct bdev_info *info,
                         const struct engine_hooks *hooks,
                         const struct engine_config *cfg);

/* Mark the whole volume dirty on the in-sync replicas, so that every
 * other replica is caught up by a full copy (after a forced attach from
 * a stale replica, or for a new, empty replica).  Write acks wait until
 * the marks are durable; if they fail, the volume fails writes.
 */
void engine_mark_all_dirty (struct bdev *engine);

/* This attachment has been fenced (a replica refused its epoch, or the
 * owner learnt it otherwise): from now on every request, those in
 * flight included, completes with EIO, and the engine changes nothing
 * (no degrade, no catch-up, no reconnect): a newer attachment speaks
 * for the volume.
 */
void engine_fence (struct bdev *engine);

/* Replica i's state now (healing and jobs watch it). */
enum engine_rep_state engine_replica_state (struct bdev *engine, int i);

/* Is some write not covered by a completed flush yet (a replica lost now
 * gets those regions copied)?  And the background flushes issued so far
 * (docs/DESIGN.md 2.11).  For metrics.
 */
bool engine_unflushed (struct bdev *engine);
uint64_t engine_background_flushes (struct bdev *engine);

/* A lost replica answers again (see hooks.reconnect): catch it up. */
void engine_replica_back (struct bdev *engine, int i, struct bdev *b);

/* Put replica b (NULL: not reachable yet; the engine keeps trying) in
 * slot i, replacing what was there: it is caught up by a full copy
 * while the volume serves ("repvol replica replace").
 */
void engine_replace (struct bdev *engine, int i, struct bdev *b,
                     const char *name);

/* Online verify: compare the in-sync replicas region by region with
 * checksums computed on the servers, each region ordered against
 * client writes like a write.  Each differing region is reported as a
 * line; with repair it is copied from the majority (or, with no
 * majority, the first in-sync replica) to the others.  done gets the
 * number of differing and repaired regions, and an errno or 0.
 */
#define ENGINE_VERIFY_REGION (1u << 20)
void engine_verify (struct bdev *engine, bool repair,
                    void (*report) (void *opaque, const char *line),
                    void (*done) (void *opaque, uint64_t differing,
                                  uint64_t repaired, int err),
                    void *opaque);

/* After a host died with writes in flight (the attach took the volume
 * over), make the in-sync replicas equal again: each region is copied
 * from the first in-sync replica to any that differs, and meanwhile
 * reads go only to that replica.  done gets the regions repaired and 0,
 * or an errno.  Shares the machinery (and the one-at-a-time rule) with
 * engine_verify.
 */
void engine_reconcile (struct bdev *engine,
                       void (*done) (void *opaque, uint64_t repaired, int err),
                       void *opaque);

#endif
