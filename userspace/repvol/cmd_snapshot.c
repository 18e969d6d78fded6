/* cmd_snapshot.c - repvol snapshot create|restore, and the sub-verb
 * dispatch (list and delete are in cmd_snapshot_catalog.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "attach/attach.h"
#include "attach/control.h"
#include "snapshot/catalog.h"
#include "snapshot/snapshot.h"
#include "progress.h"
#include "repvol.h"
#include "core/util.h"

int
cmd_snapshot (int argc, char **argv)
{
  static const struct {
    const char *name;
    int (*fn) (int argc, char **argv);
  } subs[] = {
    { "create", cmd_snapshot_create },
    { "list", cmd_snapshot_list },
    { "delete", cmd_snapshot_delete },
    { "restore", cmd_snapshot_restore },
  };

  if (argc >= 2 && (strcmp (argv[1], "--help") == 0 ||
                    strcmp (argv[1], "-h") == 0)) {
    verb_help ("snapshot", false);
    return 0;
  }
  for (size_t i = 0; argc >= 2 && i < ARRAY_SIZE (subs); i++)
    if (strcmp (argv[1], subs[i].name) == 0)
      return subs[i].fn (argc - 1, argv + 1);
  return usage_error ("snapshot", "expected create, list, delete or restore%s%s",
                      argc >= 2 ? ", not " : "", argc >= 2 ? argv[1] : "");
}

/* ---- event lines from the snapshot or restore (snapshot/snapshot.h) ---- */

struct events {
  struct progress bar;
  bool json;
  bool remote;                  /* lines come from the attach's control */
  bool ok;
  char what[200];
};

static void
on_event (void *opaque, const char *line)
{
  struct events *ev = opaque;
  struct snap_event e;
  char say[512];
  json_object *o;

  if (snap_event_parse (line, &e) < 0)
    return;
  switch (e.kind) {
  case SNAP_EV_POINT:
    if (ev->json) {
      o = event_new ("point");
      json_object_object_add (o, "name", json_object_new_string (e.name));
      json_object_object_add (o, "time", json_object_new_int64 (e.time));
      event_print (o);
    }
    else {
      printf ("%s\n", snap_event_describe (&e, say, sizeof say));
      fflush (stdout);
    }
    break;
  case SNAP_EV_PROGRESS:
    progress_update (&ev->bar, e.done, e.total, e.bytes_read,
                     e.bytes_uploaded);
    break;
  case SNAP_EV_OK:
    progress_end (&ev->bar);
    ev->ok = true;
    if (ev->json) {
      char secs[32];
      o = event_new ("done");
      snprintf (secs, sizeof secs, "%.3f", e.seconds);
      json_object_object_add (o, "name", json_object_new_string (e.name));
      json_object_object_add (o, "parent", json_object_new_string (e.parent));
      json_object_object_add (o, "chunks_total",
                              json_object_new_uint64 (e.total));
      json_object_object_add (o, "bytes_read",
                              json_object_new_uint64 (e.bytes_read));
      json_object_object_add (o, "bytes_uploaded",
                              json_object_new_uint64 (e.bytes_uploaded));
      json_object_object_add (o, "seconds",
                              json_object_new_double_s (e.seconds, secs));
      event_print (o);
    }
    else {
      printf ("%s\n", snap_event_describe (&e, say, sizeof say));
      fflush (stdout);
    }
    break;
  case SNAP_EV_ERROR:
    progress_end (&ev->bar);
    if (ev->remote)             /* else the attach code printed it */
      log_error ("%s", e.error);
    break;
  }
}

static bool
store_url_ok (const char *url)
{
  return (strncmp (url, "file:///", 8) == 0 && url[8]) ||
         (strncmp (url, "s3://", 5) == 0 && url[5] && url[5] != '/');
}

