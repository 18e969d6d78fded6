/* metrics.h - counters, gauges and latency histograms, served to
 * Prometheus (docs/DESIGN.md 2.9).
 *
 * metrics/ keeps a registry of metric families, each a name, a help
 * line, a type and a set of series (one per set of label values).  The
 * owner of a data path adds its series once (metrics_add: allocates,
 * takes the registry's mutex) and then updates them through the
 * metric_* calls, which are relaxed atomics: no lock, no allocation,
 * nothing that waits, so an update costs the data path a few
 * instructions whichever thread scrapes meanwhile.  metrics_render
 * (the HTTP thread of metrics_http.c) reads every series under the
 * mutex, which only metrics_add also takes.  Series live as long as
 * the registry: a pointer from metrics_add stays valid until
 * metrics_free.  Every metric_* call accepts NULL (no registry, or a
 * series that could not be allocated) and does nothing.
 *
 * It may call core/ only; repvold and the attach use it.
 */
#ifndef REPVOL_METRICS_H
#define REPVOL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/bdev.h"
#include "core/util.h"

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metrics;
struct metric;

struct metrics *metrics_new (void);
/* After the HTTP server (if any) has stopped. */
void metrics_free (struct metrics *m);

/* The series of family name (created with help and type on first use;
 * the same name with another type is a programming error) with the
 * labels, "name", "value" pairs ending with NULL.  The same family and
 * label values give the same series back.  NULL when m is NULL or
 * memory ran out.
 */
struct metric *metrics_add (struct metrics *m, enum metric_type type,
                            const char *name, const char *help, ...)
  __attribute__ ((sentinel));

/* Counters: add n (inc: 1); set: a counter kept elsewhere, copied in
 * (it must only grow).  Gauges: set to v, or add a signed delta.
 */
void metric_inc (struct metric *s);
void metric_add (struct metric *s, uint64_t n);
void metric_set (struct metric *s, int64_t v);
void metric_gauge_add (struct metric *s, int64_t delta);
/* Histograms: one observation of ns nanoseconds, counted in the fixed
 * buckets METRICS_BUCKETS_NS (rendered in seconds).
 */
void metric_observe_ns (struct metric *s, uint64_t ns);
/* What a counter or gauge holds now; a histogram's count (tests). */
int64_t metric_value (const struct metric *s);

/* The whole registry in the Prometheus text exposition format 0.0.4,
 * malloc'ed (the caller frees it), its length in *len.  NULL: out of
 * memory.
 */
char *metrics_render (struct metrics *m, size_t *len);

/* ---- a volume's I/O, one family set per prefix (metrics_io.c) ------- */

enum metrics_op { MOP_READ, MOP_WRITE, MOP_FLUSH, MOP_TRIM, MOP_ZERO,
                  MOP_COUNT };

/* PREFIX_ops_total, PREFIX_bytes_total, PREFIX_errors_total (counters)
 * and PREFIX_latency_seconds (histogram), each labelled
 * {label="value",op="read|write|flush|trim|write_zeroes"}.
 */
struct metrics_io {
  struct metric *ops[MOP_COUNT], *bytes[MOP_COUNT], *errors[MOP_COUNT];
  struct metric *latency[MOP_COUNT];
};

/* Add io's series to m (m NULL: io stays all NULL, updates do nothing). */
void metrics_io_init (struct metrics_io *io, struct metrics *m,
                      const char *prefix, const char *label,
                      const char *value);
/* One request of op over len bytes, started at start_ns (now_ns()),
 * completed now with err (0 or an errno).  Ops other than the five
 * data ops are not counted.
 */
void metrics_io_done (struct metrics_io *io, enum bdev_op op, uint64_t len,
                      uint64_t start_ns, int err);

/* A bdev over below that counts what goes through it into io, from
 * submit to completion (the attach puts it under the frontend).  It
 * does not own below: bdev_close frees only the layer.  Its wrappers
 * are recycled, so steady I/O allocates nothing.  NULL: out of memory.
 */
struct bdev *metrics_bdev_new (struct bdev *below, struct metrics_io *io);

/* ---- the HTTP endpoint (metrics_http.c) ----------------------------- */

struct metrics_http;

/* Listen on ADDR:PORT now (a bad address or a port in use fails here,
 * said in err) and serve GET /metrics on a thread of its own.  Signals
 * stay blocked on that thread: the loop's signalfd gets them.
 */
struct metrics_http *metrics_http_start (struct metrics *m,
                                         const char *hostport,
                                         struct error *err);
void metrics_http_stop (struct metrics_http *h);

#endif
