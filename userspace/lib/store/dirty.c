/* dirty.c - a volume's dirty map: the file codec (VOL.dirty) and the
 * in-memory bookkeeping of dirty.h.  The I/O that persists it lives in
 * store_dirty_io.c, through the store's io engine.
 *
 * File layout (little-endian):
 *
 *      0  u64  magic "RVOLDIRT"
 *      8  u32  version (STORE_DIRTY_VERSION)
 *     12  u32  header length (STORE_DIRTY_FILE_HDR, 4096)
 *     16  u32  region size in bytes: store_dirty_region (volume size)
 *              when written (4096 up to 512 GiB, doubling above); a
 *              load accepts any power of two in [4096, 2^30] (65536:
 *              every map before issue 15) and converts it
 *     20  u32  zero
 *     24  u64  number of regions, ceil(volume size / region size)
 *     32       zero up to 60
 *     60  u32  crc32c of bytes 0..59
 *     64       zero up to 4096
 *   4096       bitmap: ceil(regions / 8) bytes, region r in byte r / 8,
 *              bit r % 8 (least significant first); bits past the last
 *              region are zero.  The file ends there.
 *
 * The bitmap starts on a page boundary so a persist rewrites whole 4 KiB
 * pages of it in place; bits there only ever go from 0 to 1 between
 * clears, so a torn page write leaves a mix of old and new set bits, all
 * of which were marked (never garbage).  Creating and clearing replace
 * the whole file atomically (temp file, fdatasync, rename, fsync dir).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "core/util.h"
#include "core/fsutil.h"
#include "core/wire.h"
#include "store/store.h"
#include "store/dirty.h"
#include "store/store_internal.h"

#define DIRTY_MAGIC    0x545249444c4f5652ULL    /* "RVOLDIRT" */
#define DIRTY_CRC_OFF  60

/* ---- file codec ---------------------------------------------------- */

uint64_t
store_dirty_nregions (uint64_t size)
{
  uint32_t region = store_dirty_region (size);

  return (size + region - 1) / region;
}

/* Set in dst (regions of r_dst bytes, zeroed by the caller) every region
 * that shares a byte below size with a region set in src (n_src regions
 * of r_src bytes).  The result covers at least every byte src covers.
 */
static void
convert_bits (const uint8_t *src, uint64_t n_src, uint32_t r_src,
              uint8_t *dst, uint32_t r_dst, uint64_t size)
{
  for (uint64_t k = 0; k < n_src; k++) {
    if (!(src[k / 8] & (1u << (k % 8))))
      continue;
    uint64_t lo = k * r_src, hi = MIN (lo + r_src, size);
    if (lo >= size)
      break;
    for (uint64_t j = lo / r_dst; j <= (hi - 1) / r_dst; j++)
      dst[j / 8] |= (uint8_t) (1u << (j % 8));
  }
}

size_t
store_dirty_bitmap_bytes (uint64_t size)
{
  return (size_t) ((store_dirty_nregions (size) + 7) / 8);
}

uint64_t
store_dirty_mem_bytes (uint64_t size)
{
  uint64_t npages = MAX ((store_dirty_bitmap_bytes (size) + DMAP_PAGE - 1)
                         / DMAP_PAGE, 1);
  return npages * (2 * DMAP_PAGE + 1);
}

void
store_dirty_hdr_encode (uint32_t region, uint64_t nregions,
                        uint8_t out[STORE_DIRTY_FILE_HDR])
{
  memset (out, 0, STORE_DIRTY_FILE_HDR);
  putle64 (out, DIRTY_MAGIC);
  putle32 (out + 8, STORE_DIRTY_VERSION);
  putle32 (out + 12, STORE_DIRTY_FILE_HDR);
  putle32 (out + 16, region);
  putle64 (out + 24, nregions);
  putle32 (out + DIRTY_CRC_OFF, crc32c (0, out, DIRTY_CRC_OFF));
}

/* Every check of the header but the region count, which is *np; the
 * region size into *regionp.
 */
