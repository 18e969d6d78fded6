/* bench_summary.c - the end of "make bench": reads the TSV results that
 * tests/perf/bench.sh collected and the JSON fragments of the other
 * benches, prints the tables and the goals, and writes summary.json.
 *
 *   bench_summary --results FILE --cpu FILE --out-dir DIR --json OUT
 *                 --date DATE --placement TEXT [--rtt-us US] [--jobs "J..."]
 *
 * results: one line per fio job run, tab-separated:
 *     placement row job iops mib_s p50_us p99_us ios
 *   ("nan" for a job that failed; ios is what fio counted after its ramp)
 * cpu: one line per process per job:
 *     placement row job process cpu_us voluntary_cs involuntary_cs
 *   (CPU time and context switches of that process over the job's
 *   measured window; see tests/perf/cpuwin.py)
 * out-dir: where tests/perf/snapshot-bench.sh leaves snapshot.json
 *   ({"upload_mib_s", "curl_put_mib_s", "restore_mib_s", "curl_get_mib_s"})
 *   and tests/perf/resync-bench.sh resync.json ({"rows": [{"dirty_pct",
 *   "flushes", "bytes_copied", "seconds"}...], "full_seconds"}).  A missing
 *   or malformed fragment is "not measured" (a warning on stderr), never
 *   an error.
 * rtt-us: the round trip the cross-zone relay adds (2 x its one-way delay).
 *
 * summary.json: {"date", "placement", "rtt_us", "rows": [{"placement",
 * "row", "job", "iops", "mib_s", "p50_us", "p99_us", "cpu_us_per_io":
 * {process: us}, "ctxsw_per_io": {process: {"voluntary", "involuntary"}}}],
 * "ratios": {name: number or null}, "ratios_unpinned": {...},
 * "goals": {name: {"direction", "goal", "verdict"}}}.  A ratio that could
 * not be measured is null, and the table says "not measured".
 * Exit status: 0, or 2 for bad arguments, 1 when the results file cannot
 * be read or the JSON cannot be written.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RES 256
#define MAX_CPU 2048
#define NAME_MAX_ 64

struct res {
  char placement[16], row[16], job[NAME_MAX_];
  double iops, mib, p50, p99, ios;
};

struct cpu {
  char placement[16], row[16], job[NAME_MAX_], proc[NAME_MAX_];
  double us, vcs, ics;
};

static struct res res[MAX_RES];
static int nres;
static struct cpu cpus[MAX_CPU];
static int ncpu;

static const struct {
  const char *row, *label;
} labels[] = {
  { "a", "raw file, io_uring, buffered" },
  { "ad", "raw file, io_uring, O_DIRECT" },
  { "b", "nbdkit file plugin" },
  { "c", "repvol, 1 replica" },
  { "d", "repvol, 2 replicas" },
  { "dt", "repvol, 2 replicas, TLS" },
  { "e", "qemu-nbd quorum, 2 copies" },
  { "xb", "nbdkit behind the relay" },
  { "xd", "repvol, 2 rep., r2 via relay" },
  { "xe", "quorum, nbd child via relay" },
};
#define NLABELS (sizeof labels / sizeof labels[0])

static const char *
label_of (const char *row)
{
  for (size_t i = 0; i < NLABELS; i++)
    if (strcmp (labels[i].row, row) == 0)
      return labels[i].label;
  return row;
}

/* Split line at tabs into at most n fields; returns the count. */
static int
split_tabs (char *line, char **f, int n)
{
  int k = 0;
  line[strcspn (line, "\n")] = '\0';
  while (k < n) {
    f[k++] = line;
    char *t = strchr (line, '\t');
    if (!t)
      break;
    *t = '\0';
    line = t + 1;
  }
  return k;
}

static double
num (const char *s)
{
  char *end;
  double v = strtod (s, &end);
  return (end == s || *end) ? NAN : v;
}

static void
copy (char *dst, size_t n, const char *src)
{
  snprintf (dst, n, "%s", src);
}

