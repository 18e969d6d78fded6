/* libFuzzer harness for replica/proto.c, both directions: every fixed-size
 * decoder (server side: HELLO, request, CREATE, SET_EPOCH; client side:
 * WELCOME, reply, STAT volinfo) gets the input.  Where a decode succeeds the
 * result is encoded and decoded again, and the two structs must be equal:
 * a decoder that accepts what its own encoder cannot reproduce is a bug.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "replica/proto.h"

/* Decode, and on success encode + decode again and compare.  Structs are
 * zeroed first so padding compares equal.
 */
#define ROUND_TRIP(T, SIZE, dec, enc)                                    \
  do {                                                                   \
    uint8_t in[SIZE], out[SIZE];                                         \
    T a, b;                                                              \
    const char *why = NULL;                                              \
    memset (in, 0, sizeof in);                                           \
    memcpy (in, data, size < SIZE ? size : SIZE);                        \
    memset (&a, 0, sizeof a);                                            \
    memset (&b, 0, sizeof b);                                            \
    if (dec (in, &a, &why) == 0) {                                       \
      enc (&a, out);                                                     \
      if (dec (out, &b, &why) != 0 || memcmp (&a, &b, sizeof a) != 0)    \
        abort ();                                                        \
    } else if (why == NULL)                                              \
      abort (); /* a refusal must say why */                             \
  } while (0)

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  ROUND_TRIP (struct rv_hello, RV_HELLO_SIZE, rv_decode_hello, rv_encode_hello);
  ROUND_TRIP (struct rv_welcome, RV_WELCOME_SIZE, rv_decode_welcome, rv_encode_welcome);
  ROUND_TRIP (struct rv_req, RV_REQ_SIZE, rv_decode_req, rv_encode_req);
  ROUND_TRIP (struct rv_rep, RV_REP_SIZE, rv_decode_rep, rv_encode_rep);
  ROUND_TRIP (struct rv_create, RV_CREATE_SIZE, rv_decode_create, rv_encode_create);
  ROUND_TRIP (struct rv_volinfo, RV_STAT_SIZE, rv_decode_volinfo, rv_encode_volinfo);
  {
    uint8_t in[RV_SET_EPOCH_SIZE], out[RV_SET_EPOCH_SIZE];
    uint64_t e = 0, e2 = 0;
    const char *why = NULL;
    memset (in, 0, sizeof in);
    memcpy (in, data, size < sizeof in ? size : sizeof in);
    if (rv_decode_set_epoch (in, &e, &why) == 0) {
      rv_encode_set_epoch (e, out);
      if (rv_decode_set_epoch (out, &e2, &why) != 0 || e != e2)
        abort ();
    }
  }
  return 0;
}
