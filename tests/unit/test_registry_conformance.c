/* test_registry_conformance.c - what every registry backend must do,
 * through registry.h only, against the location given:
 *
 *   test_registry_conformance [LOCATION]
 *
 * LOCATION (else $REPVOL_TEST_REGISTRY) is any registry_open location:
 * a directory, dir://PATH or etcd://HOST:PORT,...[/PREFIX]; without
 * one a fresh temp directory is used (make check-unit), and
 * tests/integration/080-registry-etcd.sh runs it against a real etcd
 * cluster (081 over https, with $REPVOL_TLS_DIR's certificates).  Volumes are named conf-*; each test removes its own first,
 * so a run may reuse a prefix.  $REPVOL_CONFORMANCE_ONLY=PATTERN runs
 * only the tests whose names match (cmocka_set_test_filter).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/tls.h"
#include "core/util.h"
#include "registry/registry.h"

static char location[512];
static char tmpdir[64];
static bool is_etcd;

struct fixture {
  struct registry *r;
};

static int
setup (void **state)
{
  struct fixture *f = calloc (1, sizeof *f);
  struct error e = { 0 };
  f->r = registry_open (location, &e);
  if (f->r == NULL)
    fail_msg ("registry_open %s: %s", location, error_msg (&e));
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  registry_close (f->r);
  free (f);
  return 0;
}

/* Remove name if it is there (left by an earlier run). */
static void
fresh (struct registry *r, const char *name)
{
  struct error e = { 0 };
  int ret = registry_remove (r, name, &e);
  if (ret < 0 && ret != -ENOENT)
    fail_msg ("remove %s: %s", name, error_msg (&e));
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
  v->chunk_size = REG_DEFAULT_CHUNK_SIZE;
  v->nreplicas = nreplicas;
  for (int i = 0; i < nreplicas; i++) {
    snprintf (v->replicas[i].addr, REG_ADDR_MAX, "127.0.0.1:%d", 7000 + i);
    snprintf (v->replicas[i].server, REG_NAME_MAX, "srv%d", i);
    snprintf (v->replicas[i].zone, REG_NAME_MAX, "zone-%c", 'a' + i);
    v->replicas[i].state = REG_IN_SYNC;
  }
}

#define OK(call) do { struct error e_ = { 0 }; int r_ = (call); \
    if (r_ != 0) fail_msg ("%s: %d: %s", #call, r_, error_msg (&e_)); \
  } while (0)
/* The calls below name their error argument e_. */

/* Every field set, through create and get: the same record. */
static void
test_roundtrip (void **state)
{
  struct fixture *f = *state;
  struct reg_volume v, g;

  fresh (f->r, "conf-rt");
  make_volume (&v, "conf-rt", 3);
  v.size = 3ull << 40;
  v.block_size = 512;
  v.epoch = 123456789012ull;
  v.reserved = true;
  v.allow_same_zone = true;
  v.tls = true;
  v.created = 1800000000;
  v.replicas[1].state = REG_OUT_OF_SYNC;
  v.replicas[1].out_of_sync_epoch = 77;
  v.replicas[1].out_of_sync_since = 1800000100;
  v.replicas[1].full_copy = true;
  v.replicas[1].resync_total = 1ull << 33;
  v.replicas[1].resync_done = 12345;
  v.replicas[1].resync_rate = 999;
  v.attachment.attached = true;
  snprintf (v.attachment.host, sizeof v.attachment.host, "host-\"one\"");
  v.attachment.pid = 4242;
  snprintf (v.attachment.frontend, sizeof v.attachment.frontend,
            "nbd unix:/run/x y.sock");
  v.attachment.epoch = 123456789012ull;
  v.attachment.since = 1800000200;
  snprintf (v.attachment.control, sizeof v.attachment.control,
            "/run/repvol/conf-rt.ctl");
  v.fenced.attached = true;
  snprintf (v.fenced.host, sizeof v.fenced.host, "host2");
  v.fenced.pid = 17;
  snprintf (v.fenced.frontend, sizeof v.fenced.frontend, "ublk 3");
  v.fenced.epoch = 5;
  v.fenced.since = 1800000000;
  snprintf (v.fenced.reason, sizeof v.fenced.reason, "taken over by "
            "host-one \xc3\xa9");
  v.chunk_size = 1u << 16;
  v.cbt.valid = true;
  snprintf (v.cbt.base_url, sizeof v.cbt.base_url, "s3://b/p?x=1&y=/");
  snprintf (v.cbt.base_name, sizeof v.cbt.base_name, "snap-1");
  v.restore.active = true;
  snprintf (v.restore.url, sizeof v.restore.url, "file:///srv/snaps");
  snprintf (v.restore.snapshot, sizeof v.restore.snapshot, "base");
  v.restore.chunks_total = 1000;
  v.restore.chunks_hydrated = 10;
  snprintf (v.restore.error, sizeof v.restore.error, "chunk 3: EIO");

  OK (registry_create (f->r, &v, &e_));
  OK (registry_get (f->r, "conf-rt", &g, &e_));
  assert_memory_equal (&v, &g, sizeof v);

  /* And a minimal one (no attachment, no restore, empty zone). */
  fresh (f->r, "conf-rt2");
  make_volume (&v, "conf-rt2", 1);
  memset (v.replicas[0].zone, 0, sizeof v.replicas[0].zone);
  OK (registry_create (f->r, &v, &e_));
  OK (registry_get (f->r, "conf-rt2", &g, &e_));
  assert_memory_equal (&v, &g, sizeof v);
  OK (registry_remove (f->r, "conf-rt", &e_));
  OK (registry_remove (f->r, "conf-rt2", &e_));
}

