/* store.h - the replica store: the volumes one repvold keeps.
 *
 * store/ keeps a server's volumes in its data directory and serves each
 * as a bdev: the files and their formats (meta.c, dirty.c), the
 * directory and the volumes' lifecycle (store.c), their I/O (store_io.c),
 * dirty-map updates (store_dirty_io.c) and resize (store_resize.c)
 * through an io engine (io_engine.c over uring.c or aio.c).  It may call
 * core/ only; it is called by replica/server.c and repvold.
 *
 * A store is a data directory.  Each volume VOL in it is two files:
 *
 *   DIR/VOL.data   the volume's bytes at their offsets, sparse where
 *                  unwritten: `dd if=DIR/VOL.data` gets the data back.
 *   DIR/VOL.meta   STORE_META_SIZE bytes, versioned and crc32c-checked,
 *                  replaced atomically (temp file, fsync, rename, fsync
 *                  dir) so a torn update is never read back as valid.
 *   DIR/VOL.dirty  the dirty map: a checksummed header and a bitmap of
 *                  store_dirty_region-byte regions (see dirty.c).  A
 *                  missing file is an empty map; a bad header refuses
 *                  the volume at start-up.
 *
 * A volume exists exactly when its .meta file does: create writes the
 * data file first and the metadata last; delete removes the metadata
 * first.
 *
 * Each open volume is a struct bdev (bdev.h) whose I/O runs through the
 * store's I/O engine (io_uring or libaio, see io_engine.h).  Everything
 * runs on the event loop thread; only metadata updates (create, delete,
 * epoch changes, resize) block it, briefly, for their fsyncs.
 */
#ifndef REPVOL_STORE_H
#define REPVOL_STORE_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include "core/bdev.h"
#include "core/dirty_region.h"
#include "core/loop.h"

#define STORE_NAME_MAX     64           /* includes the NUL */
#define STORE_META_SIZE    256
#define STORE_META_VERSION 1
#define STORE_MAX_IO       (32u << 20)  /* largest single bdev request */
/* BDEV_CHECKSUM reads its range in chunks of this many bytes at most,
 * into a scratch buffer it holds while it runs.
 */
#define STORE_CHECKSUM_CHUNK (1u << 20)
/* The largest volume a store creates or loads (docs/DESIGN.md 3.7): its
 * dirty map, one bit per store_dirty_region (64 KiB there), is then 16 MiB
 * (STORE_DIRTY_MAX_REGIONS bits, the cap at every size), which one
 * DIRTY_GET reply (RV_MAX_PAYLOAD, 32 MiB) carries whole and which costs
 * 32 MiB of memory (the map and its durable copy).  The string is for
 * the messages that cannot format it.
 */
#define STORE_MAX_SIZE     (UINT64_C (8) << 40)
#define STORE_MAX_SIZE_STR "8 TiB"
/* Default free space a reserved (fully allocated) create must leave. */
#define STORE_RESERVE_MARGIN_DEFAULT (UINT64_C (1) << 30)

/* store_meta.flags */
#define STORE_F_RESERVED   (1u << 0)    /* data file fully fallocated */
#define STORE_F_KNOWN      STORE_F_RESERVED

/* store_meta.state: reserved for the failover work. */
enum store_state {
  STORE_STATE_NONE = 0,
};
#define STORE_STATE_MAX STORE_STATE_NONE

struct store_meta {
  char name[STORE_NAME_MAX];
  uint8_t uuid[16];
  uint64_t size;                /* bytes, a multiple of block_size */
  uint32_t block_size;          /* power of two, 512 .. 65536 */
  uint32_t flags;               /* STORE_F_* */
  uint64_t epoch;               /* highest epoch seen */
  uint32_t state;               /* enum store_state */
  uint64_t created;             /* seconds since the epoch */
};

struct error;                   /* core/util.h */

/* Pure codec (unit-tested).  decode validates every field and returns 0,
 * or -EBADMSG with the reason in *err (which may be NULL).
 */
void store_meta_encode (const struct store_meta *m,
                        uint8_t out[STORE_META_SIZE]);
/* The header every store file shares: magic (8 bytes), version (4),
 * length (4), and a crc32c of the bytes before crc_off stored at
 * crc_off.  0, or -EBADMSG with *err set.
 */
int store_file_hdr_check (const uint8_t *in, size_t len, uint64_t magic,
                          uint32_t version, uint32_t length, size_t crc_off,
                          struct error *err);
int store_meta_decode (const uint8_t *in, size_t len, struct store_meta *m,
                       struct error *err);
/* The field checks decode makes, for create: 0 or -EINVAL with *err. */
int store_meta_check (const struct store_meta *m, struct error *err);