static int
dirty_hdr_check (const uint8_t *in, size_t len, uint64_t *np,
                 uint32_t *regionp, struct error *err)
{
  uint32_t region;
  int r;

  r = store_file_hdr_check (in, len, DIRTY_MAGIC, STORE_DIRTY_VERSION,
                            STORE_DIRTY_FILE_HDR, DIRTY_CRC_OFF, err);
  if (r < 0)
    return r;
  if (getle32 (in + 20) != 0)
    return error_set (err, EBADMSG, "reserved field not zero");
  for (size_t i = 32; i < STORE_DIRTY_FILE_HDR; i++)
    if (in[i] && (i < DIRTY_CRC_OFF || i >= DIRTY_CRC_OFF + 4))
      return error_set (err, EBADMSG, "reserved bytes not zero");
  region = getle32 (in + 16);
  if (region < STORE_DIRTY_REGION_MIN ||
      region > STORE_DIRTY_REGION_LOAD_MAX || (region & (region - 1)))
    return error_set (err, EBADMSG, "unsupported region size");
  *np = getle64 (in + 24);
  *regionp = region;
  return 0;
}

int
store_dirty_hdr_decode (const uint8_t *in, size_t len, uint64_t size,
                        struct error *err)
{
  uint64_t n;
  uint32_t region;
  int r;

  r = dirty_hdr_check (in, len, &n, &region, err);
  if (r == 0 && region != store_dirty_region (size))
    r = error_set (err, EBADMSG, "region size does not match the volume size");
  if (r == 0 && n != store_dirty_nregions (size))
    r = error_set (err, EBADMSG,
                   "region count does not match the volume size");
  return r;
}

int
store_dirty_tmp_create (int dirfd, const char *name, uint64_t size,
                        int *fdp)
{
  char path[STORE_PATH_MAX], tmp[STORE_PATH_MAX];
  int fd, err;

  store_file_names (name, ".dirty", path, tmp);
  fd = openat (dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd == -1)
    return -errno;
  if (ftruncate (fd, STORE_DIRTY_FILE_HDR + store_dirty_bitmap_bytes (size))
      == -1) {
    err = errno;
    close (fd);
    unlinkat (dirfd, tmp, 0);
    return -err;
  }
  *fdp = fd;
  return 0;
}

int
store_dirty_create (int dirfd, const char *name, uint64_t size)
{
  char path[STORE_PATH_MAX], tmp[STORE_PATH_MAX];
  uint8_t hdr[STORE_DIRTY_FILE_HDR];
  struct atomic_file af;
  int err;

  store_file_names (name, ".dirty", path, tmp);
  err = atomic_file_begin (&af, dirfd, path, tmp, 0600);
  if (err < 0)
    return err;
  store_dirty_hdr_encode (store_dirty_region (size),
                          store_dirty_nregions (size), hdr);
  if (ftruncate (af.fd, STORE_DIRTY_FILE_HDR + store_dirty_bitmap_bytes (size))
      == -1)
    err = -errno;
  else
    err = pwrite_full (af.fd, hdr, sizeof hdr, 0);
  if (err < 0) {
    atomic_file_abort (&af);
    return err;
  }
  return atomic_file_commit (&af);
}

int
store_dirty_write (int dirfd, const char *name, uint64_t size,
                   const uint8_t *bitmap, int *fdp)
{
  char path[STORE_PATH_MAX], tmp[STORE_PATH_MAX];
  uint8_t hdr[STORE_DIRTY_FILE_HDR];
  size_t nbytes = store_dirty_bitmap_bytes (size);
  int fd, err;

  store_file_names (name, ".dirty", path, tmp);
  err = store_dirty_tmp_create (dirfd, name, size, &fd);
  if (err < 0)
    return err;
  store_dirty_hdr_encode (store_dirty_region (size),
                          store_dirty_nregions (size), hdr);
  err = pwrite_full (fd, hdr, sizeof hdr, 0);
  if (err == 0 && nbytes)
    err = pwrite_full (fd, bitmap, nbytes, STORE_DIRTY_FILE_HDR);
  if (err == 0 && fdatasync (fd) == -1)
    err = -errno;
  if (err == 0 && renameat (dirfd, tmp, dirfd, path) == -1)
    err = -errno;
  if (err < 0) {
    close (fd);
    unlinkat (dirfd, tmp, 0);
    return err;
  }
  /* Renamed: the new map is the file now, durable once the directory
   * is; the caller must use fd from here on either way.
   */
  if (fsync (dirfd) == -1)
    err = -errno;
  if (fdp)
    *fdp = fd;
  else
    close (fd);
  return err;
}