static void
test_errors (void **state)
{
  struct fixture *f = *state;
  struct error e = { 0 };
  struct reg_volume v, g;

  fresh (f->r, "conf-err");
  fresh (f->r, "conf-missing");
  make_volume (&v, "conf-err", 2);
  OK (registry_create (f->r, &v, &e_));
  v.epoch = 99;
  assert_int_equal (registry_create (f->r, &v, &e), -EEXIST);
  assert_int_equal (e.code, EEXIST);
  OK (registry_get (f->r, "conf-err", &g, &e_));
  assert_int_equal (g.epoch, 1);         /* the refused create wrote nothing */

  assert_int_equal (registry_get (f->r, "conf-missing", &g, &e), -ENOENT);
  assert_int_equal (registry_remove (f->r, "conf-missing", &e), -ENOENT);
  assert_int_equal (registry_get (f->r, "../etc", &g, &e), -ENOENT);

  /* A record that fails the checks is never stored. */
  make_volume (&v, "conf-missing", 1);
  v.size = 1000;
  assert_int_equal (registry_create (f->r, &v, &e), -EINVAL);
  assert_int_equal (registry_get (f->r, "conf-missing", &g, &e), -ENOENT);
  OK (registry_remove (f->r, "conf-err", &e_));
}

static int
refuse (struct reg_volume *v, void *arg)
{
  v->epoch = 1000;
  return *(int *) arg;
}

static int
break_it (struct reg_volume *v, void *arg)
{
  v->nreplicas = 0;
  return 0;
}

static int
rename_it (struct reg_volume *v, void *arg)
{
  snprintf (v->name, sizeof v->name, "conf-other");
  v->epoch++;
  return 0;
}

static int
bump_epoch (struct reg_volume *v, void *arg)
{
  v->epoch++;
  return 0;
}

static void
test_update_errors (void **state)
{
  struct fixture *f = *state;
  struct error e = { 0 };
  struct reg_volume v, g;
  int code = EPERM;

  fresh (f->r, "conf-upd");
  make_volume (&v, "conf-upd", 2);
  OK (registry_create (f->r, &v, &e_));
  assert_int_equal (registry_update (f->r, "conf-upd", refuse, &code, &e),
                    -EPERM);
  assert_int_equal (e.code, EPERM);
  code = ESTALE;
  assert_int_equal (registry_update (f->r, "conf-upd", refuse, &code, &e),
                    -ESTALE);
  assert_int_equal (registry_update (f->r, "conf-upd", break_it, NULL, &e),
                    -EINVAL);
  OK (registry_get (f->r, "conf-upd", &g, &e_));
  assert_memory_equal (&v, &g, sizeof v);      /* nothing written */
  assert_int_equal (registry_update (f->r, "conf-nope", bump_epoch, NULL, &e),
                    -ENOENT);

  /* A callback cannot rename the volume. */
  OK (registry_update (f->r, "conf-upd", rename_it, NULL, &e_));
  OK (registry_get (f->r, "conf-upd", &g, &e_));
  assert_string_equal (g.name, "conf-upd");
  assert_int_equal (g.epoch, 2);
  assert_int_equal (registry_get (f->r, "conf-other", &g, &e), -ENOENT);
  OK (registry_remove (f->r, "conf-upd", &e_));
}