/* File level: write atomically into dir / read and validate.  Return 0
 * or -errno (-EBADMSG for a file that fails validation), the reason in
 * *err.
 */
int store_meta_write (int dirfd, const struct store_meta *m);
int store_meta_read (int dirfd, const char *name, struct store_meta *m,
                     struct error *err);

/* The dirty map (issue 3: what an out-of-sync replica misses). */
/* A volume's region size is store_dirty_region (size), the same rule as
 * rv_dirty_region (replica/proto.h; docs/DESIGN.md 3.4, 4.1).  A file
 * recorded with another power of two in [STORE_DIRTY_REGION_MIN,
 * STORE_DIRTY_REGION_LOAD_MAX] (65536: every map before issue 15) loads
 * and is converted (each old region's bits cover at least its bytes).
 */
#define STORE_DIRTY_REGION_MIN      DIRTY_REGION_MIN
#define STORE_DIRTY_MAX_REGIONS     DIRTY_MAX_REGIONS
#define STORE_DIRTY_REGION_LOAD_MAX (1u << 30)

static inline uint32_t
store_dirty_region (uint64_t size)
{
  return dirty_region_for (size);
}
#define STORE_DIRTY_HDR_SIZE  16             /* == RV_DIRTY_HDR_SIZE */
#define STORE_DIRTY_FILE_HDR  4096           /* header, then the bitmap */
#define STORE_DIRTY_VERSION   1

uint64_t store_dirty_nregions (uint64_t size);     /* ceil(size / region) */
size_t store_dirty_bitmap_bytes (uint64_t size);   /* ceil(nregions / 8) */
/* Pure codec of the file header (unit-tested); decode checks it against
 * the volume size: 0, or -EBADMSG with the reason in *err.
 */
void store_dirty_hdr_encode (uint32_t region, uint64_t nregions,
                             uint8_t out[STORE_DIRTY_FILE_HDR]);
int store_dirty_hdr_decode (const uint8_t *in, size_t len, uint64_t size,
                            struct error *err);
/* Write an empty map for name atomically (temp, fdatasync, rename,
 * fsync dir).  0 or -errno.
 */
int store_dirty_create (int dirfd, const char *name, uint64_t size);
/* Create .name.dirty.tmp, sized, header not yet written: *fdp. */
int store_dirty_tmp_create (int dirfd, const char *name, uint64_t size,
                            int *fdp);
/* Replace DIR/name.dirty atomically with a map for size holding bitmap
 * (store_dirty_bitmap_bytes (size) bytes): .name.dirty.tmp, fdatasync,
 * rename, fsync dir.  *fdp (unless NULL) gets the new file, open, also
 * when only the final directory fsync failed.  0 or -errno.
 */
int store_dirty_write (int dirfd, const char *name, uint64_t size,
                       const uint8_t *bitmap, int *fdp);
/* Read and validate DIR/name.dirty into bitmap (store_dirty_bitmap_bytes
 * bytes); *fdp stays open for updates.  0, 1 (the file is a map for a
 * larger size, as an interrupted resize leaves it: bitmap has the
 * volume's regions, the rest dropped; rewrite it), -ENOENT (no file: an
 * empty map), -EBADMSG or another -errno, the reason in *err.
 */
int store_dirty_load (int dirfd, const char *name, uint64_t size,
                      uint8_t *bitmap, int *fdp, struct error *err);

enum store_cache {
  STORE_CACHE_NONE,             /* O_DIRECT where the filesystem allows */
  STORE_CACHE_WRITEBACK,        /* page cache; FLUSH/FUA still fdatasync */
};

struct store;
struct store_vol;

/* Open data directory dir, start the I/O engine (engine: "auto",
 * "io_uring" or "libaio") and load every volume in it, removing the
 * temp files of replacements a crash interrupted.  A volume whose files
 * fail validation is refused with an error line and skipped; the others
 * load.  Returns NULL with the reason in *err (the caller prints it).
 */
struct store *store_open (struct loop *loop, const char *dir,
                          const char *engine, enum store_cache cache,
                          struct error *err);
/* Free space (bytes) a reserved create must leave in the data
 * directory's filesystem (repvold --reserve-margin).
 */
void store_set_reserve_margin (struct store *s, uint64_t bytes);
/* Wait (bounded) for in-flight I/O, fdatasync every volume, free. */
void store_close (struct store *s);

const char *store_engine_name (const struct store *s);
const char *store_cache_name (enum store_cache cache);
int store_parse_cache (const char *s, enum store_cache *out);  /* 0, -EINVAL */
size_t store_volume_count (const struct store *s);
/* I/O requests not yet completed, all volumes. */
unsigned store_pending (const struct store *s);

