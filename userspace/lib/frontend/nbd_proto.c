/* nbd_proto.c - NBD wire codec: parsing and checking what clients send,
 * encoding what the server answers.  No I/O, no state; see nbd_proto.h.
 */
#include <errno.h>
#include <string.h>
#include <endian.h>

#include "frontend/nbd_proto.h"
#include "core/wire.h"

/* ---- handshake ---- */

size_t
nbd_encode_greeting (void *buf, uint16_t handshake_flags)
{
  char *p = buf;
  putbe64 (p, NBD_MAGIC);
  putbe64 (p + 8, NBD_OPTS_MAGIC);
  putbe16 (p + 16, handshake_flags);
  return NBD_GREETING_LEN;
}

const char *
nbd_check_client_flags (const void *buf, uint32_t *flags_out)
{
  uint32_t flags = getbe32 (buf);

  *flags_out = flags;
  /* Without FIXED_NEWSTYLE the client cannot cope with an error reply to
   * an option it sends, so there is no safe way to talk to it.
   */
  if (!(flags & NBD_FLAG_C_FIXED_NEWSTYLE))
    return "client does not support the fixed newstyle handshake";
  /* The spec requires hanging up on client flags we do not understand. */
  if (flags & ~NBD_FLAG_C_KNOWN)
    return "client sent unknown handshake flags";
  return NULL;
}

const char *
nbd_decode_option_hdr (const void *buf, struct nbd_option_hdr *h)
{
  const char *p = buf;

  if (getbe64 (p) != NBD_OPTS_MAGIC)
    return "bad option magic";
  h->option = getbe32 (p + 8);
  h->len = getbe32 (p + 12);
  /* We would have to read and throw away the payload to stay in sync;
   * a payload this large is not a real client, so hang up instead.
   */
  if (h->len > NBD_MAX_OPTION_LEN)
    return "option payload too long";
  return NULL;
}

/* True if the string has no NUL byte (the spec forbids them). */
static bool
string_ok (const char *s, uint32_t len)
{
  return len <= NBD_MAX_STRING && memchr (s, '\0', len) == NULL;
}

/* INFO and GO share a payload: 32-bit name length, name, 16-bit count,
 * count 16-bit info requests.  Every length must add up exactly.
 */
static uint32_t
parse_info_request (const char *p, uint32_t len, struct nbd_option *out)
{
  uint32_t name_len, n, i;

  if (len < 4 + 2)
    return NBD_REP_ERR_INVALID;
  name_len = getbe32 (p);
  if (name_len > len - 6)
    return NBD_REP_ERR_INVALID;
  n = getbe16 (p + 4 + name_len);
  if ((uint64_t) 6 + name_len + 2 * (uint64_t) n != len)
    return NBD_REP_ERR_INVALID;
  if (!string_ok (p + 4, name_len))
    return NBD_REP_ERR_INVALID;

  out->name = p + 4;
  out->name_len = name_len;
  for (i = 0; i < n; i++) {
    uint16_t type = getbe16 (p + 6 + name_len + 2 * i);
    if (type <= NBD_INFO_BLOCK_SIZE)
      out->info_wanted |= 1u << type;
  }
  return NBD_SUCCESS;
}

uint32_t
nbd_parse_option (uint32_t option, const void *payload, uint32_t len,
                  struct nbd_option *out)
{
  const char *p = payload;

  memset (out, 0, sizeof *out);
  out->option = option;
  out->name = "";

