/* resize.c - growing the volume online (docs/DESIGN.md 3.10).
 *
 * A resize is ordered like a write over the whole volume: it starts
 * when the writes before it are done, and the writes after it wait
 * (datapath.c, rule 6), so no replica sees a write past the old end
 * before every replica that counts has grown.  It then
 *
 *   1. grows the engine's region maps (memory first, so running out
 *      of it changes no replica);
 *   2. sends RESIZE to every in-sync and catching-up replica smaller
 *      than the new size.  A refusal (no space, over a server's
 *      bounds, a server too old) fails the resize and leaves the
 *      volume at its size; replicas that grew stay larger, which an
 *      attach accepts and a later resize completes.  A replica that
 *      fails otherwise is lost as on a failed write (rule 2): it grows
 *      when it comes back (attach_connect_replica);
 *   3. zeroes [old size, new size) on replicas that were larger than
 *      the volume already (an offline shrink that stopped between the
 *      registry and that server): what they held there is not the
 *      volume's, and new space reads as zeroes on every replica;
 *   4. announces the size (eng_complete_write), after the registry
 *      has recorded any degrade, like a write's ack.
 *
 * Replicas out of the volume (ENGINE_OUT) are grown when they are
 * reached again, before their catch-up.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "core/util.h"

/* Largest TRIM one request carries, aligned for every block size. */
#define TRIM_STEP (1u << 30)

/* The region sets at a coarser region size (a grow across a size
 * boundary, rv_dirty_region): every region keeps covering what it did.
 */
static int
coarsen_maps (struct engine *e, uint32_t region, uint64_t size)
{
  uint64_t n = (size + region - 1) / region;
  size_t len = (n + 7) / 8 + 1;
  struct region_set *sets[] = { &e->unflushed_cur, &e->unflushed_flushing };
  uint8_t *nb[2];

  nb[0] = calloc (1, len);
  nb[1] = calloc (1, len);
  if (!nb[0] || !nb[1]) {
    free (nb[0]);
    free (nb[1]);
    return -ENOMEM;
  }
  for (size_t k = 0; k < 2; k++) {
    for (uint64_t r = 0; r < e->nregions; r++)
      if (sets[k]->bits[r / 8] & (1u << (r % 8))) {
        uint64_t j = r * e->region / region;
        nb[k][j / 8] |= (uint8_t) (1u << (j % 8));
      }
    free (sets[k]->bits);
    sets[k]->bits = nb[k];
    sets[k]->lo = 0;
    sets[k]->hi = len;          /* a superset of where bits are */
  }
  e->nregions = (e->bdev.info.size + region - 1) / region;
  e->region = region;
  return 0;
}

int
eng_grow_maps (struct engine *e, uint64_t size)
{
  uint32_t region = MAX (e->region, rv_dirty_region (size));
  uint64_t n = (size + region - 1) / region;
  size_t old_len = (e->nregions + 7) / 8 + 1, len = (n + 7) / 8 + 1;
  struct region_set *sets[] = { &e->unflushed_cur, &e->unflushed_flushing };

  if (region != e->region)
    return coarsen_maps (e, region, size);
  if (len <= old_len)
    return 0;
  for (size_t k = 0; k < ARRAY_SIZE (sets); k++) {
    uint8_t *bits = realloc (sets[k]->bits, len);
    if (bits == NULL)
      return -ENOMEM;
    memset (bits + old_len, 0, len - old_len);
    sets[k]->bits = bits;
  }
  return 0;
}

/* Answers that say "this replica cannot", not "this replica is gone". */
static bool
refusal (int err)
{
  return err == ENOSPC || err == EFBIG || err == EINVAL || err == ENOTSUP ||
         err == EDQUOT || err == EACCES;
}

static void zero_stale (struct engine *e, struct eng_req *r);

static void
resize_fail (struct engine *e, struct eng_req *r, int err)
{
  r->err = err;
  eng_leave_active (e, r);
  eng_finish (e, r);
}

/* All replicas answered RESIZE, or the zeroing of a stale tail ended. */
static void
resize_children_done (struct engine *e, struct eng_req *r)
{
  if (r->err) {
    log_error ("resize to %llu bytes refused by a replica (%s): the volume "
               "stays at %llu bytes", (unsigned long long) r->parent->offset,
               strerror (r->err), (unsigned long long) r->old_size);
    resize_fail (e, r, r->err);
    return;
  }
  if (r->stale) {
    zero_stale (e, r);
    return;
  }
  eng_complete_write (e, r);    /* announces the size */
}

