/* test_registry_codec.c - the volume record as JSON (registry/codec.c):
 * every field survives reg_volume_to_json -> reg_volume_from_json; what
 * is optional reads back as its default; bad records are refused with
 * -EBADMSG and a reason naming the key; reg_volume_check refuses what
 * must never be stored; and the registry_* entry points (registry.c)
 * refuse bad arguments before a backend sees them.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <json-c/json.h>

#include "core/util.h"
#include "registry/registry.h"
#include "registry/backends.h"

static void
full_volume (struct reg_volume *v)
{
  memset (v, 0, sizeof *v);
  snprintf (v->name, sizeof v->name, "full.vol-1");
  snprintf (v->uuid, sizeof v->uuid, "0d9c6f3e-1b2a-4c5d-8e9f-a0b1c2d3e4f5");
  v->size = (1ull << 62) + (1ull << 20);     /* beyond INT64_MAX / 2 */
  v->block_size = 65536;
  v->epoch = UINT64_MAX - 1;
  v->reserved = true;
  v->allow_same_zone = true;
  v->created = 1700000000;
  v->nreplicas = 3;
  for (int i = 0; i < 3; i++) {
    struct reg_replica *r = &v->replicas[i];
    snprintf (r->addr, sizeof r->addr, "[2001:db8::%d]:7400", i + 1);
    snprintf (r->server, sizeof r->server, "srv-%d", i);
    snprintf (r->zone, sizeof r->zone, "zone-%c", 'a' + i);
  }
  v->replicas[1].state = REG_OUT_OF_SYNC;
  v->replicas[1].out_of_sync_epoch = 41;
  v->replicas[1].out_of_sync_since = 1700000100;
  v->replicas[1].full_copy = true;
  v->replicas[1].resync_total = 1ull << 40;
  v->replicas[1].resync_done = 12345;
  v->replicas[1].resync_rate = 99;
  v->attachment.attached = true;
  snprintf (v->attachment.host, sizeof v->attachment.host, "host-a");
  v->attachment.pid = 4242;
  snprintf (v->attachment.frontend, sizeof v->attachment.frontend,
            "ublk /dev/ublkb0");
  v->attachment.epoch = UINT64_MAX - 1;
  v->attachment.since = 1700000200;
  snprintf (v->attachment.control, sizeof v->attachment.control,
            "/run/repvol/x.ctl");
  v->fenced.attached = true;
  snprintf (v->fenced.host, sizeof v->fenced.host, "host-b");
  v->fenced.pid = 77;
  snprintf (v->fenced.frontend, sizeof v->fenced.frontend, "nbd unix:/s");
  v->fenced.epoch = 40;
  v->fenced.since = 1699999999;
  v->chunk_size = 4u << 20;
  v->cbt.valid = true;
  snprintf (v->cbt.base_url, sizeof v->cbt.base_url, "s3://bucket/prefix");
  snprintf (v->cbt.base_name, sizeof v->cbt.base_name, "nightly-7");
  v->restore.active = true;
  snprintf (v->restore.url, sizeof v->restore.url, "file:///srv/snaps");
  snprintf (v->restore.snapshot, sizeof v->restore.snapshot, "base");
  v->restore.chunks_total = 1000;
  v->restore.chunks_hydrated = 999;
  snprintf (v->restore.error, sizeof v->restore.error,
            "chunk 3f: \"checksum\" mismatch");
  v->nretired = 2;
  snprintf (v->retired[0].server, sizeof v->retired[0].server, "old-b");
  snprintf (v->retired[0].addr, sizeof v->retired[0].addr, "10.0.0.2:7000");
  snprintf (v->retired[1].addr, sizeof v->retired[1].addr, "10.0.0.9:7000");   /* quotes survive */
}

static void
assert_attachment_equal (const struct reg_attachment *a,
                         const struct reg_attachment *b)
{
  assert_int_equal (a->attached, b->attached);
  assert_string_equal (a->host, b->host);
  assert_int_equal (a->pid, b->pid);
  assert_string_equal (a->frontend, b->frontend);
  assert_true (a->epoch == b->epoch);
  assert_int_equal (a->since, b->since);
  assert_string_equal (a->control, b->control);
}