  switch (option) {
  case NBD_OPT_EXPORT_NAME:
    /* The whole payload is the name, without a length prefix. */
    if (!string_ok (p, len))
      return NBD_REP_ERR_INVALID;
    out->name = len ? p : "";
    out->name_len = len;
    return NBD_SUCCESS;

  case NBD_OPT_ABORT:
    /* The spec asks servers to ignore any data sent with ABORT. */
    return NBD_SUCCESS;

  case NBD_OPT_LIST:
  case NBD_OPT_STRUCTURED_REPLY:
    return len == 0 ? NBD_SUCCESS : NBD_REP_ERR_INVALID;

  case NBD_OPT_INFO:
  case NBD_OPT_GO:
    return parse_info_request (p, len, out);

  default:
    /* STARTTLS, metadata contexts, extended headers and anything newer. */
    return NBD_REP_ERR_UNSUP;
  }
}

size_t
nbd_encode_option_reply (void *buf, uint32_t option, uint32_t reply,
                         uint32_t len)
{
  char *p = buf;
  putbe64 (p, NBD_REP_MAGIC);
  putbe32 (p + 8, option);
  putbe32 (p + 12, reply);
  putbe32 (p + 16, len);
  return NBD_OPTION_REPLY_LEN;
}

size_t
nbd_encode_info_export (void *buf, uint64_t size, uint16_t tflags)
{
  char *p = buf;
  putbe16 (p, NBD_INFO_EXPORT);
  putbe64 (p + 2, size);
  putbe16 (p + 10, tflags);
  return 12;
}

size_t
nbd_encode_info_block_size (void *buf, uint32_t min, uint32_t pref,
                            uint32_t max)
{
  char *p = buf;
  putbe16 (p, NBD_INFO_BLOCK_SIZE);
  putbe32 (p + 2, min);
  putbe32 (p + 6, pref);
  putbe32 (p + 10, max);
  return 14;
}

size_t
nbd_encode_info_type (void *buf, uint16_t type)
{
  putbe16 (buf, type);
  return 2;
}

size_t
nbd_encode_export_name_reply (void *buf, uint64_t size, uint16_t tflags)
{
  char *p = buf;
  putbe64 (p, size);
  putbe16 (p + 8, tflags);
  return NBD_EXPORT_NAME_REPLY_LEN;
}

/* ---- transmission ---- */

void
nbd_decode_request (const void *buf, struct nbd_request *r)
{
  const char *p = buf;
  r->magic = getbe32 (p);
  r->flags = getbe16 (p + 4);
  r->type = getbe16 (p + 6);
  r->cookie = getbe64 (p + 8);
  r->offset = getbe64 (p + 16);
  r->len = getbe32 (p + 24);
}

/* Command flags each command may carry, given what was advertised.
 * FUA is accepted on every command once SEND_FUA is advertised: the
 * spec says so, because real clients set it on reads and flushes too.
 */
static uint16_t
allowed_flags (uint16_t cmd, uint16_t tflags)
{
  uint16_t f = (tflags & NBD_FLAG_SEND_FUA) ? NBD_CMD_FLAG_FUA : 0;

  switch (cmd) {
  case NBD_CMD_READ:
    if (tflags & NBD_FLAG_SEND_DF)
      f |= NBD_CMD_FLAG_DF;
    return f;
  case NBD_CMD_WRITE_ZEROES:
    return f | NBD_CMD_FLAG_NO_HOLE;
  default:
    return f;
  }
}

/* The transmission flag a client must have seen before using cmd. */
static bool
cmd_advertised (uint16_t cmd, uint16_t tflags)
{
  switch (cmd) {
  case NBD_CMD_READ:
  case NBD_CMD_DISC:
    return true;
  case NBD_CMD_WRITE:
    return !(tflags & NBD_FLAG_READ_ONLY);
  case NBD_CMD_FLUSH:
    return tflags & NBD_FLAG_SEND_FLUSH;
  case NBD_CMD_TRIM:
    return tflags & NBD_FLAG_SEND_TRIM;
  case NBD_CMD_WRITE_ZEROES:
    return tflags & NBD_FLAG_SEND_WRITE_ZEROES;
  default:
    return false;
  }
}

