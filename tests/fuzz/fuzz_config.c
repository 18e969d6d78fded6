/* libFuzzer harness for core/config.c: config_parse on any bytes.  Where
 * it succeeds, every value it kept is non-empty, has no blank at either
 * end and no newline, and appears in the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/util.h"

static const char *const keys[] = {
  "registry", "tls-dir", "tls-psk", "run-dir", "zone",
};

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct error err = { 0 };

  if (config_parse ("fuzz", (const char *) data, size, &err) != 0) {
    if (!error_msg (&err)[0])
      abort ();                 /* every refusal says why */
    return 0;
  }
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    const char *v = config_get (keys[i]);
    size_t n;
    if (!v)
      continue;
    n = strlen (v);
    if (n == 0 || v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' ||
        v[n - 1] == '\t' || strchr (v, '\n'))
      abort ();
    if (!memmem (data, size, v, n))
      abort ();
  }
  config_reset ();
  return 0;
}
