/* Writes the seed corpora of the binary protocols with the real encoders
 * (replication: replica/proto.c) or the wire accessors (NBD client
 * frames, which the server only decodes), so seeds stay valid when the
 * wire format changes.  ROOT is tests/fuzz/corpus; it writes ROOT/proto/,
 * ROOT/nbd_proto/ and ROOT/nbd_handshake/:
 *   cc -Iuserspace/lib tests/fuzz/gen_seeds.c build/fuzz/librepvol.a $(ALL_LDLIBS) && ./a.out tests/fuzz/corpus
 */
#include <stdio.h>
#include <string.h>

#include "core/wire.h"
#include "frontend/nbd_proto.h"
#include "replica/proto.h"

static void
put (const char *dir, const char *sub, const char *name, const void *b,
     size_t n)
{
  char p[4096];
  snprintf (p, sizeof p, "%s/%s/%s", dir, sub, name);
  FILE *f = fopen (p, "wb");
  if (f) { fwrite (b, 1, n, f); fclose (f); }
  else perror (p);
}

static void
proto_seeds (const char *d)
{
  struct rv_hello h; memset (&h, 0, sizeof h);
  h.version = RV_PROTO_VERSION; h.epoch = 1;
  uint8_t hb[RV_HELLO_SIZE]; rv_encode_hello (&h, hb); put (d, "proto", "hello", hb, sizeof hb);
  struct rv_welcome w; memset (&w, 0, sizeof w);
  uint8_t wb[RV_WELCOME_SIZE]; rv_encode_welcome (&w, wb); put (d, "proto", "welcome", wb, sizeof wb);
  struct rv_req r; memset (&r, 0, sizeof r);
  r.cmd = RV_WRITE; r.id = 7; r.length = 4096;
  uint8_t rb[RV_REQ_SIZE]; rv_encode_req (&r, rb); put (d, "proto", "req-write", rb, sizeof rb);
  struct rv_rep p; memset (&p, 0, sizeof p); p.id = 7;
  uint8_t pb[RV_REP_SIZE]; rv_encode_rep (&p, pb); put (d, "proto", "rep", pb, sizeof pb);
  uint8_t eb[RV_SET_EPOCH_SIZE]; rv_encode_set_epoch (2, eb); put (d, "proto", "set-epoch", eb, sizeof eb);
}

/* ---- NBD: what a client sends -------------------------------------------- */

struct frame { uint8_t b[8192]; size_t n; };

static void u8 (struct frame *f, uint8_t v) { f->b[f->n++] = v; }
static void u16 (struct frame *f, uint16_t v) { putbe16 (f->b + f->n, v); f->n += 2; }
static void u32 (struct frame *f, uint32_t v) { putbe32 (f->b + f->n, v); f->n += 4; }
static void u64 (struct frame *f, uint64_t v) { putbe64 (f->b + f->n, v); f->n += 8; }
static void bytes (struct frame *f, const void *s, size_t n) { memcpy (f->b + f->n, s, n); f->n += n; }

/* INFO / GO payload: name, then info requests. */
static void
info_payload (struct frame *f, const char *name, int nreq, const uint16_t *req)
{
  u32 (f, strlen (name));
  bytes (f, name, strlen (name));
  u16 (f, nreq);
  for (int i = 0; i < nreq; i++)
    u16 (f, req[i]);
}

/* An option: IHAVEOPT, option, length, payload. */
static void
option (struct frame *f, uint32_t opt, const struct frame *payload)
{
  u64 (f, NBD_OPTS_MAGIC);
  u32 (f, opt);
  u32 (f, payload ? payload->n : 0);
  if (payload)
    bytes (f, payload->b, payload->n);
}

/* A request header, then (for nbd_proto) the 20 bytes it reads as the
 * export: size, tflags, log2 min block, max payload, structured.
 */
static void
request (struct frame *f, uint16_t flags, uint16_t type, uint64_t off,
         uint32_t len)
{
  u32 (f, NBD_REQUEST_MAGIC);
  u16 (f, flags);
  u16 (f, type);
  u64 (f, 0x1122334455667788ull);
  u64 (f, off);
  u32 (f, len);
  u64 (f, 1ull << 30);
  u16 (f, NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
       NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_DF);
  u8 (f, 9);                    /* 512 */
  u32 (f, 32u << 20);
  u8 (f, 1);
}