static void
assert_volume_equal (const struct reg_volume *a, const struct reg_volume *b)
{
  assert_string_equal (a->name, b->name);
  assert_string_equal (a->uuid, b->uuid);
  assert_true (a->size == b->size);
  assert_int_equal (a->block_size, b->block_size);
  assert_true (a->epoch == b->epoch);
  assert_int_equal (a->reserved, b->reserved);
  assert_int_equal (a->allow_same_zone, b->allow_same_zone);
  assert_int_equal (a->created, b->created);
  assert_int_equal (a->nreplicas, b->nreplicas);
  for (int i = 0; i < a->nreplicas; i++) {
    const struct reg_replica *x = &a->replicas[i], *y = &b->replicas[i];
    assert_string_equal (x->addr, y->addr);
    assert_string_equal (x->server, y->server);
    assert_string_equal (x->zone, y->zone);
    assert_int_equal (x->state, y->state);
    assert_true (x->out_of_sync_epoch == y->out_of_sync_epoch);
    assert_int_equal (x->out_of_sync_since, y->out_of_sync_since);
    assert_int_equal (x->full_copy, y->full_copy);
    assert_true (x->resync_total == y->resync_total);
    assert_true (x->resync_done == y->resync_done);
    assert_true (x->resync_rate == y->resync_rate);
  }
  assert_attachment_equal (&a->attachment, &b->attachment);
  assert_attachment_equal (&a->fenced, &b->fenced);
  assert_int_equal (a->chunk_size, b->chunk_size);
  assert_int_equal (a->cbt.valid, b->cbt.valid);
  assert_string_equal (a->cbt.base_url, b->cbt.base_url);
  assert_string_equal (a->cbt.base_name, b->cbt.base_name);
  assert_int_equal (a->restore.active, b->restore.active);
  assert_string_equal (a->restore.url, b->restore.url);
  assert_string_equal (a->restore.snapshot, b->restore.snapshot);
  assert_true (a->restore.chunks_total == b->restore.chunks_total);
  assert_true (a->restore.chunks_hydrated == b->restore.chunks_hydrated);
  assert_string_equal (a->restore.error, b->restore.error);
  assert_int_equal (a->nretired, b->nretired);
  for (int i = 0; i < a->nretired; i++) {
    assert_string_equal (a->retired[i].server, b->retired[i].server);
    assert_string_equal (a->retired[i].addr, b->retired[i].addr);
  }
}

static void
test_roundtrip_every_field (void **state)
{
  struct reg_volume v, g;
  struct error e = { 0 };

  full_volume (&v);
  assert_int_equal (reg_volume_check (&v, &e), 0);
  char *text = reg_volume_to_json (&v);
  assert_non_null (text);
  assert_int_equal (reg_volume_from_json (text, strlen (text), &g, &e), 0);
  assert_volume_equal (&v, &g);

  /* Written again, the document is the same text. */
  char *again = reg_volume_to_json (&g);
  assert_non_null (again);
  assert_string_equal (text, again);
  free (again);

  /* The document as status --json shows it: restore's state. */
  assert_non_null (strstr (text, "\"state\": \"failed\""));
  free (text);

  /* An in-sync replica has no resync progress; a hydrating restore. */
  v.replicas[1].state = REG_IN_SYNC;
  v.replicas[1].resync_total = v.replicas[1].resync_done = 0;
  v.replicas[1].resync_rate = 0;
  v.restore.error[0] = '\0';
  text = reg_volume_to_json (&v);
  assert_null (strstr (text, "\"resync\""));
  assert_non_null (strstr (text, "\"state\": \"hydrating\""));
  assert_int_equal (reg_volume_from_json (text, strlen (text), &g, &e), 0);
  assert_volume_equal (&v, &g);
  free (text);
}