/* Two handles interleave: while the first one's callback runs (its
 * read done, its write not yet made), another process writes through a
 * handle of its own.  The first write is then stale: it must not
 * overwrite the other's, and both increments must land.  etcd refuses
 * the stale write and runs the callback again on the fresh record; the
 * directory backend holds its lock across the callback, so the other
 * writer waits and comes after.
 */
struct interleave {
  int calls;
  int go[2], done[2];           /* pipes: parent -> writer, writer -> parent */
  bool writer_first;
};

static int
bump_and_interleave (struct reg_volume *v, void *arg)
{
  struct interleave *il = arg;
  if (il->calls++ == 0) {
    char c = 'g';
    assert_int_equal (write (il->go[1], &c, 1), 1);
    /* Let the other writer finish first where it can (bounded: while
     * the directory's lock is held it cannot).
     */
    struct timeval tv = { is_etcd ? 5 : 0, is_etcd ? 0 : 300000 };
    fd_set fds;
    FD_ZERO (&fds);
    FD_SET (il->done[0], &fds);
    if (select (il->done[0] + 1, &fds, NULL, NULL, &tv) == 1 &&
        read (il->done[0], &c, 1) == 1 && c == 'k')
      il->writer_first = true;
  }
  v->epoch++;
  return 0;
}

static void
test_stale_write (void **state)
{
  struct fixture *f = *state;
  struct reg_volume v, g;
  struct interleave il = { 0 };
  int status;

  fresh (f->r, "conf-stale");
  make_volume (&v, "conf-stale", 2);
  OK (registry_create (f->r, &v, &e_));
  /* The other writer is forked before the update, so it holds nothing
   * of the update's (the directory backend's lock file descriptor).
   */
  assert_int_equal (pipe (il.go), 0);
  assert_int_equal (pipe (il.done), 0);
  pid_t child = fork ();
  assert_true (child >= 0);
  if (child == 0) {
    struct error e = { 0 };
    char c;
    int rc = 1;
    if (read (il.go[0], &c, 1) == 1) {
      struct registry *r2 = registry_open (location, &e);
      rc = r2 && registry_update (r2, "conf-stale", bump_epoch, NULL,
                                  &e) == 0 ? 0 : 1;
      if (rc)
        fprintf (stderr, "interleaved writer: %s\n", error_msg (&e));
      registry_close (r2);
      c = rc ? 'x' : 'k';
      if (write (il.done[1], &c, 1) != 1)
        rc = 1;
    }
    _exit (rc);
  }
  OK (registry_update (f->r, "conf-stale", bump_and_interleave, &il, &e_));
  assert_int_equal (waitpid (child, &status, 0), child);
  assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  for (int i = 0; i < 2; i++) {
    close (il.go[i]);
    close (il.done[i]);
  }
  OK (registry_get (f->r, "conf-stale", &g, &e_));
  assert_int_equal (g.epoch, 3);        /* 1 + both increments */
  /* etcd: the other wrote between this update's read and write, so the
   * write was refused and the callback ran again on the other's record;
   * the directory: the other waited for the lock and came after.
   */
  assert_true (il.writer_first == is_etcd);
  assert_int_equal (il.calls, is_etcd ? 2 : 1);
  OK (registry_remove (f->r, "conf-stale", &e_));
}

/* N processes, each with its own handle (one reuses the parent's,
 * inherited through fork), do ROUNDS read-modify-write increments each
 * of one volume's epoch and of a counter of their own: no update lost.
 */
#define UPDATERS 4
#define ROUNDS 200

