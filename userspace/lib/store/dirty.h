/* dirty.h - the in-memory half of a volume's dirty map (store-internal).
 *
 * Pure bookkeeping, no I/O (unit-tested on its own): which regions are
 * dirty in memory (mem), which are known durable on disk (durable), which
 * 4 KiB pages of the bitmap changed since the last persist started
 * (pending), and sequence numbers that tell a request which disk
 * operation makes its bits durable.
 *
 * Disk operations ("ops") run one at a time, in the order they start;
 * each gets a sequence number, increasing.  durable_seq is the number of
 * the last op that completed.  A mark returns the number it must wait
 * for (0: its bits are already durable, nothing to wait for):
 *   - a bit newly set, or set in a page that changed again since the op
 *     in flight took its copy, rides on the next op (next_seq);
 *   - a bit set but only in the copy the op in flight is writing waits
 *     for that op (inflight_seq).
 * A clear zeroes the map at once and takes the next number; marks after
 * it ride on the op after the clear.
 */
#ifndef REPVOL_STORE_DIRTY_H
#define REPVOL_STORE_DIRTY_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#define DMAP_PAGE 4096u

struct dmap {
  uint32_t region;              /* bytes per region */
  uint64_t nregions;
  size_t nbytes;                /* ceil(nregions / 8) */
  size_t npages;                /* ceil(nbytes / DMAP_PAGE) */
  uint8_t *mem;                 /* npages * DMAP_PAGE, zero past nbytes */
  uint8_t *durable;
  uint8_t *pending;             /* one byte per page */
  size_t npending;
  uint64_t count;               /* bits set in mem */

  uint64_t next_seq;            /* the next page op's number */
  uint64_t inflight_seq;        /* 0: no op in flight */
  uint64_t durable_seq;
  bool clear_queued;            /* a clear waits to start */
  uint64_t clear_seq;
  uint64_t wipe_gen;            /* bumped by every clear */

  uint64_t persists, clears;    /* ops completed, for tests and logs */
};

/* An op taken by dmap_begin: a page write (pages, staged copies) or a
 * clear (npages 0, clear true).
 */
struct dmap_op {
  uint64_t seq;
  bool clear;
  uint64_t wipe_gen;
  size_t npages;
  size_t *pages;                /* page indices, ascending */
  uint8_t *stage;               /* npages * DMAP_PAGE, copies of mem */
};

/* bitmap_bytes: from a file's bitmap (nbytes), or NULL for an empty map.
 * Returns 0 or -ENOMEM.
 */
int dmap_init (struct dmap *dm, uint64_t size, uint32_t region,
               const uint8_t *bitmap_bytes);
void dmap_free (struct dmap *dm);
/* Make to (uninitialised) a copy of from for a volume of size bytes:
 * the bits of the regions both have, new regions clean, those past a
 * smaller size dropped; pending pages and sequence numbers carried
 * over.  from is untouched, so a resize that fails later keeps it.
 * 0 or -ENOMEM.
 */
int dmap_resize (const struct dmap *from, struct dmap *to, uint64_t size,
                 uint32_t region);
/* The whole of mem was just written durably (a resize's new file):
 * durable is mem, nothing pending.  Only when no op is in flight.
 */
void dmap_all_durable (struct dmap *dm);

/* Regions [*first, *last] covering byte range [off, off+len), len > 0,
 * clipped to the map.
 */
void dmap_range (const struct dmap *dm, uint64_t off, uint64_t len,
                 uint32_t region, uint64_t *first, uint64_t *last);

/* Mark regions first..last dirty; the sequence number to wait for, or 0. */
uint64_t dmap_mark (struct dmap *dm, uint64_t first, uint64_t last);
/* Zero the map; the sequence number of the clear to wait for. */
uint64_t dmap_clear (struct dmap *dm);

/* Anything to start?  Fills op (a clear first, else the pending pages)
 * and returns 1; 0 when idle; -ENOMEM.  Only when no op is in flight.
 */
int dmap_begin (struct dmap *dm, struct dmap_op *op);
/* The op finished (err 0 or an errno).  On error its pages are pending
 * again.  Frees op's buffers.
 */
void dmap_end (struct dmap *dm, struct dmap_op *op, int err);

bool dmap_test (const struct dmap *dm, uint64_t region);

#endif
