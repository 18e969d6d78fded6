/* bdev.c - the checked wrappers every caller of a bdev goes through.
 *
 * The checks are what each layer would otherwise have to repeat, or
 * forget: a layer below sees only requests inside the device, aligned
 * to its block size, no larger than it can take, with only the flags
 * its op allows.  A refused request completes with EINVAL; the count
 * is logged at 1, 2, 4, 8, ... refusals so a flood cannot flood the
 * log.  Everything here runs on the loop thread of the bdev.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>

#include "core/util.h"
#include "core/bdev.h"

static uint64_t refused;

uint64_t
bdev_refused_count (void)
{
  return refused;
}

static const char *
op_name (enum bdev_op op)
{
  static const char *const names[] = {
    [BDEV_READ] = "read", [BDEV_WRITE] = "write", [BDEV_FLUSH] = "flush",
    [BDEV_TRIM] = "trim", [BDEV_WRITE_ZEROES] = "write-zeroes",
    [BDEV_MARK_DIRTY] = "mark-dirty", [BDEV_DIRTY_GET] = "dirty-get",
    [BDEV_DIRTY_CLEAR] = "dirty-clear", [BDEV_CHECKSUM] = "checksum",
    [BDEV_RESIZE] = "resize",
  };
  return (unsigned) op < ARRAY_SIZE (names) && names[op] ? names[op] : "?";
}

/* The flags each op may carry. */
static uint32_t
allowed_flags (enum bdev_op op)
{
  switch (op) {
  case BDEV_WRITE:
    return BDEV_FUA | BDEV_HAS_CRC | BDEV_DIRTY;
  case BDEV_TRIM:
    return BDEV_FUA | BDEV_DIRTY;
  case BDEV_WRITE_ZEROES:
    return BDEV_FUA | BDEV_NO_HOLE | BDEV_DIRTY;
  case BDEV_RESIZE:
    return BDEV_RESERVE;
  default:
    return 0;
  }
}

/* NULL when io may go down to b, else why not. */
static const char *
check (const struct bdev *b, const struct bdev_io *io)
{
  const struct bdev_info *in = &b->info;
  bool ranged = false, aligned = false, data = false;

  switch (io->op) {
  case BDEV_READ:
  case BDEV_WRITE:
    ranged = aligned = data = true;
    break;
  case BDEV_TRIM:
  case BDEV_WRITE_ZEROES:
    ranged = aligned = true;
    break;
  case BDEV_MARK_DIRTY:
  case BDEV_CHECKSUM:
    ranged = true;
    break;
  case BDEV_FLUSH:
  case BDEV_DIRTY_GET:
  case BDEV_DIRTY_CLEAR:
    break;
  case BDEV_RESIZE:
    /* The new size is io->offset; the length carries nothing. */
    if (io->len != 0)
      return "a resize carries no length";
    if (io->offset == 0 || (in->block_size > 1 &&
                            (io->offset & (in->block_size - 1))))
      return "new size zero or not a multiple of the block size";
    break;
  default:
    return "unknown operation";
  }
  if (io->flags & ~allowed_flags (io->op))
    return "flags not valid for this operation";
  if (ranged && (io->offset > in->size || io->len > in->size - io->offset))
    return "past the end of the device";
  if (aligned && in->block_size > 1 &&
      ((io->offset | io->len) & (in->block_size - 1)))
    return "not aligned to the block size";
  if (data && in->max_io && io->len > in->max_io)
    return "larger than the device's largest request";
  if ((data || io->op == BDEV_DIRTY_GET || io->op == BDEV_CHECKSUM) &&
      io->buf == NULL && io->len > 0)
    return "no buffer";
  return NULL;
}

void
bdev_submit (struct bdev *b, struct bdev_io *io)
{
  const char *why;

  /* The table's contract: a layer that cannot submit is no layer. */
  assert (b && b->ops && b->ops->submit);
  assert (io->done);
  assert (b->info.block_size == 0 ||
          (b->info.block_size & (b->info.block_size - 1)) == 0);
  why = check (b, io);
  if (why) {
    refused++;
    if ((refused & (refused - 1)) == 0)
      log_error ("%s: refused %s of %" PRIu32 " bytes at %" PRIu64 " on a "
                 "%" PRIu64 "-byte device: %s (%" PRIu64 " refused so far)",
                 b->ops->name ? b->ops->name : "bdev", op_name (io->op),
                 io->len, io->offset, b->info.size, why, refused);
    io->done (io, EINVAL);
    return;
  }
  b->ops->submit (b, io);
}

static void
fill (struct bdev_io *io, enum bdev_op op, uint64_t offset, uint32_t len,
      void *buf, uint32_t flags)
{
  io->op = op;
  io->offset = offset;
  io->len = len;
  io->buf = buf;
  io->flags = flags;
}

void
bdev_read (struct bdev *b, struct bdev_io *io, uint64_t offset, uint32_t len,
           void *buf, uint32_t flags)
{
  fill (io, BDEV_READ, offset, len, buf, flags);
  bdev_submit (b, io);
}

void
bdev_write (struct bdev *b, struct bdev_io *io, uint64_t offset, uint32_t len,
            void *buf, uint32_t flags)
{
  fill (io, BDEV_WRITE, offset, len, buf, flags);
  bdev_submit (b, io);
}

void
bdev_flush (struct bdev *b, struct bdev_io *io)
{
  fill (io, BDEV_FLUSH, 0, 0, NULL, 0);
  bdev_submit (b, io);
}

void
bdev_trim (struct bdev *b, struct bdev_io *io, uint64_t offset, uint32_t len,
           uint32_t flags)
{
  fill (io, BDEV_TRIM, offset, len, NULL, flags);
  bdev_submit (b, io);
}

void
bdev_zero (struct bdev *b, struct bdev_io *io, uint64_t offset, uint32_t len,
           uint32_t flags)
{
  fill (io, BDEV_WRITE_ZEROES, offset, len, NULL, flags);
  bdev_submit (b, io);
}

void
bdev_resize (struct bdev *b, struct bdev_io *io, uint64_t size,
             uint32_t flags)
{
  fill (io, BDEV_RESIZE, size, 0, NULL, flags);
  bdev_submit (b, io);
}

void
bdev_drain (struct bdev *b, void (*done) (void *opaque), void *opaque)
{
  assert (b->ops->drain);
  b->ops->drain (b, done, opaque);
}

void
bdev_health (struct bdev *b, struct bdev_health *h)
{
  h->up = 1;
  h->fenced = 0;
  h->latency_ns = 0;
  if (b->ops->health)
    b->ops->health (b, h);
}

void
bdev_close (struct bdev *b)
{
  if (b && b->ops->close)
    b->ops->close (b);
}
