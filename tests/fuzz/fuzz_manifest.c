/* libFuzzer harness for snapshot/manifest.c: manifest_from_json on any
 * bytes; where it parses, manifest_to_json must produce a document that
 * parses again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "snapshot/catalog.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct manifest m, m2;
  struct error err = { 0 };
  if (manifest_from_json ((const char *) data, size, &m, &err) != 0)
    return 0;
  char *s = manifest_to_json (&m);
  if (s != NULL) {
    struct error err2 = { 0 };
    if (manifest_from_json (s, strlen (s), &m2, &err2) != 0)
      abort ();
    if (manifest_chunks (&m) != manifest_chunks (&m2))
      abort ();
    manifest_free (&m2);
    free (s);
  }
  manifest_free (&m);
  return 0;
}
