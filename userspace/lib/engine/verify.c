/* verify.c - online verify and repair, and reconcile after a crash.
 *
 * Verify compares the in-sync replicas region by region
 * (ENGINE_VERIFY_REGION) by checksums computed where the data is
 * (BDEV_CHECKSUM); each region is ordered against client writes like a
 * write, so no write lands in it between the checksums and a repair.
 * Reconcile is verify with repair from one pinned replica, reads going
 * only to it meanwhile.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/engine_internal.h"
#include "core/util.h"

static void verify_next (struct engine *e);
static void verify_step (struct eng_req *r);

static void
verify_child_done (struct bdev_io *child, int err)
{
  struct eng_req *r = child->opaque;
  struct verify *vf = &r->e->vf;

  if (err == EPERM)             /* fenced */
    eng_replica_failed (r->e, (int) (child - r->child), err);
  if (err && !vf->err)
    vf->err = err;
  if (--vf->outstanding == 0)
    verify_step (r);
}

static void
verify_region_done (struct engine *e, struct eng_req *r)
{
  struct verify *vf = &e->vf;

  eng_leave_active (e, r);
  free (r->buf);
  free (r);
  if (vf->err || e->broken) {
    vf->running = false;
    vf->done (vf->opaque, vf->differing, vf->repaired, vf->err ? vf->err : EIO);
    return;
  }
  verify_next (e);
}

/* The replica whose checksum most others share: the source of truth. */
static int
majority (const struct engine *e, uint32_t asked)
{
  int best = -1, best_votes = 0;

  for (int i = 0; i < e->n; i++) {
    int votes = 0;
    if (!(asked & (1u << i)))
      continue;
    for (int k = 0; k < e->n; k++)
      votes += (asked & (1u << k)) && e->vf.crc[k] == e->vf.crc[i];
    if (votes > best_votes) {
      best = i;
      best_votes = votes;
    }
  }
  return best;
}

/* Phases (r->pending): 0 ask every in-sync replica for the checksum;
 * 1 compare; 2 repair: the source's data has been read, write it to the
 * others; 3 done.
 */
static void
verify_step (struct eng_req *r)
{
  struct engine *e = r->e;
  struct verify *vf = &e->vf;
  uint32_t len = (uint32_t) (r->end - r->start);
  char line[256];

  if (vf->err) {
    verify_region_done (e, r);
    return;
  }
  switch (r->pending++) {
  case 0:
    vf->asked = mask_of (e, ENGINE_IN_SYNC);
    vf->outstanding = __builtin_popcount (vf->asked);
    if (vf->outstanding < 1) {
      vf->err = EIO;
      verify_region_done (e, r);
      return;
    }
    for (int i = 0; i < e->n; i++)
      if (vf->asked & (1u << i))
        r->child[i] = (struct bdev_io) {
          .op = BDEV_CHECKSUM, .offset = r->start, .len = len,
          .buf = &vf->crc[i], .done = verify_child_done, .opaque = r,
        };
    for (int i = 0; i < e->n; i++)
      if (vf->asked & (1u << i))
        eng_submit_slot (e, i, &r->child[i]);
    return;
  case 1: {
    /* asked is what was in sync when the checksums went out; a replica
     * that failed since has left its slot (its bdev is closed) and is
     * caught up from the dirty map (docs/DESIGN.md rule 5), not here.
     */
    vf->asked &= mask_of (e, ENGINE_IN_SYNC);
    if (!vf->asked) {
      vf->err = EIO;
      verify_region_done (e, r);
      return;
    }
    int src = vf->pinned >= 0 && (vf->asked & (1u << vf->pinned))
      ? vf->pinned : majority (e, vf->asked);
    vf->bad = 0;
    for (int i = 0; i < e->n; i++)
      if ((vf->asked & (1u << i)) && vf->crc[i] != vf->crc[src])
        vf->bad |= 1u << i;
    if (!vf->bad) {
      verify_region_done (e, r);
      return;
    }
    vf->differing++;
    int n = snprintf (line, sizeof line, "region %llu+%u differs:",
                      (unsigned long long) r->start, len);
    for (int i = 0; i < e->n && n < (int) sizeof line; i++)
      if (vf->asked & (1u << i))
        n += snprintf (line + n, sizeof line - n, " %s=%08x%s", e->name[i],
                       vf->crc[i], vf->bad & (1u << i) ? "*" : "");
    vf->report (vf->opaque, line);
    if (!vf->repair) {
      verify_region_done (e, r);
      return;
    }
    vf->source = src;
    if (posix_memalign (&r->buf, 4096, len) != 0) {
      vf->err = ENOMEM;
      verify_region_done (e, r);
      return;
    }
    vf->outstanding = 1;
    r->child[src] = (struct bdev_io) {
      .op = BDEV_READ, .offset = r->start, .len = len, .buf = r->buf,
      .done = verify_child_done, .opaque = r,
    };
    eng_submit_slot (e, src, &r->child[src]);
    return;
  }
  case 2: {
    /* The same again after the read: only replicas still in sync are
     * repaired (a failed one's slot may hold no bdev now).  While
     * degraded the repair is a write the lost replicas miss, so the
     * survivors record it in their dirty maps (docs/DESIGN.md rule 2),
     * or the catch-up would leave the lost replica's old region behind.
     */
    uint32_t flags = BDEV_FUA;
    vf->bad &= mask_of (e, ENGINE_IN_SYNC);
    if (degraded (e) && e->have_hooks)
      flags |= BDEV_DIRTY;
    vf->outstanding = __builtin_popcount (vf->bad);
    if (vf->outstanding == 0) {       /* every one to repair is gone */
      verify_region_done (e, r);
      return;
    }
    for (int i = 0; i < e->n; i++)
      if (vf->bad & (1u << i))
        r->child[i] = (struct bdev_io) {
          .op = BDEV_WRITE, .flags = flags, .offset = r->start, .len = len,
          .buf = r->buf, .done = verify_child_done, .opaque = r,
        };
    for (int i = 0; i < e->n; i++)
      if (vf->bad & (1u << i))
        eng_submit_slot (e, i, &r->child[i]);
    return;
  }
  default:
    vf->repaired++;
    snprintf (line, sizeof line, "region %llu+%u repaired from %s",
              (unsigned long long) r->start, len, e->name[vf->source]);
    vf->report (vf->opaque, line);
    verify_region_done (e, r);
  }
}

