/* probe.c - filesystem signatures on a volume, from one replica's bytes.
 *
 * Reading must not disturb an attached volume.  It does not: the read
 * goes over an admin connection (RV_HELLO_ADMIN, epoch 0), and
 * repvold neither checks nor records the epoch of admin connections
 * (only a data HELLO moves a volume's epoch, which would fence the
 * current attach, and only a data HELLO below the volume's epoch is
 * refused).  Admin connections may READ but never write, so nothing we
 * do can change the volume.  What we see of a volume in use is what the
 * replica holds at that moment: enough to find a superblock, not a
 * consistent snapshot.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <blkid/blkid.h>

#include "core/util.h"
#include "core/fsutil.h"
#include "replica/probe.h"
#include "replica/admin.h"

/* Copy the first and the last MiB of v from the replica at addr into fd
 * at their offsets; the last too, since some signatures sit at the end
 * (MD 0.90 and 1.0 superblocks, ZFS labels, GPT's backup header).
 * 0 or -errno with err set.
 */
static int
read_ends (const struct reg_volume *v, const char *addr, int fd,
           int timeout_ms, struct error *err)
{
  struct replica_admin ra;
  uint64_t head = MIN (v->size, (uint64_t) PROBE_SPAN), tail_off = 0;
  uint32_t bs = v->block_size ? v->block_size : 1;
  void *buf = NULL;
  int r;

  if (v->size > PROBE_SPAN) {
    tail_off = v->size - PROBE_SPAN;
    tail_off -= tail_off % bs;  /* reads must be block aligned */
    tail_off = MAX (tail_off, head);
  }
  head -= head % bs;
  if (posix_memalign (&buf, 4096, PROBE_SPAN) != 0)
    return error_set (err, ENOMEM, "out of memory");
  r = replica_admin_open (&ra, addr, v->name, timeout_ms, err);
  if (r < 0)
    goto out;
  if (head && (r = replica_admin_read (&ra, 0, buf, head, err)) == 0 &&
      (r = pwrite_full (fd, buf, head, 0)) < 0)
    error_set (err, -r, "memfd: %s", strerror (-r));
  if (r == 0 && tail_off) {
    uint32_t len = v->size - tail_off;
    len -= len % bs;
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