static int
bump_mine (struct reg_volume *v, void *arg)
{
  int p = *(int *) arg;
  v->epoch++;
  v->replicas[p].resync_done++;
  return 0;
}

static void
test_concurrent_updaters (void **state)
{
  struct fixture *f = *state;
  struct reg_volume v, g;
  pid_t pids[UPDATERS];

  fresh (f->r, "conf-race");
  make_volume (&v, "conf-race", UPDATERS);
  for (int p = 0; p < UPDATERS; p++) {
    v.replicas[p].state = REG_OUT_OF_SYNC;     /* so resync is stored */
    v.replicas[p].out_of_sync_epoch = 1;
    v.replicas[p].resync_total = 1ull << 40;
  }
  OK (registry_create (f->r, &v, &e_));
  for (int p = 0; p < UPDATERS; p++) {
    pids[p] = fork ();
    assert_true (pids[p] >= 0);
    if (pids[p] > 0)
      continue;
    struct error e = { 0 };
    struct registry *r = p == 0 ? f->r : registry_open (location, &e);
    int rc = r ? 0 : 2;
    for (int i = 0; i < ROUNDS && rc == 0; i++)
      if (registry_update (r, "conf-race", bump_mine, &p, &e) < 0)
        rc = 1;
    if (rc)
      fprintf (stderr, "updater %d: %s\n", p, error_msg (&e));
    registry_close (r);
    _exit (rc);
  }
  for (int p = 0; p < UPDATERS; p++) {
    int status;
    assert_int_equal (waitpid (pids[p], &status, 0), pids[p]);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
  }
  OK (registry_get (f->r, "conf-race", &g, &e_));
  assert_int_equal (g.epoch, 1 + UPDATERS * ROUNDS);
  for (int p = 0; p < UPDATERS; p++)
    assert_int_equal (g.replicas[p].resync_done, ROUNDS);
  OK (registry_remove (f->r, "conf-race", &e_));
}

static void
test_list (void **state)
{
  struct fixture *f = *state;
  static const char *const mine[] = { "conf-list-zeta", "conf-list-a",
                                      "conf-list-M", "conf-list-m" };
  struct reg_volume v;
  char **names;
  int n, seen;

  for (int i = 0; i < 4; i++) {
    fresh (f->r, mine[i]);
    make_volume (&v, mine[i], 1);
    OK (registry_create (f->r, &v, &e_));
  }
  OK (registry_list (f->r, &names, &n, &e_));
  seen = 0;
  for (int i = 0; i < n; i++) {
    if (i > 0)
      assert_true (strcmp (names[i - 1], names[i]) < 0);
    for (int j = 0; j < 4; j++)
      seen += strcmp (names[i], mine[j]) == 0;
  }
  assert_int_equal (seen, 4);
  registry_free_names (names, n);

  OK (registry_remove (f->r, "conf-list-M", &e_));
  OK (registry_list (f->r, &names, &n, &e_));
  for (int i = 0; i < n; i++)
    assert_string_not_equal (names[i], "conf-list-M");
  registry_free_names (names, n);
  for (int i = 0; i < 4; i++)
    fresh (f->r, mine[i]);
}