static void
nbd_seeds (const char *d)
{
  static const uint16_t reqs[] = { NBD_INFO_NAME, NBD_INFO_DESCRIPTION,
                                   NBD_INFO_BLOCK_SIZE };
  struct frame f, pl;

  /* nbd_proto: each input is read as flags, option header, option +
   * payload and request at once; these are valid as one of them.
   */
  memset (&f, 0, sizeof f); u32 (&f, NBD_FLAG_C_KNOWN);
  put (d, "nbd_proto", "client-flags", f.b, f.n);
  memset (&f, 0, sizeof f); u64 (&f, NBD_OPTS_MAGIC); u32 (&f, NBD_OPT_GO); u32 (&f, 13);
  put (d, "nbd_proto", "option-hdr-go", f.b, f.n);
  memset (&f, 0, sizeof f); u32 (&f, NBD_OPT_GO); info_payload (&f, "vol", 3, reqs);
  put (d, "nbd_proto", "opt-go", f.b, f.n);
  memset (&f, 0, sizeof f); u32 (&f, NBD_OPT_INFO); info_payload (&f, "", 0, NULL);
  put (d, "nbd_proto", "opt-info-default", f.b, f.n);
  memset (&f, 0, sizeof f); u32 (&f, NBD_OPT_EXPORT_NAME); bytes (&f, "vol", 3);
  put (d, "nbd_proto", "opt-export-name", f.b, f.n);
  memset (&f, 0, sizeof f); request (&f, 0, NBD_CMD_READ, 4096, 65536);
  put (d, "nbd_proto", "req-read", f.b, f.n);
  memset (&f, 0, sizeof f); request (&f, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 0, 4096);
  put (d, "nbd_proto", "req-write-fua", f.b, f.n);
  memset (&f, 0, sizeof f); request (&f, 0, NBD_CMD_FLUSH, 0, 0);
  put (d, "nbd_proto", "req-flush", f.b, f.n);
  memset (&f, 0, sizeof f); request (&f, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE_ZEROES, 1 << 20, 1 << 20);
  put (d, "nbd_proto", "req-write-zeroes", f.b, f.n);
  memset (&f, 0, sizeof f); request (&f, 0, NBD_CMD_DISC, 0, 0);
  put (d, "nbd_proto", "req-disc", f.b, f.n);

  /* nbd_handshake: a flags byte (bit 0 TLS required, bit 1 the TLS
   * handshake fails, bits 2-3 the export name: "vol", "", longer), then
   * the client's stream.
   */
  memset (&f, 0, sizeof f); u8 (&f, 0); u32 (&f, NBD_FLAG_C_KNOWN);
  option (&f, NBD_OPT_STRUCTURED_REPLY, NULL);
  option (&f, NBD_OPT_LIST, NULL);
  memset (&pl, 0, sizeof pl); info_payload (&pl, "vol", 3, reqs);
  option (&f, NBD_OPT_INFO, &pl);
  option (&f, NBD_OPT_GO, &pl);
  put (d, "nbd_handshake", "sr-list-info-go", f.b, f.n);

  memset (&f, 0, sizeof f); u8 (&f, 0); u32 (&f, NBD_FLAG_C_FIXED_NEWSTYLE);
  memset (&pl, 0, sizeof pl); bytes (&pl, "vol", 3);
  option (&f, NBD_OPT_EXPORT_NAME, &pl);
  put (d, "nbd_handshake", "export-name", f.b, f.n);

  memset (&f, 0, sizeof f); u8 (&f, 0); u32 (&f, NBD_FLAG_C_KNOWN);
  memset (&pl, 0, sizeof pl); info_payload (&pl, "other", 0, NULL);
  option (&f, NBD_OPT_GO, &pl);
  option (&f, NBD_OPT_STARTTLS, NULL);
  option (&f, NBD_OPT_ABORT, NULL);
  put (d, "nbd_handshake", "unknown-export-abort", f.b, f.n);

  memset (&f, 0, sizeof f); u8 (&f, 1); u32 (&f, NBD_FLAG_C_KNOWN);
  memset (&pl, 0, sizeof pl); info_payload (&pl, "", 1, reqs);
  option (&f, NBD_OPT_GO, &pl);
  option (&f, NBD_OPT_STARTTLS, NULL);
  option (&f, NBD_OPT_STRUCTURED_REPLY, NULL);
  option (&f, NBD_OPT_GO, &pl);
  put (d, "nbd_handshake", "tls-starttls-go", f.b, f.n);

  /* One option past NBD_MAX_OPTIONS (256): the server hangs up. */
  memset (&f, 0, sizeof f); u8 (&f, 0); u32 (&f, NBD_FLAG_C_KNOWN);
  for (int i = 0; i < 257; i++)
    option (&f, NBD_OPT_STRUCTURED_REPLY, NULL);
  put (d, "nbd_handshake", "too-many-options", f.b, f.n);
}

int
main (int argc, char **argv)
{
  const char *d = argc > 1 ? argv[1] : ".";
  proto_seeds (d);
  nbd_seeds (d);
  return 0;
}
