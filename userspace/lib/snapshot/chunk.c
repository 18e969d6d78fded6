/* chunk.c - a snapshot's chunks: names (the hex SHA-256 of the content,
 * keyed chunks/HH/HEX), hashing, and the codec (one zstd frame with its
 * content size and checksum, checked against the hash on the way back).
 * See catalog.h and man/repvol-snapshot.5, "CHUNK FORMAT".
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zstd.h>

#include "snapshot/catalog.h"

/* ---- names ----------------------------------------------------------- */

void
hash_to_hex (const uint8_t hash[CHUNK_HASH_LEN], char hex[CHUNK_HEX_LEN + 1])
{
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < CHUNK_HASH_LEN; i++) {
    hex[2 * i] = digits[hash[i] >> 4];
    hex[2 * i + 1] = digits[hash[i] & 15];
  }
  hex[CHUNK_HEX_LEN] = '\0';
}

static int
hexval (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;                    /* upper case too: keys are case sensitive */
}

int
hex_to_hash (const char *hex, uint8_t hash[CHUNK_HASH_LEN])
{
  if (strnlen (hex, CHUNK_HEX_LEN + 1) != CHUNK_HEX_LEN)
    return -EINVAL;
  for (int i = 0; i < CHUNK_HASH_LEN; i++) {
    int hi = hexval (hex[2 * i]), lo = hexval (hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return -EINVAL;
    hash[i] = hi << 4 | lo;
  }
  return 0;
}

void
chunk_key (const uint8_t hash[CHUNK_HASH_LEN], char key[OBJ_KEY_MAX])
{
  char hex[CHUNK_HEX_LEN + 1];
  hash_to_hex (hash, hex);
  snprintf (key, OBJ_KEY_MAX, "chunks/%.2s/%s", hex, hex);
}

/* ---- content --------------------------------------------------------- */

void
chunk_hash (const void *data, size_t len, uint8_t hash[CHUNK_HASH_LEN])
{
  unsigned int n = CHUNK_HASH_LEN;
  if (EVP_Digest (data, len, hash, &n, EVP_sha256 (), NULL) != 1) {
    /* Only on a broken libcrypto; a hash nothing matches fails safe. */
    memset (hash, 0xff, CHUNK_HASH_LEN);
  }
}

/* ---- the codec ------------------------------------------------------- */

int
chunk_encode (const void *data, size_t len, int level, void **out,
              size_t *out_len)
{
  ZSTD_CCtx *cx = ZSTD_createCCtx ();
  size_t cap = ZSTD_compressBound (len);
  void *buf = malloc (cap);
  if (cx == NULL || buf == NULL)
    goto fail;
  if (ZSTD_isError (ZSTD_CCtx_setParameter (cx, ZSTD_c_compressionLevel,
                                            level)) ||
      ZSTD_isError (ZSTD_CCtx_setParameter (cx, ZSTD_c_checksumFlag, 1)))
    goto fail;
  /* compress2 knows len up front, so the frame records the content
   * size that chunk_decode checks.
   */
  size_t n = ZSTD_compress2 (cx, buf, cap, data, len);
  if (ZSTD_isError (n))
    goto fail;
  ZSTD_freeCCtx (cx);
  *out = buf;
  *out_len = n;
  return 0;
 fail:
  ZSTD_freeCCtx (cx);
  free (buf);
  return -ENOMEM;
}

/* A chunk that is not what we wrote: -EILSEQ, with why. */
static int
corrupt (struct error *err, const char *key, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

static int
corrupt (struct error *err, const char *key, const char *fmt, ...)
{
  char what[sizeof err->msg];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (what, sizeof what, fmt, ap);
  va_end (ap);
  return error_set (err, EILSEQ, "chunk %s: %s", key, what);
}

int
chunk_decode (const void *obj, size_t obj_len,
              const uint8_t hash[CHUNK_HASH_LEN], void *out,
              size_t out_len, struct error *err)
{
  char key[OBJ_KEY_MAX];
  chunk_key (hash, key);

  unsigned long long csize = ZSTD_getFrameContentSize (obj, obj_len);
  if (csize == ZSTD_CONTENTSIZE_ERROR)
    return corrupt (err, key, "not a zstd frame (corrupt)");
  if (csize == ZSTD_CONTENTSIZE_UNKNOWN)
    return corrupt (err, key, "zstd frame without its content size");
  if (csize != out_len)
    return corrupt (err, key, "holds %llu bytes, expected %zu", csize,
                    out_len);
  /* Exactly one frame: trailing bytes mean the object is not what we
   * wrote.
   */
  size_t flen = ZSTD_findFrameCompressedSize (obj, obj_len);
  if (ZSTD_isError (flen) || flen != obj_len)
    return corrupt (err, key, "%s (corrupt)", ZSTD_isError (flen)
                    ? ZSTD_getErrorName (flen) : "data after the zstd frame");
  size_t n = ZSTD_decompress (out, out_len, obj, obj_len);
  if (ZSTD_isError (n))
    return corrupt (err, key, "%s (corrupt)", ZSTD_getErrorName (n));
  if (n != out_len)
    return corrupt (err, key, "decompressed to %zu bytes, expected %zu",
                    n, out_len);
  uint8_t h[CHUNK_HASH_LEN];
  chunk_hash (out, out_len, h);
  if (memcmp (h, hash, CHUNK_HASH_LEN) != 0)
    return corrupt (err, key,
                    "content does not match its hash (corrupt)");
  return 0;
}
