/* placement.c - choose servers for replicas (placement.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "placement/placement.h"

static bool
listed (const char *s, const char *const *list, int n)
{
  for (int i = 0; i < n; i++)
    if (strcmp (s, list[i]) == 0)
      return true;
  return false;
}

/* Space a replica of req may use on s. */
static bool
fits (const struct reg_server *s, const struct placement_req *req)
{
  if (!req->reserve)
    return true;                /* thin: space is taken as it is written */
  return s->free >= s->reserved && s->free - s->reserved >= req->size;
}

struct cand {
  const struct reg_server *s;
  int index;
};

static int
by_free (const void *a, const void *b)
{
  const struct reg_server *x = ((const struct cand *) a)->s;
  const struct reg_server *y = ((const struct cand *) b)->s;
  if (x->free != y->free)
    return x->free > y->free ? -1 : 1;
  return strcmp (x->name, y->name);     /* the same answer every time */
}

int
place_replicas (const struct reg_server *pool, int n,
                const struct placement_req *req, int *chosen,
                char *why, size_t whylen)
{
  struct cand *c = n ? calloc (n, sizeof *c) : NULL;
  const char *zones[REG_MAX_REPLICAS * 2];
  int nc = 0, got = 0, nzones = 0;

  if (n && c == NULL) {
    snprintf (why, whylen, "out of memory");
    return -ENOMEM;
  }
  for (int i = 0; i < n; i++)
    if (pool[i].up && !pool[i].draining && fits (&pool[i], req) &&
        !listed (pool[i].name, req->exclude_servers, req->nexclude_servers))
      c[nc++] = (struct cand) { .s = &pool[i], .index = i };
  qsort (c, nc, sizeof *c, by_free);

  /* Greedy is exact here: the best server of each zone not yet used. */
  for (int i = 0; i < nc && got < req->want; i++) {
    const char *z = c[i].s->zone;
    if (z[0] && !req->allow_same_zone &&
        (listed (z, zones, nzones) ||
         listed (z, req->exclude_zones, req->nexclude_zones)))
      continue;
    chosen[got++] = c[i].index;
    if (z[0] && nzones < (int) ARRAY_SIZE (zones))
      zones[nzones++] = z;
  }
  if (got == req->want) {
    free (c);
    return 0;
  }

  /* Say what is missing, and what there is. */
  char need[96] = " with a server up", found[256] = "";
  size_t fl = 0;
  if (req->reserve) {
    char sz[32];
    snprintf (need, sizeof need, " with %s free",
              format_size (req->size, sz, sizeof sz));
  }
  for (int i = 0; i < got && fl < sizeof found; i++) {
    const struct reg_server *s = &pool[chosen[i]];
    fl += snprintf (found + fl, sizeof found - fl, "%s%s", i ? ", " : "",
                    s->zone[0] ? s->zone : s->name);
  }
  if (req->allow_same_zone)
    snprintf (why, whylen, "need %d servers%s, found %d%s%s", req->want,
              req->reserve ? need : " up", got, got ? ": " : "", found);
  else
    snprintf (why, whylen, "need %d zones%s, found %d%s%s", req->want, need,
              got, got ? ": " : "", found);
  free (c);
  return -ENOSPC;
}