static void
test_defaults (void **state)
{
  static const char minimal[] =
    "{\"format\": 1, \"name\": \"m\", \"size\": 4096, \"block_size\": 512,"
    " \"epoch\": 0, \"replicas\": [{\"addr\": \"h:1\", \"state\": \"in-sync\"}]}"
    "\n\t \r\n";
  struct reg_volume g;
  struct error e = { 0 };

  memset (&g, 0xee, sizeof g);  /* nothing may be left over */
  assert_int_equal (reg_volume_from_json (minimal, strlen (minimal), &g, &e),
                    0);
  assert_string_equal (g.name, "m");
  assert_string_equal (g.uuid, "");
  assert_int_equal (g.nreplicas, 1);
  assert_string_equal (g.replicas[0].server, "");
  assert_string_equal (g.replicas[0].zone, "");
  assert_false (g.replicas[0].full_copy);
  assert_false (g.reserved);
  assert_false (g.allow_same_zone);
  assert_false (g.attachment.attached);
  assert_false (g.fenced.attached);
  assert_int_equal (g.chunk_size, REG_DEFAULT_CHUNK_SIZE);
  assert_false (g.cbt.valid);
  assert_false (g.restore.active);
}

/* A minimal good record with one piece replaced: "%s" is spliced in
 * after "replicas" (so it may add or override keys).
 */
#define REC(extra)                                                        \
  "{\"format\": 1, \"name\": \"c\", \"size\": 4096, \"block_size\": 4096,"  \
  " \"epoch\": 1, \"replicas\": [{\"addr\": \"a:1\", \"state\": \"in-sync\"}]" \
  extra "}"

static void
test_rejects (void **state)
{
  static const struct { const char *text, *reason; } bad[] = {
    { "", "" },
    { "{", "truncated" },
    { "[1, 2]", "not a JSON object" },
    { REC ("") " {}", "trailing garbage" },
    { "{\"format\": 2, \"name\": \"c\"}", "key \"format\" is not 1" },
    { "{\"name\": \"c\"}", "key \"format\" missing" },
    { REC (", \"size\": -4096"), "key \"size\" is negative" },
    { REC (", \"size\": \"big\""), "key \"size\" has the wrong type" },
    { REC (", \"size\": 4097"), "multiple of block_size" },
    { REC (", \"block_size\": 4294971392"), "key \"block_size\" out of range" },
    { REC (", \"block_size\": 1000"), "power of two" },
    { REC (", \"name\": \"../x\""), "invalid volume name" },
    { REC (", \"uuid\": \"short\""), "uuid" },
    { REC (", \"epoch\": true"), "key \"epoch\" has the wrong type" },
    { REC (", \"reserved\": 1"), "key \"reserved\" has the wrong type" },
    { REC (", \"replicas\": []"), "1 to 8 replicas" },
    { REC (", \"replicas\": {}"), "key \"replicas\" has the wrong type" },
    { REC (", \"replicas\": [7]"), "element is not an object" },
    { REC (", \"retired\": [{\"server\": \"x\"}]"),
      "key \"retired[].addr\" missing" },
    { REC (", \"retired\": {}"), "key \"retired\" has the wrong type" },
    { REC (", \"retired\": [1]"), "element is not an object" },
    { REC (", \"replicas\": [{\"state\": \"in-sync\"}]"),
      "key \"replicas[].addr\" missing" },
    { REC (", \"replicas\": [{\"addr\": \"a:1\", \"state\": \"lost\"}]"),
      "key \"replicas[].state\"" },
    { REC (", \"replicas\": [{\"addr\": \"a:1\", \"state\": \"in-sync\","
           " \"resync\": {\"done\": 1}}]"),
      "key \"replicas[].resync.total\" missing" },
    { REC (", \"attachment\": 5"), "key \"attachment\" is neither null" },
    { REC (", \"attachment\": {\"host\": \"h\", \"pid\": 0, \"epoch\": 1}"),
      "key \"pid\" out of range" },
    { REC (", \"attachment\": {\"pid\": 5, \"epoch\": 1}"),
      "key \"host\" missing" },
    { REC (", \"fenced\": {\"host\": \"h\", \"pid\": 5}"),
      "key \"epoch\" missing" },
    { REC (", \"chunk_size\": 3000"), "key \"chunk_size\" is not a power" },
    { REC (", \"chunk_size\": 134217728"), "key \"chunk_size\"" },
    { REC (", \"cbt\": []"), "key \"cbt\" has the wrong type" },
    { REC (", \"restore\": 1"), "key \"restore\" has the wrong type" },
    { REC (", \"cbt\": {\"valid\": \"yes\"}"), "key \"cbt.valid\"" },
    { REC (", \"restore\": {\"url\": \"file:///x\"}"),
      "key \"restore.snapshot\" missing" },
    { REC (", \"restore\": {\"url\": \"u\", \"snapshot\": \"s\","
           " \"chunks_total\": 1, \"chunks_hydrated\": -1}"),
      "key \"restore.chunks_hydrated\" is negative" },
  };
  char toolong[600];

  for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
    struct reg_volume g;
    struct error e = { 0 };
    int r = reg_volume_from_json (bad[i].text, strlen (bad[i].text), &g, &e);
    if (r != -EBADMSG)
      fail_msg ("record #%zu accepted (%d): %s", i, r, bad[i].text);
    assert_int_equal (e.code, EBADMSG);
    assert_true (e.msg[0] != '\0');
    if (strstr (e.msg, bad[i].reason) == NULL)
      fail_msg ("record #%zu: reason \"%s\" does not say \"%s\"", i, e.msg,
                bad[i].reason);
  }

  /* A string longer than its field, and one with an embedded NUL. */
  snprintf (toolong, sizeof toolong, REC (", \"uuid\": \"%0300d\""), 0);
  struct reg_volume g;
  struct error e = { 0 };
  assert_int_equal (reg_volume_from_json (toolong, strlen (toolong), &g, &e),
                    -EBADMSG);
  assert_non_null (strstr (e.msg, "key \"uuid\" is too long"));
  static const char nul[] = REC (", \"uuid\": \"a\\u0000b\"");
  assert_int_equal (reg_volume_from_json (nul, strlen (nul), &g, &e),
                    -EBADMSG);
  assert_non_null (strstr (e.msg, "contains NUL"));

  /* Only len bytes are read: a good record cut short is truncated. */
  static const char good[] = REC ("");
  assert_int_equal (reg_volume_from_json (good, strlen (good), &g, &e), 0);
  assert_int_equal (reg_volume_from_json (good, strlen (good) - 1, &g, &e),
                    -EBADMSG);

  /* NULL err is allowed. */
  assert_int_equal (reg_volume_from_json ("x", 1, &g, NULL), -EBADMSG);
}