static int
read_results (const char *path)
{
  FILE *f = fopen (path, "r");
  char line[1024], *fl[8];
  if (!f) {
    fprintf (stderr, "bench_summary: cannot read %s: %s\n", path, strerror (errno));
    return -1;
  }
  while (fgets (line, sizeof line, f) && nres < MAX_RES) {
    if (split_tabs (line, fl, 8) != 8) {
      fprintf (stderr, "bench_summary: %s: skipping a malformed line\n", path);
      continue;
    }
    struct res *r = &res[nres++];
    copy (r->placement, sizeof r->placement, fl[0]);
    copy (r->row, sizeof r->row, fl[1]);
    copy (r->job, sizeof r->job, fl[2]);
    r->iops = num (fl[3]);
    r->mib = num (fl[4]);
    r->p50 = num (fl[5]);
    r->p99 = num (fl[6]);
    r->ios = num (fl[7]);
  }
  fclose (f);
  return 0;
}

static void
read_cpu (const char *path)
{
  FILE *f = fopen (path, "r");
  char line[1024], *fl[7];
  if (!f) {
    fprintf (stderr, "bench_summary: warning: no CPU accounting (%s: %s)\n", path,
             strerror (errno));
    return;
  }
  while (fgets (line, sizeof line, f) && ncpu < MAX_CPU) {
    if (split_tabs (line, fl, 7) != 7)
      continue;
    struct cpu *c = &cpus[ncpu++];
    copy (c->placement, sizeof c->placement, fl[0]);
    copy (c->row, sizeof c->row, fl[1]);
    copy (c->job, sizeof c->job, fl[2]);
    copy (c->proc, sizeof c->proc, fl[3]);
    c->us = num (fl[4]);
    c->vcs = num (fl[5]);
    c->ics = num (fl[6]);
  }
  fclose (f);
}

static const struct res *
find (const char *placement, const char *row, const char *job)
{
  for (int i = 0; i < nres; i++)
    if (strcmp (res[i].placement, placement) == 0 && strcmp (res[i].row, row) == 0 &&
        strcmp (res[i].job, job) == 0)
      return &res[i];
  return NULL;
}

enum field { IOPS, MIB, P50 };

static double
get (const char *placement, const char *row, const char *job, enum field k)
{
  const struct res *r = find (placement, row, job);
  if (!r)
    return NAN;
  return k == IOPS ? r->iops : k == MIB ? r->mib : r->p50;
}

static double
ratio (double x, double y)
{
  return (isnan (x) || isnan (y) || y == 0) ? NAN : x / y;
}

/* ---- fragments ------------------------------------------------------- */

static double
field_num (struct json_object *o, const char *key)
{
  struct json_object *v;
  if (!json_object_object_get_ex (o, key, &v))
    return NAN;
  if (!json_object_is_type (v, json_type_double) && !json_object_is_type (v, json_type_int))
    return NAN;
  return json_object_get_double (v);
}