enum nbd_verdict
nbd_check_request (const struct nbd_request *r, const struct nbd_export *e,
                   uint32_t *err, const char **why)
{
  uint32_t min = e->min_block ? e->min_block : 1;

  *err = NBD_SUCCESS;
  *why = NULL;

  /* A bad magic means we have lost the frame boundary: nothing after
   * this can be interpreted.
   */
  if (r->magic != NBD_REQUEST_MAGIC) {
    *why = "bad request magic";
    return NBD_REQ_HANG_UP;
  }

  /* Only WRITE carries a payload.  If it is larger than we will ever
   * buffer we cannot skip it safely either, so the stream is lost.
   */
  if (r->type == NBD_CMD_WRITE && r->len > e->max_payload) {
    *why = "write payload larger than the advertised maximum";
    return NBD_REQ_HANG_UP;
  }

  if (!cmd_advertised (r->type, e->tflags)) {
    *err = NBD_EINVAL;
    *why = "unknown or unsupported command";
    return NBD_REQ_ERROR;
  }

  /* DISC has no reply, so nothing in it can be reported; it is honoured
   * whatever its other fields say.
   */
  if (r->type == NBD_CMD_DISC)
    return NBD_REQ_OK;

  if (r->flags & ~allowed_flags (r->type, e->tflags)) {
    *err = NBD_EINVAL;
    *why = "flags not valid for this command";
    return NBD_REQ_ERROR;
  }

  if (r->type == NBD_CMD_FLUSH) {
    if (r->offset != 0 || r->len != 0) {
      *err = NBD_EINVAL;
      *why = "flush with nonzero offset or length";
      return NBD_REQ_ERROR;
    }
    return NBD_REQ_OK;
  }

  /* READ needs a buffer of len bytes, so the same cap as WRITE applies;
   * unlike WRITE, nothing needs skipping, so an error reply suffices.
   * TRIM and WRITE_ZEROES have no payload and may exceed the cap.
   */
  if (r->type == NBD_CMD_READ && r->len > e->max_payload) {
    *err = NBD_EINVAL;
    *why = "read larger than the advertised maximum";
    return NBD_REQ_ERROR;
  }

  if (r->offset > e->size || r->len > e->size - r->offset) {
    /* The spec asks for ENOSPC on writes past the end, EINVAL else. */
    *err = (r->type == NBD_CMD_WRITE || r->type == NBD_CMD_WRITE_ZEROES)
      ? NBD_ENOSPC : NBD_EINVAL;
    *why = "request beyond the end of the export";
    return NBD_REQ_ERROR;
  }

  if ((r->offset & (min - 1)) || (r->len & (min - 1))) {
    *err = NBD_EINVAL;
    *why = "request not aligned to the minimum block size";
    return NBD_REQ_ERROR;
  }

  return NBD_REQ_OK;
}

size_t
nbd_encode_simple_reply (void *buf, uint64_t cookie, uint32_t err)
{
  char *p = buf;
  putbe32 (p, NBD_SIMPLE_REPLY_MAGIC);
  putbe32 (p + 4, err);
  putbe64 (p + 8, cookie);
  return NBD_SIMPLE_REPLY_LEN;
}

size_t
nbd_encode_chunk_hdr (void *buf, uint16_t flags, uint16_t type,
                      uint64_t cookie, uint32_t len)
{
  char *p = buf;
  putbe32 (p, NBD_STRUCTURED_REPLY_MAGIC);
  putbe16 (p + 4, flags);
  putbe16 (p + 6, type);
  putbe64 (p + 8, cookie);
  putbe32 (p + 16, len);
  return NBD_CHUNK_HDR_LEN;
}

size_t
nbd_encode_read_chunk (void *buf, uint64_t cookie, uint64_t offset,
                       uint32_t data_len)
{
  char *p = buf;
  nbd_encode_chunk_hdr (p, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
                        cookie, 8 + data_len);
  putbe64 (p + NBD_CHUNK_HDR_LEN, offset);
  return NBD_CHUNK_HDR_LEN + 8;
}