static void
test_check (void **state)
{
  struct reg_volume v;
  struct error e = { 0 };

  full_volume (&v);
  assert_int_equal (reg_volume_check (&v, NULL), 0);

#define REFUSED(change, reason)                                          \
  do {                                                                   \
    full_volume (&v);                                                    \
    change;                                                              \
    e = (struct error) { 0 };                                            \
    assert_int_equal (reg_volume_check (&v, &e), -EINVAL);               \
    assert_int_equal (e.code, EINVAL);                                   \
    assert_non_null (strstr (e.msg, reason));                            \
  } while (0)

  REFUSED (v.name[0] = '\0', "name");
  REFUSED (strcpy (v.name, ".lock"), "name");
  REFUSED (strcpy (v.uuid, "abc"), "uuid");
  REFUSED (v.block_size = 256, "block_size");
  REFUSED (v.block_size = 131072, "block_size");
  REFUSED (v.size = 0, "size");
  REFUSED (v.size = 65536 + 512, "size");
  REFUSED (v.nreplicas = 0, "replicas");
  REFUSED (v.nreplicas = REG_MAX_REPLICAS + 1, "replicas");
  REFUSED (v.replicas[2].addr[0] = '\0', "addr");
  REFUSED (memset (v.replicas[0].addr, 'x', REG_ADDR_MAX), "addr");
  REFUSED (v.replicas[0].state = 7, "state");
  REFUSED (v.attachment.pid = 0, "attachment");
  REFUSED (v.attachment.host[0] = '\0', "attachment");
  /* An empty uuid is allowed (records from before uuids). */
  full_volume (&v);
  v.uuid[0] = '\0';
  assert_int_equal (reg_volume_check (&v, &e), 0);
}

