/* cmd_status.c - repvol status [VOL] [--json]: the registry's view of a
 * volume, plus each replica server's own view (STAT, short timeout), so
 * an operator sees at once which replicas are reachable and which epoch
 * each has seen, and what is on the volume (probe.c: libblkid over the
 * ends of the volume as an in-sync replica holds them).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/util.h"
#include "replica/probe.h"
#include "replica/proto.h"
#include "replica/admin.h"
#include "attach/attach.h"
#include "attach/control.h"
#include "health.h"
#include "repvol.h"

#define STATUS_TIMEOUT_MS 2000
#define STATUS_JSON (JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | \
                     JSON_C_TO_STRING_NOSLASHESCAPE)

/* What the server said about one replica. */
struct live {
  bool reachable;
  char err[256];
  struct rv_welcome w;
  struct rv_volinfo vi;
};

static void
probe (const struct reg_volume *v, struct live *live, int timeout_ms)
{
  for (int i = 0; i < v->nreplicas; i++) {
    struct live *l = &live[i];
    struct error err = { 0 };
    memset (l, 0, sizeof *l);
    int r = replica_admin_stat_once (v->replicas[i].addr, v->name,
                                     timeout_ms, &l->w, &l->vi, &err);
    l->reachable = r == 0;
    if (r < 0)
      snprintf (l->err, sizeof l->err, "%s", error_msg (&err));
    /* A server that answers but says "no such volume" is reachable. */
    if (r == -ENOENT) {
      l->reachable = true;
      l->vi.exists = 0;
    }
  }
}

/* Warn (stderr) about what an operator should know: unknown zones. */
static void
warn_zones (const struct reg_volume *v)
{
  for (int i = 0; i < v->nreplicas; i++)
    if (v->replicas[i].zone[0] == '\0') {
      log_warn ("zones of %s are unknown (replica %s has no zone)",
                v->name, v->replicas[i].addr);
      return;
    }
}

static bool
zones_known (const struct reg_volume *v)
{
  for (int i = 0; i < v->nreplicas; i++)
    if (v->replicas[i].zone[0] == '\0')
      return false;
  return true;
}

/* Out of sync since when, and how far the catch-up has come. */
static void
print_resync (const struct reg_replica *rp)
{
  char tbuf[64], a[32], b[32];

  printf ("    out of sync since epoch %" PRIu64 ", %s", rp->out_of_sync_epoch,
          format_time (rp->out_of_sync_since, tbuf, sizeof tbuf));
  if (rp->resync_total) {
    uint64_t left = rp->resync_total - MIN (rp->resync_done, rp->resync_total);
    printf ("; catching up: %s to go", size_text (left, a, sizeof a));
    if (rp->resync_rate)
      printf (" at %s, eta %" PRIu64 " s",
              rate_text (rp->resync_rate, b, sizeof b),
              left / rp->resync_rate);
  }
  printf ("\n");
}

/* "contents: ext4 label "data" uuid ..." */
static void
print_contents (const struct volume_contents *c)
{
  printf ("contents:    ");
  if (!c->known)
    printf ("unknown (%s)\n", c->why);
  else if (!c->found)
    printf ("%s\n", c->why);
  else {
    if (c->type[0])
      printf ("%s", c->type);
    else
      printf ("partition table %s", c->pttype);
    if (c->label[0])
      printf (" label \"%s\"", c->label);
    if (c->uuid[0])
      printf (" uuid %s", c->uuid);
    printf ("\n");
  }
}

/* Does the fenced attachment's process still run: 1, 0, or -1 when it
 * was on another host (status cannot tell).
 */
static int
fenced_running (const struct reg_volume *v)
{
  if (!attachment_is_local (&v->fenced))
    return -1;
  return attach_alive (&v->fenced, v->name);
}

