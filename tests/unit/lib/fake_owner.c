/* fake_owner.c - the engine's owner and a volume of fake replicas, for
 * the engine's unit tests (see fake_owner.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fake_owner.h"
#include "core/util.h"
#include "replica/proto.h"

static int
hook_out (void *opaque, int i)
{
  struct fake_owner *o = opaque;
  o->out_of_sync[i]++;
  return o->out_err;
}

static int
hook_in (void *opaque, int i)
{
  struct fake_owner *o = opaque;
  o->in_sync[i]++;
  return o->in_err;
}

static struct bdev *
hook_reconnect (void *opaque, int i)
{
  struct fake_owner *o = opaque;
  struct bdev *b = o->back[i];

  o->reconnects[i]++;
  o->back[i] = NULL;
  return b;
}

static void
hook_progress (void *opaque, int i, uint64_t done, uint64_t total,
               uint64_t rate)
{
  struct fake_owner *o = opaque;
  o->progress_done[i] = done;
  o->progress_total[i] = total;
}

static void
hook_fenced (void *opaque, int i)
{
  struct fake_owner *o = opaque;
  o->fenced[i]++;
}

void
fake_owner_init (struct fake_owner *o)
{
  memset (o, 0, sizeof *o);
  o->hooks = (struct engine_hooks) {
    .mark_out_of_sync = hook_out, .mark_in_sync = hook_in,
    .reconnect = hook_reconnect, .progress = hook_progress,
    .fenced = hook_fenced, .opaque = o,
  };
}

struct fake_bdev *
fake_vol_connect (struct fake_vol *v, int i)
{
  return fake_bdev_new (v->rep[i], v->loop, NULL);
}

void
fake_vol_open (struct fake_vol *v, int n, uint64_t size,
               const enum engine_rep_state *states,
               const struct engine_config *cfg)
{
  static const char *const names[ENGINE_MAX_REPLICAS] = {
    "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7",
  };
  struct engine_config fast = { .resync_rate = 1ull << 30,
                                .reconnect_ms = 1 };
  struct bdev *reps[ENGINE_MAX_REPLICAS] = { NULL };
  struct bdev_info info = {
    .size = size, .block_size = 512, .max_io = RV_MAX_PAYLOAD,
    .volatile_cache = 1,
  };

  memset (v, 0, sizeof *v);
  v->loop = loop_new ();
  if (!v->loop)
    abort ();
  v->n = n;
  v->size = size;
  fake_owner_init (&v->owner);
  for (int i = 0; i < n; i++) {
    v->rep[i] = fake_replica_new (size);
    if (!states || states[i] != ENGINE_OUT)
      reps[i] = &fake_vol_connect (v, i)->bdev;
  }
  v->engine = engine_new (v->loop, reps, names, states, n, &info,
                          &v->owner.hooks, cfg ? cfg : &fast);
  if (!v->engine)
    abort ();
}

void
fake_vol_fill (struct fake_vol *v, unsigned seed)
{
  fake_pattern (v->rep[0]->data, v->size, 0, seed);
  for (int i = 1; i < v->n; i++)
    memcpy (v->rep[i]->data, v->rep[0]->data, v->size);
}

void
fake_vol_close (struct fake_vol *v)
{
  if (v->engine)
    bdev_close (v->engine);
  v->engine = NULL;
  loop_free (v->loop);
  for (int i = 0; i < v->n; i++)
    fake_replica_free (v->rep[i]);
}

struct in_sync_wait {
  struct fake_vol *v;
  int i, calls;
};

static bool
in_sync_reached (void *opaque)
{
  struct in_sync_wait *w = opaque;
  return w->v->owner.in_sync[w->i] >= w->calls;
}

bool
fake_vol_wait_in_sync (struct fake_vol *v, int i, int calls,
                       unsigned timeout_ms)
{
  struct in_sync_wait w = { v, i, calls };
  return fake_run_until (v->loop, in_sync_reached, &w, timeout_ms);
}

static void
client_done (struct bdev_io *io, int err)
{
  struct fake_client_io *c = container_of (io, struct fake_client_io, io);
  c->done++;
  c->err = err;
}

void
fake_client_submit (struct bdev *b, struct fake_client_io *c,
                    enum bdev_op op, uint64_t offset, uint32_t len, void *buf)
{
  memset (c, 0, sizeof *c);
  c->io = (struct bdev_io) { .op = op, .offset = offset, .len = len,
                             .buf = buf, .done = client_done };
  bdev_submit (b, &c->io);
}

static bool
client_finished (void *opaque)
{
  struct fake_client_io *c = opaque;
  return c->done > 0;
}

bool
fake_client_wait (struct fake_vol *v, struct fake_client_io *c,
                  unsigned timeout_ms)
{
  return fake_run_until (v->loop, client_finished, c, timeout_ms);
}

int
fake_client_sync (struct fake_vol *v, enum bdev_op op, uint64_t offset,
                  uint32_t len, void *buf)
{
  struct fake_client_io c;

  fake_client_submit (v->engine, &c, op, offset, len, buf);
  if (!fake_client_wait (v, &c, 10000))
    return ETIMEDOUT;
  return c.err;
}

void
fake_pattern (void *buf, size_t len, uint64_t offset, unsigned seed)
{
  uint8_t *p = buf;
  for (size_t k = 0; k < len; k++) {
    uint64_t x = (offset + k) * 2654435761u + seed * 40503u;
    p[k] = (uint8_t) (x >> 13) ^ (uint8_t) seed;
  }
}
