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
                      const char **why)
{
  uint32_t v;

  if (len < 16 || len < length || crc_off + 4 > length) {
    *why = "truncated";
    return -1;
  }
  if (getle64 (in) != magic) {
    *why = "bad magic (not a file of this kind)";
    return -1;
  }
  v = getle32 (in + 8);
  if (v != version) {
    *why = v > version ? "unsupported version (written by a newer repvold?)"
      : "unsupported version";
    return -1;
  }
  if (getle32 (in + 12) != length) {
    *why = "wrong header length";
    return -1;
  }
  if (getle32 (in + crc_off) != crc32c (0, in, crc_off)) {
    *why = "checksum mismatch";
    return -1;
  }
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

int
store_meta_check (const struct store_meta *m, const char **why)
{
  if (!valid_name (m->name))
    *why = "invalid volume name";
  else if (m->block_size < 512 || m->block_size > 65536 ||
           (m->block_size & (m->block_size - 1)))
    *why = "block size not a power of two in 512..65536";
  else if (m->size == 0 || m->size % m->block_size)
    *why = "size zero or not a multiple of the block size";
  else if (m->size > (UINT64_C (1) << 60))
    *why = "size too large";
  else if (m->flags & ~STORE_F_KNOWN)
    *why = "unknown flags";
  else if (m->state > STORE_STATE_MAX)
    *why = "unknown state";
  else
    return 0;
  return -1;
}

int
store_meta_decode (const uint8_t *in, size_t len, struct store_meta *m,
                   const char **why)
{
  if (store_file_hdr_check (in, len, META_MAGIC, STORE_META_VERSION,
                            STORE_META_SIZE, META_CRC_OFF, why) == -1)
    return -1;
  if (len != STORE_META_SIZE) {
    *why = "wrong length";
    return -1;
  }
  if (memchr (in + 16, '\0', STORE_NAME_MAX) == NULL) {
    *why = "name not terminated";
    return -1;
  }
  if (getle32 (in + 124) != 0) {
    *why = "reserved field not zero";
    return -1;
  }
  for (size_t i = 136; i < META_CRC_OFF; i++)
    if (in[i]) {
      *why = "reserved bytes not zero";
      return -1;
    }

  memset (m, 0, sizeof *m);
  memcpy (m->name, in + 16, STORE_NAME_MAX);
  memcpy (m->uuid, in + 80, 16);
  m->size = getle64 (in + 96);
  m->block_size = getle32 (in + 104);
  m->flags = getle32 (in + 108);
  m->epoch = getle64 (in + 112);
  m->state = getle32 (in + 120);
  m->created = getle64 (in + 128);
  return store_meta_check (m, why);
}

int
store_meta_write (int dirfd, const struct store_meta *m)
{
  uint8_t buf[STORE_META_SIZE];
  char tmp[STORE_PATH_MAX], dst[STORE_PATH_MAX];

  store_meta_encode (m, buf);
  store_file_names (m->name, ".meta", dst, tmp);
  return atomic_replace (dirfd, dst, tmp, buf, sizeof buf, 0644);
}

int
store_meta_read (int dirfd, const char *name, struct store_meta *m,
                 const char **why)
{
  uint8_t buf[STORE_META_SIZE + 1];
  char path[STORE_PATH_MAX];
  ssize_t n;
  size_t got = 0;
  int fd;

  store_file_names (name, ".meta", path, NULL);
  fd = openat (dirfd, path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    *why = strerror (errno);
    return -errno;
  }
  /* Read one byte more than a record so an overlong file is noticed. */
  while (got < sizeof buf && (n = read (fd, buf + got, sizeof buf - got)) != 0) {
    if (n == -1) {
      if (errno == EINTR) continue;
      int err = errno;
      *why = strerror (err);
      close (fd);
      return -err;
    }
    got += n;
  }
  close (fd);
  if (store_meta_decode (buf, got, m, why) == -1)
    return -EBADMSG;
  if (strcmp (m->name, name) != 0) {
    *why = "name inside does not match the file name";
    return -EBADMSG;
  }
  return 0;
}
