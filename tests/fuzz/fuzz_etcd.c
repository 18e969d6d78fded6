/* libFuzzer harness for the etcd registry's readers of what etcd
 * answers (registry/etcd_http.c): the first byte picks
 *   even: base64 -- a decode that succeeds must re-encode to exactly the
 *         input (the decoder is strict), and any bytes must encode and
 *         decode back to themselves;
 *   odd:  a range answer -- parsed as a JSON object, its "kvs" read with
 *         etcd_range_kvs (every key and value decoded), never a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "registry/etcd_internal.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  const char *text = (const char *) data + 1;
  size_t len = size - 1;
  void *out;
  size_t outlen;

  if ((data[0] & 1) == 0) {
    if (etcd_b64_decode (text, len, &out, &outlen) == 0) {
      char *again = etcd_b64_encode (out, outlen);
      if (again == NULL || strlen (again) != len ||
          memcmp (again, text, len) != 0)
        abort ();
      free (again);
      free (out);
    }
    char *enc = etcd_b64_encode (text, len);
    if (enc == NULL)
      return 0;
    if (etcd_b64_decode (enc, strlen (enc), &out, &outlen) != 0 ||
        outlen != len || memcmp (out, text, len) != 0)
      abort ();
    free (out);
    free (enc);
    return 0;
  }

  json_tokener *tok = json_tokener_new ();
  if (tok == NULL)
    return 0;
  json_object *o = json_tokener_parse_ex (tok, text, (int) len);
  json_tokener_free (tok);
  if (o && json_object_is_type (o, json_type_object)) {
    struct etcd_kv *kvs;
    int n;
    const char *why = NULL;
    if (etcd_range_kvs (o, &kvs, &n, &why) == 0) {
      for (int i = 0; i < n; i++) {
        if (strlen (kvs[i].key) != kvs[i].key_len)
          abort ();
        etcd_kv_free (&kvs[i]);
      }
      free (kvs);
    }
    else if (why == NULL)
      abort ();
    int64_t v;
    bool b;
    etcd_get_i64 (o, "revision", &v, &why);
    etcd_get_bool (o, "succeeded", &b, &why);
  }
  json_object_put (o);
  return 0;
}