int
store_dirty_load (int dirfd, const char *name, uint64_t size,
                  uint8_t *bitmap, int *fdp, struct error *err)
{
  char path[STORE_PATH_MAX];
  uint8_t hdr[STORE_DIRTY_FILE_HDR];
  size_t nbytes = store_dirty_bitmap_bytes (size);
  uint64_t nregions = store_dirty_nregions (size), n;
  uint32_t region = store_dirty_region (size), fregion;
  uint8_t *fbits = NULL;
  struct stat st;
  int fd, r;

  store_file_names (name, ".dirty", path, NULL);
  fd = openat (dirfd, path, O_RDWR | O_CLOEXEC);
  if (fd == -1)
    return error_set (err, errno, "%s", strerror (errno));
  if (fstat (fd, &st) == -1) {
    r = error_set (err, errno, "%s", strerror (errno));
    close (fd);
    return r;
  }
  /* Whatever is wrong with the file refuses the volume as corrupt. */
  if (!S_ISREG (st.st_mode) ||
      (uint64_t) st.st_size < STORE_DIRTY_FILE_HDR) {
    error_set (err, EBADMSG, "truncated header");
    goto bad;
  }
  r = pread_full (fd, hdr, sizeof hdr, 0);
  if (r < 0) {
    error_set (err, EBADMSG, "%s", r == -ENODATA ? "truncated header"
               : strerror (-r));
    goto bad;
  }
  if (dirty_hdr_check (hdr, sizeof hdr, &n, &fregion, err) < 0)
    goto bad;
  if (fregion != region) {
    /* Another region size (a map from before issue 15, or one a resize
     * across a size boundary left): converted, bits only ever widened.
     */
    if (n < (size + fregion - 1) / fregion || n > STORE_DIRTY_MAX_REGIONS) {
      error_set (err, EBADMSG, "region count does not match the volume size");
      goto bad;
    }
    if ((uint64_t) st.st_size != STORE_DIRTY_FILE_HDR + (n + 7) / 8) {
      error_set (err, EBADMSG, "file size does not match the region count");
      goto bad;
    }
    fbits = malloc ((n + 7) / 8 + 1);
    if (!fbits) {
      error_set (err, ENOMEM, "out of memory for the dirty map");
      close (fd);
      return -ENOMEM;
    }
    r = pread_full (fd, fbits, (n + 7) / 8, STORE_DIRTY_FILE_HDR);
    if (r < 0 || (n % 8 && (fbits[(n + 7) / 8 - 1] >> (n % 8)))) {
      error_set (err, EBADMSG, "%s", r < 0 ? "truncated bitmap"
                 : "bits set past the last region");
      free (fbits);
      goto bad;
    }
    memset (bitmap, 0, nbytes);
    convert_bits (fbits, n, fregion, bitmap, region, size);
    free (fbits);
    *fdp = fd;
    return 1;
  }
  /* A map for a larger size is what an interrupted resize leaves (grow:
   * the map is replaced before the metadata; shrink: after it): its
   * regions past the volume's end are dropped.  Smaller is corrupt.
   */
  if (n < nregions) {
    error_set (err, EBADMSG, "region count does not match the volume size");
    goto bad;
  }
  if ((uint64_t) st.st_size != STORE_DIRTY_FILE_HDR + (n + 7) / 8) {
    error_set (err, EBADMSG, "file size does not match the region count");
    goto bad;
  }
  r = pread_full (fd, bitmap, nbytes, STORE_DIRTY_FILE_HDR);
  if (r < 0) {
    error_set (err, EBADMSG, "%s", r == -ENODATA ? "truncated bitmap"
               : strerror (-r));
    goto bad;
  }
  if (n > nregions) {
    uint8_t last;

    /* The larger map's own end is checked as strictly as any map's. */
    r = pread_full (fd, &last, 1, STORE_DIRTY_FILE_HDR + (n + 7) / 8 - 1);
    if (r < 0 || (n % 8 && (last >> (n % 8)))) {
      error_set (err, EBADMSG, "%s", r < 0 ? "truncated bitmap"
                 : "bits set past the last region");
      goto bad;
    }
    if (nregions % 8)
      bitmap[nbytes - 1] &= (uint8_t) ((1u << (nregions % 8)) - 1);
    *fdp = fd;
    return 1;
  }
  if (nregions % 8 && (bitmap[nbytes - 1] >> (nregions % 8))) {
    error_set (err, EBADMSG, "bits set past the last region");
    goto bad;
  }
  *fdp = fd;
  return 0;

 bad:
  close (fd);
  return -EBADMSG;
}