int
cmd_snapshot_create (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "to", required_argument, NULL, 't' },
    { "name", required_argument, NULL, 'n' },
    { "json", no_argument, NULL, 'j' },
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  const char *url = NULL, *name = NULL;
  struct events ev = { .json = false };
  char defname[SNAP_NAME_MAX];
  int c;

  while ((c = cli_getopt (argc, argv, "snapshot", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    switch (c) {
    case 't': url = optarg; break;
    case 'n': name = optarg; break;
    case 'j': ev.json = true; break;
    }
  }
  if (url == NULL)
    return usage_error ("snapshot", "create: missing --to URL");
  if (!store_url_ok (url) || strlen (url) > 255 || strchr (url, ' '))
    return usage_error ("snapshot", "create: bad --to '%s' (expected "
                        "file:///DIR or s3://BUCKET/PREFIX)", url);
  const char *vol;
  struct registry *reg;
  struct reg_volume v;
  int ret = verb_volume (argc, argv, "snapshot", &vol, &reg, &v);
  if (ret)
    return ret;
  if (name == NULL) {
    time_t now = time (NULL);
    char stamp[32];
    strftime (stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", gmtime (&now));
    snprintf (defname, sizeof defname, "%s-%s", vol, stamp);
    name = defname;
  }
  if (!snapshot_name_valid (name)) {
    registry_close (reg);
    return usage_error ("snapshot", "create: bad --name '%s' (1-100 of "
                        "A-Z a-z 0-9 . _ -, not starting with '.')", name);
  }
  snprintf (ev.what, sizeof ev.what, "snapshot %s", name);
  progress_init (&ev.bar, ev.what, ev.json);

  ret = EXIT_FAILURE;
  if (v.attachment.attached && attachment_is_local (&v.attachment) &&
      v.attachment.control[0]) {
    /* Live: the attach takes the point and uploads; we show progress. */
    /* The attach opens the store with our settings (credentials,
     * region, endpoint), not its own.
     */
    char **env = objstore_env_capture ();
    size_t len = 600;
    for (char **e = env; e && *e; e++)
      len += 3 * strlen (*e) + 1;
    char *cmd = malloc (len);
    if (env == NULL || cmd == NULL) {
      log_error ("out of memory");
      objstore_env_free (env);
      free (cmd);
      registry_close (reg);
      return EXIT_FAILURE;
    }
    int off = snprintf (cmd, len, "snapshot %s %s", url, name);
    for (char **e = env; *e; e++) {
      char *q = control_quote (*e);
      if (q)
        off += snprintf (cmd + off, len - off, " %s", q);
      free (q);
    }
    objstore_env_free (env);
    ev.remote = true;
    control_call_lines (v.attachment.control, cmd, on_event, &ev);
    free (cmd);
  }
  else if (v.attachment.attached && strcmp (v.attachment.frontend,
                                            ATTACH_DELETE_CLAIM) != 0 &&
           !attachment_is_local (&v.attachment))
    log_error ("volume '%s' is attached on host %s: run snapshot create "
               "there", vol, v.attachment.host);
  else {
    /* Detached: attach it just for the snapshot. */
    struct attach_opts o = {
      .volume = vol, .timeout_ms = 10000, .no_takeover = true,
      .job = ATTACH_SNAPSHOT, .snap_url = url, .snap_name = name,
      .job_line = on_event, .job_opaque = &ev,
    };
    attach_run (reg, &o);
  }
  registry_close (reg);
  progress_end (&ev.bar);
  return ev.ok ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* The restore's result for scripts: {"event":"done","volume":...}. */
static void
restore_done_json (const char *vol, const char *name, bool lazy,
                   uint64_t chunks_total)
{
  json_object *o = event_new ("done");

  json_object_object_add (o, "volume", json_object_new_string (vol));
  json_object_object_add (o, "snapshot", json_object_new_string (name));
  json_object_object_add (o, "lazy", json_object_new_boolean (lazy));
  json_object_object_add (o, "chunks_total",
                          json_object_new_uint64 (chunks_total));
  event_print (o);
}

/* The restore job's last line ("ok restored CHUNKS BYTES" or an error). */
static void
on_restore_event (void *opaque, const char *line)
{
  struct events *ev = opaque;
  uint64_t chunks, bytes;

  if (sscanf (line, "ok restored %" SCNu64 " %" SCNu64, &chunks, &bytes) == 2) {
    progress_end (&ev->bar);
    ev->ok = true;
  }
  else
    on_event (ev, line);
}

int
cmd_snapshot_restore (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "replica", required_argument, NULL, 'r' },
    { "lazy", no_argument, NULL, 'l' },
    { "allow-same-zone", no_argument, NULL, 'z' },
    { "json", no_argument, NULL, 'j' },
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  const char *addrs[REG_MAX_REPLICAS];
  int naddrs = 0, c;
  bool lazy = false, same_zone = false;
  struct events ev = { .json = false };

  while ((c = cli_getopt (argc, argv, "snapshot", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    switch (c) {
    case 'r':
      if (naddrs == REG_MAX_REPLICAS)
        return usage_error ("snapshot", "restore: at most %d replicas",
                            REG_MAX_REPLICAS);
      addrs[naddrs++] = optarg;
      break;
    case 'l': lazy = true; break;
    case 'z': same_zone = true; break;
    case 'j': ev.json = true; break;
    }
  }
  if (argc - optind != 3)
    return usage_error ("snapshot", "restore takes URL NAME NEWVOL");
  const char *url = argv[optind], *name = argv[optind + 1];
  const char *vol = argv[optind + 2];
  if (!store_url_ok (url) || strlen (url) > 255 || strchr (url, ' '))
    return usage_error ("snapshot", "restore: bad URL '%s' (expected "
                        "file:///DIR or s3://BUCKET/PREFIX)", url);
  if (!snapshot_name_valid (name))
    return usage_error ("snapshot", "restore: bad snapshot name '%s'", name);
  if (!valid_name (vol))
    return usage_error ("snapshot", "restore: bad volume name '%s'", vol);
  /* No --replica: the pool places 2 replicas, as create does. */

  /* What is being restored: the manifest says the size and chunk size. */
  struct error err = { 0 };
  struct objstore *os = objstore_open (url, &err);
  struct manifest m;
  if (os == NULL) {
    log_error ("%s", error_msg (&err));
    return EXIT_FAILURE;
  }
  int e = manifest_read (os, name, &m, &err);
  objstore_close (os);
  if (e) {
    if (e == -ENOENT)
      log_error ("no snapshot '%s' in %s", name, url);
    else
      log_error ("%s", error_msg (&err));
    return EXIT_FAILURE;
  }
  struct reg_restore r = { .active = true, .chunks_total = 0 };
  snprintf (r.url, sizeof r.url, "%s", url);
  snprintf (r.snapshot, sizeof r.snapshot, "%s", name);
  r.chunks_total = manifest_chunks (&m);
  struct volume_spec spec = {
    .name = vol, .size = m.volume_size,
    .block_size = m.volume_size % 4096 ? 512 : 4096,
    .chunk_size = m.chunk_size, .addrs = addrs, .naddrs = naddrs,
    .allow_same_zone = same_zone, .restore = r.chunks_total ? &r : NULL,
    /* The snapshot is where the new volume's changes count from. */
    .cbt_base_url = url, .cbt_base_name = name,
  };
  manifest_free (&m);

  struct registry *reg = open_registry ();
  if (reg == NULL)
    return EXIT_FAILURE;
  int ret = create_volume (reg, &spec);
  if (ret != 0 || r.chunks_total == 0 || lazy) {
    if (ret == 0 && !ev.json)
      printf ("restored volume %s from snapshot %s%s\n", vol, name,
              r.chunks_total && lazy ? " (lazily: attach it now; chunks are "
              "fetched on first use and in the background)" : "");
    else if (ret == 0)
      restore_done_json (vol, name, lazy, r.chunks_total);
    registry_close (reg);
    return ret;
  }

  /* Full restore: attach without a frontend until every chunk is in. */
  char what[200];
  snprintf (what, sizeof what, "restore %s", vol);
  progress_init (&ev.bar, what, ev.json);
  struct attach_opts o = {
    .volume = vol, .timeout_ms = 10000, .no_takeover = true,
    .job = ATTACH_RESTORE, .job_line = on_restore_event, .job_opaque = &ev,
  };
  attach_run (reg, &o);
  registry_close (reg);
  progress_end (&ev.bar);
  if (!ev.ok) {
    log_error ("volume %s is left partly restored: attaching it goes on "
               "with the restore, 'repvol delete %s' removes it", vol, vol);
    return EXIT_FAILURE;
  }
  if (ev.json)
    restore_done_json (vol, name, false, r.chunks_total);
  else
    printf ("restored volume %s from snapshot %s (%" PRIu64 " chunks)\n",
            vol, name, r.chunks_total);
  return EXIT_SUCCESS;
}