static void
test_blobs (void **state)
{
  struct fixture *f = *state;
  struct error e = { 0 };
  struct reg_volume v;
  void *data;
  size_t len;

  fresh (f->r, "conf-blob");
  make_volume (&v, "conf-blob", 1);
  OK (registry_create (f->r, &v, &e_));
  assert_int_equal (registry_blob_get (f->r, "conf-blob", "cbt", &data, &len,
                                       &e), -ENOENT);
  /* Binary, NULs included; then replaced by a shorter one; then empty. */
  size_t big = 1 << 20;
  unsigned char *buf = malloc (big + 1);
  for (size_t i = 0; i <= big; i++)
    buf[i] = (unsigned char) (i * 2654435761u >> 13);
  buf[0] = 0;
  OK (registry_blob_put (f->r, "conf-blob", "cbt", buf, big, &e_));
  OK (registry_blob_get (f->r, "conf-blob", "cbt", &data, &len, &e_));
  assert_int_equal (len, big);
  assert_memory_equal (data, buf, big);
  free (data);
  OK (registry_blob_put (f->r, "conf-blob", "cbt", buf + 7, 3, &e_));
  OK (registry_blob_put (f->r, "conf-blob", "hydrated", buf, 1, &e_));
  OK (registry_blob_get (f->r, "conf-blob", "cbt", &data, &len, &e_));
  assert_int_equal (len, 3);
  assert_memory_equal (data, buf + 7, 3);
  free (data);
  OK (registry_blob_put (f->r, "conf-blob", "cbt", buf, 0, &e_));
  OK (registry_blob_get (f->r, "conf-blob", "cbt", &data, &len, &e_));
  assert_int_equal (len, 0);
  free (data);
  OK (registry_blob_remove (f->r, "conf-blob", "cbt", &e_));
  OK (registry_blob_remove (f->r, "conf-blob", "cbt", &e_));   /* none: ok */
  assert_int_equal (registry_blob_get (f->r, "conf-blob", "cbt", &data, &len,
                                       &e), -ENOENT);
  OK (registry_blob_get (f->r, "conf-blob", "hydrated", &data, &len, &e_));
  assert_int_equal (len, 1);
  free (data);
  assert_int_equal (registry_blob_put (f->r, "conf-blob", "../x", buf, 1, &e),
                    -EINVAL);

  /* etcd holds a blob in one value, at most 1 MiB: a larger one is
   * refused up front, saying why.
   */
  int r = registry_blob_put (f->r, "conf-blob", "cbt", buf, big + 1, &e);
  if (is_etcd) {
    assert_int_equal (r, -EFBIG);
    assert_non_null (strstr (e.msg, "1048577"));
  }
  else
    assert_int_equal (r, 0);
  free (buf);

  /* remove takes the blobs with the record, and a volume created again
   * under the name starts without them.
   */
  OK (registry_remove (f->r, "conf-blob", &e_));
  assert_int_equal (registry_blob_get (f->r, "conf-blob", "hydrated", &data,
                                       &len, &e), -ENOENT);
  assert_int_equal (registry_blob_get (f->r, "conf-blob", "cbt", &data, &len,
                                       &e), -ENOENT);
  OK (registry_create (f->r, &v, &e_));
  assert_int_equal (registry_blob_get (f->r, "conf-blob", "hydrated", &data,
                                       &len, &e), -ENOENT);
  OK (registry_remove (f->r, "conf-blob", &e_));
}

/* ---- the server pool ----------------------------------------------- */

static void
make_server (struct reg_server *s, const char *name, const char *zone)
{
  memset (s, 0, sizeof *s);
  snprintf (s->name, sizeof s->name, "%s", name);
  snprintf (s->zone, sizeof s->zone, "%s", zone);
  snprintf (s->addr, sizeof s->addr, "127.0.0.1:%d", 7100 + (int) strlen (name));
  s->capacity = 100ull << 30;
  s->free = 60ull << 30;
  s->reserved = 1ull << 30;
  s->volumes = 3;
  s->tls = true;
  snprintf (s->version, sizeof s->version, "0.1.0");
}

/* The state of server name in a fresh listing: 1 up, 0 down, -1 none. */
static int
server_up (struct registry *r, const char *name, struct reg_server *out)
{
  struct error e = { 0 };
  struct reg_server s;
  int ret = registry_server_get (r, name, &s, &e);
  if (ret == -ENOENT)
    return -1;
  if (ret < 0)
    fail_msg ("server get %s: %s", name, error_msg (&e));
  if (out)
    *out = s;
  return s.up;
}

/* Poll (bounded) until server name is up (want 1) or down (0). */
static bool
server_becomes (struct registry *r, const char *name, int want, int max_ms)
{
  for (int waited = 0; waited <= max_ms; waited += 100) {
    if (server_up (r, name, NULL) == want)
      return true;
    struct timespec ts = { 0, 100 * 1000000 };
    nanosleep (&ts, NULL);
  }
  return false;
}

/* A server registers, is listed with every field, refreshes, shuts
 * down cleanly (down at once, still listed); one that stops refreshing
 * (killed: its handle closed without a word) goes down within its TTL.
 */
