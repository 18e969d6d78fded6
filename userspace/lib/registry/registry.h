/* registry.h - the one authority per volume: size, replicas and their
 * state, epoch, current attachment.
 *
 * registry/ stores one record per volume (struct reg_volume) and small
 * per-volume blobs, behind one interface with several backends: dir.c
 * (a directory of small JSON files, the embedded default) and etcd.c
 * (etcd's v3 API); codec.c is the record as JSON, which every backend
 * stores.
 * It may call core/ only; it is called by attach/ and the CLI
 * (userspace/repvol), and replica/probe.h uses its types.  No code
 * outside registry/ knows which backend is in use.  Every change is a
 * read-modify-write through registry_update(), atomic with respect to
 * other processes (flock + rename for dir.c; a compare-and-swap
 * transaction for etcd).
 *
 * Errors: every function returns 0 or a negative errno and puts the
 * reason, naming the registry and the record, in *err (which may be
 * NULL); nothing here logs.  -ENOENT (no such volume, or no such blob),
 * -EEXIST (create of a taken name) and an update callback's own code
 * are the ones a caller phrases itself; for anything else (a corrupt
 * record, a full disk, permissions) error_msg(err) says what happened.
 */
#ifndef REPVOL_REGISTRY_H
#define REPVOL_REGISTRY_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define REG_NAME_MAX     64
#define REG_ADDR_MAX     128
#define REG_MAX_REPLICAS 8

enum reg_replica_state {
  REG_IN_SYNC = 0,
  REG_OUT_OF_SYNC = 1,
};

struct reg_replica {
  char addr[REG_ADDR_MAX];      /* ADDR:PORT of its repvold */
  char server[REG_NAME_MAX];    /* the server's --name */
  char zone[REG_NAME_MAX];      /* "" when the server has no zone */
  enum reg_replica_state state;
  uint64_t out_of_sync_epoch;   /* when it fell behind (0: never) */
  time_t out_of_sync_since;
  bool full_copy;               /* new or replaced: copy everything */
  /* Catch-up progress while out of sync, published by the attach. */
  uint64_t resync_total, resync_done, resync_rate;   /* bytes, bytes/s */
};

struct reg_attachment {
  bool attached;
  char host[REG_NAME_MAX];      /* gethostname() of the attach */
  pid_t pid;
  char frontend[256];           /* e.g. "nbd unix:/run/x.sock" */
  uint64_t epoch;               /* the epoch this attachment holds */
  time_t since;
  char control[108];            /* unix socket of its control channel */
  char reason[256];             /* fenced only: why, "" if not recorded */
  /* The attach's lease (docs/DESIGN.md, "Attach leases"): alive while
   * heartbeat, refreshed by the attach every lease_ttl / 3 seconds, is
   * less than lease_ttl seconds old.  lease_ttl 0: no lease (an attach
   * of an older version), as good as expired.
   */
  time_t heartbeat;
  uint32_t lease_ttl;
};

#define REG_LEASE_TTL_MAX 3600

/* Seconds left on a's lease at now; 0 or less: expired (or none). */
long reg_attachment_lease_left (const struct reg_attachment *a, time_t now);

/* Changed-block tracking for incremental snapshots (see snapshot.h).
 * The map itself is the volume's "cbt" blob, written at a clean detach.
 */
struct reg_cbt {
  /* The map in the blob is complete: every chunk written since the base
   * snapshot (or, with no base, since creation) is marked.  An attach
   * clears this while it holds the map in memory, so a host that dies
   * leaves it false and the next snapshot reads every chunk.
   */
  bool valid;
  char base_url[256];           /* the last snapshot's store, "" if none */
  char base_name[128];          /* and its name */
};

/* A volume being restored from a snapshot (lazily, or not finished):
 * the "hydrated" blob marks the chunks already written to the replicas.
 */
struct reg_restore {
  bool active;
  char url[256];
  char snapshot[128];
  uint64_t chunks_total, chunks_hydrated;
  char error[256];              /* the last failure, "" if none */
};

/* A replica that healing or a drain replaced while its server was away
 * or still held it: that server's copy is stale and is deleted once the
 * server answers (docs/DESIGN.md, "Self-healing").
 */
struct reg_retired {
  char server[REG_NAME_MAX];
  char addr[REG_ADDR_MAX];
};

