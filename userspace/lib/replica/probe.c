/* probe.c - filesystem signatures on a volume, from its first and last
 * MiB.
 *
 * A detached volume is read from one in-sync replica over an admin
 * connection (RV_HELLO_ADMIN, epoch 0), which neither moves nor checks
 * the epoch.  An attached one is not: admin connections never read an
 * attached volume's data (repvold refuses with RV_EBUSY; docs/DESIGN.md,
 * "Trust"), so its attach reads the two ends through its engine and
 * answers "contents" on its control socket (attach/attach_probe.c),
 * with the JSON line volume_contents_to_json writes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <blkid/blkid.h>
#include <json-c/json.h>

#include "core/util.h"
#include "core/fsutil.h"
#include "replica/probe.h"
#include "replica/admin.h"

/* Copy the first and the last MiB of v from the replica at addr into fd
 * at their offsets; the last too, since some signatures sit at the end
 * (MD 0.90 and 1.0 superblocks, ZFS labels, GPT's backup header).
 * 0 or -errno with err set.
 */
void
probe_geometry (uint64_t size, uint32_t block_size, uint32_t *head,
                uint64_t *tail_off, uint32_t *tail_len)
{
  uint32_t bs = block_size ? block_size : 1;
  uint64_t h = MIN (size, (uint64_t) PROBE_SPAN), off = 0, len = 0;

  if (size > PROBE_SPAN) {
    off = size - PROBE_SPAN;
    off -= off % bs;            /* reads must be block aligned */
    off = MAX (off, h);
    len = size - off;
    len -= len % bs;
  }
  h -= h % bs;
  *head = h;
  *tail_off = off;
  *tail_len = len;
}

static int
read_ends (const struct reg_volume *v, const char *addr, int fd,
           int timeout_ms, struct error *err)
{
  struct replica_admin ra;
  uint32_t head, len;
  uint64_t tail_off;
  void *buf = NULL;
  int r;

  probe_geometry (v->size, v->block_size, &head, &tail_off, &len);
  if (posix_memalign (&buf, 4096, PROBE_SPAN) != 0)
    return error_set (err, ENOMEM, "out of memory");
  r = replica_admin_open (&ra, addr, v->name, timeout_ms, err);
  if (r < 0)
    goto out;
  if (head && (r = replica_admin_read (&ra, 0, buf, head, err)) == 0 &&
      (r = pwrite_full (fd, buf, head, 0)) < 0)
    error_set (err, -r, "memfd: %s", strerror (-r));
  if (r == 0 && tail_off) {
    if (len && (r = replica_admin_read (&ra, tail_off, buf, len, err)) == 0 &&
        (r = pwrite_full (fd, buf, len, tail_off)) < 0)
      error_set (err, -r, "memfd: %s", strerror (-r));
  }
  replica_admin_close (&ra);
 out:
  free (buf);
  return r;
}

static void
copy_value (blkid_probe pr, const char *name, char *out, size_t len)
{
  const char *val = NULL;

  out[0] = '\0';
  if (blkid_probe_lookup_value (pr, name, &val, NULL) == 0 && val)
    snprintf (out, len, "%s", val);
}

/* Run libblkid over fd (the volume's image). */
static void
blkid_contents (int fd, struct volume_contents *c)
{
  blkid_probe pr = blkid_new_probe ();
  int rc;

  if (!pr || blkid_probe_set_device (pr, fd, 0, 0) != 0) {
    snprintf (c->why, sizeof c->why, "libblkid cannot probe the image");
    goto out;
  }
  blkid_probe_enable_superblocks (pr, 1);
  blkid_probe_set_superblocks_flags (pr, BLKID_SUBLKS_TYPE |
                                     BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID);
  blkid_probe_enable_partitions (pr, 1);
  blkid_probe_set_partitions_flags (pr, BLKID_PARTS_ENTRY_DETAILS);
  rc = blkid_do_safeprobe (pr);
  c->known = true;
  if (rc == -2) {
    snprintf (c->why, sizeof c->why, "several conflicting signatures");
    goto out;
  }
  if (rc != 0) {
    if (rc < 0)
      c->known = false;
    snprintf (c->why, sizeof c->why, rc == 1 ? "no filesystem signature"
              : "libblkid failed to probe the image");
    goto out;
  }
  copy_value (pr, "TYPE", c->type, sizeof c->type);
  copy_value (pr, "LABEL", c->label, sizeof c->label);
  copy_value (pr, "UUID", c->uuid, sizeof c->uuid);
  copy_value (pr, "PTTYPE", c->pttype, sizeof c->pttype);
  if (!c->uuid[0])
    copy_value (pr, "PTUUID", c->uuid, sizeof c->uuid);
  c->found = c->type[0] || c->pttype[0];
  if (!c->found)
    snprintf (c->why, sizeof c->why, "no filesystem signature");
 out:
  if (pr)
    blkid_free_probe (pr);
}

