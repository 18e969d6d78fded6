/* mem_bdev.c - a RAM disk bdev for tests (see mem_bdev.h). */
#include <string.h>

#include "mem_bdev.h"

static void
mem_submit (struct bdev *b, struct bdev_io *io)
{
  struct mem_bdev *m = b->priv;

  switch (io->op) {
  case BDEV_READ: memcpy (io->buf, m->data + io->offset, io->len); break;
  case BDEV_WRITE: memcpy (m->data + io->offset, io->buf, io->len); break;
  case BDEV_WRITE_ZEROES: memset (m->data + io->offset, 0, io->len); break;
  case BDEV_FLUSH: m->flushes++; break;
  default: break;
  }
  io->done (io, 0);
}

static const struct bdev_ops mem_ops = { .name = "mem", .submit = mem_submit };

void
mem_bdev_init (struct mem_bdev *m, void *data, uint64_t size)
{
  memset (m, 0, sizeof *m);
  m->data = data;
  m->bdev = (struct bdev) {
    .ops = &mem_ops, .priv = m,
    .info = { .size = size, .block_size = 512, .max_io = 65536,
              .volatile_cache = 1 },
  };
}