/* Account for one replica's part; a replica that failed (not refused)
 * is lost as on a failed write.
 */
static bool
resize_child_done (struct bdev_io *child, int err)
{
  struct eng_req *r = child->opaque;
  struct engine *e = r->e;
  int i = child - r->child;

  if (err && refusal (err)) {
    if (!r->err)
      r->err = err;
    log_warn ("replica %s: cannot resize to %llu bytes: %s", e->name[i],
              (unsigned long long) r->parent->offset, strerror (err));
  }
  else if (err) {
    r->failed |= 1u << i;
    r->stale &= ~(1u << i);
    if (r->to[i] == e->rep[i])
      eng_replica_failed (e, i, err);
  }
  return --r->pending == 0;
}

static void
grown (struct bdev_io *child, int err)
{
  struct eng_req *r = child->opaque;

  if (resize_child_done (child, err))
    resize_children_done (r->e, r);
}

/* ---- step 3: zeroes where a replica held more than the volume ------ */

static void trim_next (struct engine *e, struct eng_req *r, int i);

static void
trimmed (struct bdev_io *child, int err)
{
  struct eng_req *r = child->opaque;
  struct engine *e = r->e;
  int i = child - r->child;

  if (!err && child->offset + child->len < r->parent->offset &&
      r->to[i] == e->rep[i]) {
    trim_next (e, r, i);
    return;
  }
  if (resize_child_done (child, err)) {
    r->stale = 0;
    resize_children_done (e, r);
  }
}

static void
trim_next (struct engine *e, struct eng_req *r, int i)
{
  struct bdev_io *c = &r->child[i];
  uint64_t off = c->len ? c->offset + c->len : r->old_size;
  uint64_t left = r->parent->offset - off;

  c->done = trimmed;
  c->opaque = r;
  c->layer_priv = NULL;
  bdev_trim (e->rep[i], c, off, left < TRIM_STEP ? (uint32_t) left
             : TRIM_STEP, 0);
}

static void
zero_stale (struct engine *e, struct eng_req *r)
{
  uint32_t to = r->stale & (mask_of (e, ENGINE_IN_SYNC) |
                            mask_of (e, ENGINE_RESYNC));

  r->pending = __builtin_popcount (to);
  if (to == 0) {
    r->stale = 0;
    resize_children_done (e, r);
    return;
  }
  for (int i = 0; i < e->n; i++) {
    r->to[i] = (to & (1u << i)) ? e->rep[i] : NULL;
    r->child[i].len = 0;
  }
  for (int i = 0; i < e->n; i++)
    if (to & (1u << i)) {
      if (e->rep[i])
        trim_next (e, r, i);
      else
        trimmed (&r->child[i], EIO);
    }
}

/* ---- steps 1 and 2 -------------------------------------------------- */

void
eng_resize_start (struct engine *e, struct eng_req *r)
{
  uint64_t size = r->parent->offset;
  uint32_t members = mask_of (e, ENGINE_IN_SYNC) | mask_of (e, ENGINE_RESYNC);
  uint32_t to = 0;

  r->old_size = e->bdev.info.size;
  if (mask_of (e, ENGINE_IN_SYNC) == 0 || e->broken) {
    resize_fail (e, r, EIO);
    return;
  }
  if (eng_grow_maps (e, size) < 0) {
    resize_fail (e, r, ENOMEM);
    return;
  }
  for (int i = 0; i < e->n; i++) {
    if (!(members & (1u << i)) || !e->rep[i])
      continue;
    if (e->rep[i]->info.size > r->old_size)
      r->stale |= 1u << i;
    if (e->rep[i]->info.size < size)
      to |= 1u << i;
  }
  log_info ("resizing the volume from %llu to %llu bytes",
            (unsigned long long) r->old_size, (unsigned long long) size);
  r->sent = to;
  r->pending = __builtin_popcount (to);
  if (to == 0) {
    resize_children_done (e, r);
    return;
  }
  /* Children may complete synchronously: fill them all first. */
  for (int i = 0; i < e->n; i++) {
    r->to[i] = (to & (1u << i)) ? e->rep[i] : NULL;
    if (!(to & (1u << i)))
      continue;
    r->child[i] = *r->parent;
    r->child[i].done = grown;
    r->child[i].opaque = r;
    r->child[i].layer_priv = NULL;
  }
  for (int i = 0; i < e->n; i++)
    if (to & (1u << i))
      eng_submit_slot (e, i, &r->child[i]);
}