static void
print_text (const struct reg_volume *v, const struct live *live,
            const struct volume_contents *vc, const struct health *h)
{
  char sbuf[32], tbuf[64];
  const struct reg_attachment *a = &v->attachment;

  printf ("volume:      %s\n", v->name);
  printf ("health:      %s\n", h->text);
  printf ("uuid:        %s\n", v->uuid[0] ? v->uuid : "-");
  if (cli_bytes)
    printf ("size:        %" PRIu64 "\n", v->size);
  else
    printf ("size:        %s (%" PRIu64 " bytes)\n",
            format_size (v->size, sbuf, sizeof sbuf), v->size);
  printf ("block size:  %" PRIu32 "\n", v->block_size);
  printf ("epoch:       %" PRIu64 "\n", v->epoch);
  printf ("created:     %s\n", format_time (v->created, tbuf, sizeof tbuf));
  printf ("reserved:    %s\n", v->reserved ? "yes" : "no");
  printf ("tls:         %s\n", v->tls ? "required (created over TLS)" : "no");
  printf ("snapshots:   chunk %s; ", size_text (v->chunk_size, tbuf, sizeof tbuf));
  if (v->cbt.base_name[0])
    printf ("changes tracked since %s in %s%s\n", v->cbt.base_name,
            v->cbt.base_url, v->cbt.valid || v->attachment.attached ? ""
            : " (map lost: the next snapshot reads every chunk)");
  else
    printf ("none taken yet%s\n", v->cbt.valid || v->attachment.attached ? ""
            : " (change map lost: the first snapshot reads every chunk)");
  if (v->restore.active)
    printf ("restore:     from %s in %s: %" PRIu64 " of %" PRIu64 " chunks "
            "hydrated (%.0f%%)%s%s\n", v->restore.snapshot, v->restore.url,
            v->restore.chunks_hydrated, v->restore.chunks_total,
            v->restore.chunks_total ? 100.0 * v->restore.chunks_hydrated /
            v->restore.chunks_total : 100.0, v->restore.error[0] ?
            "; FAILED: " : (v->attachment.attached ? "" : "; continues when "
            "attached"), v->restore.error);
  if (a->attached) {
    char lease[96] = "";
    long left = reg_attachment_lease_left (a, time (NULL));
    if (a->lease_ttl && left > 0)
      snprintf (lease, sizeof lease, ", lease %ld s left", left);
    else if (a->lease_ttl)
      snprintf (lease, sizeof lease, ", lease EXPIRED %ld s ago (another "
                "host may take it over)", -left);
    char gone[160] = "", hb[64];
    if (strcmp (attachment_state (v), "gone") == 0)
      snprintf (gone, sizeof gone, "; GONE: the process exited (the next "
                "attach takes the volume over); last heartbeat %s",
                format_time (attachment_silent_since (v), hb, sizeof hb));
    printf ("attachment:  host %s, pid %d, %s, since %s, epoch %" PRIu64
            "%s%s\n", a->host, (int) a->pid, a->frontend[0] ? a->frontend : "-",
            format_time (a->since, tbuf, sizeof tbuf), a->epoch, lease, gone);
  }
  else
    printf ("attachment:  none\n");
  if (v->fenced.attached)
    printf ("fenced:      host %s, pid %d, epoch %" PRIu64 ": %s; can no "
            "longer write%s\n", v->fenced.host, (int) v->fenced.pid,
            v->fenced.epoch, v->fenced.reason[0] ? v->fenced.reason
            : "taken over", fenced_running (v) == 1 ? " (its process still "
            "runs until it notices)" : fenced_running (v) == 0 ? " (stopped)"
            : "");
  print_contents (vc);
  printf ("replicas:    %d\n", v->nreplicas);
  printf ("  %-22s %-16s %-12s %-12s %-6s %s\n",
          "ADDR", "SERVER", "ZONE", "STATE", "EPOCH", "SERVER VIEW");
  for (int i = 0; i < v->nreplicas; i++) {
    const struct reg_replica *rp = &v->replicas[i];
    const struct live *l = &live[i];
    char view[320], ep[24] = "-";
    if (!l->reachable)
      snprintf (view, sizeof view, "unreachable: %s", l->err);
    else if (!l->vi.exists)
      snprintf (view, sizeof view, "reachable, replica missing");
    else {
      snprintf (ep, sizeof ep, "%" PRIu64, l->vi.epoch);
      snprintf (view, sizeof view, "reachable, %s allocated",
                size_text (l->vi.allocated, sbuf, sizeof sbuf));
      if (l->vi.size != v->size)
        snprintf (view + strlen (view), sizeof view - strlen (view),
                  ", SIZE MISMATCH %" PRIu64, l->vi.size);
    }
    if (l->reachable && strcmp (l->w.server, rp->server) != 0)
      snprintf (view + strlen (view), sizeof view - strlen (view),
                ", now server '%s'", l->w.server);
    printf ("  %-22s %-16s %-12s %-12s %-6s %s\n", rp->addr,
            rp->server[0] ? rp->server : "-", rp->zone[0] ? rp->zone : "-",
            reg_state_name (rp->state), ep, view);
    if (rp->state == REG_OUT_OF_SYNC)
      print_resync (rp);
  }
}