struct reg_volume {
  char name[REG_NAME_MAX];
  char uuid[37];
  uint64_t size;
  uint32_t block_size;
  uint64_t epoch;
  bool reserved;                /* space reserved up front (--reserve) */
  bool allow_same_zone;
  /* Created over TLS: its servers require it, and clients refuse to
   * reach them in plaintext (no downgrade; docs/DESIGN.md, "Trust").
   */
  bool tls;
  time_t created;
  int nreplicas;
  struct reg_replica replicas[REG_MAX_REPLICAS];
  struct reg_attachment attachment;
  /* The attachment the last takeover fenced (attached = false: none).
   * Kept so that status can say who lost the volume, and when.
   */
  struct reg_attachment fenced;
  uint32_t chunk_size;          /* snapshot chunk, bytes (power of two) */
  struct reg_cbt cbt;
  struct reg_restore restore;
  int nretired;                 /* stale copies still to delete */
  struct reg_retired retired[REG_MAX_REPLICAS];
};

#define REG_DEFAULT_CHUNK_SIZE (1u << 20)

struct registry;                /* opaque: its backend's */
struct error;                   /* core/util.h */

/* 0, or -EACCES with the reason in err when v needs TLS and this
 * process has no TLS client credentials.
 */
int reg_volume_check_tls (const struct reg_volume *v, struct error *err);

/* Open the registry named by location: a directory path or dir://PATH,
 * or etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (endpoints tried in
 * order; https with the process's TLS client directory, core/tls.h, so
 * set that up first).  NULL -> $REPVOL_REGISTRY -> /var/lib/repvol.
 * Returns NULL with the reason in *err.
 */
struct registry *registry_open (const char *location, struct error *err);
void registry_close (struct registry *r);
/* Another handle on r's location, for a thread of its own (a handle is
 * used by one thread at a time).
 */
struct registry *registry_open_again (const struct registry *r,
                                      struct error *err);
void registry_free_names (char **names, int n);

/* Store a new volume: -EEXIST if the name is taken, -EINVAL for a
 * record that fails the checks (valid name, sizes, replicas...).
 */
int registry_create (struct registry *r, const struct reg_volume *v,
                     struct error *err);
/* -ENOENT if there is no such volume (an invalid name is none). */
int registry_get (struct registry *r, const char *name, struct reg_volume *v,
                  struct error *err);
/* Atomically: read, call fn, write back if fn returns 0.  fn's non-zero
 * return (a positive errno) aborts the update and is returned negated.
 * fn may run more than once, each time on a fresh copy of the current
 * record (etcd: again after a concurrent write refused this one), so it
 * must decide from the record it is given, not from an earlier call.
 * fn may not rename the volume (the name is put back); a record fn
 * leaves invalid is not written (-EINVAL).
 */
int registry_update (struct registry *r, const char *name,
                     int (*fn) (struct reg_volume *v, void *arg), void *arg,
                     struct error *err);
/* The record and every blob of the volume. */
int registry_remove (struct registry *r, const char *name, struct error *err);
/* Sorted names; free with registry_free_names(). */
int registry_list (struct registry *r, char ***names, int *n,
                   struct error *err);

/* Opaque per-volume data too big for the volume record (bitmaps), one
 * per kind (a valid name: "cbt", "hydrated"): put replaces it atomically
 * and durably; get returns a malloc'd copy (-ENOENT if there is none);
 * remove drops it (none is not an error).
 */
int registry_blob_put (struct registry *r, const char *name, const char *kind,
                       const void *data, size_t len, struct error *err);
int registry_blob_get (struct registry *r, const char *name, const char *kind,
                       void **data, size_t *len, struct error *err);
int registry_blob_remove (struct registry *r, const char *name,
                          const char *kind, struct error *err);

const char *reg_state_name (enum reg_replica_state s);

/* The volume as a json-c object, the document the registry stores
 * (for "status --json" and the like; release with json_object_put).
 */
struct json_object;
struct json_object *reg_volume_json (const struct reg_volume *v);

/* ---- the server pool ------------------------------------------------------
 *
 * Every repvold given --registry keeps a record of itself here, under a
 * lease of ttl seconds that it refreshes (etcd: a lease kept alive; dir:
 * a heartbeat time).  A server whose lease ran out (killed, cut off) is
 * still listed, as down: its last record stays.
 */
struct reg_server {
  char name[REG_NAME_MAX];
  char zone[REG_NAME_MAX];      /* "" when none */
  char addr[REG_ADDR_MAX];      /* advertised ADDR:PORT */
  uint64_t capacity, free;      /* the data directory's filesystem, bytes */
  uint64_t reserved;            /* free space kept back (--reserve-margin) */
  uint64_t volumes;
  bool tls;                     /* serves TLS only */
  bool draining;                /* takes no new replicas */
  char version[32];
  time_t heartbeat;             /* the last refresh */
  uint32_t ttl;                 /* seconds the record is good for */
  /* Set by get and list only: the lease is alive (etcd: the alive key
   * exists; dir: heartbeat within ttl and not marked down).
   */
  bool up;
};

