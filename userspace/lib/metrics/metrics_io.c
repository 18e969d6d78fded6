/* metrics_io.c - a volume's I/O counted by op: the families every data
 * path shares (metrics.h, struct metrics_io), and the bdev layer that
 * counts what a frontend asks of the volume.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"

static const char *const op_name[MOP_COUNT] = {
  [MOP_READ] = "read", [MOP_WRITE] = "write", [MOP_FLUSH] = "flush",
  [MOP_TRIM] = "trim", [MOP_ZERO] = "write_zeroes",
};

void
metrics_io_init (struct metrics_io *io, struct metrics *m, const char *prefix,
                 const char *label, const char *value)
{
  char name[4][128];

  memset (io, 0, sizeof *io);
  if (!m)
    return;
  snprintf (name[0], sizeof name[0], "%s_ops_total", prefix);
  snprintf (name[1], sizeof name[1], "%s_bytes_total", prefix);
  snprintf (name[2], sizeof name[2], "%s_errors_total", prefix);
  snprintf (name[3], sizeof name[3], "%s_latency_seconds", prefix);
  for (int i = 0; i < MOP_COUNT; i++) {
    io->ops[i] = metrics_add (m, METRIC_COUNTER, name[0],
                              "Requests completed, by operation.",
                              label, value, "op", op_name[i], NULL);
    io->bytes[i] = metrics_add (m, METRIC_COUNTER, name[1],
                                "Bytes of the requests completed, by "
                                "operation.", label, value, "op",
                                op_name[i], NULL);
    io->errors[i] = metrics_add (m, METRIC_COUNTER, name[2],
                                 "Requests completed with an error, by "
                                 "operation.", label, value, "op",
                                 op_name[i], NULL);
    io->latency[i] = metrics_add (m, METRIC_HISTOGRAM, name[3],
                                  "Time from a request's arrival to its "
                                  "completion, by operation.", label,
                                  value, "op", op_name[i], NULL);
  }
}

static int
op_index (enum bdev_op op)
{
  switch (op) {
  case BDEV_READ:         return MOP_READ;
  case BDEV_WRITE:        return MOP_WRITE;
  case BDEV_FLUSH:        return MOP_FLUSH;
  case BDEV_TRIM:         return MOP_TRIM;
  case BDEV_WRITE_ZEROES: return MOP_ZERO;
  default:                return -1;
  }
}

void
metrics_io_done (struct metrics_io *io, enum bdev_op op, uint64_t len,
                 uint64_t start_ns, int err)
{
  int i = op_index (op);

  if (i < 0 || !io->ops[i])
    return;
  metric_inc (io->ops[i]);
  metric_add (io->bytes[i], op == BDEV_FLUSH ? 0 : len);
  if (err)
    metric_inc (io->errors[i]);
  metric_observe_ns (io->latency[i], now_ns () - start_ns);
}

/* ---- the counting bdev ---------------------------------------------- */

/* One request on its way down: the caller's io is parent, ours goes
 * below.  Free ones are kept on a list for the next request.
 */
struct mio {
  struct bdev_io io;
  struct bdev_io *parent;
  uint64_t start_ns;
  struct mio *next_free;
};

struct mbdev {
  struct bdev bdev;
  struct bdev *below;
  struct metrics_io *io;
  struct mio *free_list;
  size_t inflight;
};

static void
mio_done (struct bdev_io *io, int err)
{
  struct mio *w = container_of (io, struct mio, io);
  struct mbdev *mb = io->opaque;
  struct bdev_io *parent = w->parent;

  metrics_io_done (mb->io, parent->op, parent->len, w->start_ns, err);
  if (parent->op == BDEV_RESIZE && !err)
    mb->bdev.info.size = mb->below->info.size;
  w->next_free = mb->free_list;
  mb->free_list = w;
  mb->inflight--;
  parent->done (parent, err);
}

static void
mb_submit (struct bdev *b, struct bdev_io *parent)
{
  struct mbdev *mb = b->priv;
  struct mio *w = mb->free_list;

  if (w)
    mb->free_list = w->next_free;
  else if ((w = malloc (sizeof *w)) == NULL) {
    parent->done (parent, ENOMEM);
    return;
  }
  w->parent = parent;
  w->start_ns = now_ns ();
  w->io = (struct bdev_io) {
    .op = parent->op, .flags = parent->flags, .offset = parent->offset,
    .len = parent->len, .buf = parent->buf, .crc = parent->crc,
    .done = mio_done, .opaque = mb,
  };
  mb->inflight++;
  bdev_submit (mb->below, &w->io);
}

static void
mb_drain (struct bdev *b, void (*done) (void *), void *opaque)
{
  struct mbdev *mb = b->priv;

  bdev_drain (mb->below, done, opaque);
}

static void
mb_health (struct bdev *b, struct bdev_health *h)
{
  struct mbdev *mb = b->priv;

  bdev_health (mb->below, h);
}

static void
mb_close (struct bdev *b)
{
  struct mbdev *mb = b->priv;

  /* Closed once the frontend is gone: nothing is in flight. */
  assert (mb->inflight == 0);
  for (struct mio *w = mb->free_list, *n; w; w = n) {
    n = w->next_free;
    free (w);
  }
  free (mb);
}

static const struct bdev_ops mb_ops = {
  .name = "metrics", .submit = mb_submit, .drain = mb_drain,
  .health = mb_health, .close = mb_close,
};

struct bdev *
metrics_bdev_new (struct bdev *below, struct metrics_io *io)
{
  struct mbdev *mb = calloc (1, sizeof *mb);

  if (!mb)
    return NULL;
  mb->below = below;
  mb->io = io;
  mb->bdev.ops = &mb_ops;
  mb->bdev.info = below->info;
  mb->bdev.priv = mb;
  return &mb->bdev;
}
