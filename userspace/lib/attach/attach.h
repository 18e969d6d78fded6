/* attach.h - "repvol attach": fence, build the engine over the
 * replicas, serve it through a frontend until detach.
 *
 * attach/ is the top of the library: the process that owns a volume
 * while it is attached.  It claims the volume in the registry with a
 * new epoch (fencing any former attachment), opens a replica client
 * for every replica, stacks the engine over them and the snapshot
 * layers (cow, hydrate) over the engine, serves the result through a
 * frontend, keeps the registry's view of the replicas current, and
 * runs the control channel (control.h) on which other repvol commands
 * reach it.  It may call every layer below: registry, engine, replica
 * client, frontend, snapshot (and core).  What calls it: the repvol
 * CLI (the attach verb, and snapshot create / restore, which attach a
 * detached volume for one job).
 */
#ifndef REPVOL_ATTACH_H
#define REPVOL_ATTACH_H

#include <stdbool.h>
#include <stdint.h>
#include "registry/registry.h"

/* The attachment "frontends" that a CLI verb records while it holds a
 * volume ("repvol delete", "repvol epoch --reset"): attach refuses such
 * a volume.
 */
#define ATTACH_DELETE_CLAIM "deleting"
#define ATTACH_EPOCH_CLAIM "epoch-reset"
#define ATTACH_RESIZE_CLAIM "resizing"

/* The exit code of an attach that stopped because a newer attachment
 * fenced it (a replica refused its epoch, or the registry names
 * another attachment).
 */
#define ATTACH_EXIT_FENCED 3

#define ATTACH_LEASE_TTL 10     /* seconds */

struct attach_opts {
  const char *volume;
  /* How the volume is served: a frontend name from frontend.c's table
   * ("nbd", "ublk", "nbd-kernel") and its own spec string ("unix:PATH"
   * or "tcp:ADDR:PORT" for nbd; "queues=N,depth=D" for ublk; "/dev/nbdN"
   * or "auto" for nbd-kernel).
   */
  const char *frontend;
  const char *spec;
  /* Server credentials for NBD over TCP, which then requires STARTTLS
   * (frontend.h, struct frontend's tls); NULL: plaintext.  Not owned.
   */
  struct tls_creds *nbd_tls;
  int timeout_ms;               /* replica I/O timeout (default 10000) */
  /* An existing attachment (a host that died, or is only cut off) is
   * taken over and fenced by the new epoch, unless this is set.
   */
  bool no_takeover;
  /* An attachment on this host whose process still runs is refused
   * unless this is set (then it is taken over and fenced).
   */
  bool force;
  /* Serve from this out-of-sync replica (ADDR:PORT as registered) when
   * no in-sync one can be reached; the others are then copied in full.
   */
  const char *force_stale;
  uint64_t resync_rate;         /* catch-up bytes/s, 0: the default */
  /* Flush every replica this many ms after a write no flush covers yet
   * (0: the default, 1000; ENGINE_FLUSH_NEVER: never).
   */
  unsigned flush_interval_ms;
  /* This host's name in the registry (NULL: $REPVOL_HOST, else the
   * host name), and the attach lease's TTL in seconds (0: the default,
   * ATTACH_LEASE_TTL).  Another host may take the volume over once the
   * lease has expired, or with force.
   */
  const char *host;
  unsigned lease_ttl;
  /* Self-healing (docs/DESIGN.md, "Self-healing"): a replica that has
   * been unreachable this many seconds is replaced by a spare from the
   * pool, chosen by the placement rules, and copied in full while the
   * volume serves.  0: never.
   */
  unsigned heal_after;
  /* Count into this (metrics/metrics.h; not owned), which the caller
   * serves (--metrics); NULL: no metrics.
   */
  struct metrics *metrics;

  /* Instead of serving (frontend NULL): attach, do one job, detach.
   * Its event lines (see snapshot/snapshot.h) go to job_line.
   */
  enum attach_job {
    ATTACH_SERVE = 0,
    ATTACH_SNAPSHOT,            /* snapshot to snap_url as snap_name */
    ATTACH_RESTORE,             /* hydrate every chunk of a restore */
    ATTACH_HEAL,                /* heal (and move_server away), resync */
  } job;
  /* ATTACH_HEAL: also move the replica on this server elsewhere (a
   * drain); NULL: none.
   */
  const char *move_server;
  const char *snap_url, *snap_name;
  void (*job_line) (void *opaque, const char *line);
  void *job_opaque;
};

/* Runs in the foreground until SIGTERM/SIGINT or "repvol detach", or
 * until fenced (ATTACH_EXIT_FENCED).  Returns a process exit code;
 * prints one-line errors itself.
 */
int attach_run (struct registry *reg, const struct attach_opts *o);

#define ATTACH_HEAL_AFTER 300    /* seconds: the default --heal-after */

/* Delete the stale copies a heal or drain left on servers that were
 * away (the volume's "retired" list), where the server answers now; each
 * deletion is dropped from the list.  Returns how many were deleted;
 * say (may be NULL) gets a line for each one deleted, or kept (and why).
 */
int attach_sweep_retired (struct registry *reg, const char *volume,
                          void (*say) (void *opaque, const char *line,
                                       bool kept),
                          void *opaque);

/* Is at a CLI verb's hold on the volume (ATTACH_*_CLAIM), not an attach? */
bool attach_is_hold (const struct reg_attachment *at);

/* Is the process of attachment at (on this host) still running?  A pid
 * that now belongs to a process not mentioning vol in its command line
 * (pid reuse) or to a zombie counts as gone.
 */
bool attach_alive (const struct reg_attachment *at, const char *vol);

/* An attach process that died (attachment at, of volume vol, on this
 * host) may have left a kernel block device connected to nothing: free
 * it, saying so (a warning when that fails).
 */
void attach_release_stale (const char *vol, const struct reg_attachment *at);

#endif
