/* pool.c - repvold's place in the server pool (docs/DESIGN.md, "Server
 * pool"): a record of this server in the registry, refreshed under a
 * lease of --lease-ttl seconds for as long as the process runs.
 *
 * The registry may be slow or away (etcd calls block for seconds while
 * members fail over), and the data path must never wait for it, so the
 * registration runs on a thread of its own (core/periodic.h) with a
 * registry handle of its own; nothing on the event loop touches the registry.  Every
 * refresh measures what the record says afresh (the data directory's
 * filesystem, the replicas in it), so a record is at most one period
 * old.  A refresh that fails is logged once, and its recovery once.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "core/periodic.h"
#include "core/util.h"
#include "registry/registry.h"
#include "pool.h"

struct pool_reg {
  struct pool_config cfg;
  struct registry *reg;         /* the thread's own handle */
  struct periodic *tick;
  bool registered;              /* the last refresh succeeded */
};

/* The replicas in the data directory: one VOL.meta each. */
static uint64_t
count_volumes (const char *dir)
{
  DIR *d = opendir (dir);
  uint64_t n = 0;
  struct dirent *de;

  if (d == NULL)
    return 0;
  while ((de = readdir (d)) != NULL) {
    size_t len = strlen (de->d_name);
    if (de->d_name[0] != '.' && len > 5 &&
        strcmp (de->d_name + len - 5, ".meta") == 0)
      n++;
  }
  closedir (d);
  return n;
}

static void
measure (struct pool_reg *p, struct reg_server *s)
{
  struct statvfs sv;

  memset (s, 0, sizeof *s);
  snprintf (s->name, sizeof s->name, "%s", p->cfg.name);
  snprintf (s->zone, sizeof s->zone, "%s", p->cfg.zone);
  snprintf (s->addr, sizeof s->addr, "%s", p->cfg.advertise);
  snprintf (s->version, sizeof s->version, "%s", p->cfg.version);
  s->tls = p->cfg.tls;
  s->reserved = p->cfg.reserve_margin;
  if (statvfs (p->cfg.data_dir, &sv) == 0) {
    s->capacity = (uint64_t) sv.f_blocks * sv.f_frsize;
    s->free = (uint64_t) sv.f_bavail * sv.f_frsize;
  }
  s->volumes = count_volumes (p->cfg.data_dir);
}

static void
refresh (struct pool_reg *p)
{
  struct reg_server s;
  struct error err = { 0 };

  measure (p, &s);
  if (registry_server_put (p->reg, &s, p->cfg.ttl, &err) < 0) {
    if (p->registered)
      log_warn ("server pool: cannot refresh this server's record (it "
                "shows down after %u s; serving goes on): %s", p->cfg.ttl,
                error_msg (&err));
    p->registered = false;
    return;
  }
  if (!p->registered) {
    log_info ("server pool: registered as %s (zone %s) at %s, lease %u s",
              s.name, s.zone[0] ? s.zone : "(none)", s.addr, p->cfg.ttl);
    registry_event (p->reg, "server-up", NULL, s.name, NULL,
                    "zone %s, %s, %llu volume(s)", s.zone[0] ? s.zone : "-",
                    s.addr, (unsigned long long) s.volumes);
  }
  p->registered = true;
}

/* A clean stop says so at once, instead of after the TTL; not worth a
 * wait when the registry did not answer the last refresh.
 */
static void
record_down (void *arg)
{
  struct pool_reg *p = arg;
  struct error err = { 0 };

  if (!p->registered)
    return;
  if (registry_server_down (p->reg, p->cfg.name, &err) < 0)
    log_warn ("server pool: cannot record this server down (it shows "
              "down after its lease): %s", error_msg (&err));
  else {
    log_info ("server pool: recorded down");
    registry_event (p->reg, "server-down", NULL, p->cfg.name, NULL,
                    "stopped cleanly");
  }
}

static void
refresh_tick (void *arg)
{
  refresh (arg);
}

struct pool_reg *
pool_register_start (const struct pool_config *cfg, struct error *err)
{
  struct pool_reg *p = calloc (1, sizeof *p);

  if (p == NULL) {
    error_set (err, ENOMEM, "out of memory");
    return NULL;
  }
  p->cfg = *cfg;
  p->reg = registry_open (cfg->registry, err);
  if (p->reg == NULL) {
    free (p);
    return NULL;
  }
  /* Three refreshes per TTL: two lost in a row still leave it alive. */
  p->tick = periodic_start (cfg->ttl * 1000 / 3, refresh_tick, record_down,
                            p, err);
  if (p->tick == NULL) {
    registry_close (p->reg);
    free (p);
    return NULL;
  }
  return p;
}

void
pool_register_stop (struct pool_reg *p)
{
  if (p == NULL)
    return;
  periodic_stop (p->tick);
  registry_close (p->reg);
  free (p);
}
