/* main.c - repvol: dispatch to a verb, global options, help.
 *
 *   repvol [--registry LOCATION] VERB [ARGS...]
 *
 * Each verb lives in its own file (cmd_VERB.c), with its entry point
 * cmd_VERB (snapshot's sub-verbs: cmd_snapshot_SUBVERB), and parses its
 * own options; --registry and --help are accepted by every verb too, so
 * the global option may come before or after the verb.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tls.h"
#include "core/config.h"
#include "core/util.h"
#include "repvol.h"

#ifndef REPVOL_VERSION
#define REPVOL_VERSION "0.1.0"
#endif

const char *cli_registry;
const char *cli_tls_dir, *cli_tls_psk;
bool cli_bytes;

struct verb {
  const char *name;
  int (*fn) (int argc, char **argv);
  const char *synopsis;
  const char *help;             /* options, one per line */
};

static const struct verb verbs[] = {
  { "create", cmd_create,
    "create VOL --size SIZE [--replicas N | --replica SERVER ...]\n"
    "              [--block-size 512|4096] [--chunk-size SIZE] [--reserve]\n"
    "              [--allow-same-zone] [--json] [--bytes]",
    "Create a volume with a replica on every server named, or (no --replica)\n"
    "on N servers the pool chooses: up, in N distinct zones, most free space\n"
    "first.  Every server is contacted first; on any failure the replicas\n"
    "already made are removed.\n"
    "\n"
    "  --size SIZE          volume size: bytes or K, M, G, T, P (binary units)\n"
    "  --replica SERVER     a repvold to hold a replica, ADDR:PORT or its name\n"
    "                       in the server pool (repeat, 1 to 8)\n"
    "  --replicas N         how many replicas the pool places (default 2)\n"
    "  --block-size N       512 or 4096 (default 4096)\n"
    "  --chunk-size SIZE    snapshot chunk, a power of two from 64K to 64M\n"
    "                       (default 1M)\n"
    "  --reserve            allocate each replica's space up front\n"
    "  --allow-same-zone    allow two replicas in one availability zone\n"
    "  --json               the new volume's record as a JSON object\n"
    "  --bytes              the size in bytes, not 1 GiB\n" },
  { "list", cmd_list,
    "list [--json] [--bytes]",
    "List volumes: name, size, block size, number of replicas, epoch,\n"
    "health (healthy, degraded N/M, resyncing P% eta T, fenced,\n"
    "restoring P%), attachment (an attach on this host whose process\n"
    "exited shows as gone, one on another host whose lease expired as\n"
    "stale, each with the time).\n"
    "\n"
    "  --json               a JSON array, one object per volume\n"
    "  --bytes              sizes in bytes, not 1 GiB\n" },
  { "status", cmd_status,
    "status [VOL] [--json] [--bytes] [--timeout SECONDS]",
    "Show a volume (or every volume): health, size, epoch, each replica\n"
    "and its state, the attachment; each replica's server is asked for\n"
    "its view.\n"
    "\n"
    "  --json               machine-readable output\n"
    "  --bytes              sizes and rates in bytes, not 1 GiB, 80 MiB/s\n"
    "  --timeout SECONDS    per-server timeout (default 2)\n" },
  { "attach", cmd_attach,
    "attach VOL --nbd unix:PATH|tcp:ADDR:PORT | --ublk [--queues N] [--depth D]\n"
    "         | --kmod [--queues N] [--depth D]\n"
    "         | --nbd-device /dev/nbdN|auto [--nbd-dead-timeout SECONDS]\n"
    "         | --device auto [--nbd-dead-timeout SECONDS]\n"
    "         [--timeout SECONDS] [--no-takeover] [--force]\n"
    "         [--force-stale SERVER] [--resync-rate SIZE]\n"
    "         [--flush-interval MS] [--host NAME]\n"
    "         [--lease-ttl SECONDS] [--heal-after DURATION]\n"
    "         [--metrics ADDR:PORT]",
    "Attach the volume on this host and serve it, in the foreground, until\n"
    "SIGTERM, SIGINT or 'repvol detach VOL' (exit 0), or until a newer\n"
    "attachment fences it (exit 3).  Serve it one way:\n"
    "\n"
    "  --nbd unix:PATH      serve NBD on a unix socket (mode 0600, plaintext)\n"
    "  --nbd tcp:ADDR:PORT  serve NBD on a TCP address; with --tls-dir DIR\n"
    "                       or --tls-psk FILE (or $REPVOL_TLS_DIR/_PSK)\n"
    "                       it requires STARTTLS (server\n"
    "                       credentials DIR/server-cert.pem, server-key.pem,\n"
    "                       clients signed by DIR/ca-cert.pem; or FILE's users)\n"
    "  --ublk               a /dev/ublkbN block device (ublk_drv, Linux 6.0+)\n"
    "  --kmod               a /dev/repvolN block device (repvol.ko, this\n"
    "                       project's module; see repvol.ko(4))\n"
    "  --queues N           ublk / repvol.ko hardware queues (default 1;\n"
    "                       at most 64, 32 with --kmod)\n"
    "  --depth D            ublk / repvol.ko queue depth (default 128; at\n"
    "                       most 4096, 1024 with --kmod)\n"
    "  --nbd-device DEV     connect the kernel's nbd driver (/dev/nbdN, or\n"
    "                       auto for the first free one) to the volume;\n"
    "                       a device a killed attach of the volume left is\n"
    "                       recovered (auto: found in the run directory)\n"
    "  --nbd-dead-timeout SECONDS  if the attach dies, how long the kernel\n"
    "                       holds the device's I/O for the next attach to\n"
    "                       recover it before failing it (default 30;\n"
    "                       0: fail at once)\n"
    "  --device auto        the best block device this kernel offers: ublk,\n"
    "                       else repvol.ko, else kernel NBD\n"
    "\n"
    "  --timeout SECONDS    replica I/O timeout (default 10)\n"
    "  --no-takeover        refuse if the volume is attached elsewhere\n"
    "                       (default: take over an attachment whose lease\n"
    "                       expired, and fence it)\n"
    "  --force              take over an attach that still runs: on this\n"
    "                       host, or on another with its lease alive; it is\n"
    "                       fenced and exits with status 3\n"
    "  --force-stale SERVER serve from this out-of-sync replica (ADDR:PORT\n"
    "                       or server name) when no in-sync one answers\n"
    "                       (later writes may be lost)\n"
    "  --resync-rate SIZE   catch-up bandwidth per second (default 64M)\n"
    "  --flush-interval MS  flush every replica this long after a write no\n"
    "                       flush covers yet, so a lost replica's catch-up\n"
    "                       need not copy unflushed writes (default 1000;\n"
    "                       0: never)\n"
    "  --host NAME          this host's name in the registry (default:\n"
    "                       $REPVOL_HOST, else the host name)\n"
    "  --lease-ttl SECONDS  the attach lease: other hosts may take the\n"
    "                       volume over once it is this old (default 10)\n"
    "  --heal-after DURATION  replace a replica unreachable this long (30s,\n"
    "                       5m, 2h; 0: never) by a spare from the pool\n"
    "                       (default: the registry's heal-after setting,\n"
    "                       else 5m)\n"
    "  --metrics ADDR:PORT  serve Prometheus metrics on\n"
    "                       http://ADDR:PORT/metrics\n" },
  { "detach", cmd_detach,
    "detach VOL [--timeout SECONDS] [--json]",
    "Stop the attach process of VOL on this host and wait until it has\n"
    "drained, flushed and cleared its attachment.  A stale attachment\n"
    "(its process is gone) is cleared.\n"
    "\n"
    "  --timeout SECONDS    how long to wait (default 60)\n"
    "  --json               how it ended, as a JSON object\n" },
  { "verify", cmd_verify,
    "verify VOL [--repair] [--json]",
    "Compare the replicas of an attached volume region by region, with\n"
    "checksums computed on the servers; print each differing region.\n"
    "Exit 0 when they agree (or were all repaired).\n"
    "\n"
    "  --repair             copy differing regions from the majority\n"
    "  --json               the regions and the outcome, one JSON object\n" },
  { "replica", cmd_replica,
    "replica replace VOL OLD NEW [--allow-same-zone]\n"
    "              [--timeout SECONDS] [--json] [--bytes]",
    "Build a full copy of the volume on a new server while it serves,\n"
    "then delete the old replica.  OLD and NEW are ADDR:PORT or server\n"
    "names (OLD as the volume records it, NEW as the pool knows it).\n"
    "\n"
    "  --allow-same-zone    allow the new replica in a zone already used\n"
    "  --timeout SECONDS    how long to wait for the copy (default 3600)\n"
    "  --json               one JSON object per line (replacing, progress,\n"
    "                       done)\n"
    "  --bytes              the copy's progress in bytes, not MiB\n" },
  { "snapshot", cmd_snapshot,
    "snapshot create VOL --to URL [--name NAME] [--json]\n"
    "       repvol snapshot list URL [--json] [--bytes]\n"
    "       repvol snapshot delete URL NAME [--json] [--bytes]\n"
    "       repvol snapshot restore URL NAME NEWVOL [--replica SERVER ...]\n"
    "              [--lazy] [--allow-same-zone] [--json]",
    "Point-in-time, incremental snapshots of a live volume in object\n"
    "storage (URL: file:///DIR or s3://BUCKET/PREFIX), and restores from\n"
    "them to a new volume.\n"
    "\n"
    "  --to URL             where create stores the snapshot\n"
    "  --name NAME          the snapshot's name (default:\n"
    "                       VOL-YYYYmmddTHHMMSSZ, the time in UTC)\n"
    "  --replica SERVER     a repvold to hold a replica of the new volume,\n"
    "                       ADDR:PORT or a pool name (default: 2 replicas\n"
    "                       placed by the pool, as create does)\n"
    "  --lazy               restore returns at once: the volume can be\n"
    "                       attached, and chunks are fetched on first use\n"
    "                       while the rest streams in the background\n"
    "  --json               create, restore: one JSON object per line\n"
    "                       (progress, result); list: a JSON array;\n"
    "                       delete: a JSON object\n"
    "  --bytes              list, delete: sizes in bytes, not MiB\n" },
  { "epoch", cmd_epoch,
    "epoch VOL [--reset] [--json] [--timeout SECONDS]",
    "Show each replica's epoch beside the registry's.  A replica ahead of\n"
    "the registry refuses every attach; exit 1 when one is.  With --reset,\n"
    "set every replica's epoch to the registry's (the volume must be\n"
    "detached); a replica that cannot be reached is named, exit 1.\n"
    "\n"
    "  --reset              set the replicas' epochs to the registry's\n"
    "  --json               machine-readable output (with --reset: what\n"
    "                       was set on each replica)\n"
    "  --timeout SECONDS    per-server timeout (default 5)\n" },
  { "server", cmd_server,
    "server list [--json] [--bytes]\n"
    "       repvol server drain NAME [--wait] [--timeout SECONDS] [--json]\n"
    "              [--bytes]\n"
    "       repvol server undrain NAME [--json]",
    "list: the server pool, every repvold started with --registry, with\n"
    "its zone, the address it advertises, its state (up; down once its\n"
    "lease ran out or it stopped; draining(N) with N replicas left to\n"
    "move), its data directory's capacity and free space, and the replicas\n"
    "it holds.  drain: mark the server draining (placement skips it) and\n"
    "move every replica it holds to spares, online: attached volumes in\n"
    "their attach, one replica at a time, detached ones here.  undrain:\n"
    "clear the mark.\n"
    "\n"
    "  --json               list: a JSON array, one object per server;\n"
    "                       drain: one JSON object per line; undrain: a\n"
    "                       JSON object\n"
    "  --bytes              list, drain: sizes in bytes, not GiB\n"
    "  --wait               drain: wait until no replica is left on it\n"
    "  --timeout SECONDS    how long --wait waits (default 3600)\n" },
  { "heal", cmd_heal,
    "heal [VOL...] [--heal-after DURATION] [--json]",
    "One healing pass over the volumes (all of them by default), for a\n"
    "timer: a detached volume whose replicas are not all in sync is\n"
    "attached for the job: replicas that answer are caught up, those\n"
    "unreachable longer than heal-after are replaced by spares from the\n"
    "pool (placement rules) and copied to; stale copies of replicas\n"
    "replaced earlier are deleted where their servers answer.  Attached\n"
    "volumes heal in their attach.  Prints what it did.\n"
    "\n"
    "  --heal-after DURATION  as attach's (default: the heal-after setting,\n"
    "                       else 5m)\n"
    "  --json               what was done to each volume, and its health,\n"
    "                       one JSON object\n" },
  { "settings", cmd_settings,
    "settings [KEY [VALUE | --unset]] [--json]",
    "Show or set the registry-wide defaults every host follows.  Known:\n"
    "heal-after (a duration, 0: never heal; default 5m).\n"
    "\n"
    "  --unset              back to the built-in default\n"
    "  --json               the settings as a JSON object\n" },
  { "events", cmd_events,
    "events [--follow] [--since REVISION] [--json] [--volume VOL]",
    "The registry's events, oldest first: every volume's created, attached,\n"
    "detached, fenced, degraded, resync-started, resync-done,\n"
    "replica-replaced, heal-started, stale-deleted, snapshot-done,\n"
    "restore-done, resized and deleted, and the pool's server-up, server-down,\n"
    "drain-started and drain-done; each with its revision, time (UTC),\n"
    "volume or server, the host that recorded it and details.\n"
    "\n"
    "  --follow             then print new events as they come (until\n"
    "                       SIGINT or SIGTERM)\n"
    "  --since REVISION     only the events after this revision\n"
    "  --json               one JSON object per line\n"
    "  --volume VOL         only the events of this volume\n" },
  { "resize", cmd_resize,
    "resize VOL --size SIZE [--reserve] [--allow-shrink] [--json] [--bytes]",
    "Change a volume's size.  Attached, it grows online: every replica\n"
    "grows (thin stays thin), the registry records the size, and the\n"
    "device shows it (kernel NBD at once; NBD clients from their next\n"
    "connection; ublk once attached again).  Detached, every replica is\n"
    "resized here.  Shrinking discards the data past the new end: only\n"
    "detached, and only with --allow-shrink.  Running the same resize\n"
    "again finishes one that stopped half way.\n"
    "\n"
    "  --size SIZE          the new size (K, M, G, T suffixes), a multiple\n"
    "                       of the block size\n"
    "  --reserve            allocate the new space now (a volume created\n"
    "                       with --reserve always does)\n"
    "  --allow-shrink       allow a smaller size (detached volumes only)\n"
    "  --json               what was done, as one JSON object\n"
    "  --bytes              sizes in bytes\n" },
  { "delete", cmd_delete,
    "delete VOL [--force] [--json]",
    "Delete a volume: its replica on every server, then its registry\n"
    "entry.  Refused while the volume is attached.\n"
    "\n"
    "  --force              go on when a server cannot be reached (its\n"
    "                       replica is left behind on that server)\n"
    "  --json               what was deleted, as a JSON object\n" },
};

