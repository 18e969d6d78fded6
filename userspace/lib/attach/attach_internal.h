/* attach_internal.h - what the pieces of "repvol attach" share: the
 * state of one attach, and the functions each piece offers the others.
 *
 *   attach.c            claim, fence, open the engine, stack the layers,
 *                       serve, detach; replica states in the registry;
 *                       the control channel (verify, replace)
 *   attach_snapshot.c   snapshots of the live volume, the bookkeeping of
 *                       a lazy restore
 *   attach_cbt.c        the change map across attaches and crashes, and
 *                       its journal thread
 *   attach_reconnect.c  reconnection attempts on their own threads
 *   attach_fence.c      other attachments: holds, live processes; being
 *                       fenced
 *   attach_lease.c      the lease's heartbeat and the registry watch that
 *                       learns of a takeover, on a thread of their own
 *
 * Everything here runs on the loop thread, except reconnect_thread in
 * attach_reconnect.c and attach_lease.c's thread (which touch none of
 * this state).
 */
#ifndef REPVOL_ATTACH_INTERNAL_H
#define REPVOL_ATTACH_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "attach/attach.h"
#include "attach/control.h"
#include "core/bdev.h"
#include "core/loop.h"
#include "engine/engine.h"
#include "frontend/frontend.h"
#include "registry/registry.h"
#include "replica/admin.h"

struct attach {
  struct loop *loop;
  struct registry *reg;
  const struct attach_opts *o;
  struct bdev *dev;             /* the engine */
  struct bdev *cow;             /* what is served: cow over [hydrate over] dev */
  struct bdev *hydrate;         /* NULL unless restoring */
  struct frontend *fe;
  struct control_req *snap_req; /* the control request of a snapshot */
  char snap_last[640];          /* its last line, sent once it is recorded */
  uint64_t epoch;
  char host[REG_NAME_MAX];
  unsigned lease_ttl;           /* seconds */
  struct lease_keeper *lease;   /* attach_lease.c; NULL: not refreshed */
  long lease_left;              /* claim: a live holder's seconds left */
  bool lease_expired;           /* claim: took over an expired lease */
  bool fenced_other;            /* claim: another attachment was fenced */
  bool detaching;
  bool resizing;                /* a resize is on its way down */
  bool fenced;                  /* a newer attachment: stop, no last flush */
  char fence_why[256];          /* becomes the registry's fenced.reason */
  struct loop_defer fence_defer;
  bool took_over;
  bool unclean;                 /* the last attachment never detached */
  bool cbt_loaded;              /* the change map is complete */
  struct cbt_journal *cbt_journal;      /* attach_cbt.c; NULL: none */
  int final_err;                /* the detach failed */
  int job_err;                  /* the job (snapshot, restore) failed */
  struct reg_volume vol;        /* as claimed */
  struct control *ctl;
  char ctl_path[108];
  /* "detach" requests on the control channel, answered with how the
   * detach ended just before the loop stops ("repvol detach" reports it).
   */
#define ATTACH_DETACH_REQS 8
  struct control_req *detach_req[ATTACH_DETACH_REQS];
  int ndetach_req;
  char detach_answer[256];      /* once the detach is over ("" before) */
  /* Reconnection attempts run on their own threads (a handshake with a
   * hung server blocks for the timeout); results come back on a pipe.
   */
  int rc_pipe[2];
  struct loop_watch rc_watch;
  pthread_t rc_thread[ENGINE_MAX_REPLICAS];
  bool rc_running[ENGINE_MAX_REPLICAS];
  struct bdev_io flush_io;
  /* Degrades recorded in the background (attach_state.c). */
  uint32_t degrade_queued;      /* replicas waiting to be recorded */
  uint64_t reg_failed_ns;       /* when a record last failed (now_ns) */
  bool dg_running;
  volatile bool dg_stop;
  pthread_t dg_thread;
  int dg_pipe[2];
  struct loop_watch dg_watch;
  /* Self-healing (attach_heal.c): when each replica was first seen
   * lost (wall clock; 0: not lost), heal jobs on threads of their own,
   * and the sweep of stale copies.
   */
  struct attach_heal *heal;
  struct attach_metrics *metrics;   /* attach_metrics.c; NULL: none */
};

/* A change of replica states (attach_state.c). */
struct state_change {
  int replica;                  /* -1: every replica but keep */
  int keep;                     /* with replica -1: the one left in sync */
  enum reg_replica_state state;
  uint64_t epoch;               /* the caller's; the new one after a bump */
  uint64_t done, total, rate;   /* progress only (state unchanged) */
  bool progress;
};

/* ---- attach.c ---- */

/* Is v's attachment still this attach's (host, pid and epoch)?  Every
 * registry update of a running attach checks it first: a newer
 * attachment is not ours to touch.
 */
bool attach_owns (const struct reg_volume *v, const struct attach *a);
/* Stop serving: frontend, drain, last flush, then the loop stops. */
void attach_begin_detach (struct attach *a);
/* A detach asked for (a signal, the control channel): why is logged. */
void attach_stop_requested (struct attach *a, const char *why);
/* A replica's WELCOME (in ra, a data connection) against the volume:
 * the block size must match; a larger replica is accepted (a resize
 * the registry did not record yet); a smaller one is grown to size
 * when may_grow (it is out of sync), refused otherwise.  0 or -errno,
 * why in err.
 */
int attach_check_size (struct replica_admin *ra, uint64_t size,
                       uint32_t block_size, bool may_grow, bool reserve,
                       struct error *err);
