/* repvold - the repvol replica server.
 *
 * A thin program over the library: parse options, open the store (data
 * directory + I/O engine), listen, run the replica server on the event
 * loop until SIGTERM/SIGINT, then drain and exit 0.  See repvold(8).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <netinet/in.h>

#include "core/config.h"
#include "core/util.h"
#include "core/loop.h"
#include "core/tls.h"
#include "store/store.h"
#include "core/ratelimit.h"
#include "replica/server.h"
#include "metrics/metrics.h"
#include "pool.h"

#ifndef REPVOL_VERSION
#define REPVOL_VERSION "0.1.0"
#endif

#define SHUTDOWN_MS 10000       /* bound on draining requests at exit */

static void
usage (FILE *f)
{
  fprintf (f,
"Usage: repvold --data-dir DIR --listen ADDR:PORT [OPTIONS]\n"
"\n"
"Serve replicas of repvol volumes kept in DIR over the repvol protocol.\n"
"\n"
"  -d, --data-dir DIR        directory holding VOL.data / VOL.meta files\n"
"  -l, --listen ADDR:PORT    address to listen on (e.g. 127.0.0.1:7001)\n"
"  -n, --name NAME           server name (default: the host name)\n"
"  -z, --zone NAME           availability zone of this server\n"
"      --io-engine ENGINE    auto (default), io_uring or libaio\n"
"      --cache MODE          none (default: O_DIRECT) or writeback\n"
"      --reserve-margin SIZE free space a --reserve create must leave\n"
"                            (default 1G)\n"
"      --stall-timeout SECS  close a connection whose HELLO or request\n"
"                            stalls half-sent this long (default 30)\n"
"      --tls-dir DIR         serve TLS 1.3 only: DIR has ca-cert.pem,\n"
"                            server-cert.pem, server-key.pem; clients must\n"
"                            present a certificate signed by that CA\n"
"      --tls-psk FILE        serve TLS 1.3 only, with the pre-shared keys\n"
"                            in FILE (psktool's username:hexkey lines)\n"
"      --admins ID[,ID...]   identities (certificate CN or PSK user) that\n"
"                            may create, delete and read detached volumes;\n"
"                            others may only attach (default: all)\n"
"      --idle-timeout SECS   close a connection idle this long; clients\n"
"                            that know keep theirs with PING (default 60,\n"
"                            0: never)\n"
"      --max-connections N   connections open at once (default: half of\n"
"                            the descriptor limit less 64; 0: no limit)\n"
"      --max-connections-per-peer N\n"
"                            from one source address (default 256;\n"
"                            0: no limit)\n"
"      --peer-log-interval SECS\n"
"                            log one line per peer per interval about\n"
"                            what it does wrong (default 10; 0: every line)\n"
"      --registry URL        join the server pool of this registry (a\n"
"                            directory, dir://PATH or etcd://HOST:PORT,...;\n"
"                            default: repvol.conf's registry, else none)\n"
"      --advertise ADDR:PORT the address clients reach this server at\n"
"                            (default: the --listen address)\n"
"      --lease-ttl SECS      the pool shows this server down SECS after\n"
"                            its last refresh (default 10; 2 to 3600)\n"
"      --metrics ADDR:PORT   serve Prometheus metrics on\n"
"                            http://ADDR:PORT/metrics\n"
"  -h, --help                show this help\n"
"  -V, --version             show the version\n");
}

/* --admins: identities are certificate CNs or PSK user names. */
static bool
valid_id_list (const char *s)
{
  size_t n = 0;

  for (; ; s++) {
    if (*s == ',' || *s == '\0') {
      if (n == 0 || n >= TLS_ID_MAX)
        return false;
      if (*s == '\0')
        return true;
      n = 0;
    }
    else if (isalnum ((unsigned char) *s) || strchr ("._-@ ", *s))
      n++;
    else
      return false;
  }
}

/* 0.0.0.0 or [::]: fine to listen on, no address to dial. */
static bool
is_wildcard (const struct sockaddr_storage *ss)
{
  if (ss->ss_family == AF_INET)
    return ((const struct sockaddr_in *) ss)->sin_addr.s_addr == INADDR_ANY;
  if (ss->ss_family == AF_INET6)
    return IN6_IS_ADDR_UNSPECIFIED (&((const struct sockaddr_in6 *) ss)->sin6_addr);
  return false;
}

