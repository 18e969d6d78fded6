/* bdev.h - the asynchronous block operation table every data-path layer
 * implements: the engine, the replica client, the local store, the
 * snapshot layers (cow, hydrate).
 *
 * A caller sets io->done and io->opaque and starts the request through
 * one of the checked wrappers below (bdev_read, bdev_write, bdev_flush,
 * bdev_trim, bdev_zero, or bdev_submit for a struct it filled or
 * forwards); no caller touches b->ops.  The wrappers refuse a request
 * the layer must never see (an unknown op or flag, a range past the
 * end or overflowing, a misaligned or oversized request, a data op
 * without a buffer) by completing it with EINVAL and a counted log
 * line, as nbdkit's backend.c does for every plugin call.  The layer
 * completes an accepted io exactly once through io->done, possibly
 * before the wrapper returns.  Layers stack like nbdkit filters: the engine
 * is a bdev whose children are replica-client bdevs.  Everything runs
 * on one event loop thread.
 */
#ifndef REPVOL_BDEV_H
#define REPVOL_BDEV_H

#include <stdint.h>
#include <stddef.h>

enum bdev_op {
  BDEV_READ = 1,
  BDEV_WRITE,
  BDEV_FLUSH,
  BDEV_TRIM,
  BDEV_WRITE_ZEROES,
  /* Dirty-map operations (replica store and replica client only; see
   * RV_MARK_DIRTY in replica/proto.h): mark [offset, offset+len) dirty
   * durably; read the map into buf (len bytes: RV_DIRTY_HDR_SIZE header
   * then the bitmap); forget the map durably.
   */
  BDEV_MARK_DIRTY,
  BDEV_DIRTY_GET,
  BDEV_DIRTY_CLEAR,
  /* crc32c of [offset, offset+len) as stored, into buf (4 bytes,
   * host order), computed where the data is (RV_CHECKSUM).
   */
  BDEV_CHECKSUM,
  /* Change the device's size to io->offset bytes (len 0, no buffer),
   * after the requests already submitted; with BDEV_RESERVE the grown
   * range is allocated ahead.  On success the layer's info.size is the
   * new size before done runs.  Layers that cannot: ENOTSUP.  Shrinking
   * is the layer's decision (replica servers refuse it on a data
   * connection: docs/DESIGN.md 3.10).
   */
  BDEV_RESIZE,
};

#define BDEV_FUA        (1u << 0)   /* write stable before completion */
#define BDEV_NO_HOLE    (1u << 1)   /* write-zeroes must allocate */
#define BDEV_HAS_CRC    (1u << 2)   /* WRITE: io->crc is crc32c of buf */
#define BDEV_DIRTY      (1u << 3)   /* WRITE/TRIM/WRITE_ZEROES: also mark
                                       the range dirty before completing */
#define BDEV_RESERVE    (1u << 4)   /* RESIZE: allocate the grown range */

struct bdev_io;
typedef void (*bdev_done_fn) (struct bdev_io *io, int err);

struct bdev_io {
  enum bdev_op op;
  uint32_t flags;
  uint64_t offset;
  uint32_t len;
  void *buf;                    /* READ: filled; WRITE: source */
  uint32_t crc;                 /* with BDEV_HAS_CRC: computed once, by
                                   whoever first needs it, for all below */
  bdev_done_fn done;            /* err: 0 or a positive errno */
  void *opaque;                 /* the caller's */
  void *layer_priv;             /* free for the layer handling it */
};

struct bdev;

/* How a layer is doing, for the engine's choices (which replica to read
 * from, which ones are gone).
 */
struct bdev_health {
  int up;                       /* accepting I/O */
  int fenced;                   /* it refused our epoch: a newer
                                 * attachment holds the volume */
  uint64_t latency_ns;          /* smoothed service time, 0 if unknown */
};

struct bdev_ops {
  const char *name;
  /* Start io; complete it through io->done.  Never fails synchronously:
   * errors are reported through done.
   */
  void (*submit) (struct bdev *b, struct bdev_io *io);
  /* Finish in-flight I/O, then call done (for detach). */
  void (*drain) (struct bdev *b, void (*done) (void *opaque), void *opaque);
  /* Optional: report health (NULL: always up, latency unknown). */
  void (*health) (struct bdev *b, struct bdev_health *h);
  void (*close) (struct bdev *b);
};

/* What a device promises, advertised to clients by the frontend. */
struct bdev_info {
  uint64_t size;
  uint32_t block_size;          /* minimum I/O granularity */
  uint32_t max_io;              /* largest single request, bytes */
  int volatile_cache;           /* writes need FLUSH/FUA to be stable */
};

struct bdev {
  const struct bdev_ops *ops;
  struct bdev_info info;
  void *priv;
};

/* Start io on b after checking it (see the top of this file). */
void bdev_submit (struct bdev *b, struct bdev_io *io);

/* Fill io's request fields and bdev_submit() it.  io->done and
 * io->opaque are the caller's to set first.
 */
void bdev_read (struct bdev *b, struct bdev_io *io, uint64_t offset,
                uint32_t len, void *buf, uint32_t flags);
void bdev_write (struct bdev *b, struct bdev_io *io, uint64_t offset,
                 uint32_t len, void *buf, uint32_t flags);
void bdev_flush (struct bdev *b, struct bdev_io *io);
void bdev_trim (struct bdev *b, struct bdev_io *io, uint64_t offset,
                uint32_t len, uint32_t flags);
void bdev_zero (struct bdev *b, struct bdev_io *io, uint64_t offset,
                uint32_t len, uint32_t flags);
void bdev_resize (struct bdev *b, struct bdev_io *io, uint64_t size,
                  uint32_t flags);

/* The rest of the table, for the layer above. */
void bdev_drain (struct bdev *b, void (*done) (void *opaque), void *opaque);
void bdev_health (struct bdev *b, struct bdev_health *h);
void bdev_close (struct bdev *b);

/* Requests refused by the checks so far, in this process (tests). */
uint64_t bdev_refused_count (void);

#endif