/* What a map's disk ops and counters have reached goes with it into its
 * resized copy.
 */
static void
carry_state (struct dmap *to, const struct dmap *from)
{
  to->next_seq = from->next_seq;
  to->inflight_seq = from->inflight_seq;
  to->durable_seq = from->durable_seq;
  to->clear_queued = from->clear_queued;
  to->clear_seq = from->clear_seq;
  to->wipe_gen = from->wipe_gen;
  to->persists = from->persists;
  to->clears = from->clears;
}

/* ---- in-memory map ------------------------------------------------- */

int
dmap_init (struct dmap *dm, uint64_t size, uint32_t region,
           const uint8_t *bitmap_bytes)
{
  memset (dm, 0, sizeof *dm);
  dm->region = region;
  dm->nregions = (size + region - 1) / region;
  dm->nbytes = (dm->nregions + 7) / 8;
  dm->npages = (dm->nbytes + DMAP_PAGE - 1) / DMAP_PAGE;
  if (dm->npages == 0)
    dm->npages = 1;
  dm->mem = calloc (dm->npages, DMAP_PAGE);
  dm->durable = calloc (dm->npages, DMAP_PAGE);
  dm->pending = calloc (dm->npages, 1);
  if (!dm->mem || !dm->durable || !dm->pending) {
    dmap_free (dm);
    return -ENOMEM;
  }
  if (bitmap_bytes) {
    memcpy (dm->mem, bitmap_bytes, dm->nbytes);
    memcpy (dm->durable, bitmap_bytes, dm->nbytes);
    for (size_t i = 0; i < dm->nbytes; i++)
      dm->count += __builtin_popcount (dm->mem[i]);
  }
  dm->next_seq = 1;
  return 0;
}

static void set_pending (struct dmap *dm, size_t page);

int
dmap_resize (const struct dmap *from, struct dmap *to, uint64_t size,
             uint32_t region)
{
  size_t n;
  int r;

  r = dmap_init (to, size, region, NULL);
  if (r < 0)
    return r;
  if (region != from->region) {
    /* A resize across a size boundary: the bits convert (widened); the
     * caller writes the whole map to a new file (dmap_all_durable).
     */
    convert_bits (from->mem, from->nregions, from->region, to->mem, region,
                  size);
    for (size_t i = 0; i < to->nbytes; i++)
      to->count += __builtin_popcount (to->mem[i]);
    for (size_t p = 0; p < to->npages; p++)
      set_pending (to, p);
    carry_state (to, from);
    return 0;
  }
  n = MIN (from->nbytes, to->nbytes);
  memcpy (to->mem, from->mem, n);
  memcpy (to->durable, from->durable, n);
  /* Shrunk: the regions past the new end go (grown: from's bits past
   * its end are zero already, so the new regions are clean).
   */
  if (to->nbytes <= from->nbytes && to->nregions % 8) {
    uint8_t keep = (uint8_t) ((1u << (to->nregions % 8)) - 1);
    to->mem[to->nbytes - 1] &= keep;
    to->durable[to->nbytes - 1] &= keep;
  }
  for (size_t i = 0; i < to->nbytes; i++)
    to->count += __builtin_popcount (to->mem[i]);
  for (size_t p = 0; p < MIN (from->npages, to->npages); p++)
    if (from->pending[p])
      set_pending (to, p);
  carry_state (to, from);
  return 0;
}

void
dmap_all_durable (struct dmap *dm)
{
  memcpy (dm->durable, dm->mem, dm->npages * DMAP_PAGE);
  memset (dm->pending, 0, dm->npages);
  dm->npending = 0;
  /* The file holds the map as it is, a queued clear's zeroes included. */
  dm->clear_queued = false;
}

void
dmap_free (struct dmap *dm)
{
  free (dm->mem);
  free (dm->durable);
  free (dm->pending);
  dm->mem = dm->durable = dm->pending = NULL;
}

void
dmap_range (const struct dmap *dm, uint64_t off, uint64_t len,
            uint32_t region, uint64_t *first, uint64_t *last)
{
  *first = off / region;
  *last = (off + len - 1) / region;
  if (*last >= dm->nregions)
    *last = dm->nregions - 1;
}