static const char common_help[] =
  "\n"
  "  --registry LOCATION  a registry directory (DIR or dir://DIR), or\n"
  "                       etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (default:\n"
  "                       $REPVOL_REGISTRY, then /var/lib/repvol)\n"
  "  --tls-dir DIR        TLS to the servers with DIR's ca-cert.pem,\n"
  "                       client-cert.pem, client-key.pem (default:\n"
  "                       $REPVOL_TLS_DIR)\n"
  "  --tls-psk FILE       TLS with the first key in FILE, psktool's\n"
  "                       username:hexkey (default: $REPVOL_TLS_PSK)\n"
  "  --help               this help\n";

static void
main_help (FILE *fp)
{
  fprintf (fp, "Usage: repvol [--registry LOCATION] [--tls-dir DIR | --tls-psk FILE] VERB [ARGS...]\n"
               "       repvol --help | --version | VERB --help\n\nVerbs:\n");
  for (size_t i = 0; i < ARRAY_SIZE (verbs); i++)
    fprintf (fp, "  repvol %s\n", verbs[i].synopsis);
  fprintf (fp, "%s", common_help);
}

void
verb_help (const char *verb, bool to_stderr)
{
  FILE *fp = to_stderr ? stderr : stdout;
  for (size_t i = 0; i < ARRAY_SIZE (verbs); i++)
    if (strcmp (verbs[i].name, verb) == 0) {
      fprintf (fp, "Usage: repvol %s\n\n%s%s", verbs[i].synopsis,
               verbs[i].help, common_help);
      return;
    }
}

