/* crc32c.c - CRC-32C (Castagnoli), the checksum on every payload of the
 * replication protocol.  Uses the SSE4.2 crc32 instruction when the CPU
 * has it (about 20 GB/s, so checksumming is never the bottleneck), and a
 * slicing-by-1 table otherwise.
 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "util.h"

static uint32_t table[256];

static void
init_table (void)
{
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = c & 1 ? (c >> 1) ^ 0x82f63b78 : c >> 1;
    table[i] = c;
  }
}

static uint32_t
crc32c_sw (uint32_t crc, const unsigned char *p, size_t len)
{
  while (len--)
    crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__ ((target ("sse4.2")))
static uint32_t
crc32c_hw (uint32_t crc, const unsigned char *p, size_t len)
{
  uint64_t c = crc;
  while (len >= 8) {
    uint64_t v;
    memcpy (&v, p, 8);
    c = __builtin_ia32_crc32di (c, v);
    p += 8;
    len -= 8;
  }
  crc = c;
  while (len--)
    crc = __builtin_ia32_crc32qi (crc, *p++);
  return crc;
}
#endif

static uint32_t (*impl) (uint32_t, const unsigned char *, size_t);

uint32_t
crc32c (uint32_t crc, const void *buf, size_t len)
{
  if (impl == NULL) {
    init_table ();
    impl = crc32c_sw;
#if defined(__x86_64__)
    __builtin_cpu_init ();
    if (__builtin_cpu_supports ("sse4.2"))
      impl = crc32c_hw;
#endif
  }
  return ~impl (~crc, buf, len);
}
