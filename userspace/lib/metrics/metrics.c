/* metrics.c - the registry of metric families and series, and its
 * rendering in the Prometheus text exposition format 0.0.4.
 *
 * Updates are relaxed atomics on the series (metrics.h): a scrape may
 * see one counter a request ahead of another, never a torn value.  A
 * histogram's _count is rendered as the sum of its buckets as read, so
 * the +Inf bucket and _count always agree within one scrape.
 */
#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"

/* Latency buckets, ns: 50 us to 10 s. */
static const uint64_t buckets_ns[] = {
  50000, 100000, 250000, 500000,
  1000000, 2500000, 5000000, 10000000, 25000000, 50000000,
  100000000, 250000000, 500000000,
  1000000000, 2500000000, 5000000000, 10000000000,
};
#define NBUCKETS ARRAY_SIZE (buckets_ns)

struct metric {
  struct metric *next;
  char *labels;                 /* rendered: a="x",b="y" ("" for none) */
  _Atomic uint64_t v;           /* counter; gauge (two's complement) */
  _Atomic uint64_t *bucket;     /* histogram: NBUCKETS + 1 (the last +Inf) */
  _Atomic uint64_t sum_ns;
};

struct family {
  struct family *next;
  char *name, *help;
  enum metric_type type;
  struct metric *series, *last;
};

struct metrics {
  pthread_mutex_t lock;         /* the lists; never the values */
  struct family *families, *last;
};

struct metrics *
metrics_new (void)
{
  struct metrics *m = calloc (1, sizeof *m);

  if (m)
    pthread_mutex_init (&m->lock, NULL);
  return m;
}

static void
series_free (struct metric *s)
{
  free (s->labels);
  free (s->bucket);
  free (s);
}

void
metrics_free (struct metrics *m)
{
  if (!m)
    return;
  for (struct family *f = m->families, *fn; f; f = fn) {
    fn = f->next;
    for (struct metric *s = f->series, *sn; s; s = sn) {
      sn = s->next;
      series_free (s);
    }
    free (f->name);
    free (f->help);
    free (f);
  }
  pthread_mutex_destroy (&m->lock);
  free (m);
}

/* [a-zA-Z_:][a-zA-Z0-9_:]*, as the exposition format wants; label
 * names the same without ':'.
 */
static bool
valid_metric_name (const char *s, bool label)
{
  if (!*s || isdigit ((unsigned char) *s))
    return false;
  for (; *s; s++)
    if (!isalnum ((unsigned char) *s) && *s != '_' && (label || *s != ':'))
      return false;
  return true;
}

/* A label value or help text, escaped: backslash and newline always,
 * the double quote in label values.
 */
static void
put_escaped (FILE *f, const char *s, bool quote)
{
  for (; *s; s++) {
    if (*s == '\\')
      fputs ("\\\\", f);
    else if (*s == '\n')
      fputs ("\\n", f);
    else if (*s == '"' && quote)
      fputs ("\\\"", f);
    else
      fputc (*s, f);
  }
}

static char *
render_labels (va_list ap)
{
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream (&out, &len);
  const char *name, *sep = "";

  if (!f)
    return NULL;
  while ((name = va_arg (ap, const char *)) != NULL) {
    const char *value = va_arg (ap, const char *);
    assert (valid_metric_name (name, true));
    fprintf (f, "%s%s=\"", sep, name);
    put_escaped (f, value ? value : "", true);
    fputc ('"', f);
    sep = ",";
  }
  if (fclose (f) != 0) {
    free (out);
    return NULL;
  }
  return out;
}

static struct family *
family_get (struct metrics *m, enum metric_type type, const char *name,
            const char *help)
{
  struct family *f;

  for (f = m->families; f; f = f->next)
    if (strcmp (f->name, name) == 0) {
      assert (f->type == type);
      return f;
    }
  f = calloc (1, sizeof *f);
  if (!f || !(f->name = strdup (name)) || !(f->help = strdup (help))) {
    if (f)
      free (f->name);
    free (f);
    return NULL;
  }
  f->type = type;
  if (m->last) m->last->next = f; else m->families = f;
  m->last = f;
  return f;
}

