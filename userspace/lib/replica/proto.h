/* proto.h - the replica layer's main header, and the codec of the
 * replication protocol between the engine and the replica servers.
 *
 * The replica layer (replica/) carries a volume's blocks between the
 * host that attaches it and the repvold servers that keep its copies:
 * this codec (proto.c), the data-path client that makes one remote
 * replica a bdev (client.h), the server that serves a store over the
 * protocol (server.h), a blocking admin client for create, delete,
 * stat and read (admin.h), and the probe that reads a volume's
 * signatures through it (probe.h).  It may call core/ (loop, conn,
 * listener, util, crc32c, wire.h, bdev.h), store/ on the server side,
 * and registry/ for the probe's view of a volume; nothing above.  It is
 * called by the engine through the client bdev (set up by attach/), by
 * attach/, by the repvol CLI (create, delete, status, replica replace,
 * through the admin client and the probe) and by repvold (the server).
 *
 * The protocol: all integers are little-endian on the wire.
 * man/repvol-protocol.7 is the normative description; this header and
 * proto.c are its codec.
 *
 *   client -> server   HELLO    (RV_HELLO_SIZE bytes)
 *   server -> client   WELCOME  (RV_WELCOME_SIZE bytes)
 *   then, pipelined:
 *   client -> server   request header (RV_REQ_SIZE) [+ payload]
 *   server -> client   reply header (RV_REP_SIZE) [+ payload], any order
 *
 * Decoding functions validate every field and return 0, or -EPROTO with
 * a static human-readable reason in *why.  Nothing is trusted before
 * that.
 */
#ifndef REPVOL_PROTO_H
#define REPVOL_PROTO_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#include "core/dirty_region.h"

#define RV_PROTO_VERSION   1
#define RV_HELLO_MAGIC     0x4f4c4548564f4c52ULL  /* "RLOVHELO" */
#define RV_WELCOME_MAGIC   0x4d4f434c45574c52ULL  /* "RLWELCOM" */
#define RV_REQ_MAGIC       0x51525652u            /* "RVRQ" */
#define RV_REP_MAGIC       0x50525652u            /* "RVRP" */

#define RV_NAME_MAX        64     /* includes the NUL */
#define RV_MAX_PAYLOAD     (32u << 20)
#define RV_MAX_INFLIGHT    256    /* per connection, enforced by the server */

#define RV_HELLO_SIZE      88
#define RV_WELCOME_SIZE    176
#define RV_REQ_SIZE        32
#define RV_REP_SIZE        24

enum rv_cmd {
  RV_READ = 1,
  RV_WRITE = 2,          /* payload: data */
  RV_FLUSH = 3,
  RV_TRIM = 4,
  RV_WRITE_ZEROES = 5,
  RV_CREATE = 6,         /* payload: struct rv_create (RV_CREATE_SIZE) */
  RV_DELETE = 7,
  RV_STAT = 8,           /* reply payload: struct rv_stat (RV_STAT_SIZE) */
  /* Dirty map: the regions written while some replica was out of sync,
   * kept by the survivors so that replica can be caught up by
   * difference (docs/DESIGN.md rules 2 and 5).  Data connections only.
   */
  RV_MARK_DIRTY = 9,     /* mark [offset, offset+length) dirty, durably */
  RV_DIRTY_GET = 10,     /* reply payload: RV_DIRTY_HDR_SIZE + bitmap */
  RV_DIRTY_CLEAR = 11,   /* forget the map, durably */
  /* crc32c of the replica's bytes in [offset, offset+length), computed
   * on the server (length at most RV_MAX_PAYLOAD): "repvol verify"
   * compares replicas without shipping their data.  Reply payload:
   * RV_CHECKSUM_SIZE bytes, the crc32c, little-endian.
   */
  RV_CHECKSUM = 12,
  /* Admin connections only: set the replica's epoch to the payload's
   * (RV_SET_EPOCH_SIZE bytes, little-endian, at least 1), up or down;
   * refused (RV_EBUSY) while a data connection has the volume open.
   * "repvol epoch VOL --reset" repairs a wrong epoch with it
   * (docs/DESIGN.md rule 8).
   */
  RV_SET_EPOCH = 13,
  /* Nothing but an OK reply, on any connection after WELCOME: keeps an
   * idle connection open on a server with an idle timeout.  Sent only to
   * servers whose WELCOME has RV_FEAT_PING: older ones close the
   * connection on a command they do not know.
   */
  RV_PING = 14,
  /* Change the replica's size to offset bytes (length 0, no payload;
   * flag RV_F_RESERVE: fallocate the grown range).  On a data
   * connection it only grows (a smaller size is RV_EINVAL, the same
   * size a no-op), after the volume's in-flight requests; on an admin
   * connection it may also shrink, refused (RV_EBUSY) while a data
   * connection has the volume open.  Bounded like CREATE.  Sent only to
   * servers whose WELCOME has RV_FEAT_RESIZE.  docs/DESIGN.md 3.4, 3.10.
   */
  RV_RESIZE = 15,
};
#define RV_CMD_MAX 15
#define RV_CHECKSUM_SIZE 4
#define RV_SET_EPOCH_SIZE 8

