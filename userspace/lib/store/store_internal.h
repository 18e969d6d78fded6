/* store_internal.h - what the three parts of the store share
 * (store-internal; nothing outside store/ includes it).
 *
 *   store.c           the data directory: open (scan, stale temp files),
 *                     close, volume create / delete / epoch, references.
 *   store_io.c        each volume as a bdev: one request (struct sio) is
 *                     a small state machine over io_engine requests.
 *   store_dirty_io.c  persisting the dirty map through the io engine, one
 *                     disk op per volume at a time, and the requests that
 *                     wait for their bits to be durable.
 *   store_resize.c    a volume's resize, and BDEV_RESIZE's wait for the
 *                     requests before it.
 *
 * Everything runs on the event loop thread.
 */
#ifndef REPVOL_STORE_INTERNAL_H
#define REPVOL_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bdev.h"
#include "core/freelist.h"
#include "core/loop.h"
#include "store/store.h"
#include "store/io_engine.h"
#include "store/dirty.h"

#define ENGINE_DEPTH   256
#define ZERO_BUF_SIZE  (1u << 20)
#define DIO_ALIGN      4096u    /* safe for every device with <= 4K sectors */
#define DRAIN_MS       10000
#define INLINE_WRITE_MAX (1u << 20)

/* Room for "NAME.dirty" / ".NAME.dirty.tmp" and the like. */
#define STORE_PATH_MAX (STORE_NAME_MAX + 16)

/* The names of volume name's file with suffix (".meta", ".data",
 * ".dirty"), relative to the data directory: path "NAME.suffix" and,
 * unless tmp is NULL, tmp ".NAME.suffix.tmp", the temp file a replace
 * writes beside it (volume names never start with '.', so a temp name
 * cannot collide with a volume's file).  In meta.c.
 */
void store_file_names (const char *name, const char *suffix,
                       char path[STORE_PATH_MAX], char *tmp);

/* The memory volume size's dirty map takes (struct dmap: the map, its
 * durable copy and one pending byte per page).  In dirty.c.
 */
uint64_t store_dirty_mem_bytes (uint64_t size);

/* The bounds of docs/DESIGN.md 3.7 on a volume of size bytes, whose
 * dirty map replaces one for old_size (0: a new volume), with reserve
 * bytes to fallocate (0: none): 0, or -EFBIG / -ENOSPC with the reason
 * in *err.  In store.c.
 */
int store_size_bounds (struct store *s, uint64_t size, uint64_t old_size,
                       uint64_t reserve, struct error *err);

struct store {
  struct loop *loop;
  struct io_engine *eng;
  char *dir;
  int dirfd;
  enum store_cache cache;
  struct store_vol *vols;
  size_t nvols;
  void *zero_buf;               /* ZERO_BUF_SIZE zeroes, aligned */
  bool dio_warned;
  uint64_t reserve_margin;      /* free space a reserved create leaves */
  uint64_t dirty_mem;           /* store_dirty_mem_bytes, all volumes */
  uint64_t dirty_budget;        /* the most dirty_mem may reach */
  /* Requests refused before reaching the engine complete from here, so
   * submit never completes re-entrantly.
   */
  struct loop_defer fail_defer;
  struct sio *fail_head, *fail_tail;
  struct freelist sio_free;     /* finished requests, for reuse */
};

struct dirty_op;                /* store_dirty_io.c */

struct store_vol {
  struct store *s;
  struct store_vol *next;
  struct bdev bdev;
  struct store_meta meta;
  int fd;                       /* buffered */
  int dfd;                      /* O_DIRECT, or -1 */
  int refs;
  bool deleted;
  bool no_zero_range, no_punch; /* filesystem refused these modes */
  unsigned inflight;
  void (*drain_done) (void *);
  void *drain_opaque;
  /* dirty map */
  struct dmap dm;
  int dirty_fd;                 /* -1: no file yet (made by the next op) */
  struct dirty_op *dop;         /* the op in flight, or NULL */
  struct sio *dwait_head;       /* requests waiting for durable bits */
  struct loop_defer dirty_defer;
  bool dirty_kick_queued;
  uint64_t dirty_pages_written;
  /* BDEV_RESIZE: the resize waiting for the requests before it and for
   * the dirty op in flight; the requests submitted after it are held
   * (counted in inflight, not started) until it is done.
   */
  struct sio *resize_io;
  struct sio *held_head, *held_tail;
  unsigned nheld;
  struct loop_defer resize_defer;
};

enum sio_phase {
  PH_RW,                        /* read / write the caller's buffer */
  PH_ZERO,                      /* write zeroes from the zero buffer */
  PH_FALLOC,
  PH_SYNC,
  PH_CSUM,                      /* read into scratch, fold into crc */
};

/* One bdev request in flight.  Its "parts" are the data I/O and, for a
 * request whose dirty bits are not durable yet, the wait for them; the
 * request completes when the last part finishes.
 */
struct sio {
  struct io_req req;
  struct bdev_io *bio;
  struct store_vol *v;
  enum sio_phase phase;
  uint64_t done;                /* bytes finished in PH_RW / PH_ZERO */
  bool sync_after;              /* fdatasync once the main phase is done */
  bool inline_ok;               /* next engine request may run inline */
  int falloc_mode;
  int err;                      /* for refused requests */
  struct sio *next;
  int parts;                    /* data I/O and/or dirty wait outstanding */
  int perr;                     /* first error of any part */
  uint64_t dneed;               /* dirty op seq waited for */
  struct sio *dnext;            /* the volume's waiter list */
  void *scratch;                /* PH_CSUM: STORE_CHECKSUM_CHUNK at most */
  uint32_t crc;                 /* PH_CSUM: crc32c of the bytes so far */
};

/* store_io.c */
extern const struct bdev_ops store_bdev_ops;
/* A zeroed request (NULL: out of memory), and back once it is over. */
struct sio *store_sio_get (struct store *s);
void store_sio_put (struct store *s, struct sio *io);
/* One part of io is over (err: 0 or a positive errno); the last one
 * completes the bdev request.
 */
void store_sio_finish (struct sio *io, int err);
/* Complete the requests refused before they reached the engine. */
void store_sio_run_failed (struct store *s);
/* Start a request store_submit took (or held behind a resize). */
void store_sio_start (struct sio *io);

/* store_resize.c */
/* A resize waits on v: run it at the end of this loop iteration if
 * nothing but the requests held behind it is left in flight.
 */
void store_resize_try (struct store_vol *v);

/* store_dirty_io.c */
/* Mark the regions of [off, off+len) dirty in memory: the sequence
 * number of the disk op that makes them durable (dmap_mark).
 */
uint64_t store_dirty_mark (struct store_vol *v, uint64_t off, uint64_t len);
/* Add the wait for op need (0 or already durable: nothing) as a part
 * of io, and start that op at the end of this loop iteration.
 */
void store_dirty_wait (struct sio *io, uint64_t need);
/* BDEV_DIRTY_GET: the wire header and the in-memory bitmap into buf. */
void store_dirty_get (struct store_vol *v, void *buf);

#endif
