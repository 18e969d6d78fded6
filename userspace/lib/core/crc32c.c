/* crc32c.c - CRC-32C (Castagnoli), the checksum on every payload of the
 * replication protocol, through ISA-L's crc32_iscsi (PCLMUL folding:
 * about 20 us per MiB here, against 130 us for one crc32 instruction
 * at a time, which made checksums the largest cost of 1 MiB writes).
 */
#include <limits.h>
#include <isa-l/crc.h>

#include "core/util.h"

uint32_t
crc32c (uint32_t crc, const void *buf, size_t len)
{
  const unsigned char *p = buf;

  /* ISA-L keeps the register un-inverted and takes an int length. */
  crc = ~crc;
  while (len > 0) {
    int n = len > INT_MAX ? INT_MAX : (int) len;
    crc = crc32_iscsi ((unsigned char *) p, n, crc);
    p += n;
    len -= n;
  }
  return ~crc;
}