static json_object *
string_or_null (const char *s)
{
  return s[0] ? json_object_new_string (s) : NULL;
}

/* "contents": {type, label, uuid, partition_table}, or null and
 * "contents_reason" saying why (no signature, or no replica answered).
 */
static void
contents_json (json_object *o, const struct volume_contents *c)
{
  json_object *j;

  if (!c->found) {
    json_object_object_add (o, "contents", NULL);
    json_object_object_add (o, "contents_reason",
                            json_object_new_string (c->why));
    return;
  }
  j = json_object_new_object ();
  json_object_object_add (j, "type", string_or_null (c->type));
  json_object_object_add (j, "label", string_or_null (c->label));
  json_object_object_add (j, "uuid", string_or_null (c->uuid));
  json_object_object_add (j, "partition_table", string_or_null (c->pttype));
  json_object_object_add (o, "contents", j);
}

static void
got_contents (void *opaque, const char *line)
{
  struct volume_contents *vc = opaque;
  if (line[0] == '{')
    volume_contents_from_json (line, vc);
}

/* What is on v.  An attached volume's replicas will not show their data
 * to an admin connection: its attach reads it, if it runs here.
 */
static void
volume_contents (const struct reg_volume *v, int timeout_ms, const bool *down,
                 struct volume_contents *vc)
{
  const struct reg_attachment *at = &v->attachment;

  if (!at->attached || attach_is_hold (at)) {
    probe_volume_contents (v, timeout_ms, down, vc);
    return;
  }
  memset (vc, 0, sizeof *vc);
  if (!attachment_is_local (at) || !at->control[0] ||
      !attach_alive (at, v->name)) {
    snprintf (vc->why, sizeof vc->why, "attached on %s, whose attach alone "
              "reads its data", at->host);
    return;
  }
  if (control_call_lines (at->control, "contents", got_contents, vc) != 0 ||
      (!vc->known && !vc->why[0]))
    snprintf (vc->why, sizeof vc->why, "its attach (pid %d) did not say",
              (int) at->pid);
}

/* The registry's document, plus what the servers say right now. */
static json_object *
to_json (const struct reg_volume *v, const struct live *live,
         const struct volume_contents *vc, const struct health *h)
{
  json_object *o = reg_volume_json (v), *reps;
  time_t silent = attachment_silent_since (v);

  json_object_object_del (o, "format");
  json_object_object_add (o, "tls", json_object_new_boolean (v->tls));
  json_object_object_add (o, "attachment_state",
                          json_object_new_string (attachment_state (v)));
  json_object_object_add (o, "silent_since", silent ?
                          json_object_new_int64 (silent) : NULL);
  json_object_object_add (o, "health", health_json (h));
  json_object_object_add (o, "zones_known",
                          json_object_new_boolean (zones_known (v)));
  json_object_object_get_ex (o, "replicas", &reps);
  for (int i = 0; i < v->nreplicas; i++) {
    const struct live *l = &live[i];
    json_object *r = json_object_array_get_idx (reps, i);
    json_object_object_add (r, "reachable", json_object_new_boolean (l->reachable));
    json_object_object_add (r, "error", l->reachable ? NULL
                            : json_object_new_string (l->err));
    if (l->reachable) {
      json_object *s = json_object_new_object ();
      json_object_object_add (s, "server", json_object_new_string (l->w.server));
      json_object_object_add (s, "zone", json_object_new_string (l->w.zone));
      json_object_object_add (s, "exists", json_object_new_boolean (l->vi.exists));
      json_object_object_add (s, "size", json_object_new_uint64 (l->vi.size));
      json_object_object_add (s, "epoch", json_object_new_uint64 (l->vi.epoch));
      json_object_object_add (s, "allocated",
                              json_object_new_uint64 (l->vi.allocated));
      json_object_object_add (r, "server_view", s);
    }
    else
      json_object_object_add (r, "server_view", NULL);
  }

  /* The registry stores null when detached; give scripts an object with
   * .attached either way.
   */
  json_object *at = NULL;
  json_object_object_get_ex (o, "attachment", &at);
  if (at == NULL) {
    at = json_object_new_object ();
    json_object_object_add (o, "attachment", at);
  }
  json_object_object_add (at, "attached",
                          json_object_new_boolean (v->attachment.attached));
  if (v->attachment.attached && v->attachment.lease_ttl)
    json_object_object_add (at, "lease_left", json_object_new_int64
                            (reg_attachment_lease_left (&v->attachment,
                                                        time (NULL))));
  json_object *fenced = NULL;
  json_object_object_get_ex (o, "fenced", &fenced);
  if (fenced) {
    int running = fenced_running (v);
    json_object_object_add (fenced, "running", running < 0 ? NULL
                            : json_object_new_boolean (running));
  }
  contents_json (o, vc);
  return o;
}