bool
dmap_test (const struct dmap *dm, uint64_t r)
{
  return r < dm->nregions && (dm->mem[r / 8] >> (r % 8)) & 1;
}

static void
set_pending (struct dmap *dm, size_t page)
{
  if (!dm->pending[page]) {
    dm->pending[page] = 1;
    dm->npending++;
  }
}

uint64_t
dmap_mark (struct dmap *dm, uint64_t first, uint64_t last)
{
  uint64_t need = 0;

  if (first > last || first >= dm->nregions)
    return 0;
  for (uint64_t b = first / 8; b <= last / 8; b++) {
    unsigned lo = b == first / 8 ? first % 8 : 0;
    unsigned hi = b == last / 8 ? last % 8 : 7;
    uint8_t mask = (uint8_t) ((0xffu >> (7 - hi)) & (0xffu << lo));
    uint8_t notdur = mask & ~dm->durable[b];
    size_t page = b / DMAP_PAGE;

    if (!notdur)
      continue;                 /* durable already: costs nothing */
    uint8_t fresh = notdur & ~dm->mem[b];
    if (fresh) {
      dm->mem[b] |= fresh;
      dm->count += __builtin_popcount (fresh);
      set_pending (dm, page);
      need = dm->next_seq;
    }
    else if (dm->pending[page] || dm->inflight_seq == 0) {
      /* Set in memory, changed again (or never written): next op. */
      set_pending (dm, page);
      need = dm->next_seq;
    }
    else if (need < dm->inflight_seq)
      need = dm->inflight_seq;  /* in the copy being written now */
  }
  return need;
}

uint64_t
dmap_clear (struct dmap *dm)
{
  memset (dm->mem, 0, dm->npages * DMAP_PAGE);
  memset (dm->durable, 0, dm->npages * DMAP_PAGE);
  memset (dm->pending, 0, dm->npages);
  dm->npending = 0;
  dm->count = 0;
  dm->wipe_gen++;
  /* A clear still waiting to start takes this later number: it covers
   * the marks made since the first one asked, which it wipes too.
   */
  dm->clear_queued = true;
  dm->clear_seq = dm->next_seq++;
  return dm->clear_seq;
}

int
dmap_begin (struct dmap *dm, struct dmap_op *op)
{
  memset (op, 0, sizeof *op);
  if (dm->inflight_seq)
    return 0;
  if (dm->clear_queued) {
    dm->clear_queued = false;
    op->clear = true;
    op->seq = dm->clear_seq;
    op->wipe_gen = dm->wipe_gen;
    dm->inflight_seq = op->seq;
    return 1;
  }
  if (!dm->npending)
    return 0;
  op->pages = malloc (dm->npending * sizeof *op->pages);
  op->stage = malloc (dm->npending * DMAP_PAGE);
  if (!op->pages || !op->stage) {
    free (op->pages);
    free (op->stage);
    op->pages = NULL;
    op->stage = NULL;
    return -ENOMEM;
  }
  for (size_t p = 0; p < dm->npages && op->npages < dm->npending; p++)
    if (dm->pending[p]) {
      dm->pending[p] = 0;
      memcpy (op->stage + op->npages * DMAP_PAGE, dm->mem + p * DMAP_PAGE,
              DMAP_PAGE);
      op->pages[op->npages++] = p;
    }
  dm->npending = 0;
  op->seq = dm->next_seq++;
  op->wipe_gen = dm->wipe_gen;
  dm->inflight_seq = op->seq;
  return 1;
}

void
dmap_end (struct dmap *dm, struct dmap_op *op, int err)
{
  dm->inflight_seq = 0;
  if (!err) {
    dm->durable_seq = op->seq;
    if (op->clear)
      dm->clears++;
    else {
      dm->persists++;
      /* Unless a clear came since the copy was taken, what was written
       * is what is durable now.
       */
      if (op->wipe_gen == dm->wipe_gen)
        for (size_t i = 0; i < op->npages; i++)
          memcpy (dm->durable + op->pages[i] * DMAP_PAGE,
                  op->stage + i * DMAP_PAGE, DMAP_PAGE);
    }
  }
  else if (!op->clear && op->wipe_gen == dm->wipe_gen) {
    /* Write them again with the next op. */
    for (size_t i = 0; i < op->npages; i++)
      set_pending (dm, op->pages[i]);
  }
  free (op->pages);
  free (op->stage);
  op->pages = NULL;
  op->stage = NULL;
}
