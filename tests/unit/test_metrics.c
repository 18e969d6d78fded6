/* test_metrics.c - metrics/: the exposition text of a small registry,
 * byte for byte (HELP and TYPE once per family, label values and help
 * escaped, negative gauges, histogram buckets cumulative in seconds with
 * +Inf, _sum and _count); the same labels give the same series; NULL
 * series are no-ops; the counting bdev passes requests and their data
 * through to the layer below and counts each op, its bytes, its errors
 * and its latency.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <errno.h>

#include "metrics/metrics.h"
#include "lib/mem_bdev.h"

static void
test_render (void **state)
{
  struct metrics *m = metrics_new ();
  struct metric *c1, *c2, *g, *h;
  size_t len;
  char *text;

  c1 = metrics_add (m, METRIC_COUNTER, "t_ops_total", "Ops \\ and\nmore.",
                    "volume", "a\"b\\c\nd", NULL);
  c2 = metrics_add (m, METRIC_COUNTER, "t_ops_total", "Ops \\ and\nmore.",
                    "volume", "x", NULL);
  assert_ptr_equal (c1, metrics_add (m, METRIC_COUNTER, "t_ops_total", "",
                                     "volume", "a\"b\\c\nd", NULL));
  g = metrics_add (m, METRIC_GAUGE, "t_gauge", "A gauge.", NULL);
  h = metrics_add (m, METRIC_HISTOGRAM, "t_lat_seconds", "Latency.",
                   "op", "read", NULL);
  metric_add (c1, 5);
  metric_inc (c1);
  metric_inc (c2);
  metric_set (g, 3);
  metric_gauge_add (g, -5);
  metric_observe_ns (h, 40000);         /* <= 50 us */
  metric_observe_ns (h, 50000);         /* = 50 us: the same bucket */
  metric_observe_ns (h, 3000000);       /* 5 ms */
  metric_observe_ns (h, 20000000000ull);  /* over 10 s: +Inf only */
  metric_inc (NULL);
  metric_observe_ns (NULL, 1);
  assert_int_equal (metric_value (c1), 6);
  assert_int_equal (metric_value (g), -2);
  assert_int_equal (metric_value (h), 4);

  text = metrics_render (m, &len);
  assert_non_null (text);
  assert_int_equal (strlen (text), len);
  const char *want =
    "# HELP t_ops_total Ops \\\\ and\\nmore.\n"
    "# TYPE t_ops_total counter\n"
    "t_ops_total{volume=\"a\\\"b\\\\c\\nd\"} 6\n"
    "t_ops_total{volume=\"x\"} 1\n"
    "# HELP t_gauge A gauge.\n"
    "# TYPE t_gauge gauge\n"
    "t_gauge -2\n"
    "# HELP t_lat_seconds Latency.\n"
    "# TYPE t_lat_seconds histogram\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"5e-05\"} 2\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"0.0001\"} 2\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"0.00025\"} 2\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"0.0005\"} 2\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"0.001\"} 2\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"0.0025\"} 2\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"0.005\"} 3\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"0.01\"} 3\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"0.025\"} 3\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"0.05\"} 3\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"0.1\"} 3\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"0.25\"} 3\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"0.5\"} 3\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"1\"} 3\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"2.5\"} 3\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"5\"} 3\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"10\"} 3\n"
    "t_lat_seconds_bucket{op=\"read\",le=\"+Inf\"} 4\n"
    "t_lat_seconds_sum{op=\"read\"} 20.003090000\n"
    "t_lat_seconds_count{op=\"read\"} 4\n";
  assert_string_equal (text, want);
  free (text);
  metrics_free (m);
}

static int done_calls, last_err;

static void
on_done (struct bdev_io *io, int err)
{
  done_calls++;
  last_err = err;
}

static void
test_counting_bdev (void **state)
{
  static uint8_t disk[1 << 20], buf[65536];
  struct metrics *m = metrics_new ();
  struct metrics_io io;
  struct mem_bdev mem;
  struct bdev *b;
  struct bdev_io req = { .done = on_done };

  mem_bdev_init (&mem, disk, sizeof disk);
  metrics_io_init (&io, m, "t", "volume", "v");
  b = metrics_bdev_new (&mem.bdev, &io);
  assert_non_null (b);
  assert_int_equal (b->info.size, sizeof disk);
  memset (buf, 0xab, sizeof buf);
  for (int i = 0; i < 3; i++)
    bdev_write (b, &req, i * 65536, 65536, buf, 0);
  bdev_read (b, &req, 4096, 4096, buf, 0);
  bdev_flush (b, &req);
  assert_int_equal (done_calls, 5);
  assert_int_equal (last_err, 0);
  /* Refused by the checked wrapper before the layer sees it. */
  bdev_read (b, &req, sizeof disk, 4096, buf, 0);
  assert_int_equal (done_calls, 6);
  assert_int_equal (last_err, EINVAL);
  assert_int_equal (disk[65536 * 2 + 7], 0xab);
  assert_int_equal (mem.flushes, 1);
  assert_int_equal (metric_value (io.ops[MOP_WRITE]), 3);
  assert_int_equal (metric_value (io.bytes[MOP_WRITE]), 3 * 65536);
  assert_int_equal (metric_value (io.ops[MOP_READ]), 1);
  assert_int_equal (metric_value (io.errors[MOP_READ]), 0);
  assert_int_equal (metric_value (io.bytes[MOP_READ]), 4096);
  assert_int_equal (metric_value (io.ops[MOP_FLUSH]), 1);
  assert_int_equal (metric_value (io.bytes[MOP_FLUSH]), 0);
  assert_int_equal (metric_value (io.latency[MOP_WRITE]), 3);
  assert_int_equal (metric_value (io.ops[MOP_TRIM]), 0);
  bdev_close (b);
  metrics_free (m);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_render),
    cmocka_unit_test (test_counting_bdev),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
