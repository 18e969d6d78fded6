/* test_registry.c - the directory registry backend (registry/dir.c)
 * through the registry.h entry points (registry.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/util.h"
#include "registry/registry.h"
#include "registry/backends.h"

struct fixture {
  char dir[64];                 /* the test's temp directory */
  char regdir[96];              /* the registry inside it (not yet made) */
  struct registry *r;
};

static int
setup (void **state)
{
  struct fixture *f = calloc (1, sizeof *f);
  snprintf (f->dir, sizeof f->dir, "/tmp/test_registry.XXXXXX");
  assert_non_null (mkdtemp (f->dir));
  snprintf (f->regdir, sizeof f->regdir, "%s/reg", f->dir);
  f->r = registry_open (f->regdir, NULL);
  assert_non_null (f->r);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  char cmd[160];
  registry_close (f->r);
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  if (system (cmd) != 0)
    return -1;
  free (f);
  return 0;
}

static void
make_volume (struct reg_volume *v, const char *name, int nreplicas)
{
  memset (v, 0, sizeof *v);
  snprintf (v->name, sizeof v->name, "%s", name);
  snprintf (v->uuid, sizeof v->uuid, "0d9c6f3e-1b2a-4c5d-8e9f-a0b1c2d3e4f5");
  v->size = 64 << 20;
  v->block_size = 4096;
  v->epoch = 1;
  v->created = 1700000000;
  v->nreplicas = nreplicas;
  for (int i = 0; i < nreplicas; i++) {
    snprintf (v->replicas[i].addr, REG_ADDR_MAX, "127.0.0.1:%d", 7000 + i);
    snprintf (v->replicas[i].server, REG_NAME_MAX, "srv%d", i);
    snprintf (v->replicas[i].zone, REG_NAME_MAX, i ? "zone-b" : "");
    v->replicas[i].state = REG_IN_SYNC;
  }
}

static void
write_file (const char *dir, const char *name, const char *text)
{
  char path[256];
  snprintf (path, sizeof path, "%s/%s", dir, name);
  FILE *fp = fopen (path, "w");
  assert_non_null (fp);
  fputs (text, fp);
  assert_int_equal (fclose (fp), 0);
}

static void
test_create_get (void **state)
{
  struct error e = { 0 };
  struct fixture *f = *state;
  struct reg_volume v, g;
  struct stat st;

  make_volume (&v, "vol1", 2);
  v.reserved = true;
  v.replicas[1].state = REG_OUT_OF_SYNC;
  v.replicas[1].out_of_sync_epoch = 7;
  v.replicas[1].out_of_sync_since = 1700000123;
  v.attachment.attached = true;
  snprintf (v.attachment.host, REG_NAME_MAX, "hostA");
  v.attachment.pid = 4242;
  snprintf (v.attachment.frontend, 256, "nbd unix:/run/x.sock");
  v.attachment.epoch = 1;
  v.attachment.since = 1700000200;
  v.size = 1ull << 59;          /* beyond int64/2: exercises uint64 */

  assert_int_equal (registry_create (f->r, &v, &e), 0);

  /* First use made the directory, private. */
  assert_int_equal (stat (f->regdir, &st), 0);
  assert_true (S_ISDIR (st.st_mode));
  assert_int_equal (st.st_mode & 0777, 0700);

  assert_int_equal (registry_get (f->r, "vol1", &g, &e), 0);
  assert_memory_equal (&v, &g, offsetof (struct reg_volume, replicas));
  for (int i = 0; i < 2; i++) {
    assert_string_equal (g.replicas[i].addr, v.replicas[i].addr);
    assert_string_equal (g.replicas[i].server, v.replicas[i].server);
    assert_string_equal (g.replicas[i].zone, v.replicas[i].zone);
    assert_int_equal (g.replicas[i].state, v.replicas[i].state);
    assert_int_equal (g.replicas[i].out_of_sync_epoch,
                      v.replicas[i].out_of_sync_epoch);
    assert_int_equal (g.replicas[i].out_of_sync_since,
                      v.replicas[i].out_of_sync_since);
  }
  assert_true (g.attachment.attached);
  assert_string_equal (g.attachment.host, "hostA");
  assert_int_equal (g.attachment.pid, 4242);
  assert_string_equal (g.attachment.frontend, "nbd unix:/run/x.sock");
  assert_int_equal (g.attachment.epoch, 1);
  assert_int_equal (g.attachment.since, 1700000200);
}