struct metric *
metrics_add (struct metrics *m, enum metric_type type, const char *name,
             const char *help, ...)
{
  struct metric *s = NULL;
  struct family *f;
  char *labels;
  va_list ap;

  if (!m)
    return NULL;
  assert (valid_metric_name (name, false));
  va_start (ap, help);
  labels = render_labels (ap);
  va_end (ap);
  if (!labels)
    return NULL;
  pthread_mutex_lock (&m->lock);
  if ((f = family_get (m, type, name, help)) == NULL)
    goto out;
  for (s = f->series; s; s = s->next)
    if (strcmp (s->labels, labels) == 0)
      goto out;
  s = calloc (1, sizeof *s);
  if (!s)
    goto out;
  if (type == METRIC_HISTOGRAM &&
      !(s->bucket = calloc (NBUCKETS + 1, sizeof *s->bucket))) {
    free (s);
    s = NULL;
    goto out;
  }
  s->labels = labels;
  labels = NULL;
  if (f->last) f->last->next = s; else f->series = s;
  f->last = s;
 out:
  pthread_mutex_unlock (&m->lock);
  free (labels);
  return s;
}

void
metric_add (struct metric *s, uint64_t n)
{
  if (s)
    atomic_fetch_add_explicit (&s->v, n, memory_order_relaxed);
}

void
metric_inc (struct metric *s)
{
  metric_add (s, 1);
}

void
metric_set (struct metric *s, int64_t v)
{
  if (s)
    atomic_store_explicit (&s->v, (uint64_t) v, memory_order_relaxed);
}

void
metric_gauge_add (struct metric *s, int64_t delta)
{
  metric_add (s, (uint64_t) delta);   /* wraps: two's complement */
}

void
metric_observe_ns (struct metric *s, uint64_t ns)
{
  size_t i = 0;

  if (!s || !s->bucket)
    return;
  while (i < NBUCKETS && ns > buckets_ns[i])
    i++;
  atomic_fetch_add_explicit (&s->bucket[i], 1, memory_order_relaxed);
  atomic_fetch_add_explicit (&s->sum_ns, ns, memory_order_relaxed);
}

int64_t
metric_value (const struct metric *s)
{
  uint64_t n = 0;

  if (!s)
    return 0;
  if (!s->bucket)
    return (int64_t) atomic_load_explicit (&s->v, memory_order_relaxed);
  for (size_t i = 0; i <= NBUCKETS; i++)
    n += atomic_load_explicit (&s->bucket[i], memory_order_relaxed);
  return (int64_t) n;
}

/* name{labels[,extra]} */
static void
put_series (FILE *f, const char *name, const char *suffix,
            const char *labels, const char *extra)
{
  fprintf (f, "%s%s", name, suffix);
  if (*labels || extra)
    fprintf (f, "{%s%s%s}", labels, *labels && extra ? "," : "",
             extra ? extra : "");
  fputc (' ', f);
}

static void
render_histogram (FILE *f, const struct family *fa, const struct metric *s)
{
  uint64_t cum = 0;
  char le[48];

  for (size_t i = 0; i <= NBUCKETS; i++) {
    cum += atomic_load_explicit (&s->bucket[i], memory_order_relaxed);
    if (i < NBUCKETS)
      snprintf (le, sizeof le, "le=\"%g\"", buckets_ns[i] / 1e9);
    else
      snprintf (le, sizeof le, "le=\"+Inf\"");
    put_series (f, fa->name, "_bucket", s->labels, le);
    fprintf (f, "%" PRIu64 "\n", cum);
  }
  put_series (f, fa->name, "_sum", s->labels, NULL);
  fprintf (f, "%.9f\n",
           atomic_load_explicit (&s->sum_ns, memory_order_relaxed) / 1e9);
  put_series (f, fa->name, "_count", s->labels, NULL);
  fprintf (f, "%" PRIu64 "\n", cum);
}

static const char *const type_name[] = {
  [METRIC_COUNTER] = "counter", [METRIC_GAUGE] = "gauge",
  [METRIC_HISTOGRAM] = "histogram",
};

char *
metrics_render (struct metrics *m, size_t *len)
{
  char *out = NULL;
  FILE *f = open_memstream (&out, len);

  if (!f)
    return NULL;
  pthread_mutex_lock (&m->lock);
  for (const struct family *fa = m->families; fa; fa = fa->next) {
    if (!fa->series)
      continue;
    fprintf (f, "# HELP %s ", fa->name);
    put_escaped (f, fa->help, false);
    fprintf (f, "\n# TYPE %s %s\n", fa->name, type_name[fa->type]);
    for (const struct metric *s = fa->series; s; s = s->next) {
      if (fa->type == METRIC_HISTOGRAM) {
        render_histogram (f, fa, s);
        continue;
      }
      uint64_t v = atomic_load_explicit (&s->v, memory_order_relaxed);
      put_series (f, fa->name, "", s->labels, NULL);
      if (fa->type == METRIC_GAUGE)
        fprintf (f, "%" PRId64 "\n", (int64_t) v);
      else
        fprintf (f, "%" PRIu64 "\n", v);
    }
  }
  pthread_mutex_unlock (&m->lock);
  if (fclose (f) != 0) {
    free (out);
    return NULL;
  }
  return out;
}