int
cmd_status (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "json", no_argument, NULL, 'j' },
    { "timeout", required_argument, NULL, 't' },
    CLI_BYTES_OPTION,
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  bool json = false;
  uint64_t timeout_s = STATUS_TIMEOUT_MS / 1000;
  int c;

  while ((c = cli_getopt (argc, argv, "status", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    switch (c) {
    case 'j': json = true; break;
    case 't':
      if (parse_uint (optarg, 1, 600, &timeout_s) == -1)
        return usage_error ("status", "--timeout must be 1 to 600 seconds, "
                            "not '%s'", optarg);
      break;
    }
  }
  const char *vol = NULL;
  if (optind < argc && (vol = one_volume (argc, argv, "status")) == NULL)
    return EXIT_USAGE;

  struct registry *reg = open_registry ();
  if (reg == NULL)
    return EXIT_FAILURE;

  char **names = NULL;
  int n = 0, ret = EXIT_SUCCESS;
  struct error rerr = { 0 };
  if (vol) {
    names = malloc (sizeof *names);
    if (names == NULL || (names[0] = strdup (vol)) == NULL) {
      log_error ("out of memory");
      free (names);
      registry_close (reg);
      return EXIT_FAILURE;
    }
    n = 1;
  }
  else if (registry_list (reg, &names, &n, &rerr) < 0) {
    log_error ("%s", error_msg (&rerr));
    registry_close (reg);
    return EXIT_FAILURE;
  }

  struct reg_server *pool = NULL;
  int npool = 0;
  if (registry_server_list (reg, &pool, &npool, NULL) < 0)
    pool = NULL;                /* health from the records alone */

  json_object *all = json && !vol ? json_object_new_array () : NULL;
  for (int i = 0; i < n; i++) {
    struct reg_volume v;
    struct health h;
    struct live live[REG_MAX_REPLICAS];
    struct volume_contents vc;
    if (get_volume (reg, names[i], &v) < 0) {
      ret = EXIT_FAILURE;
      continue;
    }
    probe (&v, live, timeout_s * 1000);
    bool down[REG_MAX_REPLICAS];
    for (int r = 0; r < v.nreplicas; r++)
      down[r] = !live[r].reachable;
    volume_contents (&v, timeout_s * 1000, down, &vc);
    volume_health (&v, pool, npool, &h);
    if (json) {
      json_object *o = to_json (&v, live, &vc, &h);
      if (all)
        json_object_array_add (all, o);
      else
        print_json (o, STATUS_JSON);
    }
    else {
      if (i > 0)
        printf ("\n");
      print_text (&v, live, &vc, &h);
      fflush (stdout);          /* keep the order of stdout and stderr */
    }
    warn_zones (&v);
  }
  if (all) {
    json_object *top = json_object_new_object ();
    json_object_object_add (top, "volumes", all);
    print_json (top, STATUS_JSON);
  }
  else if (!json && n == 0)
    printf ("no volumes\n");

  free (pool);
  registry_free_names (names, n);
  registry_close (reg);
  return ret;
}