static void
test_eexist_enoent (void **state)
{
  struct error e = { 0 };
  struct fixture *f = *state;
  struct reg_volume v, g;

  make_volume (&v, "dup", 1);
  assert_int_equal (registry_create (f->r, &v, &e), 0);
  v.size = 128 << 20;
  e = (struct error) { 0 };
  assert_int_equal (registry_create (f->r, &v, &e), -EEXIST);
  assert_int_equal (e.code, EEXIST);
  assert_int_equal (registry_get (f->r, "dup", &g, &e), 0);
  assert_int_equal (g.size, 64 << 20);          /* the first one stays */

  e = (struct error) { 0 };
  assert_int_equal (registry_get (f->r, "nope", &g, &e), -ENOENT);
  assert_int_equal (e.code, ENOENT);
  e = (struct error) { 0 };
  assert_int_equal (registry_remove (f->r, "nope", &e), -ENOENT);
  assert_int_equal (e.code, ENOENT);
}

static void
test_missing_dir (void **state)
{
  struct error e = { 0 };
  struct fixture *f = *state;
  struct reg_volume g;
  char **names;
  int n = -1;

  /* Before the first create nothing exists: reads see no volumes and
   * do not create the directory.
   */
  assert_int_equal (registry_list (f->r, &names, &n, &e), 0);
  assert_int_equal (n, 0);
  assert_int_equal (registry_get (f->r, "x", &g, &e), -ENOENT);
  assert_int_equal (e.code, ENOENT);
  assert_int_equal (access (f->regdir, F_OK), -1);
}

static int
bump_epoch (struct reg_volume *v, void *arg)
{
  v->epoch++;
  return 0;
}

static int
refuse (struct reg_volume *v, void *arg)
{
  v->epoch = 999;               /* must not be written */
  return EBUSY;
}

static int
break_it (struct reg_volume *v, void *arg)
{
  v->nreplicas = 0;             /* invalid: must not reach the disk */
  return 0;
}

static int
rename_it (struct reg_volume *v, void *arg)
{
  snprintf (v->name, sizeof v->name, "other");
  v->epoch = 5;
  return 0;
}

static int
no_update (struct reg_volume *v, void *arg)
{
  fail_msg ("update callback called for a missing volume");
  return 0;
}

static void
test_update (void **state)
{
  struct error e = { 0 };
  struct fixture *f = *state;
  struct reg_volume v, g;

  make_volume (&v, "u", 2);
  assert_int_equal (registry_create (f->r, &v, &e), 0);

  assert_int_equal (registry_update (f->r, "u", bump_epoch, NULL, &e), 0);
  assert_int_equal (registry_get (f->r, "u", &g, &e), 0);
  assert_int_equal (g.epoch, 2);

  e = (struct error) { 0 };
  assert_int_equal (registry_update (f->r, "u", refuse, NULL, &e), -EBUSY);
  assert_int_equal (e.code, EBUSY);
  assert_int_equal (registry_get (f->r, "u", &g, &e), 0);
  assert_int_equal (g.epoch, 2);

  e = (struct error) { 0 };
  assert_int_equal (registry_update (f->r, "u", break_it, NULL, &e), -EINVAL);
  assert_int_equal (e.code, EINVAL);
  assert_int_equal (registry_get (f->r, "u", &g, &e), 0);
  assert_int_equal (g.nreplicas, 2);

  /* The file name is the volume name: a callback cannot rename. */
  assert_int_equal (registry_update (f->r, "u", rename_it, NULL, &e), 0);
  assert_int_equal (registry_get (f->r, "u", &g, &e), 0);
  assert_string_equal (g.name, "u");
  assert_int_equal (g.epoch, 5);
  assert_int_equal (registry_get (f->r, "other", &g, &e), -ENOENT);

  e = (struct error) { 0 };
  assert_int_equal (registry_update (f->r, "missing", no_update, NULL, &e), -ENOENT);
  assert_int_equal (e.code, ENOENT);
}