int
usage_error (const char *verb, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  if (verb)
    log_error ("%s: %s (see 'repvol %s --help')", verb, msg, verb);
  else
    log_error ("%s (see 'repvol --help')", msg);
  return EXIT_USAGE;
}

int
cli_getopt (int argc, char **argv, const char *verb,
            const struct option *longopts)
{
  /* Long options only (plus -h): a leading ':' makes getopt report a
   * missing argument as ':' so we can word it ourselves.
   */
  for (;;) {
    int c = getopt_long (argc, argv, ":h", longopts, NULL);
    struct error err = { 0 };
    switch (c) {
    case CLI_OPT_REGISTRY:
      cli_registry = optarg;
      continue;
    case CLI_OPT_TLS_DIR:
      cli_tls_dir = optarg;
      continue;
    case CLI_OPT_TLS_PSK:
      cli_tls_psk = optarg;
      continue;
    case CLI_OPT_BYTES:
      cli_bytes = true;
      continue;
    case -1:
      if (cli_tls_dir && cli_tls_psk)
        return -2 - usage_error (verb, "give --tls-dir or --tls-psk, not "
                                 "both");
      if (tls_client_setup (cli_tls_dir, cli_tls_psk, &err) < 0) {
        log_error ("%s", error_msg (&err));
        return -2 - EXIT_FAILURE;
      }
      return -1;
    case 'h':
      verb_help (verb, false);
      return -2 - EXIT_SUCCESS;
    case ':':
      return -2 - usage_error (verb, "option %s needs an argument",
                               argv[optind - 1]);
    case '?':
      if (optopt)
        return -2 - usage_error (verb, "unknown option -%c", optopt);
      return -2 - usage_error (verb, "unknown option %s", argv[optind - 1]);
    default:
      return c;
    }
  }
}