static int
bad_arg (const char *fmt, const char *arg)
{
  fprintf (stderr, "repvold: ");
  fprintf (stderr, fmt, arg);
  fprintf (stderr, " (see repvold --help)\n");
  return EXIT_FAILURE;
}

struct signal_state {
  struct loop *loop;
  struct replica_server *srv;
  bool started;                 /* shutting down */
  /* what SIGHUP reloads */
  const char *tls_dir, *tls_psk;
  struct tls_creds *tls;        /* ours; sessions hold their own references */
};

/* SIGHUP: read the TLS files again (renewed certificates, a changed PSK
 * file) for the connections accepted from now on; open sessions keep
 * the credentials they started with.  A set that does not load leaves
 * the old one in use.
 */
static void
reload_tls (struct signal_state *st)
{
  struct tls_creds *fresh = NULL;
  struct error err = { 0 };

  if (!st->tls) {
    log_info ("SIGHUP: no TLS to reload");
    return;
  }
  if (tls_creds_load (&fresh, TLS_SERVER, st->tls_dir, st->tls_psk,
                      &err) < 0) {
    log_error ("SIGHUP: TLS credentials not reloaded, the old ones stay "
               "in use: %s", error_msg (&err));
    return;
  }
  replica_server_replace_tls (st->srv, fresh);
  tls_creds_free (st->tls);
  st->tls = fresh;
  log_info ("SIGHUP: TLS credentials reloaded (%s); open connections keep "
            "theirs", tls_creds_describe (fresh));
}

static void
shutdown_done (void *opaque)
{
  struct signal_state *st = opaque;
  loop_stop (st->loop);
}

static void
on_signal (struct loop *loop, int signo, void *opaque)
{
  struct signal_state *st = opaque;

  if (signo == SIGHUP) {
    reload_tls (st);
    return;
  }
  if (st->started) {
    log_info ("second %s: exiting now", strsignal (signo));
    loop_stop (loop);
    return;
  }
  st->started = true;
  log_info ("%s: shutting down", strsignal (signo));
  replica_server_shutdown (st->srv, SHUTDOWN_MS, shutdown_done, st);
}