/* How far one data HELLO may move a replica's epoch forward
 * (docs/DESIGN.md 3.3, rule 8): a HELLO above stored + RV_EPOCH_JUMP_MAX
 * is refused with RV_ERANGE, so no message can push a volume's epoch out
 * of reach (2^64 - 1 would fence every later attach).  An attach whose
 * epoch is further ahead than that walks the replica up in steps of
 * RV_EPOCH_JUMP_MAX, at most RV_EPOCH_STEPS_MAX of them.
 */
#define RV_EPOCH_JUMP_MAX  256u
#define RV_EPOCH_STEPS_MAX 4096u

/* Dirty map granularity, and the DIRTY_GET reply: region size (4 bytes),
 * reserved (4), number of regions (8), then ceil(regions / 8) bytes of
 * bitmap, region r in byte r / 8, bit r % 8 (least significant first).
 *
 * The region size is a function of the volume size (docs/DESIGN.md 3.4):
 * the smallest power of two >= RV_DIRTY_REGION_MIN whose map has at most
 * RV_DIRTY_MAX_REGIONS bits (16 MiB of bitmap): 4 KiB up to 512 GiB,
 * doubling above, 64 KiB (RV_DIRTY_REGION, the one size of old servers)
 * at the 8 TiB maximum.  Server and engine derive it alike, so nothing
 * about it is negotiated; DIRTY_GET reports it anyway.
 */
#define RV_DIRTY_REGION_MIN  DIRTY_REGION_MIN
#define RV_DIRTY_REGION      (64u * 1024)
#define RV_DIRTY_MAX_REGIONS DIRTY_MAX_REGIONS
#define RV_DIRTY_HDR_SIZE    16

static inline uint32_t
rv_dirty_region (uint64_t size)
{
  return dirty_region_for (size);
}

/* Request flags. */
#define RV_F_FUA           (1u << 0)   /* WRITE / WRITE_ZEROES / TRIM */
#define RV_F_NO_HOLE       (1u << 1)   /* WRITE_ZEROES */
#define RV_F_DIRTY         (1u << 2)   /* WRITE / TRIM / WRITE_ZEROES: also
                                          mark the range dirty, durably,
                                          before the reply */
#define RV_F_RESERVE       (1u << 0)   /* CREATE: fallocate the whole size;
                                          RESIZE: fallocate the grown range */

/* HELLO flags. */
#define RV_HELLO_ADMIN     (1u << 0)   /* no data I/O: create/delete/stat */

/* WELCOME feature flags: what the server understands beyond the first
 * version 1.  Servers before them sent zero there; a client ignores the
 * bits it does not know.
 */
#define RV_FEAT_PING       (1u << 0)   /* answers RV_PING */
#define RV_FEAT_RESIZE     (1u << 1)   /* answers RV_RESIZE */

/* Reply status codes (protocol values, not host errno). */
enum rv_status {
  RV_OK = 0,
  RV_EPERM = 1,          /* epoch older than the replica's: fenced */
  RV_EIO = 5,
  RV_ENOENT = 2,         /* no such volume */
  RV_EBUSY = 16,         /* volume in use by another connection */
  RV_EEXIST = 17,
  RV_EINVAL = 22,
  RV_ENOSPC = 28,
  RV_ERANGE = 34,        /* HELLO epoch too far ahead (RV_EPOCH_JUMP_MAX) */
  RV_ECRC = 74,          /* payload checksum mismatch (EBADMSG) */
  RV_ENOTSUP = 95,
  RV_EACCES = 13,        /* this identity may not do that (--admins) */
  RV_ETLSREQ = 93,       /* plaintext HELLO to a server that requires TLS */
  RV_EFBIG = 27,         /* CREATE larger than the server's bounds */
};

struct rv_hello {
  uint32_t version;
  uint32_t flags;
  uint64_t epoch;
  char volume[RV_NAME_MAX];     /* NUL terminated, valid_name() */
};