static void
test_list_remove (void **state)
{
  struct error e = { 0 };
  struct fixture *f = *state;
  struct reg_volume v;
  char **names;
  int n;

  const char *want[] = { "a.b", "alpha", "beta", "zeta_9" };
  const char *order[] = { "zeta_9", "alpha", "beta", "a.b" };
  for (size_t i = 0; i < 4; i++) {
    make_volume (&v, order[i], 1);
    assert_int_equal (registry_create (f->r, &v, &e), 0);
  }
  /* Strays are not volumes. */
  write_file (f->regdir, "notes.txt", "hello\n");
  write_file (f->regdir, ".half.json.tmp", "{");
  write_file (f->regdir, "bad name.json", "{}");

  assert_int_equal (registry_list (f->r, &names, &n, &e), 0);
  assert_int_equal (n, 4);
  for (int i = 0; i < n; i++)
    assert_string_equal (names[i], want[i]);
  registry_free_names (names, n);

  assert_int_equal (registry_remove (f->r, "beta", &e), 0);
  assert_int_equal (registry_list (f->r, &names, &n, &e), 0);
  assert_int_equal (n, 3);
  assert_string_equal (names[2], "zeta_9");
  registry_free_names (names, n);

  /* A removed name can be created again. */
  make_volume (&v, "beta", 1);
  assert_int_equal (registry_create (f->r, &v, &e), 0);
}

/* Each of these must be refused as corrupt (EBADMSG), never crash, and
 * never be overwritten by an update.
 */
static void
test_corrupt (void **state)
{
  struct error e = { 0 };
  struct fixture *f = *state;
  struct reg_volume v, g;
  static const char *bad[] = {
    "",
    "garbage",
    "{\"format\": 1, \"name\": \"c\"",                   /* truncated */
    "[]",
    "{\"format\": 2, \"name\": \"c\"}",                  /* future */
    "{\"format\": 1, \"name\": \"c\", \"size\": \"big\", \"block_size\": 4096,"
    " \"epoch\": 1, \"replicas\": [{\"addr\": \"a:1\", \"state\": \"in-sync\"}]}",
    "{\"format\": 1, \"name\": \"c\", \"size\": -4096, \"block_size\": 4096,"
    " \"epoch\": 1, \"replicas\": [{\"addr\": \"a:1\", \"state\": \"in-sync\"}]}",
    "{\"format\": 1, \"name\": \"c\", \"size\": 4097, \"block_size\": 4096,"
    " \"epoch\": 1, \"replicas\": [{\"addr\": \"a:1\", \"state\": \"in-sync\"}]}",
    "{\"format\": 1, \"name\": \"c\", \"size\": 4096, \"block_size\": 4096,"
    " \"epoch\": 1, \"replicas\": []}",
    "{\"format\": 1, \"name\": \"c\", \"size\": 4096, \"block_size\": 4096,"
    " \"epoch\": 1, \"replicas\": [{\"addr\": \"a:1\", \"state\": \"weird\"}]}",
    "{\"format\": 1, \"name\": \"c\", \"size\": 4096, \"block_size\": 4096,"
    " \"epoch\": 1, \"replicas\": [{\"addr\": \"a:1\", \"state\": \"in-sync\"}],"
    " \"attachment\": {\"host\": \"h\", \"pid\": 0, \"epoch\": 1}}",
    "{\"format\": 1, \"name\": \"other\", \"size\": 4096, \"block_size\": 4096,"
    " \"epoch\": 1, \"replicas\": [{\"addr\": \"a:1\", \"state\": \"in-sync\"}]}",
    "{\"format\": 1, \"name\": \"c\", \"size\": 4096, \"block_size\": 4096,"
    " \"epoch\": 1, \"replicas\": [{\"addr\": \"a:1\", \"state\": \"in-sync\"}]}"
    " trailing",
  };

  /* Make the directory exist with one good volume in it. */
  make_volume (&v, "good", 1);
  assert_int_equal (registry_create (f->r, &v, &e), 0);

  for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
    write_file (f->regdir, "c.json", bad[i]);
    e = (struct error) { 0 };
    if (registry_get (f->r, "c", &g, &e) != -EBADMSG || e.code != EBADMSG)
      fail_msg ("corrupt file #%zu accepted: %s", i, bad[i]);
    e = (struct error) { 0 };
    assert_int_equal (registry_update (f->r, "c", bump_epoch, NULL, &e), -EBADMSG);
    assert_int_equal (e.code, EBADMSG);
  }

  /* The minimal valid document is accepted (optional keys absent). */
  write_file (f->regdir, "c.json",
              "{\"format\": 1, \"name\": \"c\", \"size\": 4096, \"block_size\": 512,"
              " \"epoch\": 3, \"replicas\": [{\"addr\": \"a:1\", \"state\": \"in-sync\"}],"
              " \"attachment\": null, \"future_key\": [1, 2]}");
  assert_int_equal (registry_get (f->r, "c", &g, &e), 0);
  assert_int_equal (g.epoch, 3);
  assert_false (g.attachment.attached);
  assert_int_equal (g.block_size, 512);

  /* A corrupt volume does not stop the others. */
  assert_int_equal (registry_get (f->r, "good", &g, &e), 0);
}

