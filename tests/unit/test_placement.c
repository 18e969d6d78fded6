/* test_placement.c - placement/placement.c: which servers a volume's
 * replicas go to, and what the refusal says.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "placement/placement.h"

#define GiB (1ull << 30)

static struct reg_server pool[8];
static int npool;

static void
add (const char *name, const char *zone, uint64_t free_gib, bool up,
     bool draining)
{
  struct reg_server *s = &pool[npool++];
  memset (s, 0, sizeof *s);
  snprintf (s->name, sizeof s->name, "%s", name);
  snprintf (s->zone, sizeof s->zone, "%s", zone);
  snprintf (s->addr, sizeof s->addr, "127.0.0.1:%d", 7000 + npool);
  s->capacity = 100 * GiB;
  s->free = free_gib * GiB;
  s->reserved = 1 * GiB;
  s->up = up;
  s->draining = draining;
}

static int
setup (void **state)
{
  npool = 0;
  add ("a1", "az-a", 50, true, false);
  add ("a2", "az-a", 80, true, false);
  add ("b1", "az-b", 30, true, false);
  add ("c1", "az-c", 90, false, false);     /* down */
  add ("d1", "az-d", 95, true, true);       /* draining */
  return 0;
}

static const char *
name_of (int i)
{
  return pool[i].name;
}

/* Most free first, one per zone; down and draining servers skipped. */
static void
test_distinct_zones (void **state)
{
  struct placement_req req = { .want = 2, .size = GiB };
  int chosen[8];
  char why[256];

  assert_int_equal (place_replicas (pool, npool, &req, chosen, why,
                                    sizeof why), 0);
  assert_string_equal (name_of (chosen[0]), "a2");
  assert_string_equal (name_of (chosen[1]), "b1");

  req.want = 3;
  assert_int_equal (place_replicas (pool, npool, &req, chosen, why,
                                    sizeof why), -ENOSPC);
  assert_string_equal (why, "need 3 zones with a server up, found 2: az-a, "
                       "az-b");

  req.allow_same_zone = true;
  assert_int_equal (place_replicas (pool, npool, &req, chosen, why,
                                    sizeof why), 0);
  assert_string_equal (name_of (chosen[2]), "b1");
}

/* --reserve: free less the server's margin must hold the volume. */
static void
test_reserve (void **state)
{
  struct placement_req req = { .want = 2, .size = 40 * GiB, .reserve = true };
  int chosen[8];
  char why[256];

  assert_int_equal (place_replicas (pool, npool, &req, chosen, why,
                                    sizeof why), -ENOSPC);
  assert_string_equal (why, "need 2 zones with 40 GiB free, found 1: az-a");
  req.size = 29 * GiB;          /* b1: 30 GiB free, 1 GiB margin */
  assert_int_equal (place_replicas (pool, npool, &req, chosen, why,
                                    sizeof why), 0);
  req.size = 29 * GiB + 1;
  assert_int_equal (place_replicas (pool, npool, &req, chosen, why,
                                    sizeof why), -ENOSPC);
}

/* Servers and zones the volume already has are not chosen again. */
static void
test_exclude (void **state)
{
  const char *servers[] = { "a2" }, *zones[] = { "az-b" };
  struct placement_req req = {
    .want = 1, .size = GiB, .exclude_servers = servers,
    .nexclude_servers = 1,
  };
  int chosen[8];
  char why[256];

  assert_int_equal (place_replicas (pool, npool, &req, chosen, why,
                                    sizeof why), 0);
  assert_string_equal (name_of (chosen[0]), "a1");
  req.exclude_zones = zones;
  req.nexclude_zones = 1;
  assert_int_equal (place_replicas (pool, npool, &req, chosen, why,
                                    sizeof why), 0);
  assert_string_equal (name_of (chosen[0]), "a1");
  zones[0] = "az-a";
  assert_int_equal (place_replicas (pool, npool, &req, chosen, why,
                                    sizeof why), 0);
  assert_string_equal (name_of (chosen[0]), "b1");
}

/* Servers without a zone conflict with no one; an empty pool says so. */
static void
test_no_zones (void **state)
{
  struct placement_req req = { .want = 2, .size = GiB };
  int chosen[8];
  char why[256];

  npool = 0;
  assert_int_equal (place_replicas (pool, 0, &req, chosen, why, sizeof why),
                    -ENOSPC);
  assert_string_equal (why, "need 2 zones with a server up, found 0");
  add ("x", "", 10, true, false);
  add ("y", "", 20, true, false);
  assert_int_equal (place_replicas (pool, npool, &req, chosen, why,
                                    sizeof why), 0);
  assert_string_equal (name_of (chosen[0]), "y");
  assert_string_equal (name_of (chosen[1]), "x");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup (test_distinct_zones, setup),
    cmocka_unit_test_setup (test_reserve, setup),
    cmocka_unit_test_setup (test_exclude, setup),
    cmocka_unit_test_setup (test_no_zones, setup),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