size_t
nbd_encode_none_chunk (void *buf, uint64_t cookie)
{
  return nbd_encode_chunk_hdr (buf, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE,
                               cookie, 0);
}

size_t
nbd_encode_error_chunk (void *buf, uint64_t cookie, uint32_t err,
                        const char *msg)
{
  char *p = buf;
  size_t mlen = msg ? strnlen (msg, NBD_ERROR_MSG_MAX) : 0;

  /* An error chunk must carry a nonzero error. */
  if (err == NBD_SUCCESS)
    err = NBD_EIO;
  nbd_encode_chunk_hdr (p, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR,
                        cookie, 6 + mlen);
  putbe32 (p + NBD_CHUNK_HDR_LEN, err);
  putbe16 (p + NBD_CHUNK_HDR_LEN + 4, mlen);
  if (mlen)
    memcpy (p + NBD_CHUNK_HDR_LEN + 6, msg, mlen);
  return NBD_CHUNK_HDR_LEN + 6 + mlen;
}

uint32_t
nbd_errno_to_nbd (int err)
{
  switch (err) {
  case 0:          return NBD_SUCCESS;
  case EPERM:
  case EROFS:      return NBD_EPERM;
  case ENOMEM:     return NBD_ENOMEM;
  case EINVAL:     return NBD_EINVAL;
  case ENOSPC:
  case EDQUOT:
  case EFBIG:      return NBD_ENOSPC;
  case EOVERFLOW:  return NBD_EOVERFLOW;
  case ENOTSUP:    return NBD_ENOTSUP;
  case ESHUTDOWN:  return NBD_ESHUTDOWN;
  /* EIO, timeouts, lost replicas and anything unexpected: the client
   * only needs to know the data is not there.
   */
  default:         return NBD_EIO;
  }
}

const char *
nbd_option_name (uint32_t option)
{
  switch (option) {
  case NBD_OPT_EXPORT_NAME:       return "NBD_OPT_EXPORT_NAME";
  case NBD_OPT_ABORT:             return "NBD_OPT_ABORT";
  case NBD_OPT_LIST:              return "NBD_OPT_LIST";
  case NBD_OPT_PEEK_EXPORT:       return "NBD_OPT_PEEK_EXPORT";
  case NBD_OPT_STARTTLS:          return "NBD_OPT_STARTTLS";
  case NBD_OPT_INFO:              return "NBD_OPT_INFO";
  case NBD_OPT_GO:                return "NBD_OPT_GO";
  case NBD_OPT_STRUCTURED_REPLY:  return "NBD_OPT_STRUCTURED_REPLY";
  case NBD_OPT_LIST_META_CONTEXT: return "NBD_OPT_LIST_META_CONTEXT";
  case NBD_OPT_SET_META_CONTEXT:  return "NBD_OPT_SET_META_CONTEXT";
  case NBD_OPT_EXTENDED_HEADERS:  return "NBD_OPT_EXTENDED_HEADERS";
  default:                        return "unknown option";
  }
}

const char *
nbd_cmd_name (uint16_t cmd)
{
  switch (cmd) {
  case NBD_CMD_READ:         return "NBD_CMD_READ";
  case NBD_CMD_WRITE:        return "NBD_CMD_WRITE";
  case NBD_CMD_DISC:         return "NBD_CMD_DISC";
  case NBD_CMD_FLUSH:        return "NBD_CMD_FLUSH";
  case NBD_CMD_TRIM:         return "NBD_CMD_TRIM";
  case NBD_CMD_CACHE:        return "NBD_CMD_CACHE";
  case NBD_CMD_WRITE_ZEROES: return "NBD_CMD_WRITE_ZEROES";
  case NBD_CMD_BLOCK_STATUS: return "NBD_CMD_BLOCK_STATUS";
  default:                   return "unknown command";
  }
}