void
probe_image_contents (uint64_t size, const void *head, uint32_t head_len,
                      const void *tail, uint64_t tail_off, uint32_t tail_len,
                      struct volume_contents *c)
{
  int fd, r = 0;

  memset (c, 0, sizeof *c);
  fd = memfd_create ("repvol-probe", MFD_CLOEXEC);
  if (fd == -1 || ftruncate (fd, size) == -1 ||
      (head_len && (r = pwrite_full (fd, head, head_len, 0)) < 0) ||
      (tail_len && (r = pwrite_full (fd, tail, tail_len, tail_off)) < 0)) {
    snprintf (c->why, sizeof c->why, "memfd: %s",
              strerror (r < 0 ? -r : errno));
    if (fd != -1)
      close (fd);
    return;
  }
  blkid_contents (fd, c);
  close (fd);
}

char *
volume_contents_to_json (const struct volume_contents *c)
{
  json_object *o = json_object_new_object ();
  char *s;

  json_object_object_add (o, "known", json_object_new_boolean (c->known));
  json_object_object_add (o, "found", json_object_new_boolean (c->found));
  json_object_object_add (o, "type", json_object_new_string (c->type));
  json_object_object_add (o, "label", json_object_new_string (c->label));
  json_object_object_add (o, "uuid", json_object_new_string (c->uuid));
  json_object_object_add (o, "pttype", json_object_new_string (c->pttype));
  json_object_object_add (o, "why", json_object_new_string (c->why));
  s = strdup (json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN));
  json_object_put (o);
  return s;
}

static void
copy_str (json_object *o, const char *key, char *out, size_t len)
{
  json_object *m;
  out[0] = '\0';
  if (json_object_object_get_ex (o, key, &m) &&
      json_object_is_type (m, json_type_string))
    snprintf (out, len, "%s", json_object_get_string (m));
}

int
volume_contents_from_json (const char *line, struct volume_contents *c)
{
  json_object *o = json_tokener_parse (line), *m;

  memset (c, 0, sizeof *c);
  if (!o || !json_object_is_type (o, json_type_object)) {
    json_object_put (o);
    return -EINVAL;
  }
  c->known = json_object_object_get_ex (o, "known", &m) &&
    json_object_get_boolean (m);
  c->found = json_object_object_get_ex (o, "found", &m) &&
    json_object_get_boolean (m);
  copy_str (o, "type", c->type, sizeof c->type);
  copy_str (o, "label", c->label, sizeof c->label);
  copy_str (o, "uuid", c->uuid, sizeof c->uuid);
  copy_str (o, "pttype", c->pttype, sizeof c->pttype);
  copy_str (o, "why", c->why, sizeof c->why);
  json_object_put (o);
  return 0;
}

void
probe_volume_contents (const struct reg_volume *v, int timeout_ms,
                       const bool *skip, struct volume_contents *c)
{
  char tried[256] = "";
  size_t n = 0;
  int fd;

  memset (c, 0, sizeof *c);
  fd = memfd_create ("repvol-probe", MFD_CLOEXEC);
  if (fd == -1 || ftruncate (fd, v->size) == -1) {
    snprintf (c->why, sizeof c->why, "memfd: %s", strerror (errno));
    if (fd != -1)
      close (fd);
    return;
  }
  /* Only a replica the registry lists in sync holds current data; the
   * first that answers is enough.
   */
  for (int i = 0; i < v->nreplicas; i++) {
    const char *addr = v->replicas[i].addr;
    if (v->replicas[i].state != REG_IN_SYNC)
      continue;
    if (skip && skip[i]) {
      if (n < sizeof tried)
        n += snprintf (tried + n, sizeof tried - n, "%s%s: unreachable",
                       n ? "; " : "", addr);
      continue;
    }
    struct error err = { 0 };
    if (read_ends (v, addr, fd, timeout_ms, &err) == 0) {
      blkid_contents (fd, c);
      close (fd);
      return;
    }
    if (n < sizeof tried)
      n += snprintf (tried + n, sizeof tried - n, "%s%s: %s",
                     n ? "; " : "", addr, error_msg (&err));
  }
  snprintf (c->why, sizeof c->why, "no in-sync replica answered%s%s%s",
            n ? " (" : "", tried, n ? ")" : "");
  close (fd);
}