const char *
one_volume (int argc, char **argv, const char *verb)
{
  if (optind >= argc) {
    usage_error (verb, "missing volume name");
    return NULL;
  }
  if (optind + 1 < argc) {
    usage_error (verb, "unexpected argument '%s'", argv[optind + 1]);
    return NULL;
  }
  const char *vol = argv[optind];
  if (!valid_name (vol)) {
    usage_error (verb, "invalid volume name '%s' (1 to 63 of A-Z a-z 0-9 . _ -, "
                 "not starting with . or -)", vol);
    return NULL;
  }
  return vol;
}

int
main (int argc, char **argv)
{
  int i;

  log_init ("repvol");
  struct error cerr = { 0 };
  if (config_load (&cerr) < 0) {
    log_error ("%s", error_msg (&cerr));
    return EXIT_FAILURE;
  }

  /* Global options before the verb. */
  for (i = 1; i < argc && argv[i][0] == '-'; i++) {
    const char *a = argv[i];
    if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0) {
      main_help (stdout);
      return EXIT_SUCCESS;
    }
    if (strcmp (a, "--version") == 0 || strcmp (a, "-V") == 0) {
      printf ("repvol %s\n", REPVOL_VERSION);
      return EXIT_SUCCESS;
    }
    const char **dst = NULL;
    const char *name = NULL;
    if (!strncmp (a, "--registry", 10))
      dst = &cli_registry, name = "--registry";
    else if (!strncmp (a, "--tls-dir", 9))
      dst = &cli_tls_dir, name = "--tls-dir";
    else if (!strncmp (a, "--tls-psk", 9))
      dst = &cli_tls_psk, name = "--tls-psk";
    size_t nl = name ? strlen (name) : 0;
    if (dst && a[nl] == '\0') {
      if (i + 1 >= argc)
        return usage_error (NULL, "option %s needs an argument", name);
      *dst = argv[++i];
    }
    else if (dst && a[nl] == '=')
      *dst = a + nl + 1;
    else
      return usage_error (NULL, "unknown option %s", a);
  }
  if (i >= argc)
    return usage_error (NULL, "missing verb");

  for (size_t v = 0; v < ARRAY_SIZE (verbs); v++)
    if (strcmp (verbs[v].name, argv[i]) == 0) {
      optind = 1;               /* the verb's argv starts at the verb */
      return verbs[v].fn (argc - i, argv + i);
    }
  return usage_error (NULL, "unknown verb '%s'", argv[i]);
}