/* Volumes.  store_lookup returns a borrowed pointer (NULL if none);
 * take a reference with store_vol_get to keep it beyond the current
 * callback.  A deleted volume stays valid (I/O to it fails with ENOENT
 * semantics decided by the caller) until its last reference goes.
 */
struct store_vol *store_lookup (struct store *s, const char *name);
void store_vol_get (struct store_vol *v);
void store_vol_put (struct store_vol *v);

/* Create name: size bytes, block_size (power of two 512..65536, size a
 * multiple of it), flags STORE_F_RESERVED to fallocate the whole size.
 * Bounded (docs/DESIGN.md 3.7): size at most STORE_MAX_SIZE and within
 * the store's dirty-map memory budget (-EFBIG), a reserved size within
 * the free space minus the reserve margin (-ENOSPC).  Returns 0 and
 * *out (borrowed), or -errno with the reason in *err: -EEXIST, -EINVAL,
 * -EFBIG, -ENOSPC, -EOPNOTSUPP (reserve on a filesystem without
 * fallocate), -EIO.  A failed create leaves no file behind.
 */
int store_create (struct store *s, const char *name, uint64_t size,
                  uint32_t block_size, uint32_t flags, uint64_t epoch,
                  struct store_vol **out, struct error *err);
/* Change the volume's size to new_size bytes, growing or shrinking it,
 * keeping its data and its dirty bits (new regions clean, those past a
 * smaller size dropped).  Bounded like a create: a non-zero multiple of
 * the block size (-EINVAL), at most STORE_MAX_SIZE and within the
 * dirty-map budget counting the change (-EFBIG); a grow of a reserved
 * volume, or with reserve, allocates the grown range, which must fit in
 * the free space minus the reserve margin (-ENOSPC; -EOPNOTSUPP where
 * the filesystem cannot).  The same size is a no-op.  -EBUSY while the
 * volume has requests or a dirty-map update in flight (the bdev's
 * BDEV_RESIZE waits for them instead), -ENOENT once deleted, -EIO.
 *
 * Crash-safe (docs/DESIGN.md 3.10): a grow sizes the data file, then
 * replaces the dirty map, then writes the metadata; a shrink writes the
 * metadata first, then the map, then cuts the data file.  The metadata
 * is the commit point; start-up cuts back a larger data file or map.
 * Blocks the loop for the fsyncs (and a reserve's fallocate).
 */
int store_vol_resize (struct store_vol *v, uint64_t new_size, bool reserve,
                      struct error *err);
/* Remove both files; the volume leaves the store's list at once, I/O
 * still in flight finishes against the unlinked file.  0 or -errno.
 */
int store_delete (struct store *s, struct store_vol *v);

const struct store_meta *store_vol_meta (const struct store_vol *v);
bool store_vol_deleted (const struct store_vol *v);
/* Persist a higher epoch (atomic metadata update).  A lower or equal
 * epoch is a no-op returning 0.
 */
int store_vol_set_epoch (struct store_vol *v, uint64_t epoch);
/* Persist epoch whatever it was, lower included: only for the admin
 * repair of a wrong epoch (RV_SET_EPOCH), never on the data path.
 */
int store_vol_reset_epoch (struct store_vol *v, uint64_t epoch);
/* Bytes allocated on disk for the data file. */
uint64_t store_vol_allocated (const struct store_vol *v);

/* Dirty map of a volume.  Marks arrive as BDEV_MARK_DIRTY or as
 * BDEV_DIRTY on WRITE / TRIM / WRITE_ZEROES, which complete only once
 * the bits for their range are durable; the map is read with
 * BDEV_DIRTY_GET (io->len must be store_vol_dirty_get_size) and
 * forgotten with BDEV_DIRTY_CLEAR.
 */
uint64_t store_vol_dirty_count (const struct store_vol *v);  /* regions */
size_t store_vol_dirty_get_size (const struct store_vol *v);
struct store_dirty_stats {
  uint64_t persists;            /* page writes + fdatasync completed */
  uint64_t clears;              /* file replacements completed */
  uint64_t pages_written;
};
void store_vol_dirty_stats (const struct store_vol *v,
                            struct store_dirty_stats *st);

/* BDEV_CHECKSUM: crc32c of the bytes stored in [offset, offset+len)
 * (holes and bytes past a short file read as zeroes) into io->buf, a
 * host-order uint32_t; len 0 or a range beyond the volume: EINVAL.
 */

/* The volume as a bdev.  Borrowed: valid while a reference is held;
 * bdev close() is a no-op (release with store_vol_put).  io->buf for
 * READ/WRITE should be 4096-aligned for O_DIRECT to be used; others go
 * through the page cache.
 */
struct bdev *store_vol_bdev (struct store_vol *v);

#endif
