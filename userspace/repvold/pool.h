/* pool.h - repvold's registration in the server pool (pool.c). */
#ifndef REPVOLD_POOL_H
#define REPVOLD_POOL_H

#include <stdbool.h>
#include <stdint.h>

struct error;

struct pool_config {
  const char *registry;         /* registry_open location */
  const char *name, *zone;
  const char *advertise;        /* ADDR:PORT clients dial */
  const char *data_dir;
  const char *version;
  bool tls;
  uint64_t reserve_margin;
  unsigned ttl;                 /* seconds */
};

struct pool_reg;

/* Open the registry and start refreshing this server's record (the
 * first refresh runs at once, on the thread).  The strings in cfg must
 * outlive the registration.  NULL with the reason in err.
 */
struct pool_reg *pool_register_start (const struct pool_config *cfg,
                                      struct error *err);
/* Stop refreshing and record the server down (NULL: nothing). */
void pool_register_stop (struct pool_reg *p);

#endif
