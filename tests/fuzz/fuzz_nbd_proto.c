/* libFuzzer harness for frontend/nbd_proto.c, the pure decoders of what
 * an NBD client sends: the client flags, an option header, an option's
 * payload (for the option in the input and for each one the server
 * implements), a transmission request header checked against an export
 * that the input describes too, and the error chunk a message is put in.
 * (The handshake state machine that strings them together is
 * fuzz_nbd_handshake.c.)
 *
 * Invariants (abort on violation): what a decoder accepts re-encodes to
 * the same bytes; accepted names lie inside the payload, hold no NUL and
 * their lengths add up; a request the checker lets through is one the
 * spec allows on this export (advertised, allowed flags, within the
 * export, aligned, within the payload cap), and a WRITE too large to
 * skip is never answered with an error and read on; every refusal says
 * why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/wire.h"
#include "frontend/nbd_proto.h"

/* The first n bytes of the input, zero-padded. */
static void
take (uint8_t *out, size_t n, const uint8_t *data, size_t size)
{
  memset (out, 0, n);
  memcpy (out, data, size < n ? size : n);
}

static void
check_client_flags (const uint8_t *data, size_t size)
{
  uint8_t in[NBD_CLIENT_FLAGS_LEN];
  uint32_t flags;
  take (in, sizeof in, data, size);
  if (nbd_check_client_flags (in, &flags) == NULL &&
      (!(flags & NBD_FLAG_C_FIXED_NEWSTYLE) || (flags & ~NBD_FLAG_C_KNOWN)))
    abort ();
  if (flags != getbe32 (in))
    abort ();
}

static void
check_option_hdr (const uint8_t *data, size_t size)
{
  uint8_t in[NBD_OPTION_HDR_LEN], out[NBD_OPTION_HDR_LEN];
  struct nbd_option_hdr h;
  take (in, sizeof in, data, size);
  if (nbd_decode_option_hdr (in, &h) != NULL)
    return;
  if (h.len > NBD_MAX_OPTION_LEN)
    abort ();                   /* the server reads len bytes into a buffer this big */
  putbe64 (out, NBD_OPTS_MAGIC);
  putbe32 (out + 8, h.option);
  putbe32 (out + 12, h.len);
  if (memcmp (in, out, sizeof in) != 0)
    abort ();
}

/* Parse payload as option; check what a success claims. */
static void
check_option (uint32_t option, const uint8_t *payload, uint32_t len)
{
  struct nbd_option o;
  uint32_t rc = nbd_parse_option (option, payload, len, &o);
  if (o.option != option)
    abort ();
  if (rc != NBD_SUCCESS) {
    if (!(rc & 0x80000000u))
      abort ();                 /* not an NBD_REP_ERR_* */
    if (option == NBD_OPT_ABORT)
      abort ();                 /* ABORT's data is to be ignored */
    return;
  }
  switch (option) {
  case NBD_OPT_EXPORT_NAME:
    if (o.name_len != len || (len && o.name != (const char *) payload))
      abort ();
    break;
  case NBD_OPT_ABORT:
    break;
  case NBD_OPT_LIST:
  case NBD_OPT_STRUCTURED_REPLY:
    if (len != 0)
      abort ();
    break;
  case NBD_OPT_INFO:
  case NBD_OPT_GO: {
    /* name length, name, count, count requests: all of the payload. */
    if (len < 6 || getbe32 (payload) != o.name_len ||
        o.name != (const char *) payload + 4)
      abort ();
    uint16_t n = getbe16 (payload + 4 + o.name_len);
    if ((uint64_t) 6 + o.name_len + 2 * (uint64_t) n != len)
      abort ();
    uint32_t want = 0;
    for (uint16_t i = 0; i < n; i++) {
      uint16_t t = getbe16 (payload + 6 + o.name_len + 2 * i);
      if (t <= NBD_INFO_BLOCK_SIZE)
        want |= 1u << t;
    }
    if (want != o.info_wanted)
      abort ();
    break;
  }
  default:
    abort ();                   /* an option we do not implement accepted */
  }
  if (o.name_len > NBD_MAX_STRING || (o.name_len && memchr (o.name, '\0', o.name_len)))
    abort ();
  if (o.option != NBD_OPT_EXPORT_NAME && o.option != NBD_OPT_INFO &&
      o.option != NBD_OPT_GO && o.name_len != 0)
    abort ();
}

static void
check_options (const uint8_t *data, size_t size)
{
  static const uint32_t known[] = {
    NBD_OPT_EXPORT_NAME, NBD_OPT_ABORT, NBD_OPT_LIST, NBD_OPT_STARTTLS,
    NBD_OPT_INFO, NBD_OPT_GO, NBD_OPT_STRUCTURED_REPLY,
    NBD_OPT_SET_META_CONTEXT,
  };
  uint8_t in[4];
  take (in, sizeof in, data, size);
  size_t plen = size > 4 ? size - 4 : 0;
  if (plen > NBD_MAX_OPTION_LEN)
    plen = NBD_MAX_OPTION_LEN;  /* what on_opt_hdr lets through */
  /* Exactly plen bytes, so ASan sees a read past the payload. */
  uint8_t *p = malloc (plen ? plen : 1);
  if (p == NULL)
    abort ();
  memcpy (p, data + (size > 4 ? 4 : size), plen);
  check_option (getbe32 (in), p, plen);
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    check_option (known[i], p, plen);
  free (p);
}