static void
test_codec_roundtrip (void **state)
{
  struct reg_volume v, g;
  struct error e = { 0 };

  make_volume (&v, "rt", REG_MAX_REPLICAS);
  char *text = reg_volume_to_json (&v);
  assert_non_null (text);
  assert_int_equal (reg_volume_from_json (text, strlen (text), &g, &e), 0);
  assert_int_equal (g.nreplicas, REG_MAX_REPLICAS);
  assert_string_equal (g.replicas[7].addr, "127.0.0.1:7007");
  assert_string_equal (g.uuid, v.uuid);
  assert_non_null (strstr (text, "\"attachment\": null"));
  free (text);
}

#define PROCS 2
#define ROUNDS 200

static void
test_concurrent_updates (void **state)
{
  struct error e = { 0 };
  struct fixture *f = *state;
  struct reg_volume v, g;
  pid_t pids[PROCS];

  make_volume (&v, "race", 2);
  assert_int_equal (registry_create (f->r, &v, &e), 0);

  /* Children open the registry themselves and also share the parent's
   * handle: neither may lose an increment.
   */
  for (int p = 0; p < PROCS; p++) {
    pids[p] = fork ();
    assert_true (pids[p] >= 0);
    if (pids[p] == 0) {
      struct registry *r = p % 2 ? registry_open (f->regdir, NULL) : f->r;
      int rc = 0;
      for (int i = 0; i < ROUNDS && rc == 0; i++)
        if (registry_update (r, "race", bump_epoch, NULL, &e) < 0)
          rc = 1;
      if (r != f->r)
        registry_close (r);     /* valgrind checks the child too */
      _exit (rc);
    }
  }
  for (int p = 0; p < PROCS; p++) {
    int status;
    assert_int_equal (waitpid (pids[p], &status, 0), pids[p]);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
  }
  assert_int_equal (registry_get (f->r, "race", &g, &e), 0);
  assert_int_equal (g.epoch, 1 + PROCS * ROUNDS);
}

/* Several processes, each with its own handle, read-modify-write one
 * volume at once: each bumps the shared epoch and its own counter, so a
 * lost update shows in either.  A reader meanwhile (taking no lock)
 * always finds a whole, valid record whose epoch never goes back.
 */
#define UPDATERS 6
#define UPDATER_ROUNDS 40
#define READS 300

static int
bump_mine (struct reg_volume *v, void *arg)
{
  int p = *(int *) arg;
  v->epoch++;
  v->replicas[p].resync_done++;
  return 0;
}

