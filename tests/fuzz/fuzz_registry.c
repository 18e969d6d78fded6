/* libFuzzer harness for registry/codec.c: reg_volume_from_json on any
 * bytes; where it parses, reg_volume_to_json must give a document that
 * parses again to the same document.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "registry/registry.h"
#include "registry/backends.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static struct reg_volume v, v2;
  struct error err = { 0 };
  memset (&v, 0, sizeof v);
  if (reg_volume_from_json ((const char *) data, size, &v, &err) != 0)
    return 0;
  char *s = reg_volume_to_json (&v);
  if (s == NULL)
    return 0;
  memset (&v2, 0, sizeof v2);
  if (reg_volume_from_json (s, strlen (s), &v2, &err) != 0)
    abort ();
  char *s2 = reg_volume_to_json (&v2);
  if (s2 != NULL && strcmp (s, s2) != 0)
    abort ();
  free (s2);
  free (s);
  return 0;
}