static void
test_servers (void **state)
{
  struct fixture *f = *state;
  struct reg_server s, got;
  struct error e = { 0 };
  struct reg_server *all;
  int n;

  make_server (&s, "conf-srv-a", "zone-a");
  OK (registry_server_put (f->r, &s, 30, &e_));
  assert_int_equal (server_up (f->r, "conf-srv-a", &got), 1);
  assert_string_equal (got.zone, "zone-a");
  assert_string_equal (got.addr, s.addr);
  assert_true (got.capacity == s.capacity && got.free == s.free &&
               got.reserved == s.reserved && got.volumes == 3 && got.tls);
  assert_string_equal (got.version, "0.1.0");
  assert_int_equal (got.ttl, 30);
  assert_true (got.heartbeat >= time (NULL) - 5);
  assert_string_equal (reg_server_state (&got), "up");

  /* A refresh with new figures replaces them. */
  s.free = 10ull << 30;
  snprintf (s.addr, sizeof s.addr, "127.0.0.1:7999");
  OK (registry_server_put (f->r, &s, 30, &e_));
  assert_int_equal (server_up (f->r, "conf-srv-a", &got), 1);
  assert_true (got.free == 10ull << 30);
  assert_string_equal (got.addr, "127.0.0.1:7999");

  OK (registry_server_down (f->r, "conf-srv-a", &e_));
  assert_int_equal (server_up (f->r, "conf-srv-a", &got), 0);
  assert_string_equal (got.addr, "127.0.0.1:7999");     /* still known */
  assert_string_equal (reg_server_state (&got), "down");

  /* Killed: a handle of its own that is closed without server_down. */
  struct registry *other = registry_open (location, &e);
  assert_non_null (other);
  make_server (&s, "conf-srv-b", "zone-b");
  OK (registry_server_put (other, &s, 2, &e_));
  registry_close (other);
  assert_int_equal (server_up (f->r, "conf-srv-b", NULL), 1);
  /* TTL + 1 s, and etcd's lease checks (every 500 ms) on top. */
  assert_true (server_becomes (f->r, "conf-srv-b", 0, 4000));

  /* Back up with a new registration. */
  OK (registry_server_put (f->r, &s, 30, &e_));
  assert_true (server_becomes (f->r, "conf-srv-b", 1, 1000));

  OK (registry_server_list (f->r, &all, &n, &e_));
  int seen = 0;
  for (int i = 0; i < n; i++) {
    if (i > 0)
      assert_true (strcmp (all[i - 1].name, all[i].name) < 0);
    seen += !strcmp (all[i].name, "conf-srv-a") ||
      !strcmp (all[i].name, "conf-srv-b");
  }
  assert_int_equal (seen, 2);
  free (all);
  OK (registry_server_down (f->r, "conf-srv-b", &e_));

  /* Draining: a mark apart from the record, which refreshes keep. */
  OK (registry_server_put (f->r, &s, 30, &e_));
  OK (registry_server_drain (f->r, "conf-srv-b", true, &e_));
  OK (registry_server_get (f->r, "conf-srv-b", &got, &e_));
  assert_true (got.draining && got.up);
  assert_string_equal (reg_server_state (&got), "draining");
  OK (registry_server_put (f->r, &s, 30, &e_));
  OK (registry_server_get (f->r, "conf-srv-b", &got, &e_));
  assert_true (got.draining);
  OK (registry_server_get (f->r, "conf-srv-a", &got, &e_));
  assert_false (got.draining);
  OK (registry_server_drain (f->r, "conf-srv-b", false, &e_));
  OK (registry_server_get (f->r, "conf-srv-b", &got, &e_));
  assert_false (got.draining);
  OK (registry_server_drain (f->r, "conf-srv-b", false, &e_));  /* twice */
  assert_int_equal (registry_server_drain (f->r, "conf-nosuch", true, &e),
                    -ENOENT);
  OK (registry_server_down (f->r, "conf-srv-b", &e_));

  /* Bad records are refused before a backend sees them. */
  make_server (&s, "../x", "");
  assert_int_equal (registry_server_put (f->r, &s, 30, &e), -EINVAL);
  make_server (&s, "conf-srv-c", "");
  assert_int_equal (registry_server_put (f->r, &s, 0, &e), -EINVAL);
  s.addr[0] = '\0';
  assert_int_equal (registry_server_put (f->r, &s, 30, &e), -EINVAL);
  assert_int_equal (server_up (f->r, "conf-srv-never", NULL), -1);
}

