/* test_bdev.c - the checked wrappers of core/bdev.c: what a layer may
 * be given reaches it unchanged; everything else (unknown op or flag,
 * past the end, overflowing, misaligned, oversized, no buffer)
 * completes with EINVAL without reaching the layer, and is counted.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/util.h"
#include "core/bdev.h"

#define SIZE (1u << 20)

struct rec {
  int submitted, drained, closed;
  struct bdev_io *last;
};

static void
rec_submit (struct bdev *b, struct bdev_io *io)
{
  struct rec *r = b->priv;
  r->submitted++;
  r->last = io;
  io->done (io, 0);
}

static void
rec_drain (struct bdev *b, void (*done) (void *), void *opaque)
{
  ((struct rec *) b->priv)->drained++;
  done (opaque);
}

static void
rec_close (struct bdev *b)
{
  ((struct rec *) b->priv)->closed++;
}

static const struct bdev_ops rec_ops = {
  .name = "rec", .submit = rec_submit, .drain = rec_drain, .close = rec_close,
};

static int last_err, completions;

static void
done (struct bdev_io *io, int err)
{
  last_err = err;
  completions++;
}

static void
drained (void *opaque)
{
  (*(int *) opaque)++;
}

/* Submit one io; returns its completion error, and checks it completed
 * exactly once and reached the layer only when accepted.
 */
static int
run (struct bdev *b, struct bdev_io *io)
{
  struct rec *r = b->priv;
  int before = r->submitted;
  uint64_t refused = bdev_refused_count ();

  completions = 0;
  last_err = -1;
  io->done = done;
  bdev_submit (b, io);
  assert_int_equal (completions, 1);
  if (last_err == 0) {
    assert_int_equal (r->submitted, before + 1);
    assert_ptr_equal (r->last, io);
  }
  else {
    assert_int_equal (r->submitted, before);
    assert_int_equal (bdev_refused_count (), refused + 1);
  }
  return last_err;
}

static void
test_checks (void **state)
{
  static char buf[SIZE];
  struct rec r = { 0 };
  struct bdev b = { .ops = &rec_ops, .priv = &r,
                    .info = { .size = SIZE, .block_size = 4096,
                              .max_io = 65536, .volatile_cache = 1 } };
  struct bdev_io io;

#define IO(...) (io = (struct bdev_io) { __VA_ARGS__ }, run (&b, &io))
  /* Accepted. */
  assert_int_equal (IO (.op = BDEV_READ, .offset = 0, .len = 4096, .buf = buf), 0);
  assert_int_equal (IO (.op = BDEV_WRITE, .offset = SIZE - 65536, .len = 65536,
                        .buf = buf, .flags = BDEV_FUA | BDEV_HAS_CRC), 0);
  assert_int_equal (IO (.op = BDEV_FLUSH), 0);
  assert_int_equal (IO (.op = BDEV_TRIM, .offset = 0, .len = SIZE), 0);
  assert_int_equal (IO (.op = BDEV_WRITE_ZEROES, .offset = 8192, .len = SIZE - 8192,
                        .flags = BDEV_NO_HOLE | BDEV_DIRTY), 0);
  assert_int_equal (IO (.op = BDEV_CHECKSUM, .offset = 1, .len = SIZE - 1,
                        .buf = buf), 0);            /* not block bound */
  assert_int_equal (IO (.op = BDEV_MARK_DIRTY, .offset = 0, .len = SIZE), 0);
  assert_int_equal (IO (.op = BDEV_DIRTY_GET, .len = 100, .buf = buf), 0);
  assert_int_equal (IO (.op = BDEV_DIRTY_CLEAR), 0);
  assert_int_equal (IO (.op = BDEV_READ, .offset = SIZE, .len = 0, .buf = buf), 0);

  /* Refused. */
  assert_int_equal (IO (.op = 0), EINVAL);
  assert_int_equal (IO (.op = 99), EINVAL);
  assert_int_equal (IO (.op = BDEV_READ, .offset = 0, .len = 4096, .buf = buf,
                        .flags = BDEV_FUA), EINVAL);
  assert_int_equal (IO (.op = BDEV_FLUSH, .flags = BDEV_DIRTY), EINVAL);
  assert_int_equal (IO (.op = BDEV_WRITE, .offset = 0, .len = 4096, .buf = buf,
                        .flags = 1u << 20), EINVAL);
  assert_int_equal (IO (.op = BDEV_READ, .offset = SIZE, .len = 4096, .buf = buf),
                    EINVAL);
  assert_int_equal (IO (.op = BDEV_READ, .offset = SIZE - 4096, .len = 8192,
                        .buf = buf), EINVAL);
  assert_int_equal (IO (.op = BDEV_TRIM, .offset = UINT64_MAX - 4095,
                        .len = 8192), EINVAL);
  assert_int_equal (IO (.op = BDEV_CHECKSUM, .offset = SIZE + 1, .len = 0,
                        .buf = buf), EINVAL);
  assert_int_equal (IO (.op = BDEV_WRITE, .offset = 512, .len = 4096, .buf = buf),
                    EINVAL);
  assert_int_equal (IO (.op = BDEV_WRITE_ZEROES, .offset = 0, .len = 100), EINVAL);
  assert_int_equal (IO (.op = BDEV_READ, .offset = 0, .len = 65536 + 4096,
                        .buf = buf), EINVAL);
  assert_int_equal (IO (.op = BDEV_WRITE, .offset = 0, .len = 4096), EINVAL);
  assert_int_equal (IO (.op = BDEV_CHECKSUM, .offset = 0, .len = 4096), EINVAL);
#undef IO

  /* The named wrappers fill the request. */
  io = (struct bdev_io) { .done = done };
  completions = 0;
  bdev_write (&b, &io, 4096, 8192, buf, BDEV_FUA);
  assert_int_equal (completions, 1);
  assert_int_equal (last_err, 0);
  assert_int_equal (io.op, BDEV_WRITE);
  assert_int_equal (io.offset, 4096);
  assert_int_equal (io.len, 8192);
  assert_ptr_equal (io.buf, buf);
  assert_int_equal (io.flags, BDEV_FUA);
  bdev_read (&b, &io, 0, 4096, buf, 0);
  assert_int_equal (io.op, BDEV_READ);
  bdev_flush (&b, &io);
  assert_int_equal (io.op, BDEV_FLUSH);
  bdev_trim (&b, &io, 0, 4096, 0);
  assert_int_equal (io.op, BDEV_TRIM);
  bdev_zero (&b, &io, 0, 4096, BDEV_NO_HOLE);
  assert_int_equal (io.op, BDEV_WRITE_ZEROES);
  assert_int_equal (completions, 5);
  bdev_zero (&b, &io, 0, 4095, 0);
  assert_int_equal (last_err, EINVAL);

  /* The rest of the table. */
  int n = 0;
  struct bdev_health h = { .up = 0, .latency_ns = 7 };
  bdev_health (&b, &h);                 /* no health op: up, unknown */
  assert_int_equal (h.up, 1);
  assert_int_equal (h.latency_ns, 0);
  bdev_drain (&b, drained, &n);
  assert_int_equal (n, 1);
  assert_int_equal (r.drained, 1);
  bdev_close (&b);
  assert_int_equal (r.closed, 1);
  bdev_close (NULL);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_checks),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