static void
verify_next (struct engine *e)
{
  struct verify *vf = &e->vf;
  struct eng_req *r;

  if (vf->next >= e->bdev.info.size || e->drain_done) {
    vf->running = false;
    vf->done (vf->opaque, vf->differing, vf->repaired,
              vf->next >= e->bdev.info.size ? 0 : ECANCELED);
    return;
  }
  r = calloc (1, sizeof *r);
  if (!r) {
    vf->running = false;
    vf->done (vf->opaque, vf->differing, vf->repaired, ENOMEM);
    return;
  }
  r->e = e;
  r->kind = REQ_VERIFY;
  r->start = vf->next;
  r->end = MIN (vf->next + ENGINE_VERIFY_REGION, e->bdev.info.size);
  r->internal_done = verify_step;
  vf->next = r->end;
  eng_order_write (e, r);
}

static void
start_verify (struct engine *e, bool repair, int pinned,
              void (*report) (void *, const char *),
              void (*done) (void *, uint64_t, uint64_t, int), void *opaque)
{
  if (e->vf.running) {
    done (opaque, 0, 0, EBUSY);
    return;
  }
  e->vf = (struct verify) { .running = true, .repair = repair,
                            .pinned = pinned, .report = report,
                            .done = done, .opaque = opaque };
  verify_next (e);
}

void
engine_verify (struct bdev *b, bool repair,
               void (*report) (void *, const char *),
               void (*done) (void *, uint64_t, uint64_t, int), void *opaque)
{
  start_verify (b->priv, repair, -1, report, done, opaque);
}

/* Reconcile: after a host died with writes in flight, replicas may
 * differ where those writes went to some and not others.  Make every
 * replica equal to one of them, region by region, reading only from it
 * meanwhile so no client sees two versions.
 */
struct reconcile {
  struct engine *e;
  void (*done) (void *, uint64_t, int);
  void *opaque;
};

static void
reconcile_report (void *opaque, const char *line)
{
  log_debug ("reconcile: %s", line);
}

static void
reconcile_done (void *opaque, uint64_t differing, uint64_t repaired, int err)
{
  struct reconcile *rc = opaque;

  rc->e->read_pin = -1;
  rc->done (rc->opaque, repaired, err);
  free (rc);
}

void
engine_reconcile (struct bdev *b, void (*done) (void *, uint64_t, int),
                  void *opaque)
{
  struct engine *e = b->priv;
  struct reconcile *rc = calloc (1, sizeof *rc);
  int pin = -1;

  for (int i = 0; i < e->n && pin < 0; i++)
    if (e->state[i] == ENGINE_IN_SYNC)
      pin = i;
  if (!rc || pin < 0) {
    free (rc);
    done (opaque, 0, pin < 0 ? EIO : ENOMEM);
    return;
  }
  rc->e = e;
  rc->done = done;
  rc->opaque = opaque;
  e->read_pin = pin;
  start_verify (e, true, pin, reconcile_report, reconcile_done, rc);
}