/* reg_volume_json, what status --json prints, is the stored document. */
static void
test_json_object (void **state)
{
  struct reg_volume v;

  full_volume (&v);
  json_object *o = reg_volume_json (&v), *m;
  assert_non_null (o);
  assert_true (json_object_object_get_ex (o, "format", &m));
  assert_int_equal (json_object_get_int (m), 1);
  assert_true (json_object_object_get_ex (o, "size", &m));
  assert_true (json_object_get_uint64 (m) == v.size);
  assert_true (json_object_object_get_ex (o, "replicas", &m));
  assert_int_equal (json_object_array_length (m), 3);
  json_object_put (o);

  v.attachment.attached = false;
  v.fenced.attached = false;
  o = reg_volume_json (&v);
  assert_true (json_object_object_get_ex (o, "attachment", &m));
  assert_null (m);
  json_object_put (o);
}

static int
no_call (struct reg_volume *v, void *arg)
{
  fail_msg ("update callback called for a refused name");
  return 0;
}

/* The entry points refuse bad arguments before the backend (whose
 * directory does not even exist here) is asked anything.
 */
static void
test_entry_point_checks (void **state)
{
  struct error e = { 0 };
  struct registry *r = registry_open ("/nonexistent/test_registry_codec",
                                      &e);
  struct reg_volume v;
  void *data;
  size_t len;
  char **names;
  int n;

  assert_non_null (r);
  static const char *const bad_names[] = { "", "../etc", ".lock", "a/b",
                                           "sp ace" };
  for (size_t i = 0; i < ARRAY_SIZE (bad_names); i++) {
    const char *name = bad_names[i];
    assert_int_equal (registry_get (r, name, &v, &e), -ENOENT);
    assert_int_equal (e.code, ENOENT);
    assert_int_equal (registry_update (r, name, no_call, NULL, &e), -ENOENT);
    assert_int_equal (registry_remove (r, name, &e), -ENOENT);
    assert_int_equal (registry_blob_get (r, name, "cbt", &data, &len, &e),
                      -EINVAL);
    assert_int_equal (registry_blob_put (r, name, "cbt", "x", 1, &e),
                      -EINVAL);
    assert_int_equal (registry_blob_remove (r, name, "cbt", &e), -EINVAL);
  }
  assert_int_equal (registry_get (r, NULL, &v, &e), -ENOENT);
  assert_int_equal (registry_get (r, "ok", NULL, &e), -EINVAL);
  assert_int_equal (registry_update (r, "ok", NULL, NULL, &e), -EINVAL);
  assert_int_equal (registry_create (r, NULL, &e), -EINVAL);
  assert_int_equal (registry_list (r, NULL, &n, &e), -EINVAL);
  assert_int_equal (registry_blob_put (r, "ok", "../x", "x", 1, &e), -EINVAL);
  assert_non_null (strstr (e.msg, "kind"));
  assert_int_equal (registry_blob_put (r, "ok", "cbt", NULL, 1, &e), -EINVAL);
  assert_int_equal (registry_blob_get (r, "ok", NULL, &data, &len, &e),
                    -EINVAL);
  assert_int_equal (registry_blob_get (r, "ok", "cbt", NULL, &len, &e),
                    -EINVAL);

  /* Good arguments reach the backend: no directory, no volumes. */
  assert_int_equal (registry_list (r, &names, &n, &e), 0);
  assert_int_equal (n, 0);
  assert_int_equal (registry_get (r, "ok", &v, &e), -ENOENT);
  assert_non_null (strstr (e.msg, "/nonexistent/test_registry_codec"));
  registry_close (r);

  /* Locations. */
  e = (struct error) { 0 };
  r = registry_open ("etcd://127.0.0.1:2379", &e);
  assert_non_null (r);
  registry_close (r);
  assert_null (registry_open ("etcd://127.0.0.1:x/p", &e));
  assert_int_equal (e.code, EINVAL);
  assert_non_null (strstr (e.msg, "bad port"));
  assert_null (registry_open ("ftp://x", &e));
  assert_int_equal (e.code, EINVAL);
  assert_null (registry_open ("/dev/null", &e));
  assert_int_equal (e.code, ENOTDIR);
  assert_non_null (strstr (e.msg, "/dev/null"));
}

int
main (void)
{
  log_init ("test_registry_codec");
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_roundtrip_every_field),
    cmocka_unit_test (test_defaults),
    cmocka_unit_test (test_rejects),
    cmocka_unit_test (test_check),
    cmocka_unit_test (test_json_object),
    cmocka_unit_test (test_entry_point_checks),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