/* What the checker must have refused, recomputed from proto.md. */
static bool
request_ok (const struct nbd_request *r, const struct nbd_export *e)
{
  uint16_t t = e->tflags;
  uint64_t min = e->min_block ? e->min_block : 1;
  uint16_t allowed = (t & NBD_FLAG_SEND_FUA) ? NBD_CMD_FLAG_FUA : 0;
  if (r->magic != NBD_REQUEST_MAGIC)
    return false;
  switch (r->type) {
  case NBD_CMD_DISC:
    return true;
  case NBD_CMD_READ:
    if (t & NBD_FLAG_SEND_DF)
      allowed |= NBD_CMD_FLAG_DF;
    if (r->len > e->max_payload)
      return false;
    break;
  case NBD_CMD_WRITE:
    if ((t & NBD_FLAG_READ_ONLY) || r->len > e->max_payload)
      return false;
    break;
  case NBD_CMD_FLUSH:
    return (t & NBD_FLAG_SEND_FLUSH) && !(r->flags & ~allowed) &&
      r->offset == 0 && r->len == 0;
  case NBD_CMD_TRIM:
    if (!(t & NBD_FLAG_SEND_TRIM))
      return false;
    break;
  case NBD_CMD_WRITE_ZEROES:
    if (!(t & NBD_FLAG_SEND_WRITE_ZEROES))
      return false;
    allowed |= NBD_CMD_FLAG_NO_HOLE;
    break;
  default:
    return false;
  }
  if (r->flags & ~allowed)
    return false;
  if ((unsigned __int128) r->offset + r->len > e->size)
    return false;
  return r->offset % min == 0 && r->len % min == 0;
}

static void
check_request (const uint8_t *data, size_t size)
{
  uint8_t in[NBD_REQUEST_LEN + 20], out[NBD_REQUEST_LEN];
  struct nbd_request r;
  take (in, sizeof in, data, size);
  nbd_decode_request (in, &r);
  putbe32 (out, r.magic);
  putbe16 (out + 4, r.flags);
  putbe16 (out + 6, r.type);
  putbe64 (out + 8, r.cookie);
  putbe64 (out + 16, r.offset);
  putbe32 (out + 24, r.len);
  if (memcmp (in, out, NBD_REQUEST_LEN) != 0)
    abort ();

  /* The export from the 20 bytes after the request; min_block a power
   * of two up to 64 KiB, or 0 (read as 1).
   */
  const uint8_t *x = in + NBD_REQUEST_LEN;
  struct nbd_export e = {
    .size = getbe64 (x),
    .tflags = getbe16 (x + 8) | NBD_FLAG_HAS_FLAGS,
    .min_block = x[10] % 18 == 17 ? 0 : 1u << (x[10] % 17),
    .max_payload = getbe32 (x + 11),
    .structured = x[15] & 1,
  };
  e.pref_block = e.min_block;
  uint32_t err = 12345;
  const char *why = (const char *) 1;
  enum nbd_verdict v = nbd_check_request (&r, &e, &err, &why);
  switch (v) {
  case NBD_REQ_OK:
    if (err != NBD_SUCCESS || why != NULL || !request_ok (&r, &e))
      abort ();
    break;
  case NBD_REQ_ERROR:
    if (err == NBD_SUCCESS || why == NULL || request_ok (&r, &e))
      abort ();
    /* The server reads and drops an erroring WRITE's payload: it must
     * be one it is willing to buffer.
     */
    if (r.type == NBD_CMD_WRITE && r.len > e.max_payload)
      abort ();
    break;
  case NBD_REQ_HANG_UP:
    if (why == NULL)
      abort ();
    if (r.magic == NBD_REQUEST_MAGIC &&
        !(r.type == NBD_CMD_WRITE && r.len > e.max_payload))
      abort ();                 /* hung up on a request that could be answered */
    break;
  default:
    abort ();
  }
}

static void
check_error_chunk (const uint8_t *data, size_t size)
{
  char msg[NBD_ERROR_MSG_MAX * 2 + 1];
  size_t n = size < sizeof msg - 1 ? size : sizeof msg - 1;
  memcpy (msg, data, n);
  msg[n] = '\0';
  /* Exactly the size the header promises, so ASan sees an overrun. */
  size_t cap = NBD_CHUNK_HDR_LEN + 6 + NBD_ERROR_MSG_MAX;
  uint8_t *buf = malloc (cap);
  if (buf == NULL)
    abort ();
  uint32_t err = size ? data[0] : 0;
  size_t len = nbd_encode_error_chunk (buf, 7, err, msg);
  size_t mlen = strnlen (msg, NBD_ERROR_MSG_MAX);
  if (len != NBD_CHUNK_HDR_LEN + 6 + mlen ||
      getbe32 (buf) != NBD_STRUCTURED_REPLY_MAGIC ||
      getbe32 (buf + 16) != 6 + mlen ||
      getbe32 (buf + NBD_CHUNK_HDR_LEN) == NBD_SUCCESS ||
      getbe16 (buf + NBD_CHUNK_HDR_LEN + 4) != mlen ||
      memcmp (buf + NBD_CHUNK_HDR_LEN + 6, msg, mlen) != 0)
    abort ();
  free (buf);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  check_client_flags (data, size);
  check_option_hdr (data, size);
  check_options (data, size);
  check_request (data, size);
  check_error_chunk (data, size);
  (void) nbd_option_name (size >= 4 ? getbe32 (data) : 0);
  (void) nbd_cmd_name (size >= 2 ? getbe16 (data) : 0);
  return 0;
}
