/* cmd_create.c - repvol create: make a replica on every server, then
 * record the volume in the registry.
 *
 * Order matters.  Everything that can be checked without side effects
 * is checked first (arguments, the name is free, every server answers,
 * zones); only then are replicas created, and a failure part-way removes
 * the ones already made.  The registry entry comes last, so a volume the
 * registry lists always has all its replicas.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/tls.h"
#include "core/util.h"
#include "replica/proto.h"
#include "replica/admin.h"
#include "placement/placement.h"
#include "repvol.h"

#define MAX_SIZE (1ull << 60)   /* what a replica server accepts */

static void
make_uuid (char out[37])
{
  uint8_t b[16];
  if (getrandom (b, sizeof b, 0) != sizeof b) {
    /* Not a security token: time and pid make it unique enough. */
    uint64_t t = now_ns () ^ ((uint64_t) getpid () << 32);
    for (int i = 0; i < 16; i++)
      b[i] = (uint8_t) (t >> ((i % 8) * 8)) ^ (uint8_t) (i * 37);
  }
  b[6] = (b[6] & 0x0f) | 0x40;  /* version 4 */
  b[8] = (b[8] & 0x3f) | 0x80;  /* RFC 4122 variant */
  snprintf (out, 37,
            "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
            "%02x%02x%02x%02x%02x%02x",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
            b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* Same socket address: catches "127.0.0.1:7001" vs "localhost:7001". */
static bool
same_endpoint (const struct sockaddr_storage *a, socklen_t alen,
               const struct sockaddr_storage *b, socklen_t blen)
{
  return alen == blen && memcmp (a, b, alen) == 0;
}

int
cmd_create (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "size", required_argument, NULL, 's' },
    { "replica", required_argument, NULL, 'r' },
    { "replicas", required_argument, NULL, 'n' },
    { "block-size", required_argument, NULL, 'b' },
    { "reserve", no_argument, NULL, 'v' },
    { "allow-same-zone", no_argument, NULL, 'z' },
    { "chunk-size", required_argument, NULL, 'c' },
    { "json", no_argument, NULL, 'j' },
    CLI_BYTES_OPTION,
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  const char *size_arg = NULL, *addrs[REG_MAX_REPLICAS + 1];
  int naddrs = 0;
  uint64_t size, bs = 4096, chunk = REG_DEFAULT_CHUNK_SIZE, nrep = 0;
  bool reserve = false, allow_same_zone = false, json = false;
  int c;

  while ((c = cli_getopt (argc, argv, "create", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    switch (c) {
    case 's': size_arg = optarg; break;
    case 'r':
      if (naddrs == REG_MAX_REPLICAS)
        return usage_error ("create", "at most %d replicas", REG_MAX_REPLICAS);
      addrs[naddrs++] = optarg;
      break;
    case 'n':
      if (parse_uint (optarg, 1, REG_MAX_REPLICAS, &nrep) == -1)
        return usage_error ("create", "--replicas must be 1 to %d, not '%s'",
                            REG_MAX_REPLICAS, optarg);
      break;
    case 'b':
      if (parse_uint (optarg, 0, UINT32_MAX, &bs) == -1 ||
          (bs != 512 && bs != 4096))
        return usage_error ("create", "--block-size must be 512 or 4096, "
                            "not '%s'", optarg);
      break;
    case 'v': reserve = true; break;
    case 'z': allow_same_zone = true; break;
    case 'j': json = true; break;
    case 'c':
      if (parse_size (optarg, &chunk) == -1 || chunk < 65536 ||
          chunk > (64u << 20) || (chunk & (chunk - 1)))
        return usage_error ("create", "--chunk-size must be a power of two "
                            "from 64K to 64M, not '%s'", optarg);
      break;
    }
  }
  const char *vol = one_volume (argc, argv, "create");
  if (vol == NULL)
    return EXIT_USAGE;

  /* Arguments. */
  if (size_arg == NULL)
    return usage_error ("create", "missing --size");
  if (parse_size (size_arg, &size) == -1)
    return usage_error ("create", "bad size '%s': %s", size_arg,
                        errno == ERANGE ? "too large"
                        : "expected a whole number with an optional unit "
                          "K, M, G, T or P, e.g. 64M or 10G");
  if (size == 0)
    return usage_error ("create", "bad size '%s': must be greater than zero",
                        size_arg);
  if (size % bs != 0)
    return usage_error ("create", "bad size '%s': not a multiple of the "
                        "block size %" PRIu64, size_arg, bs);
  if (size > MAX_SIZE)
    return usage_error ("create", "bad size '%s': larger than 1 EiB", size_arg);
  if (naddrs && nrep && (int) nrep != naddrs)
    return usage_error ("create", "--replicas %" PRIu64 " but %d --replica "
                        "given", nrep, naddrs);

  struct volume_spec spec = {
    .name = vol, .size = size, .block_size = bs, .chunk_size = chunk,
    .addrs = addrs, .naddrs = naddrs, .nreplicas = (int) nrep,
    .reserve = reserve,
    .allow_same_zone = allow_same_zone,
  };
  struct registry *reg = open_registry ();
  if (reg == NULL)
    return EXIT_FAILURE;
  int ret = create_volume (reg, &spec);
  if (ret == 0) {
    char sbuf[32];
    struct reg_volume v;
    struct error err = { 0 };
    if (registry_get (reg, vol, &v, &err) == 0 && json) {
      /* The record, as status --json shows it (without the servers'
       * views).
       */
      json_object *o = reg_volume_json (&v);
      json_object_object_del (o, "format");
      print_json (o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                  JSON_C_TO_STRING_NOSLASHESCAPE);
    }
    else if (err.code == 0) {
      printf ("created volume %s: %s, block size %" PRIu64 ", %d replica%s:",
              vol, size_text (size, sbuf, sizeof sbuf), bs, v.nreplicas,
              v.nreplicas == 1 ? "" : "s");
      for (int i = 0; i < v.nreplicas; i++)
        printf ("%s %s (%s%s%s)", i ? "," : "", v.replicas[i].server,
                v.replicas[i].addr, v.replicas[i].zone[0] ? ", " : "",
                v.replicas[i].zone);
      printf ("\n");
    }
  }
  registry_close (reg);
  return ret;
}

/* --replica NAME: the pool's address of an up server.  0, or an exit
 * code after saying why.
 */
static int
server_by_name (struct registry *reg, const char *name, char *addr,
                size_t len)
{
  struct error err = { 0 };
  int up = registry_server_addr (reg, name, addr, len, &err);

  if (up == 1)
    return 0;
  if (up == 0)
    log_error ("replica %s: server %s is down (repvol server list)", name,
               name);
  else if (up == -ENOENT)
    log_error ("replica %s: no server of that name in the pool (give "
               "ADDR:PORT, or see repvol server list)", name);
  else
    log_error ("replica %s: %s", name, error_msg (&err));
  return EXIT_FAILURE;
}

/* No --replica: the pool chooses (placement.h).  0, or an exit code. */
static int
place (struct registry *reg, const struct volume_spec *spec,
       char addrs[][REG_ADDR_MAX], int *naddrs)
{
  struct reg_server *pool;
  int n, chosen[REG_MAX_REPLICAS];
  struct error err = { 0 };
  char why[512];
  struct placement_req req = {
    .want = spec->nreplicas ? spec->nreplicas : 2, .size = spec->size,
    .reserve = spec->reserve, .allow_same_zone = spec->allow_same_zone,
  };

  if (registry_server_list (reg, &pool, &n, &err) < 0) {
    log_error ("cannot place the replicas: %s", error_msg (&err));
    return EXIT_FAILURE;
  }
  if (n == 0) {
    log_error ("no --replica given and the server pool is empty (start "
               "repvold with --registry, or give --replica ADDR:PORT)");
    return EXIT_FAILURE;
  }
  if (place_replicas (pool, n, &req, chosen, why, sizeof why) < 0) {
    log_error ("cannot place %d replica%s: %s", req.want,
               req.want == 1 ? "" : "s", why);
    free (pool);
    return EXIT_FAILURE;
  }
  for (int i = 0; i < req.want; i++)
    snprintf (addrs[i], REG_ADDR_MAX, "%s", pool[chosen[i]].addr);
  *naddrs = req.want;
  free (pool);
  return 0;
}

/* Check the servers, make the replicas, record the volume.  Returns an
 * exit code: EXIT_USAGE for a bad address, EXIT_FAILURE otherwise.
 */
int
create_volume (struct registry *reg, const struct volume_spec *spec)
{
  const char *vol = spec->name;
  char where[REG_MAX_REPLICAS][REG_ADDR_MAX];
  const char *addrs[REG_MAX_REPLICAS];
  int naddrs = spec->naddrs, e;

  /* Servers by name or address, or chosen from the pool. */
  for (int i = 0; i < naddrs; i++) {
    if (strchr (spec->addrs[i], ':') == NULL && valid_name (spec->addrs[i])) {
      if ((e = server_by_name (reg, spec->addrs[i], where[i],
                               sizeof where[i])) != 0)
        return e;
    }
    else if (snprintf (where[i], sizeof where[i], "%s", spec->addrs[i]) >=
             (int) sizeof where[i])
      return usage_error ("create", "replica address too long: '%s'",
                          spec->addrs[i]);
  }
  if (naddrs == 0 && (e = place (reg, spec, where, &naddrs)) != 0)
    return e;
  for (int i = 0; i < naddrs; i++)
    addrs[i] = where[i];

  struct sockaddr_storage ss[REG_MAX_REPLICAS];
  socklen_t sslen[REG_MAX_REPLICAS];
  for (int i = 0; i < naddrs; i++) {
    if (parse_hostport (addrs[i], &ss[i], &sslen[i]) == -1) {
      if (errno == EINVAL)
        return usage_error ("create", "bad replica '%s' (expected "
                            "ADDR:PORT or a server name)", addrs[i]);
      log_error ("replica %s: cannot resolve the host", addrs[i]);
      return EXIT_FAILURE;
    }
    for (int j = 0; j < i; j++)
      if (strcmp (addrs[i], addrs[j]) == 0 ||
          same_endpoint (&ss[i], sslen[i], &ss[j], sslen[j]))
        return usage_error ("create", "replica %s given twice%s%s%s", addrs[i],
                            strcmp (addrs[i], addrs[j]) ? " (same as " : "",
                            strcmp (addrs[i], addrs[j]) ? addrs[j] : "",
                            strcmp (addrs[i], addrs[j]) ? ")" : "");
  }

  /* The name must be free before any server is touched. */
  struct reg_volume v;
  struct error rerr = { 0 };
  int ret = EXIT_FAILURE;
  if (registry_get (reg, vol, &v, &rerr) == 0) {
    log_error ("volume '%s' already exists", vol);
    goto out;
  }
  if (rerr.code != ENOENT) {
    log_error ("%s", error_msg (&rerr));
    goto out;
  }

  /* Every server must answer, and must not hold the volume already. */
  struct replica_admin ra[REG_MAX_REPLICAS];
  struct error err = { 0 };
  int nopen = 0;
  for (int i = 0; i < naddrs; i++, nopen++) {
    if (replica_admin_open (&ra[i], addrs[i], vol, REPLICA_ADMIN_TIMEOUT_MS,
                            &err) < 0) {
      log_error ("replica %s: %s", addrs[i], error_msg (&err));
      goto close;
    }
    if (ra[i].welcome.exists) {
      log_error ("replica %s (server %s) already holds a volume '%s' that "
                 "the registry does not know; delete it there first",
                 addrs[i], ra[i].welcome.server, vol);
      nopen++;
      goto close;
    }
  }

  /* Zones: two replicas in one named zone share its failures. */
  for (int i = 0; i < naddrs; i++)
    for (int j = 0; j < i; j++) {
      const char *zi = ra[i].welcome.zone, *zj = ra[j].welcome.zone;
      if (zi[0] && strcmp (zi, zj) == 0 && !spec->allow_same_zone) {
        log_error ("replicas %s and %s are both in zone '%s' "
                   "(use --allow-same-zone to allow it)", addrs[j], addrs[i], zi);
        goto close;
      }
      if (strcmp (ra[i].welcome.server, ra[j].welcome.server) == 0)
        log_warn ("replicas %s and %s report the same server name '%s'",
                  addrs[j], addrs[i], ra[i].welcome.server);
    }

  /* Create, undoing on failure. */
  struct rv_create cr = {
    .size = spec->size,
    .block_size = spec->block_size,
    .flags = spec->reserve ? RV_F_RESERVE : 0,
    .epoch = 1,
  };
  int made;
  for (made = 0; made < naddrs; made++) {
    if (replica_admin_create (&ra[made], &cr, &err) < 0) {
      log_error ("replica %s (server %s): create failed: %s",
                 addrs[made], ra[made].welcome.server, error_msg (&err));
      goto undo;
    }
  }

  memset (&v, 0, sizeof v);
  snprintf (v.name, sizeof v.name, "%s", vol);
  make_uuid (v.uuid);
  v.size = spec->size;
  v.block_size = spec->block_size;
  v.chunk_size = spec->chunk_size;
  v.epoch = 1;
  v.reserved = spec->reserve;
  v.tls = tls_client_creds () != NULL;
  v.allow_same_zone = spec->allow_same_zone;
  /* Empty, so the (empty) change map is complete. */
  v.cbt.valid = true;
  if (spec->restore)
    v.restore = *spec->restore;
  if (spec->cbt_base_url) {
    snprintf (v.cbt.base_url, sizeof v.cbt.base_url, "%s", spec->cbt_base_url);
    snprintf (v.cbt.base_name, sizeof v.cbt.base_name, "%s", spec->cbt_base_name);
  }
  v.created = time (NULL);
  v.nreplicas = naddrs;
  for (int i = 0; i < naddrs; i++) {
    struct reg_replica *rp = &v.replicas[i];
    snprintf (rp->addr, sizeof rp->addr, "%s", addrs[i]);
    snprintf (rp->server, sizeof rp->server, "%s", ra[i].welcome.server);
    snprintf (rp->zone, sizeof rp->zone, "%s", ra[i].welcome.zone);
    rp->state = REG_IN_SYNC;    /* all empty, hence identical */
  }
  if (registry_create (reg, &v, &rerr) < 0) {
    if (rerr.code == EEXIST)    /* lost a race with another create */
      log_error ("volume '%s' already exists", vol);
    else
      log_error ("%s", error_msg (&rerr));
    goto undo;
  }

  {
    char sz[32], who[REG_MAX_REPLICAS * (REG_NAME_MAX + 2)] = "";
    for (int i = 0; i < naddrs; i++)
      snprintf (who + strlen (who), sizeof who - strlen (who), "%s%s",
                i ? ", " : "", v.replicas[i].server);
    note_event (reg, "created", vol, "%s, replicas on %s%s",
                format_size (spec->size, sz, sizeof sz), who,
                spec->restore ? " (restoring)" : "");
  }
  ret = EXIT_SUCCESS;
  goto close;

 undo:
  for (int i = 0; i < made; i++)
    if (replica_admin_delete (&ra[i], &err) < 0)
      log_warn ("replica %s: could not remove the replica just created: %s; "
                "remove it with repvold's data directory", addrs[i],
                error_msg (&err));
 close:
  for (int i = 0; i < nopen; i++)
    replica_admin_close (&ra[i]);
 out:
  return ret;
}