/* Volume state returned in WELCOME and STAT. */
struct rv_volinfo {
  uint32_t exists;
  uint32_t block_size;
  uint64_t size;
  uint64_t epoch;               /* highest epoch the replica has seen */
  uint64_t allocated;           /* bytes allocated on disk (STAT) */
  uint32_t flags;               /* RV_F_RESERVE if reserved */
  uint32_t state;               /* reserved for the failover work; 0 */
  uint64_t dirty_regions;       /* regions set in the dirty map (STAT) */
};

struct rv_welcome {
  uint32_t version;
  uint32_t status;              /* enum rv_status */
  char server[RV_NAME_MAX];
  char zone[RV_NAME_MAX];       /* "" when the server has no zone */
  uint32_t block_size;          /* volume's, or 0 */
  uint32_t exists;
  uint64_t size;
  uint64_t epoch;
  uint32_t features;            /* RV_FEAT_* */
  uint32_t idle_timeout_ms;     /* closes connections idle this long; 0: never */
};

struct rv_req {
  uint16_t cmd;
  uint16_t flags;
  uint64_t id;
  uint64_t offset;
  uint32_t length;              /* payload bytes for WRITE/CREATE, else I/O length */
  uint32_t crc;                 /* crc32c of the payload, 0 when none */
};

struct rv_rep {
  uint32_t status;
  uint64_t id;
  uint32_t length;              /* payload bytes that follow */
  uint32_t crc;                 /* crc32c of the payload */
};

#define RV_CREATE_SIZE 24
struct rv_create {
  uint64_t size;
  uint32_t block_size;
  uint32_t flags;               /* RV_F_RESERVE */
  uint64_t epoch;
};

#define RV_STAT_SIZE 48
/* STAT reply payload: struct rv_volinfo. */

void rv_encode_hello (const struct rv_hello *h, uint8_t out[RV_HELLO_SIZE]);
int rv_decode_hello (const uint8_t in[RV_HELLO_SIZE], struct rv_hello *h,
                     const char **why);
void rv_encode_welcome (const struct rv_welcome *w, uint8_t out[RV_WELCOME_SIZE]);
int rv_decode_welcome (const uint8_t in[RV_WELCOME_SIZE], struct rv_welcome *w,
                       const char **why);
void rv_encode_req (const struct rv_req *r, uint8_t out[RV_REQ_SIZE]);
/* Checks magic, command, flags and length limits (not the volume range:
 * see rv_check_range).
 */
int rv_decode_req (const uint8_t in[RV_REQ_SIZE], struct rv_req *r,
                   const char **why);
void rv_encode_rep (const struct rv_rep *r, uint8_t out[RV_REP_SIZE]);
int rv_decode_rep (const uint8_t in[RV_REP_SIZE], struct rv_rep *r,
                   const char **why);
void rv_encode_create (const struct rv_create *c, uint8_t out[RV_CREATE_SIZE]);
int rv_decode_create (const uint8_t in[RV_CREATE_SIZE], struct rv_create *c,
                      const char **why);
void rv_encode_volinfo (const struct rv_volinfo *v, uint8_t out[RV_STAT_SIZE]);
int rv_decode_volinfo (const uint8_t in[RV_STAT_SIZE], struct rv_volinfo *v,
                       const char **why);
/* SET_EPOCH payload: the epoch, 8 bytes; 0 is refused. */
void rv_encode_set_epoch (uint64_t epoch, uint8_t out[RV_SET_EPOCH_SIZE]);
int rv_decode_set_epoch (const uint8_t in[RV_SET_EPOCH_SIZE], uint64_t *epoch,
                         const char **why);

/* What a data HELLO's epoch does to a replica that holds stored: 0 to
 * accept it (equal: nothing to persist; above by at most
 * RV_EPOCH_JUMP_MAX: persist it), -EPERM when it is older (fenced),
 * -ERANGE when it jumps further ahead.
 */
int rv_hello_epoch_check (uint64_t stored, uint64_t hello);

/* Range check for a data request against a volume: aligned to
 * block_size, inside [0, size), non-zero length (except FLUSH).  0, or
 * -EPROTO with *why, like the decoders.
 */
int rv_check_range (const struct rv_req *r, uint64_t size, uint32_t block_size,
                    const char **why);

/* Does this command carry a request payload / a reply payload? */
bool rv_req_has_payload (uint16_t cmd);

/* Map between protocol status and host errno. */
int rv_status_to_errno (uint32_t status);
uint32_t rv_errno_to_status (int err);
const char *rv_cmd_name (uint16_t cmd);

#endif