/* ---- events ----------------------------------------------------------- */

struct seen {
  uint64_t revs[64];
  char types[64][32];
  int n;
  uint64_t stop_after;          /* follow: stop once this many are seen */
};

static int
collect (const struct reg_event *ev, void *arg)
{
  struct seen *s = arg;
  if (strncmp (ev->volume, "conf-ev", 7) != 0)
    return 0;                   /* other tests' and runs' events */
  if (s->n < 64) {
    s->revs[s->n] = ev->revision;
    snprintf (s->types[s->n], sizeof s->types[0], "%s", ev->type);
  }
  s->n++;
  return s->stop_after && (uint64_t) s->n >= s->stop_after;
}

static int
take_last (const struct reg_event *ev, void *arg)
{
  *(uint64_t *) arg = ev->revision;
  return 0;
}

static uint64_t
last_revision (struct registry *r)
{
  struct error e = { 0 };
  uint64_t last = 0;
  if (registry_events (r, 0, take_last, &last, &e) < 0)
    fail_msg ("events: %s", error_msg (&e));
  return last;
}

/* Appended events come back in order, with increasing revisions, with
 * their fields; --since filters; a follower sees an event another
 * process appends; the stream stays bounded.
 */
static void
test_events (void **state)
{
  struct fixture *f = *state;
  struct seen s = { 0 };
  struct error e = { 0 };
  uint64_t base = last_revision (f->r);

  OK (registry_event (f->r, "created", "conf-ev1", NULL, &e_, "size %d", 8));
  OK (registry_event (f->r, "attached", "conf-ev1", NULL, &e_, "host x"));
  OK (registry_event (f->r, "server-up", "conf-ev1", "srv1", &e_, "zone a"));
  assert_int_equal (registry_event (f->r, "no-such-type", "conf-ev1", NULL,
                                    &e, "x"), -EINVAL);
  OK (registry_events (f->r, base, collect, &s, &e_));
  assert_int_equal (s.n, 3);
  assert_string_equal (s.types[0], "created");
  assert_string_equal (s.types[1], "attached");
  assert_string_equal (s.types[2], "server-up");
  assert_true (s.revs[0] > base && s.revs[0] < s.revs[1] &&
               s.revs[1] < s.revs[2]);

  struct seen after = { 0 };
  OK (registry_events (f->r, s.revs[1], collect, &after, &e_));
  assert_int_equal (after.n, 1);
  assert_string_equal (after.types[0], "server-up");

  /* Follow: a child appends once the parent is waiting. */
  uint64_t now = s.revs[2];
  pid_t pid = fork ();
  if (pid == 0) {
    struct registry *r2 = registry_open (location, NULL);
    struct timespec ts = { 0, 300 * 1000000 };
    nanosleep (&ts, NULL);
    _exit (r2 && registry_event (r2, "detached", "conf-ev1", NULL, NULL,
                                 "cleanly") == 0 ? 0 : 1);
  }
  struct seen fol = { .stop_after = 1 };
  alarm (30);                   /* a follower that never sees it fails */
  OK (registry_events_follow (f->r, now, collect, NULL, &fol, &e_));
  alarm (0);
  int st;
  waitpid (pid, &st, 0);
  assert_true (WIFEXITED (st) && WEXITSTATUS (st) == 0);
  assert_int_equal (fol.n, 1);
  assert_string_equal (fol.types[0], "detached");

  /* Bounded: with a bound of 5, 30 appends leave at most 10. */
  setenv ("REPVOL_EVENTS_MAX", "5", 1);
  for (int i = 0; i < 30; i++)
    OK (registry_event (f->r, "degraded", "conf-ev2", NULL, &e_, "%d", i));
  unsetenv ("REPVOL_EVENTS_MAX");
  struct seen all = { 0 };
  OK (registry_events (f->r, 0, collect, &all, &e_));
  assert_true (all.n >= 1 && all.n <= 10);
  assert_string_equal (all.types[all.n - 1], "degraded");
}

