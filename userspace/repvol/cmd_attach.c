/* cmd_attach.c - repvol attach: parse, then hand over to attach_run(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "core/tls.h"
#include "attach/attach.h"
#include "engine/engine.h"
#include "frontend/frontend.h"
#include "repvol_uapi.h"
#include "metrics/metrics.h"
#include "repvol.h"

int
cmd_attach (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "nbd", required_argument, NULL, 'n' },
    { "ublk", no_argument, NULL, 'u' },
    { "kmod", no_argument, NULL, 'K' },
    { "queues", required_argument, NULL, 'q' },
    { "depth", required_argument, NULL, 'd' },
    { "nbd-device", required_argument, NULL, 'k' },
    { "nbd-dead-timeout", required_argument, NULL, 'T' },
    { "device", required_argument, NULL, 'D' },
    { "timeout", required_argument, NULL, 't' },
    { "no-takeover", no_argument, NULL, 'N' },
    { "force", no_argument, NULL, 'f' },
    { "force-stale", required_argument, NULL, 'F' },
    { "resync-rate", required_argument, NULL, 'r' },
    { "flush-interval", required_argument, NULL, 'I' },
    { "host", required_argument, NULL, 'H' },
    { "lease-ttl", required_argument, NULL, 'L' },
    { "heal-after", required_argument, NULL, 'A' },
    { "metrics", required_argument, NULL, 'M' },
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  struct attach_opts o = { .timeout_ms = 10000 };
  const char *heal_after = NULL, *metrics_addr = NULL;
  uint64_t t, queues = 1, depth = 128;
  const char *nbd = NULL, *nbd_device = NULL, *device = NULL;
  bool ublk = false, kmod = false;
  char ublk_spec[64], nbd_spec[96];
  long nbd_dead = -1;
  int c;

  while ((c = cli_getopt (argc, argv, "attach", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    switch (c) {
    case 'n':
      nbd = optarg;
      break;
    case 'u':
      ublk = true;
      break;
    case 'K':
      kmod = true;
      break;
    case 'q':
      if (parse_uint (optarg, 1, 64, &queues) == -1)
        return usage_error ("attach", "--queues must be 1 to 64, not '%s'",
                            optarg);
      break;
    case 'd':
      if (parse_uint (optarg, 1, 4096, &depth) == -1)
        return usage_error ("attach", "--depth must be 1 to 4096, not '%s'",
                            optarg);
      break;
    case 'k':
      nbd_device = optarg;
      break;
    case 'T':
      if (parse_uint (optarg, 0, 3600, &t) == -1)
        return usage_error ("attach", "--nbd-dead-timeout must be 0 to 3600 "
                            "seconds, not '%s'", optarg);
      nbd_dead = (long) t;
      break;
    case 'D':
      device = optarg;
      break;
    case 'N':
      o.no_takeover = true;
      break;
    case 'f':
      o.force = true;
      break;
    case 'F':
      o.force_stale = optarg;
      break;
    case 'r':
      if (parse_size (optarg, &o.resync_rate) == -1 || o.resync_rate < 65536)
        return usage_error ("attach", "--resync-rate must be a size per "
                            "second of at least 64K, like 100M, not '%s'",
                            optarg);
      break;
    case 'I':
      if (parse_uint (optarg, 0, 3600000, &t) == -1)
        return usage_error ("attach", "--flush-interval must be 0 (never) "
                            "to 3600000 milliseconds, not '%s'", optarg);
      o.flush_interval_ms = t ? (unsigned) t : ENGINE_FLUSH_NEVER;
      break;
    case 'H':
      if (!valid_name (optarg))
        return usage_error ("attach", "bad --host '%s' (1-63 of A-Z a-z 0-9 "
                            ". _ -, not starting with '.')", optarg);
      /* Before anything asks: every "this host" of the process agrees. */
      setenv ("REPVOL_HOST", optarg, 1);
      o.host = optarg;
      break;
    case 'L':
      if (parse_uint (optarg, 3, 3600, &t) == -1)
        return usage_error ("attach", "--lease-ttl must be 3 to 3600 "
                            "seconds, not '%s'", optarg);
      o.lease_ttl = (unsigned) t;
      break;
    case 'A':
      if (parse_heal_after (optarg, &o.heal_after) < 0)
        return usage_error ("attach", "--heal-after must be a duration "
                            "like 30s, 5m or 2h (0: never), at most 30d, "
                            "not '%s'", optarg);
      heal_after = optarg;
      break;
    case 'M': {
      struct sockaddr_storage ss;
      socklen_t len;
      if (parse_hostport (optarg, &ss, &len) == -1)
        return usage_error ("attach", "bad --metrics address '%s' (want "
                            "ADDR:PORT)", optarg);
      metrics_addr = optarg;
      break;
    }
    case 't':
      if (parse_uint (optarg, 1, 3600, &t) == -1)
        return usage_error ("attach", "--timeout must be 1 to 3600 seconds, "
                            "not '%s'", optarg);
      o.timeout_ms = t * 1000;
      break;
    }
  }
  if ((o.volume = one_volume (argc, argv, "attach")) == NULL)
    return EXIT_USAGE;
  if ((nbd != NULL) + ublk + kmod + (nbd_device != NULL) +
      (device != NULL) != 1)
    return usage_error ("attach", "say how to serve the volume, once: --nbd "
                        "unix:PATH|tcp:ADDR:PORT, --ublk, --kmod, "
                        "--nbd-device /dev/nbdN|auto or --device auto");
  /* repvol.ko's limits (kmod/repvol_uapi.h), tighter than ublk's. */
  if (kmod && queues > REPVOL_MAX_QUEUES)
    return usage_error ("attach", "--queues must be 1 to %d with --kmod, "
                        "not %llu", REPVOL_MAX_QUEUES,
                        (unsigned long long) queues);
  if (kmod && depth > REPVOL_MAX_DEPTH)
    return usage_error ("attach", "--depth must be 1 to %d with --kmod, "
                        "not %llu", REPVOL_MAX_DEPTH,
                        (unsigned long long) depth);
  if (nbd) {
    struct sockaddr_storage ss;
    socklen_t len;
    if (strncmp (nbd, "unix:", 5) == 0 ? nbd[5] == '\0' :
        strncmp (nbd, "tcp:", 4) != 0 || parse_hostport (nbd + 4, &ss, &len) == -1)
      return usage_error ("attach", "bad --nbd '%s' (expected unix:PATH or "
                          "tcp:ADDR:PORT)", nbd);
    o.frontend = "nbd";
    o.spec = nbd;
  }
  if (device) {
    if (strcmp (device, "auto") != 0)
      return usage_error ("attach", "--device takes 'auto', not '%s'", device);
    /* ublk where the kernel has it, else repvol.ko, else the kernel's
     * nbd driver.
     */
    struct error err = { 0 };
    char why[600];
    if ((o.frontend = frontend_pick_device (&err, why, sizeof why)) == NULL) {
      log_error ("attach --device auto: no kernel block device frontend "
                 "here: %s", error_msg (&err));
      return EXIT_FAILURE;
    }
    if (why[0])
      log_info ("attach --device auto: %s (not usable: %s)", o.frontend, why);
    else
      log_info ("attach --device auto: %s", o.frontend);
    ublk = strcmp (o.frontend, "ublk") == 0;
    kmod = strcmp (o.frontend, "kmod") == 0;
    if (!ublk && !kmod)
      nbd_device = "auto";
    /* --queues / --depth beyond repvol.ko's limits: its own. */
    if (kmod) {
      queues = MIN (queues, (uint64_t) REPVOL_MAX_QUEUES);
      depth = MIN (depth, (uint64_t) REPVOL_MAX_DEPTH);
    }
  }
  if (ublk) {
    snprintf (ublk_spec, sizeof ublk_spec, "queues=%llu,depth=%llu",
              (unsigned long long) queues, (unsigned long long) depth);
    o.frontend = "ublk";
    o.spec = ublk_spec;
  }
  if (kmod) {
    snprintf (ublk_spec, sizeof ublk_spec, "queues=%llu,depth=%llu",
              (unsigned long long) queues, (unsigned long long) depth);
    o.frontend = "kmod";
    o.spec = ublk_spec;
  }
  if (nbd_device) {
    if (strcmp (nbd_device, "auto") != 0 &&
        strncmp (nbd_device, "/dev/nbd", 8) != 0)
      return usage_error ("attach", "bad --nbd-device '%s' (expected "
                          "/dev/nbdN or auto)", nbd_device);
    o.frontend = "nbd-kernel";
    o.spec = nbd_device;
    if (nbd_dead >= 0) {
      snprintf (nbd_spec, sizeof nbd_spec, "%s,dead-timeout=%ld", nbd_device,
                nbd_dead);
      o.spec = nbd_spec;
    }
  }
  else if (nbd_dead >= 0 && !device)      /* ublk picked: no such timeout */
    return usage_error ("attach", "--nbd-dead-timeout is for --nbd-device "
                        "(or --device auto serving kernel NBD)");

  /* NBD over TCP requires STARTTLS whenever this process has TLS
   * credentials (--tls-dir/--tls-psk, else $REPVOL_TLS_DIR/_PSK, as for
   * the replica links), with server credentials from the same place
   * (nbdkit's layout): once TLS is on, no plaintext port reaches the
   * volume.  A unix socket stays plaintext (mode 0600).  Loaded now, so
   * that missing files fail the attach before it takes the volume.
   */
  const char *tls_dir = cli_tls_dir, *tls_psk = cli_tls_psk;
  if (!tls_dir && !tls_psk) {
    tls_dir = getenv ("REPVOL_TLS_DIR");
    tls_psk = getenv ("REPVOL_TLS_PSK");
  }
  if (nbd && strncmp (nbd, "tcp:", 4) == 0 && (tls_dir || tls_psk)) {
    struct error err = { 0 };
    if (tls_creds_load (&o.nbd_tls, TLS_SERVER, tls_dir, tls_psk,
                        &err) < 0) {
      log_error ("attach --nbd %s: cannot load the NBD server's TLS "
                 "credentials: %s", nbd, error_msg (&err));
      return EXIT_FAILURE;
    }
    log_info ("nbd: %s requires TLS (%s)", nbd,
              tls_creds_describe (o.nbd_tls));
  }

  struct registry *reg = open_registry ();
  if (reg == NULL) {
    tls_creds_free (o.nbd_tls);
    return EXIT_FAILURE;
  }
  struct reg_volume v;
  if (get_volume (reg, o.volume, &v) < 0) {   /* same wording as the other verbs */
    registry_close (reg);
    tls_creds_free (o.nbd_tls);
    return EXIT_FAILURE;
  }
  if (o.force_stale) {
    bool listed = false;
    for (int i = 0; i < v.nreplicas; i++)
      if (strcmp (v.replicas[i].addr, o.force_stale) == 0 ||
          strcmp (v.replicas[i].server, o.force_stale) == 0) {
        o.force_stale = v.replicas[i].addr;     /* the name's address */
        listed = true;
      }
    if (!listed) {
      log_error ("--force-stale %s: not a replica of %s", o.force_stale,
                 o.volume);
      registry_close (reg);
      tls_creds_free (o.nbd_tls);
      return EXIT_FAILURE;
    }
  }
  if (heal_after == NULL)
    o.heal_after = default_heal_after (reg);
  /* Listening before the volume is claimed: a port in use fails the
   * attach with nothing to undo.
   */
  struct metrics_http *mhttp = NULL;
  if (metrics_addr) {
    struct error err = { 0 };
    if ((o.metrics = metrics_new ()) == NULL ||
        (mhttp = metrics_http_start (o.metrics, metrics_addr, &err)) == NULL) {
      log_error ("attach: %s", o.metrics ? error_msg (&err)
                 : "out of memory");
      metrics_free (o.metrics);
      registry_close (reg);
      tls_creds_free (o.nbd_tls);
      return EXIT_FAILURE;
    }
  }
  int rc = attach_run (reg, &o);
  metrics_http_stop (mhttp);
  metrics_free (o.metrics);
  registry_close (reg);
  tls_creds_free (o.nbd_tls);
  return rc;
}
