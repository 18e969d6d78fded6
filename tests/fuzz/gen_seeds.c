/* Writes the proto seed corpus (tests/fuzz/corpus/proto/) with the real
 * encoders, so seeds stay valid when the wire format changes:
 *   cc -Iuserspace/lib tests/fuzz/gen_seeds.c build/fuzz/librepvol.a $(ALL_LDLIBS) && ./a.out tests/fuzz/corpus/proto
 */
#include <stdio.h>
#include <string.h>

#include "replica/proto.h"

static void
put (const char *dir, const char *name, const void *b, size_t n)
{
  char p[4096];
  snprintf (p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen (p, "wb");
  if (f) { fwrite (b, 1, n, f); fclose (f); }
}

int
main (int argc, char **argv)
{
  const char *d = argc > 1 ? argv[1] : ".";
  struct rv_hello h; memset (&h, 0, sizeof h);
  h.version = RV_PROTO_VERSION; h.epoch = 1;
  uint8_t hb[RV_HELLO_SIZE]; rv_encode_hello (&h, hb); put (d, "hello", hb, sizeof hb);
  struct rv_welcome w; memset (&w, 0, sizeof w);
  uint8_t wb[RV_WELCOME_SIZE]; rv_encode_welcome (&w, wb); put (d, "welcome", wb, sizeof wb);
  struct rv_req r; memset (&r, 0, sizeof r);
  r.cmd = RV_WRITE; r.id = 7; r.length = 4096;
  uint8_t rb[RV_REQ_SIZE]; rv_encode_req (&r, rb); put (d, "req-write", rb, sizeof rb);
  struct rv_rep p; memset (&p, 0, sizeof p); p.id = 7;
  uint8_t pb[RV_REP_SIZE]; rv_encode_rep (&p, pb); put (d, "rep", pb, sizeof pb);
  uint8_t eb[RV_SET_EPOCH_SIZE]; rv_encode_set_epoch (2, eb); put (d, "set-epoch", eb, sizeof eb);
  return 0;
}