/* Connect to replica i and say HELLO with our epoch; NULL, why in err. */
struct bdev *attach_connect_replica (struct attach *a, int i, int timeout_ms,
                                     struct error *err);

/* Names, not addresses: look every replica's server up in the pool and
 * record the addresses that moved; attach_record_addr records that
 * replica i's server is now at addr (a->vol and the registry).
 */
void attach_follow_servers (struct attach *a);
void attach_record_addr (struct attach *a, int i, const char *addr);

/* attach_control.c: open the control channel (ctl_path in the run
 * directory) and record it in the registry.
 */
void attach_start_control (struct attach *a);

/* ---- attach_fence.c ---- */

/* This attachment has been fenced (why): fail its I/O, stop serving
 * without the last flush, exit ATTACH_EXIT_FENCED.  Once; from any
 * callback on the loop.
 */
void attach_fenced (struct attach *a, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* ---- attach_snapshot.c ---- */

/* Start a snapshot of the live volume to url as name; req is the
 * control request to answer, NULL for the attach's own job.  0, or
 * -EBUSY (one is running) or -ENOMEM.
 */
int attach_snapshot_start (struct attach *a, struct control_req *req,
                           const char *url, const char *name,
                           char *const *env);
/* A control line "snapshot URL NAME [SETTING=VALUE...]": start it and
 * answer req (now or when it ends); true.  Any other line: false.
 */
bool attach_snapshot_control (struct attach *a, struct control_req *req,
                              const char *line);

/* ---- attach_resize.c ---- */

/* A control line "resize SIZE [reserve]": grow the volume and answer
 * req when it is over ("ok resized OLD NEW: ..." or "error: ...");
 * true.  Any other line: false.
 */
bool attach_resize_control (struct attach *a, struct control_req *req,
                            const char *line);

/* ---- attach_probe.c ---- */

/* The control line "contents": answer req with what libblkid finds at
 * the volume's ends, as volume_contents_to_json, then "ok"; true.  Else
 * false.
 */
bool attach_probe_control (struct attach *a, struct control_req *req,
                           const char *line);
/* The change map saved by the last clean detach, if it can be trusted
 * (for cow_new); NULL when not (the next snapshot reads every chunk).
 */
uint8_t *attach_cbt_load (struct attach *a);
/* At a clean detach: save the change map for the next attach. */
void attach_cbt_save (struct attach *a);
/* Keep the loaded map durable (journal) while attached; a snapshot
 * recorded as the new base; no journal thread left (every exit path).
 */
void attach_cbt_journal (struct attach *a);
void attach_cbt_rebased (struct attach *a);
void attach_cbt_fini (struct attach *a);
/* The hydrate layer of a restore that is not complete, over a->dev;
 * NULL after logging why.
 */
struct bdev *attach_hydrate_open (struct attach *a);

/* ---- attach_state.c ---- */

/* Append an event about this volume to the registry's stream; a failure
 * is a warning (events are news, never a reason to stop).
 */
void attach_event (struct attach *a, const char *type, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

/* Record c in the registry now (c->epoch set from a->epoch; the attach
 * is fenced on ESTALE): 0 or a negative errno.
 */
int attach_record (struct attach *a, struct state_change *c);
/* The engine's hooks, for engine_new. */
void attach_engine_hooks (struct attach *a, struct engine_hooks *h);
/* Background recording of degrades: its pipe to the loop, the next
 * queued degrade, and the end (joins a record still retrying).
 */
void attach_degrade_init (struct attach *a);
void attach_degrade_next (struct attach *a);
void attach_degrade_fini (struct attach *a);

/* ---- attach_metrics.c ---- */

/* With o->metrics: add the volume's and the replicas' series, start
 * copying the engine's states into them, and return the counting layer
 * over below for the frontend (below itself without metrics; NULL: out
 * of memory).  attach_metrics_stop once the frontend is gone.
 */
struct bdev *attach_metrics_start (struct attach *a, struct bdev *below);
void attach_metrics_stop (struct attach *a);
/* The engine's catch-up progress of replica i; replica i fell out of
 * sync (the degrade hook); replica i reached again.
 */
void attach_metrics_progress (struct attach *a, int i, uint64_t done,
                              uint64_t total);
void attach_metrics_out (struct attach *a, int i);
/* Replica i was recorded in sync again (the in-sync hook). */
void attach_metrics_in_sync (struct attach *a, int i);
void attach_metrics_reconnected (struct attach *a, int i);

/* ---- attach_lease.c ---- */

/* Until attach_lease_stop, on a thread: refresh the attachment's lease,
 * and check once a second that the registry still names it (fencing
 * this attach when not).  Needs the loop.
 */
void attach_lease_start (struct attach *a);
void attach_lease_stop (struct attach *a);

/* ---- attach_heal.c ---- */

/* Start watching for replicas to heal (after a->dev exists), and stop
 * (joins jobs still running, each bounded by the replica timeout).
 */
void attach_heal_start (struct attach *a);
void attach_heal_stop (struct attach *a);
/* Is a heal job replacing replica i now?  (Reconnection waits.) */
bool attach_heal_busy (struct attach *a, int i);

/* ---- attach_reconnect.c ---- */

void attach_reconnect_init (struct attach *a);
/* Wait for attempts still running (each bounded by the timeout). */
void attach_reconnect_fini (struct attach *a);
/* The engine's reconnect hook: start an attempt for replica i; the
 * replica comes back through engine_replica_back() if it answers.
 */
struct bdev *attach_reconnect (void *opaque, int i);

#endif