int
main (int argc, char **argv)
{
  enum { OPT_IO_ENGINE = 256, OPT_CACHE, OPT_STALL, OPT_TLS_DIR, OPT_TLS_PSK,
         OPT_ADMINS, OPT_RESERVE_MARGIN, OPT_IDLE, OPT_MAX_CONNS,
         OPT_MAX_PER_PEER, OPT_LOG_INTERVAL, OPT_REGISTRY, OPT_ADVERTISE,
         OPT_LEASE_TTL, OPT_METRICS };
  static const struct option opts[] = {
    { "data-dir",  required_argument, NULL, 'd' },
    { "listen",    required_argument, NULL, 'l' },
    { "name",      required_argument, NULL, 'n' },
    { "zone",      required_argument, NULL, 'z' },
    { "io-engine", required_argument, NULL, OPT_IO_ENGINE },
    { "cache",     required_argument, NULL, OPT_CACHE },
    { "stall-timeout", required_argument, NULL, OPT_STALL },
    { "tls-dir",   required_argument, NULL, OPT_TLS_DIR },
    { "tls-psk",   required_argument, NULL, OPT_TLS_PSK },
    { "admins",    required_argument, NULL, OPT_ADMINS },
    { "reserve-margin", required_argument, NULL, OPT_RESERVE_MARGIN },
    { "idle-timeout", required_argument, NULL, OPT_IDLE },
    { "max-connections", required_argument, NULL, OPT_MAX_CONNS },
    { "max-connections-per-peer", required_argument, NULL, OPT_MAX_PER_PEER },
    { "peer-log-interval", required_argument, NULL, OPT_LOG_INTERVAL },
    { "registry",  required_argument, NULL, OPT_REGISTRY },
    { "advertise", required_argument, NULL, OPT_ADVERTISE },
    { "lease-ttl", required_argument, NULL, OPT_LEASE_TTL },
    { "metrics",   required_argument, NULL, OPT_METRICS },
    { "help",      no_argument,       NULL, 'h' },
    { "version",   no_argument,       NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  const char *data_dir = NULL, *listen_addr = NULL, *name = NULL;
  const char *zone = "", *engine = "auto";
  bool zone_given = false;
  const char *tls_dir = NULL, *tls_psk = NULL, *admins = NULL;
  struct tls_creds *tls = NULL;
  enum store_cache cache = STORE_CACHE_NONE;
  uint64_t reserve_margin = STORE_RESERVE_MARGIN_DEFAULT;
  uint64_t stall_s = RS_STALL_MS / 1000, idle_s = RS_IDLE_MS / 1000;
  uint64_t max_conns = replica_server_default_max_conns ();
  uint64_t max_per_peer = RS_MAX_CONNS_PER_PEER;
  uint64_t log_interval_s = RATELIMIT_INTERVAL_MS / 1000;
  const char *registry = NULL, *advertise = NULL, *metrics_addr = NULL;
  uint64_t lease_ttl = 10;
  char host[256];
  struct sockaddr_storage ss;
  socklen_t sslen;
  struct stat st;
  int c, lfd;

  log_init ("repvold");
  opterr = 0;
  while ((c = getopt_long (argc, argv, ":d:l:n:z:hV", opts, NULL)) != -1) {
    switch (c) {
    case 'd': data_dir = optarg; break;
    case 'l': listen_addr = optarg; break;
    case 'n': name = optarg; break;
    case 'z': zone = optarg; zone_given = true; break;
    case OPT_IO_ENGINE:
      if (strcmp (optarg, "auto") && strcmp (optarg, "io_uring") &&
          strcmp (optarg, "libaio"))
        return bad_arg ("--io-engine must be auto, io_uring or libaio, "
                        "not '%s'", optarg);
      engine = optarg;
      break;
    case OPT_CACHE:
      if (store_parse_cache (optarg, &cache) < 0)
        return bad_arg ("--cache must be none or writeback, not '%s'", optarg);
      break;
    case OPT_STALL:
      if (parse_uint (optarg, 1, 3600, &stall_s) < 0)
        return bad_arg ("--stall-timeout must be 1 to 3600 seconds, not '%s'",
                        optarg);
      break;
    case OPT_RESERVE_MARGIN:
      if (parse_size (optarg, &reserve_margin) < 0)
        return bad_arg ("bad --reserve-margin '%s' (a size such as 512M "
                        "or 2G)", optarg);
      break;
    case OPT_TLS_DIR: tls_dir = optarg; break;
    case OPT_TLS_PSK: tls_psk = optarg; break;
    case OPT_ADMINS:
      if (!valid_id_list (optarg))
        return bad_arg ("bad --admins '%s' (ID[,ID...], each 1-127 of "
                        "A-Z a-z 0-9 . _ - @ and space)", optarg);
      admins = optarg;
      break;
    case OPT_IDLE:
      if (parse_uint (optarg, 0, 86400, &idle_s) < 0)
        return bad_arg ("--idle-timeout must be 0 to 86400 seconds, not '%s'",
                        optarg);
      break;
    case OPT_MAX_CONNS:
      if (parse_uint (optarg, 0, 1000000, &max_conns) < 0)
        return bad_arg ("--max-connections must be 0 to 1000000, not '%s'",
                        optarg);
      break;
    case OPT_MAX_PER_PEER:
      if (parse_uint (optarg, 0, 1000000, &max_per_peer) < 0)
        return bad_arg ("--max-connections-per-peer must be 0 to 1000000, "
                        "not '%s'", optarg);
      break;
    case OPT_LOG_INTERVAL:
      if (parse_uint (optarg, 0, 3600, &log_interval_s) < 0)
        return bad_arg ("--peer-log-interval must be 0 to 3600 seconds, "
                        "not '%s'", optarg);
      break;
    case OPT_REGISTRY: registry = optarg; break;
    case OPT_ADVERTISE: advertise = optarg; break;
    case OPT_LEASE_TTL:
      if (parse_uint (optarg, 2, 3600, &lease_ttl) < 0)
        return bad_arg ("--lease-ttl must be 2 to 3600 seconds, not '%s'",
                        optarg);
      break;
    case OPT_METRICS: metrics_addr = optarg; break;
    case 'h':
      usage (stdout);
      return EXIT_SUCCESS;
    case 'V':
      printf ("repvold %s\n", REPVOL_VERSION);
      return EXIT_SUCCESS;
    case ':':
      return bad_arg ("option %s needs an argument", argv[optind - 1]);
    default:
      return bad_arg ("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc)
    return bad_arg ("unexpected argument '%s'", argv[optind]);
  /* The site file gives what the command line did not (core/config.h):
   * the zone, and the TLS credentials (one setting: a flag for either
   * leaves both alone).
   */
  struct error cerr = { 0 };
  if (config_load (&cerr) < 0) {
    fprintf (stderr, "repvold: %s\n", error_msg (&cerr));
    return EXIT_FAILURE;
  }
  if (!zone_given && config_get ("zone"))
    zone = config_get ("zone");
  if (!tls_dir && !tls_psk) {
    tls_dir = config_get ("tls-dir");
    tls_psk = config_get ("tls-psk");
  }
  if (!registry)
    registry = config_get ("registry");
  if (!data_dir)
    data_dir = config_get ("data-dir");
  if (!listen_addr)
    listen_addr = config_get ("listen");
  if (!advertise)
    advertise = config_get ("advertise");
  if (!name)
    name = config_get ("name");
  if (!data_dir)
    return bad_arg ("%s", "--data-dir is required (or data-dir in "
                    "repvol.conf)");
  if (!listen_addr)
    return bad_arg ("%s", "--listen is required (or listen in "
                    "repvol.conf)");
  /* Volumes' bytes are the owner's only (docs/DESIGN.md 3.9): a data
   * directory made here is 0700, and one open to others is warned about
   * once the log is up.
   */
  if (stat (data_dir, &st) == -1 &&
      (errno != ENOENT || mkdir (data_dir, 0700) == -1 ||
       stat (data_dir, &st) == -1)) {
    fprintf (stderr, "repvold: data directory %s: %s\n", data_dir,
             strerror (errno));
    return EXIT_FAILURE;
  }
  if (!S_ISDIR (st.st_mode))
    return bad_arg ("data directory %s is not a directory", data_dir);
  if (!name) {
    if (gethostname (host, sizeof host) == -1)
      strcpy (host, "localhost");
    host[sizeof host - 1] = '\0';
    /* Host names may be longer or richer than server names: use the
     * first label.
     */
    host[strcspn (host, ".")] = '\0';
    name = host;
    if (!valid_name (name))
      return bad_arg ("host name '%s' is not a valid server name; "
                      "give --name", name);
  }
  else if (!valid_name (name))
    return bad_arg ("bad --name '%s' (1-63 of A-Z a-z 0-9 . _ -, "
                    "not starting with '.')", name);
  if (*zone && !valid_name (zone))
    return bad_arg ("bad --zone '%s' (1-63 of A-Z a-z 0-9 . _ -, "
                    "not starting with '.')", zone);
  if (parse_hostport (listen_addr, &ss, &sslen) < 0)
    return bad_arg ("bad --listen address '%s' (want ADDR:PORT)",
                    listen_addr);
  if (!advertise)
    advertise = listen_addr;
  struct sockaddr_storage ads;
  socklen_t adslen;
  if (strlen (advertise) >= 128 || parse_hostport (advertise, &ads, &adslen) < 0)
    return bad_arg ("bad --advertise address '%s' (want ADDR:PORT)",
                    advertise);
  if (registry && is_wildcard (&ads))
    return bad_arg ("%s is no address a client can dial; give --advertise "
                    "ADDR:PORT for the server pool", advertise);
  if ((advertise != listen_addr || lease_ttl != 10) && !registry)
    return bad_arg ("%s", "--advertise and --lease-ttl need --registry (or "
                    "repvol.conf's registry)");
  if (admins && !tls_dir && !tls_psk)
    return bad_arg ("%s", "--admins needs --tls-dir or --tls-psk (without "
                    "TLS there are no identities)");
  if (tls_dir && tls_psk)
    return bad_arg ("%s", "give --tls-dir or --tls-psk, not both");
  struct sockaddr_storage mss;
  socklen_t msslen;
  if (metrics_addr && parse_hostport (metrics_addr, &mss, &msslen) < 0)
    return bad_arg ("bad --metrics address '%s' (want ADDR:PORT)",
                    metrics_addr);

  /* First of all: a port in use stops us with nothing to undo. */
  struct error err = { 0 };
  struct metrics *metrics = NULL;
  struct metrics_http *mhttp = NULL;
  if (metrics_addr &&
      ((metrics = metrics_new ()) == NULL ||
       (mhttp = metrics_http_start (metrics, metrics_addr, &err)) == NULL)) {
    fprintf (stderr, "repvold: %s\n", metrics ? error_msg (&err)
             : "out of memory");
    metrics_free (metrics);
    return EXIT_FAILURE;
  }

  if (tls_creds_load (&tls, TLS_SERVER, tls_dir, tls_psk, &err) < 0) {
    fprintf (stderr, "repvold: TLS: %s\n", error_msg (&err));
    return EXIT_FAILURE;
  }

  /* The registry client (etcd over https) uses the process's client
   * credentials: the --tls-dir's own when it holds a client certificate,
   * else $REPVOL_TLS_DIR's.
   */
  if (registry) {
    char cert[4096];
    snprintf (cert, sizeof cert, "%s/client-cert.pem", tls_dir ? tls_dir : "");
    if (tls_client_setup (tls_dir && access (cert, R_OK) == 0 ? tls_dir
                          : NULL, NULL, &err) < 0) {
      fprintf (stderr, "repvold: registry TLS: %s\n", error_msg (&err));
      return EXIT_FAILURE;
    }
  }

  server_process_init ();
  struct loop *loop = loop_new ();
  if (!loop) {
    fprintf (stderr, "repvold: cannot create the event loop: %s\n",
             strerror (errno));
    return EXIT_FAILURE;
  }

  lfd = tcp_listen (listen_addr);
  if (lfd < 0) {
    fprintf (stderr, "repvold: cannot listen on %s: %s\n", listen_addr,
             strerror (errno));
    return EXIT_FAILURE;
  }

  struct store *store = store_open (loop, data_dir, engine, cache, &err);
  if (!store) {
    fprintf (stderr, "repvold: %s\n", error_msg (&err));
    close (lfd);
    return EXIT_FAILURE;
  }

  struct replica_server *srv =
    replica_server_new (loop, store, lfd, name, zone);
  if (!srv) {
    store_close (store);
    return EXIT_FAILURE;
  }
  replica_server_set_stall_timeout (srv, stall_s * 1000);
  store_set_reserve_margin (store, reserve_margin);
  if (tls && replica_server_set_tls (srv, tls, admins) < 0) {
    fprintf (stderr, "repvold: out of memory\n");
    return EXIT_FAILURE;
  }
  replica_server_set_idle_timeout (srv, idle_s * 1000);
  replica_server_set_conn_limits (srv, max_conns, max_per_peer);
  replica_server_set_log_interval (srv, log_interval_s * 1000);
  replica_server_set_metrics (srv, metrics);

  struct signal_state sst = { .loop = loop, .srv = srv, .tls_dir = tls_dir,
                              .tls_psk = tls_psk, .tls = tls };
  static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
  if (loop_signals (loop, sigs, 3, on_signal, &sst) < 0) {
    fprintf (stderr, "repvold: cannot set up signal handling: %s\n",
             strerror (errno));
    return EXIT_FAILURE;
  }

  log_info ("repvold %s: name %s, zone %s, listening on %s, I/O engine %s, "
            "cache %s, %zu volume(s) in %s", REPVOL_VERSION, name,
            *zone ? zone : "(none)", listen_addr, store_engine_name (store),
            store_cache_name (cache), store_volume_count (store), data_dir);
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    log_warn ("data directory %s is open to other users (mode %04o): "
              "they can read every volume's files; fix it with "
              "\"chmod 700 %s\"", data_dir, (unsigned) (st.st_mode & 07777),
              data_dir);
  if (!tls)
    log_warn ("no --tls-dir or --tls-psk: serving plaintext without "
              "authentication; anyone who reaches %s can read, write and "
              "delete every volume here", listen_addr);
  else
    log_info ("TLS 1.3 only, %s; admins: %s", tls_creds_describe (tls),
              admins ? admins : "every authenticated identity");
  log_info ("connections: at most %" PRIu64 ", %" PRIu64 " per address "
            "(0: no limit); idle timeout %" PRIu64 " s", max_conns,
            max_per_peer, idle_s);

  struct pool_reg *pool = NULL;
  if (registry) {
    struct pool_config pc = {
      .registry = registry, .name = name, .zone = zone,
      .advertise = advertise, .data_dir = data_dir,
      .version = REPVOL_VERSION, .tls = tls != NULL,
      .reserve_margin = reserve_margin, .ttl = (unsigned) lease_ttl,
    };
    pool = pool_register_start (&pc, &err);
    if (pool == NULL) {
      fprintf (stderr, "repvold: server pool: %s\n", error_msg (&err));
      return EXIT_FAILURE;
    }
  }

  int rc = loop_run (loop);

  pool_register_stop (pool);

  /* The store drains first: completions still reach live connections. */
  store_close (store);
  metrics_http_stop (mhttp);
  replica_server_free (srv);
  metrics_free (metrics);
  tls_creds_free (sst.tls);
  loop_free (loop);
  if (rc < 0) {
    log_error ("event loop failed");
    return EXIT_FAILURE;
  }
  log_info ("stopped");
  return EXIT_SUCCESS;
}
