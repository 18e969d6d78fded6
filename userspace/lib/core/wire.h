/* wire.h - unaligned fixed-width integers in byte buffers, for the
 * codecs (replication protocol and replica metadata: little-endian;
 * NBD: big-endian).
 */
#ifndef REPVOL_WIRE_H
#define REPVOL_WIRE_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

#define WIRE_ACCESSORS(order)                                           \
  static inline void put##order##16 (void *p, uint16_t v)            \
  { v = hto##order##16 (v); memcpy (p, &v, 2); }                        \
  static inline void put##order##32 (void *p, uint32_t v)            \
  { v = hto##order##32 (v); memcpy (p, &v, 4); }                        \
  static inline void put##order##64 (void *p, uint64_t v)            \
  { v = hto##order##64 (v); memcpy (p, &v, 8); }                        \
  static inline uint16_t get##order##16 (const void *p)              \
  { uint16_t v; memcpy (&v, p, 2); return order##16toh (v); }           \
  static inline uint32_t get##order##32 (const void *p)              \
  { uint32_t v; memcpy (&v, p, 4); return order##32toh (v); }           \
  static inline uint64_t get##order##64 (const void *p)              \
  { uint64_t v; memcpy (&v, p, 8); return order##64toh (v); }

WIRE_ACCESSORS (le)             /* putle32, getle64, ... */
WIRE_ACCESSORS (be)             /* putbe32, getbe64, ... */

#undef WIRE_ACCESSORS
#endif