static struct json_object *
load_fragment (const char *dir, const char *name)
{
  char path[4096];
  snprintf (path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen (path, "r");
  if (!f) {
    fprintf (stderr, "bench_summary: warning: %s missing: not measured\n", path);
    return NULL;
  }
  fclose (f);
  struct json_object *o = json_object_from_file (path);
  if (!o || !json_object_is_type (o, json_type_object)) {
    fprintf (stderr, "bench_summary: warning: %s is not a JSON object: not measured\n", path);
    json_object_put (o);
    return NULL;
  }
  return o;
}

/* snapshot.json: the two snapshot ratios (NaN when not measured). */
static void
snapshot_ratios (const char *dir, double *up, double *down)
{
  struct json_object *o = load_fragment (dir, "snapshot.json");
  *up = *down = NAN;
  if (!o)
    return;
  *up = ratio (field_num (o, "upload_mib_s"), field_num (o, "curl_put_mib_s"));
  *down = ratio (field_num (o, "restore_mib_s"), field_num (o, "curl_get_mib_s"));
  if (isnan (*up) || isnan (*down))
    fprintf (stderr, "bench_summary: warning: snapshot.json lacks a positive number "
             "it should hold: that ratio is not measured\n");
  json_object_put (o);
}

/* resync.json: seconds of the 1% row with flushes (else the first 1% row)
 * over full_seconds. */
static double
resync_ratio (const char *dir)
{
  struct json_object *o = load_fragment (dir, "resync.json"), *rows, *v;
  double secs = NAN, r;
  if (!o)
    return NAN;
  if (!json_object_object_get_ex (o, "rows", &rows) ||
      !json_object_is_type (rows, json_type_array)) {
    fprintf (stderr, "bench_summary: warning: resync.json has no \"rows\" array: not measured\n");
    json_object_put (o);
    return NAN;
  }
  for (size_t i = 0; i < json_object_array_length (rows); i++) {
    struct json_object *row = json_object_array_get_idx (rows, i);
    if (!json_object_is_type (row, json_type_object) || field_num (row, "dirty_pct") != 1)
      continue;
    double s = field_num (row, "seconds");
    bool flushes = json_object_object_get_ex (row, "flushes", &v) &&
                   json_object_is_type (v, json_type_boolean) && json_object_get_boolean (v);
    if (flushes && !isnan (s)) {
      secs = s;
      break;
    }
    if (isnan (secs))
      secs = s;
  }
  r = ratio (secs, field_num (o, "full_seconds"));
  if (isnan (r))
    fprintf (stderr, "bench_summary: warning: resync.json has no 1%% row or no "
             "full_seconds: not measured\n");
  json_object_put (o);
  return r;
}

/* ---- ratios and goals ------------------------------------------------ */

enum dir { HIGHER, LOWER };

struct ratio_def {
  const char *key, *desc;
  enum dir dir;
  double goal;            /* NaN: the issue sets none */
  double value, unpinned;
};

static struct ratio_def defs[] = {
  { "randwrite_qd32_vs_nbdkit", "4k randwrite QD32 IOPS, d / b", HIGHER, 0.8, NAN, NAN },
  { "randwrite_qd1_p50_vs_nbdkit", "4k randwrite QD1 p50, d / b", LOWER, 1.5, NAN, NAN },
  { "randwrite_qd32_vs_quorum", "4k randwrite QD32 IOPS, d / e", HIGHER, 3.0, NAN, NAN },
  { "seqwrite_1m_vs_nbdkit", "1M seqwrite QD8 MiB/s, d / b", HIGHER, 0.6, NAN, NAN },
  { "randread_qd32_vs_nbdkit", "4k randread QD32 IOPS, d / b", HIGHER, NAN, NAN, NAN },
  { "randread_qd1_p50_vs_nbdkit", "4k randread QD1 p50, d / b", LOWER, 1.5, NAN, NAN },
  { "tls_qd32_vs_plain", "4k randwrite QD32 IOPS, dt / d", HIGHER, 0.85, NAN, NAN },
  { "tls_qd1_p50_vs_plain", "4k randwrite QD1 p50, dt / d", LOWER, 1.15, NAN, NAN },
  { "crossaz_qd1_p50_vs_bound", "4k randwrite QD1 p50, xd / (RTT + b p50)", LOWER, 1.1, NAN, NAN },
  { "crossaz_qd32_vs_bound", "4k randwrite QD32 IOPS, xd / (32 / (RTT + b QD1 p50))", HIGHER, 0.9, NAN, NAN },
  { "crossaz_qd32_vs_quorum", "4k randwrite QD32 IOPS, xd / xe", HIGHER, 3.0, NAN, NAN },
  { "relay_qd1_p50_vs_bound", "the relay's own floor: xb QD1 p50 / (RTT + b p50)", LOWER, NAN, NAN, NAN },
  { "crossaz_qd1_p50_vs_relay_floor", "4k randwrite QD1 p50, xd / xb (the same relay)", LOWER, NAN, NAN, NAN },
  { "snapshot_upload_vs_curl", "snapshot upload MiB/s / parallel curl PUT", HIGHER, 0.9, NAN, NAN },
  { "snapshot_restore_vs_curl", "snapshot restore MiB/s / parallel curl GET", HIGHER, NAN, NAN, NAN },
  { "resync_1pct_vs_full", "resync seconds, 1% dirty / full copy", LOWER, 0.03, NAN, NAN },
};
#define NDEFS (sizeof defs / sizeof defs[0])

static struct ratio_def *
def (const char *key)
{
  for (size_t i = 0; i < NDEFS; i++)
    if (strcmp (defs[i].key, key) == 0)
      return &defs[i];
  abort ();
}

/* The fio-based ratios of one placement. */
static void
fio_ratios (const char *p, double rtt_us, bool unpinned)
{
  const char *w1 = "4k-randwrite-qd1", *w32 = "4k-randwrite-qd32";
  double v[11];
  v[0] = ratio (get (p, "d", w32, IOPS), get (p, "b", w32, IOPS));
  v[1] = ratio (get (p, "d", w1, P50), get (p, "b", w1, P50));
  v[2] = ratio (get (p, "d", w32, IOPS), get (p, "e", w32, IOPS));
  v[3] = ratio (get (p, "d", "1m-seqwrite-qd8", MIB), get (p, "b", "1m-seqwrite-qd8", MIB));
  v[4] = ratio (get (p, "d", "4k-randread-qd32", IOPS), get (p, "b", "4k-randread-qd32", IOPS));
  v[5] = ratio (get (p, "d", "4k-randread-qd1", P50), get (p, "b", "4k-randread-qd1", P50));
  v[6] = ratio (get (p, "dt", w32, IOPS), get (p, "d", w32, IOPS));
  v[7] = ratio (get (p, "dt", w1, P50), get (p, "d", w1, P50));
  double b50 = get (p, "b", w1, P50);
  v[8] = ratio (get (p, "xd", w1, P50), rtt_us + b50);
  v[9] = ratio (get (p, "xd", w32, IOPS), 32.0 / ((rtt_us + b50) / 1e6));
  v[10] = ratio (get (p, "xd", w32, IOPS), get (p, "xe", w32, IOPS));
  const char *keys[11] = { "randwrite_qd32_vs_nbdkit", "randwrite_qd1_p50_vs_nbdkit",
                           "randwrite_qd32_vs_quorum", "seqwrite_1m_vs_nbdkit",
                           "randread_qd32_vs_nbdkit", "randread_qd1_p50_vs_nbdkit",
                           "tls_qd32_vs_plain", "tls_qd1_p50_vs_plain",
                           "crossaz_qd1_p50_vs_bound", "crossaz_qd32_vs_bound",
                           "crossaz_qd32_vs_quorum" };
  for (int i = 0; i < 11; i++)
    *(unpinned ? &def (keys[i])->unpinned : &def (keys[i])->value) = v[i];
  double relay = ratio (get (p, "xb", w1, P50), rtt_us + b50);
  *(unpinned ? &def ("relay_qd1_p50_vs_bound")->unpinned
             : &def ("relay_qd1_p50_vs_bound")->value) = relay;
  double floor_ = ratio (get (p, "xd", w1, P50), get (p, "xb", w1, P50));
  *(unpinned ? &def ("crossaz_qd1_p50_vs_relay_floor")->unpinned
             : &def ("crossaz_qd1_p50_vs_relay_floor")->value) = floor_;
}

static const char *
verdict (const struct ratio_def *d, double v)
{
  if (isnan (v))
    return "not measured";
  if (isnan (d->goal))
    return "no goal set";
  bool met = d->dir == HIGHER ? v >= d->goal : v <= d->goal;
  return met ? "MET" : "SHORT";
}

/* ---- printing -------------------------------------------------------- */

static bool
has_placement (const char *p)
{
  for (int i = 0; i < nres; i++)
    if (strcmp (res[i].placement, p) == 0)
      return true;
  return false;
}

static void
fmt (char *buf, size_t n, double v, const char *spec)
{
  if (isnan (v))
    snprintf (buf, n, "n/a");
  else
    snprintf (buf, n, spec, v);
}

static void
print_table (const char *p, char **jobs, int njobs)
{
  char a[8][32];
  printf ("%-17s %-3s %-29s %9s %8s %8s %8s %7s %6s %8s\n", "job", "row", "target",
          "IOPS", "MiB/s", "p50 us", "p99 us", "IOPS/b", "p50/b", "d/e IOPS");
  for (int j = 0; j < njobs; j++) {
    bool any = false;
    for (size_t l = 0; l < NLABELS; l++) {
      const struct res *r = find (p, labels[l].row, jobs[j]);
      if (!r)
        continue;
      any = true;
      fmt (a[0], 32, r->iops, "%.0f");
      fmt (a[1], 32, r->mib, "%.1f");
      fmt (a[2], 32, r->p50, "%.1f");
      fmt (a[3], 32, r->p99, "%.1f");
      fmt (a[4], 32, ratio (r->iops, get (p, "b", jobs[j], IOPS)), "%.2f");
      fmt (a[5], 32, ratio (r->p50, get (p, "b", jobs[j], P50)), "%.2f");
      a[6][0] = '\0';
      if (strcmp (r->row, "d") == 0)
        fmt (a[6], 32, ratio (r->iops, get (p, "e", jobs[j], IOPS)), "%.2f");
      else if (strcmp (r->row, "xd") == 0)
        fmt (a[6], 32, ratio (r->iops, get (p, "xe", jobs[j], IOPS)), "%.2f");
      printf ("%-17s %-3s %-29s %9s %8s %8s %8s %7s %6s %8s\n", jobs[j], r->row,
              label_of (r->row), a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
    }
    if (any)
      printf ("\n");
  }
}

static void
print_cpu (const char *p, char **jobs, int njobs)
{
  printf ("CPU per I/O (%s): us of CPU (user + system) per I/O, and voluntary /\n"
          "involuntary context switches per I/O, for each process, over the job's window\n", p);
  for (int j = 0; j < njobs; j++)
    for (size_t l = 0; l < NLABELS; l++) {
      const struct res *r = find (p, labels[l].row, jobs[j]);
      if (!r)
        continue;
      double tot = 0;
      char line[1024] = "";
      size_t off = 0;
      bool any = false;
      for (int c = 0; c < ncpu; c++) {
        struct cpu *k = &cpus[c];
        if (strcmp (k->placement, p) || strcmp (k->row, r->row) || strcmp (k->job, jobs[j]))
          continue;
        double per = ratio (k->us, r->ios);
        any = true;
        if (!isnan (per))
          tot += per;
        off += (size_t) snprintf (line + off, off < sizeof line ? sizeof line - off : 0,
                                  "  %s %.1f (%.2f/%.2f)", k->proc, per,
                                  ratio (k->vcs, r->ios), ratio (k->ics, r->ios));
        if (off >= sizeof line)
          off = sizeof line - 1;
      }
      if (any)
        printf ("  %-17s %-3s total %6.1f us/io:%s\n", jobs[j], r->row, tot, line);
    }
  printf ("\n");
}

static void
add_num (struct json_object *o, const char *key, double v)
{
  json_object_object_add (o, key, isnan (v) ? NULL : json_object_new_double (v));
}

int
main (int argc, char **argv)
{
  const char *results = NULL, *cpu = NULL, *outdir = NULL, *json = NULL;
  const char *date = "", *placement = "", *jobs_arg =
    "4k-randwrite-qd1 4k-randwrite-qd32 4k-randread-qd1 4k-randread-qd32 1m-seqwrite-qd8";
  double rtt_us = 1000;
  static const struct option opts[] = {
    { "results", required_argument, NULL, 'r' }, { "cpu", required_argument, NULL, 'c' },
    { "out-dir", required_argument, NULL, 'o' }, { "json", required_argument, NULL, 'j' },
    { "date", required_argument, NULL, 'd' }, { "placement", required_argument, NULL, 'p' },
    { "rtt-us", required_argument, NULL, 't' }, { "jobs", required_argument, NULL, 'J' },
    { NULL, 0, NULL, 0 },
  };
  int o;
  while ((o = getopt_long (argc, argv, "", opts, NULL)) != -1)
    switch (o) {
    case 'r': results = optarg; break;
    case 'c': cpu = optarg; break;
    case 'o': outdir = optarg; break;
    case 'j': json = optarg; break;
    case 'd': date = optarg; break;
    case 'p': placement = optarg; break;
    case 'J': jobs_arg = optarg; break;
    case 't':
      rtt_us = num (optarg);
      if (isnan (rtt_us) || rtt_us < 0) {
        fprintf (stderr, "bench_summary: bad --rtt-us '%s'\n", optarg);
        return 2;
      }
      break;
    default:
      fprintf (stderr, "usage: bench_summary --results FILE --cpu FILE --out-dir DIR "
               "--json OUT --date DATE --placement TEXT [--rtt-us US] [--jobs LIST]\n");
      return 2;
    }
  if (!results || !json || !outdir) {
    fprintf (stderr, "bench_summary: --results, --out-dir and --json are required\n");
    return 2;
  }
  if (read_results (results) < 0)
    return 1;
  if (cpu)
    read_cpu (cpu);

  char *jobs[16], *jl = strdup (jobs_arg), *save = NULL;
  int njobs = 0;
  for (char *t = strtok_r (jl, " ", &save); t && njobs < 16; t = strtok_r (NULL, " ", &save))
    jobs[njobs++] = t;

  fio_ratios ("pinned", rtt_us, false);
  fio_ratios ("unpinned", rtt_us, true);
  snapshot_ratios (outdir, &def ("snapshot_upload_vs_curl")->value,
                   &def ("snapshot_restore_vs_curl")->value);
  def ("resync_1pct_vs_full")->value = resync_ratio (outdir);

  const char *places[2] = { "pinned", "unpinned" };
  for (int i = 0; i < 2; i++) {
    if (!has_placement (places[i]))
      continue;
    printf ("%s\n\n", i == 0 ? "pinned (every process on the bench CPU list)"
                             : "unpinned (nothing pinned: the scheduler places every process)");
    print_table (places[i], jobs, njobs);
    print_cpu (places[i], jobs, njobs);
  }

  printf ("ratios (pinned unless said), goals from repvol issue 15; RTT %.0f us:\n", rtt_us);
  printf ("  %-30s %-52s %8s %-6s %-12s %9s\n", "ratio", "what", "value", "goal", "verdict",
          "unpinned");
  for (size_t i = 0; i < NDEFS; i++) {
    char v[32], g[32], u[32];
    fmt (v, sizeof v, defs[i].value, fabs (defs[i].value) < 0.1 ? "%.3f" : "%.2f");
    if (isnan (defs[i].value))
      snprintf (v, sizeof v, "-");
    if (isnan (defs[i].goal))
      snprintf (g, sizeof g, "%s", defs[i].dir == HIGHER ? "higher" : "lower");
    else
      snprintf (g, sizeof g, defs[i].goal < 0.1 ? "%s%.3f" : "%s%.2f",
                defs[i].dir == HIGHER ? ">=" : "<=", defs[i].goal);
    fmt (u, sizeof u, defs[i].unpinned, "%.2f");
    if (isnan (defs[i].unpinned))
      u[0] = '\0';
    printf ("  %-30s %-52s %8s %-6s %-12s %9s\n", defs[i].key, defs[i].desc, v, g,
            verdict (&defs[i], defs[i].value), u);
  }

  struct json_object *top = json_object_new_object (), *rows = json_object_new_array ();
  json_object_object_add (top, "date", json_object_new_string (date));
  json_object_object_add (top, "placement", json_object_new_string (placement));
  add_num (top, "rtt_us", rtt_us);
  for (int i = 0; i < nres; i++) {
    struct res *r = &res[i];
    struct json_object *ro = json_object_new_object (), *cu = json_object_new_object (),
                       *cs = json_object_new_object ();
    json_object_object_add (ro, "placement", json_object_new_string (r->placement));
    json_object_object_add (ro, "row", json_object_new_string (r->row));
    json_object_object_add (ro, "target", json_object_new_string (label_of (r->row)));
    json_object_object_add (ro, "job", json_object_new_string (r->job));
    add_num (ro, "iops", r->iops);
    add_num (ro, "mib_s", r->mib);
    add_num (ro, "p50_us", r->p50);
    add_num (ro, "p99_us", r->p99);
    add_num (ro, "ios", r->ios);
    for (int c = 0; c < ncpu; c++) {
      struct cpu *k = &cpus[c];
      if (strcmp (k->placement, r->placement) || strcmp (k->row, r->row) ||
          strcmp (k->job, r->job))
        continue;
      add_num (cu, k->proc, ratio (k->us, r->ios));
      struct json_object *x = json_object_new_object ();
      add_num (x, "voluntary", ratio (k->vcs, r->ios));
      add_num (x, "involuntary", ratio (k->ics, r->ios));
      json_object_object_add (cs, k->proc, x);
    }
    json_object_object_add (ro, "cpu_us_per_io", cu);
    json_object_object_add (ro, "ctxsw_per_io", cs);
    json_object_array_add (rows, ro);
  }
  json_object_object_add (top, "rows", rows);
  struct json_object *ra = json_object_new_object (), *ru = json_object_new_object (),
                     *go = json_object_new_object ();
  for (size_t i = 0; i < NDEFS; i++) {
    add_num (ra, defs[i].key, defs[i].value);
    if (!isnan (defs[i].unpinned))
      add_num (ru, defs[i].key, defs[i].unpinned);
    struct json_object *g = json_object_new_object ();
    json_object_object_add (g, "direction",
                            json_object_new_string (defs[i].dir == HIGHER ? "higher is better"
                                                                          : "lower is better"));
    add_num (g, "goal", defs[i].goal);
    json_object_object_add (g, "verdict",
                            json_object_new_string (verdict (&defs[i], defs[i].value)));
    json_object_object_add (go, defs[i].key, g);
  }
  json_object_object_add (top, "ratios", ra);
  json_object_object_add (top, "ratios_unpinned", ru);
  json_object_object_add (top, "goals", go);
  int rc = 0;
  if (json_object_to_file_ext (json, top, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED) < 0) {
    fprintf (stderr, "bench_summary: cannot write %s: %s\n", json, json_util_get_last_err ());
    rc = 1;
  }
  json_object_put (top);
  free (jl);
  return rc;
}