static void
test_many_updaters (void **state)
{
  struct fixture *f = *state;
  struct error e = { 0 };
  struct reg_volume v, g;
  pid_t pids[UPDATERS + 1];

  make_volume (&v, "many", UPDATERS);
  for (int p = 0; p < UPDATERS; p++) {
    v.replicas[p].state = REG_OUT_OF_SYNC;     /* so resync is stored */
    v.replicas[p].out_of_sync_epoch = 1;
    v.replicas[p].resync_total = 1ull << 40;
  }
  assert_int_equal (registry_create (f->r, &v, &e), 0);

  for (int p = 0; p <= UPDATERS; p++) {
    pids[p] = fork ();
    assert_true (pids[p] >= 0);
    if (pids[p] > 0)
      continue;
    struct registry *r = registry_open (f->regdir, NULL);
    int rc = r ? 0 : 2;
    if (p < UPDATERS) {
      for (int i = 0; i < UPDATER_ROUNDS && rc == 0; i++)
        if (registry_update (r, "many", bump_mine, &p, &e) < 0)
          rc = 1;
    }
    else {
      uint64_t last = 0;
      for (int i = 0; i < READS && rc == 0; i++) {
        if (registry_get (r, "many", &g, &e) < 0 || g.epoch < last)
          rc = 3;
        last = g.epoch;
      }
    }
    if (rc)
      fprintf (stderr, "process %d: %s\n", p, error_msg (&e));
    registry_close (r);
    _exit (rc);
  }
  for (int p = 0; p <= UPDATERS; p++) {
    int status;
    assert_int_equal (waitpid (pids[p], &status, 0), pids[p]);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
  }
  assert_int_equal (registry_get (f->r, "many", &g, &e), 0);
  assert_int_equal (g.epoch, 1 + UPDATERS * UPDATER_ROUNDS);
  for (int p = 0; p < UPDATERS; p++)
    assert_int_equal (g.replicas[p].resync_done, UPDATER_ROUNDS);
}

static void
test_open_locations (void **state)
{
  struct error e = { 0 };
  struct fixture *f = *state;
  char path[128];

  /* A file where the directory should be is refused up front. */
  snprintf (path, sizeof path, "%s/file", f->dir);
  write_file (f->dir, "file", "x");
  assert_null (registry_open (path, NULL));
  /* etcd:// opens without contacting anything; a malformed one fails. */
  struct registry *er = registry_open ("etcd://127.0.0.1:2379", NULL);
  assert_non_null (er);
  registry_close (er);
  assert_null (registry_open ("etcd://", NULL));
  assert_null (registry_open ("etcd://h:99999", NULL));
  assert_null (registry_open ("ftp://x", NULL));
  /* dir://PATH is the directory backend. */
  char durl[160];
  snprintf (durl, sizeof durl, "dir://%s", f->regdir);
  er = registry_open (durl, NULL);
  assert_non_null (er);
  registry_close (er);
  assert_null (registry_open ("dir://", NULL));

  /* $REPVOL_REGISTRY is used when no location is given. */
  setenv ("REPVOL_REGISTRY", f->regdir, 1);
  struct registry *r = registry_open (NULL, NULL);
  assert_non_null (r);
  struct reg_volume v, g;
  make_volume (&v, "envvol", 1);
  assert_int_equal (registry_create (r, &v, &e), 0);
  registry_close (r);
  assert_int_equal (registry_get (f->r, "envvol", &g, &e), 0);
  unsetenv ("REPVOL_REGISTRY");

  assert_string_equal (reg_state_name (REG_IN_SYNC), "in-sync");
  assert_string_equal (reg_state_name (REG_OUT_OF_SYNC), "out-of-sync");
}

int
main (void)
{
  log_init ("test_registry");
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_create_get, setup, teardown),
    cmocka_unit_test_setup_teardown (test_eexist_enoent, setup, teardown),
    cmocka_unit_test_setup_teardown (test_missing_dir, setup, teardown),
    cmocka_unit_test_setup_teardown (test_update, setup, teardown),
    cmocka_unit_test_setup_teardown (test_list_remove, setup, teardown),
    cmocka_unit_test_setup_teardown (test_corrupt, setup, teardown),
    cmocka_unit_test (test_codec_roundtrip),
    cmocka_unit_test_setup_teardown (test_concurrent_updates, setup, teardown),
    cmocka_unit_test_setup_teardown (test_many_updaters, setup, teardown),
    cmocka_unit_test_setup_teardown (test_open_locations, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