#define REG_SERVER_TTL_MAX 3600

/* Register or refresh s (its heartbeat is set to now) for ttl seconds
 * (1 to REG_SERVER_TTL_MAX).  A handle keeps the lease it granted and
 * keeps it alive on each put, so a server uses one handle for this.
 */
int registry_server_put (struct registry *r, const struct reg_server *s,
                         unsigned ttl, struct error *err);
/* A clean shutdown: the server shows down at once (its record stays).
 * -ENOENT if it never registered.
 */
int registry_server_down (struct registry *r, const char *name,
                          struct error *err);
/* -ENOENT if no such server is known. */
int registry_server_get (struct registry *r, const char *name,
                         struct reg_server *s, struct error *err);
/* Every known server, sorted by name; *servers malloc'd (free()). */
int registry_server_list (struct registry *r, struct reg_server **servers,
                          int *n, struct error *err);
/* Mark server name draining (on: placement skips it; repvol server
 * drain moves its replicas away) or not.  -ENOENT if the pool does not
 * know it.  The mark outlives the server's own refreshes and restarts.
 */
int registry_server_drain (struct registry *r, const char *name, bool on,
                           struct error *err);
/* "up", "down" or "draining". */
const char *reg_server_state (const struct reg_server *s);

/* Names, not addresses (docs/DESIGN.md, "Server pool"): a replica is
 * its server's name; the address in the record is where the server was
 * last seen.  registry_resolve_replicas puts the pool's current address
 * of every replica's server into v (in memory; servers the pool does not
 * know keep the recorded address) and returns how many moved, or a
 * negative errno when the pool cannot be read (v untouched).
 * registry_server_addr: name's advertised address in addr; 1 when the
 * server is up, 0 when down, -ENOENT when the pool does not know it.
 */
int registry_resolve_replicas (struct registry *r, struct reg_volume *v,
                               struct error *err);
int registry_server_addr (struct registry *r, const char *name, char *addr,
                          size_t len, struct error *err);

/* ---- registry-wide settings ------------------------------------------------
 *
 * Defaults every host's repvol follows (repvol settings): one short
 * text value per known key (REG_SETTING_*).  get: -ENOENT when unset;
 * put with value NULL unsets.  -EINVAL for a key that is not known.
 */
#define REG_SETTING_HEAL_AFTER "heal-after"
#define REG_SETTING_MAX 128
int registry_setting_get (struct registry *r, const char *key, char *value,
                          size_t len, struct error *err);
int registry_setting_put (struct registry *r, const char *key,
                          const char *value, struct error *err);

/* ---- events (docs/DESIGN.md, "Events") ------------------------------------
 *
 * Every state change appends an event to the registry's stream: created,
 * attached, detached, fenced, degraded, resync-started, resync-done,
 * replica-replaced, snapshot-done, restore-done, server-up, server-down,
 * deleted.  The stream keeps the newest REG_EVENTS_MAX.
 */
struct reg_event {
  uint64_t revision;            /* position in the stream, increasing */
  int64_t time_ms;              /* wall clock, ms since 1970 */
  char type[32];
  char volume[REG_NAME_MAX];    /* "" for server events */
  char server[REG_NAME_MAX];    /* "" when not about one server */
  char host[REG_NAME_MAX];      /* the host that recorded it */
  char details[256];
};

#define REG_EVENTS_MAX 10000

/* Append an event (time and host are filled in).  0 or a negative
 * errno; never logs.
 */
int registry_event (struct registry *r, const char *type, const char *volume,
                    const char *server, struct error *err, const char *fmt,
                    ...) __attribute__ ((format (printf, 6, 7)));
/* Call fn on every event with revision > since, oldest first, until fn
 * returns non-zero (which is returned).  0 or a negative errno.
 */
int registry_events (struct registry *r, uint64_t since,
                     int (*fn) (const struct reg_event *ev, void *arg),
                     void *arg, struct error *err);
/* The same, then every new event as it comes, until fn returns non-zero
 * or stop(arg) is true (asked at least every second): then 0.  A
 * negative errno when the registry fails.
 */
int registry_events_follow (struct registry *r, uint64_t since,
                            int (*fn) (const struct reg_event *ev, void *arg),
                            bool (*stop) (void *arg), void *arg,
                            struct error *err);
/* The event as JSON (release with json_object_put). */
struct json_object *reg_event_json (const struct reg_event *ev);

#endif