/* Registry-wide settings: unset, set, replaced, unset again; unknown
 * keys and bad values refused.
 */
static void
test_settings (void **state)
{
  struct fixture *f = *state;
  struct error e = { 0 };
  char val[REG_SETTING_MAX];

  assert_int_equal (registry_setting_get (f->r, REG_SETTING_HEAL_AFTER, val,
                                          sizeof val, &e), -ENOENT);
  OK (registry_setting_put (f->r, REG_SETTING_HEAL_AFTER, "30s", &e_));
  OK (registry_setting_get (f->r, REG_SETTING_HEAL_AFTER, val, sizeof val,
                            &e_));
  assert_string_equal (val, "30s");
  OK (registry_setting_put (f->r, REG_SETTING_HEAL_AFTER, "2h", &e_));
  OK (registry_setting_get (f->r, REG_SETTING_HEAL_AFTER, val, sizeof val,
                            &e_));
  assert_string_equal (val, "2h");
  OK (registry_setting_put (f->r, REG_SETTING_HEAL_AFTER, NULL, &e_));
  assert_int_equal (registry_setting_get (f->r, REG_SETTING_HEAL_AFTER, val,
                                          sizeof val, &e), -ENOENT);
  OK (registry_setting_put (f->r, REG_SETTING_HEAL_AFTER, NULL, &e_));
  assert_int_equal (registry_setting_put (f->r, "colour", "red", &e), -EINVAL);
  assert_int_equal (registry_setting_get (f->r, "../x", val, sizeof val, &e),
                    -EINVAL);
  assert_int_equal (registry_setting_put (f->r, REG_SETTING_HEAL_AFTER,
                                          "a\nb", &e), -EINVAL);
  assert_int_equal (registry_setting_put (f->r, REG_SETTING_HEAL_AFTER, "",
                                          &e), -EINVAL);
}

int
main (int argc, char **argv)
{
  const char *loc = argc > 1 ? argv[1] : getenv ("REPVOL_TEST_REGISTRY");
  int rc;

  log_init ("test_registry_conformance");
  if (loc && *loc)
    snprintf (location, sizeof location, "%s", loc);
  else {
    snprintf (tmpdir, sizeof tmpdir, "/tmp/test_regconf.XXXXXX");
    if (mkdtemp (tmpdir) == NULL)
      return 1;
    snprintf (location, sizeof location, "dir://%s/reg", tmpdir);
  }
  is_etcd = strncmp (location, "etcd://", 7) == 0;
  /* $REPVOL_TLS_DIR: etcd over https with those certificates. */
  struct error e = { 0 };
  if (tls_client_setup (NULL, NULL, &e) < 0) {
    fprintf (stderr, "%s\n", error_msg (&e));
    return 1;
  }
  fprintf (stderr, "registry conformance against %s\n", location);
  srandom ((unsigned) time (NULL) ^ (unsigned) getpid ());

  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_roundtrip, setup, teardown),
    cmocka_unit_test_setup_teardown (test_errors, setup, teardown),
    cmocka_unit_test_setup_teardown (test_update_errors, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stale_write, setup, teardown),
    cmocka_unit_test_setup_teardown (test_concurrent_updaters, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_list, setup, teardown),
    cmocka_unit_test_setup_teardown (test_blobs, setup, teardown),
    cmocka_unit_test_setup_teardown (test_servers, setup, teardown),
    cmocka_unit_test_setup_teardown (test_events, setup, teardown),
    cmocka_unit_test_setup_teardown (test_settings, setup, teardown),
  };
  /* REPVOL_CONFORMANCE_ONLY=PATTERN: only the tests it matches. */
  const char *only = getenv ("REPVOL_CONFORMANCE_ONLY");
  if (only && *only)
    cmocka_set_test_filter (only);
  rc = cmocka_run_group_tests (tests, NULL, NULL);
  tls_client_cleanup ();
  if (tmpdir[0]) {
    char cmd[128];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system (cmd) != 0)
      rc = rc ? rc : 1;
  }
  return rc;
}
