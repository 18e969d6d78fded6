/* meta.c - the replica metadata file: codec and atomic replacement.
 *
 * Layout (STORE_META_SIZE bytes, little-endian):
 *
 *     0  u64  magic "RVOLMETA"
 *     8  u32  version (STORE_META_VERSION)
 *    12  u32  length of this record (STORE_META_SIZE)
 *    16  char name[64], NUL terminated
 *    80  u8   uuid[16]
 *    96  u64  size
 *   104  u32  block_size
 *   108  u32  flags
 *   112  u64  epoch
 *   120  u32  state
 *   124  u32  zero
 *   128  u64  created
 *   136       zero up to 252
 *   252  u32  crc32c of bytes 0..251
 *
 * Unknown versions are refused rather than guessed at: a newer repvold
 * adding fields bumps the version.  Reserved bytes must be zero so a
 * file written by something else cannot pass by accident.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "core/fsutil.h"
#include "core/wire.h"
#include "store/store.h"
#include "store/store_internal.h"

#define META_MAGIC   0x4154454d4c4f5652ULL      /* "RVOLMETA" */
#define META_CRC_OFF (STORE_META_SIZE - 4)

void
store_file_names (const char *name, const char *suffix,
                  char path[STORE_PATH_MAX], char *tmp)
{
  snprintf (path, STORE_PATH_MAX, "%s%s", name, suffix);
  if (tmp)
    snprintf (tmp, STORE_PATH_MAX, ".%s%s.tmp", name, suffix);
}

int
store_file_hdr_check (const uint8_t *in, size_t len, uint64_t magic,
                      uint32_t version, uint32_t length, size_t crc_off,
                      struct error *err)
{
  uint32_t v;

  if (len < 16 || len < length || crc_off + 4 > length)
    return error_set (err, EBADMSG, "truncated");
  if (getle64 (in) != magic)
    return error_set (err, EBADMSG, "bad magic (not a file of this kind)");
  v = getle32 (in + 8);
  if (v != version)
    return error_set (err, EBADMSG, "%s", v > version
                      ? "unsupported version (written by a newer repvold?)"
                      : "unsupported version");
  if (getle32 (in + 12) != length)
    return error_set (err, EBADMSG, "wrong header length");
  if (getle32 (in + crc_off) != crc32c (0, in, crc_off))
    return error_set (err, EBADMSG, "checksum mismatch");
  return 0;
}

void
store_meta_encode (const struct store_meta *m, uint8_t out[STORE_META_SIZE])
{
  memset (out, 0, STORE_META_SIZE);
  putle64 (out + 0, META_MAGIC);
  putle32 (out + 8, STORE_META_VERSION);
  putle32 (out + 12, STORE_META_SIZE);
  memcpy (out + 16, m->name, strnlen (m->name, STORE_NAME_MAX - 1));
  memcpy (out + 80, m->uuid, 16);
  putle64 (out + 96, m->size);
  putle32 (out + 104, m->block_size);
  putle32 (out + 108, m->flags);
  putle64 (out + 112, m->epoch);
  putle32 (out + 120, m->state);
  putle64 (out + 128, m->created);
  putle32 (out + META_CRC_OFF, crc32c (0, out, META_CRC_OFF));
}

/* What is wrong with m's fields, or NULL. */
static const char *
meta_fields_bad (const struct store_meta *m)
{
  if (!valid_name (m->name))
    return "invalid volume name";
  if (m->block_size < 512 || m->block_size > 65536 ||
      (m->block_size & (m->block_size - 1)))
    return "block size not a power of two in 512..65536";
  if (m->size == 0 || m->size % m->block_size)
    return "size zero or not a multiple of the block size";
  if (m->size > STORE_MAX_SIZE)
    return "size over this server's maximum of " STORE_MAX_SIZE_STR;
  if (m->flags & ~STORE_F_KNOWN)
    return "unknown flags";
  if (m->state > STORE_STATE_MAX)
    return "unknown state";
  return NULL;
}

int
store_meta_check (const struct store_meta *m, struct error *err)
{
  const char *why = meta_fields_bad (m);
  return why ? error_set (err, EINVAL, "%s", why) : 0;
}

int
store_meta_decode (const uint8_t *in, size_t len, struct store_meta *m,
                   struct error *err)
{
  int r;

  r = store_file_hdr_check (in, len, META_MAGIC, STORE_META_VERSION,
                            STORE_META_SIZE, META_CRC_OFF, err);
  if (r < 0)
    return r;
  if (len != STORE_META_SIZE)
    return error_set (err, EBADMSG, "wrong length");
  if (memchr (in + 16, '\0', STORE_NAME_MAX) == NULL)
    return error_set (err, EBADMSG, "name not terminated");
  if (getle32 (in + 124) != 0)
    return error_set (err, EBADMSG, "reserved field not zero");
  for (size_t i = 136; i < META_CRC_OFF; i++)
    if (in[i])
      return error_set (err, EBADMSG, "reserved bytes not zero");

  memset (m, 0, sizeof *m);
  memcpy (m->name, in + 16, STORE_NAME_MAX);
  memcpy (m->uuid, in + 80, 16);
  m->size = getle64 (in + 96);
  m->block_size = getle32 (in + 104);
  m->flags = getle32 (in + 108);
  m->epoch = getle64 (in + 112);
  m->state = getle32 (in + 120);
  m->created = getle64 (in + 128);
  const char *why = meta_fields_bad (m);
  return why ? error_set (err, EBADMSG, "%s", why) : 0;
}

int
store_meta_write (int dirfd, const struct store_meta *m)
{
  uint8_t buf[STORE_META_SIZE];
  char tmp[STORE_PATH_MAX], dst[STORE_PATH_MAX];

  store_meta_encode (m, buf);
  store_file_names (m->name, ".meta", dst, tmp);
  return atomic_replace (dirfd, dst, tmp, buf, sizeof buf, 0600);
}

int
store_meta_read (int dirfd, const char *name, struct store_meta *m,
                 struct error *err)
{
  uint8_t buf[STORE_META_SIZE + 1];
  char path[STORE_PATH_MAX];
  ssize_t n;
  size_t got = 0;
  int fd, r;

  store_file_names (name, ".meta", path, NULL);
  fd = openat (dirfd, path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return error_set (err, errno, "%s", strerror (errno));
  /* Read one byte more than a record so an overlong file is noticed. */
  while (got < sizeof buf && (n = read (fd, buf + got, sizeof buf - got)) != 0) {
    if (n == -1) {
      if (errno == EINTR) continue;
      r = error_set (err, errno, "%s", strerror (errno));
      close (fd);
      return r;
    }
    got += n;
  }
  close (fd);
  r = store_meta_decode (buf, got, m, err);
  if (r < 0)
    return r;
  if (strcmp (m->name, name) != 0)
    return error_set (err, EBADMSG, "name inside does not match the file name");
  return 0;
}
