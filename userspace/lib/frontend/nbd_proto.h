/* nbd_proto.h - NBD wire constants and pure codec functions.
 *
 * Everything here is free of I/O and state so that unit tests can feed
 * it raw bytes: the server (nbd_handshake.c, then nbd.c) reads frames
 * with conn.h and hands them to these functions to decide what they
 * mean and whether they are acceptable, then encodes its answers with
 * them.  All multi-byte fields
 * on the wire are big endian; buffers need not be aligned.
 *
 * The protocol is NetworkBlockDevice/nbd doc/proto.md.  Only the fixed
 * newstyle handshake is spoken (no oldstyle, no TLS, no extended
 * headers, no metadata contexts).
 */
#ifndef REPVOL_NBD_PROTO_H
#define REPVOL_NBD_PROTO_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

/* Handshake magics. */
#define NBD_MAGIC               UINT64_C(0x4e42444d41474943)  /* "NBDMAGIC" */
#define NBD_OPTS_MAGIC          UINT64_C(0x49484156454f5054)  /* "IHAVEOPT" */
#define NBD_REP_MAGIC           UINT64_C(0x0003e889045565a9)

/* Transmission magics. */
#define NBD_REQUEST_MAGIC            UINT32_C(0x25609513)
#define NBD_SIMPLE_REPLY_MAGIC       UINT32_C(0x67446698)
#define NBD_STRUCTURED_REPLY_MAGIC   UINT32_C(0x668e33ef)

/* Server handshake flags (16 bits, sent in the greeting). */
#define NBD_FLAG_FIXED_NEWSTYLE   (1u << 0)
#define NBD_FLAG_NO_ZEROES        (1u << 1)

/* Client flags (32 bits, the client's answer to the greeting). */
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES      (1u << 1)
#define NBD_FLAG_C_KNOWN          (NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)

/* Transmission flags (16 bits, per export). */
#define NBD_FLAG_HAS_FLAGS          (1u << 0)
#define NBD_FLAG_READ_ONLY          (1u << 1)
#define NBD_FLAG_SEND_FLUSH         (1u << 2)
#define NBD_FLAG_SEND_FUA           (1u << 3)
#define NBD_FLAG_ROTATIONAL         (1u << 4)
#define NBD_FLAG_SEND_TRIM          (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES  (1u << 6)
#define NBD_FLAG_SEND_DF            (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN     (1u << 8)

/* Options. */
#define NBD_OPT_EXPORT_NAME       1
#define NBD_OPT_ABORT             2
#define NBD_OPT_LIST              3
#define NBD_OPT_PEEK_EXPORT       4
#define NBD_OPT_STARTTLS          5
#define NBD_OPT_INFO              6
#define NBD_OPT_GO                7
#define NBD_OPT_STRUCTURED_REPLY  8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT  10
#define NBD_OPT_EXTENDED_HEADERS  11

/* Option replies; errors have bit 31 set. */
#define NBD_REP_ACK               1
#define NBD_REP_SERVER            2
#define NBD_REP_INFO              3
#define NBD_REP_META_CONTEXT      4
#define NBD_REP_ERR(n)            (UINT32_C(0x80000000) | (n))
#define NBD_REP_ERR_UNSUP         NBD_REP_ERR (1)
#define NBD_REP_ERR_POLICY        NBD_REP_ERR (2)
#define NBD_REP_ERR_INVALID       NBD_REP_ERR (3)
#define NBD_REP_ERR_PLATFORM      NBD_REP_ERR (4)
#define NBD_REP_ERR_TLS_REQD      NBD_REP_ERR (5)
#define NBD_REP_ERR_UNKNOWN       NBD_REP_ERR (6)
#define NBD_REP_ERR_SHUTDOWN      NBD_REP_ERR (7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD NBD_REP_ERR (8)
#define NBD_REP_ERR_TOO_BIG       NBD_REP_ERR (9)

/* Information types inside NBD_REP_INFO. */
#define NBD_INFO_EXPORT           0
#define NBD_INFO_NAME             1
#define NBD_INFO_DESCRIPTION      2
#define NBD_INFO_BLOCK_SIZE       3

/* Commands. */
#define NBD_CMD_READ              0
#define NBD_CMD_WRITE             1
#define NBD_CMD_DISC              2
#define NBD_CMD_FLUSH             3
#define NBD_CMD_TRIM              4
#define NBD_CMD_CACHE             5
#define NBD_CMD_WRITE_ZEROES      6
#define NBD_CMD_BLOCK_STATUS      7

/* Command flags. */
#define NBD_CMD_FLAG_FUA          (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE      (1u << 1)
#define NBD_CMD_FLAG_DF           (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE      (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO    (1u << 4)

/* Structured reply flags and chunk types. */
#define NBD_REPLY_FLAG_DONE       (1u << 0)
#define NBD_REPLY_TYPE_NONE         0
#define NBD_REPLY_TYPE_OFFSET_DATA  1
#define NBD_REPLY_TYPE_OFFSET_HOLE  2
#define NBD_REPLY_TYPE_ERROR        ((1u << 15) + 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET ((1u << 15) + 2)

/* Error values carried in replies (not the host's errno values). */
#define NBD_SUCCESS     0
#define NBD_EPERM       1
#define NBD_EIO         5
#define NBD_ENOMEM      12
#define NBD_EINVAL      22
#define NBD_ENOSPC      28
#define NBD_EOVERFLOW   75
#define NBD_ENOTSUP     95
#define NBD_ESHUTDOWN   108

/* Fixed frame sizes. */
#define NBD_GREETING_LEN          18   /* NBDMAGIC, IHAVEOPT, 16-bit flags */
#define NBD_CLIENT_FLAGS_LEN      4
#define NBD_OPTION_HDR_LEN        16   /* IHAVEOPT, option, length */
#define NBD_OPTION_REPLY_LEN      20   /* magic, option, reply type, length */
#define NBD_REQUEST_LEN           28
#define NBD_SIMPLE_REPLY_LEN      16
#define NBD_CHUNK_HDR_LEN         20
#define NBD_EXPORT_NAME_REPLY_LEN 10   /* size, flags; then 124 zeroes unless NO_ZEROES */
#define NBD_EXPORT_NAME_ZEROES    124

/* Strings (names, messages) must be at most this long (proto.md). */
#define NBD_MAX_STRING            4096

/* Largest option payload the server will read.  GO carries a name of
 * at most 4096 bytes and a short list of info requests; anything much
 * larger is a confused or hostile client.
 */
#define NBD_MAX_OPTION_LEN        (NBD_MAX_STRING + 4 + 2 + 2 * 256)

/* Longest message put into a structured error chunk; it keeps the whole
 * chunk (20 + 6 + message) within a small fixed header buffer.
 */
#define NBD_ERROR_MSG_MAX         96

/* ---- handshake ---- */

/* Encode the server greeting (NBD_GREETING_LEN bytes). */
size_t nbd_encode_greeting (void *buf, uint16_t handshake_flags);

/* Check the client's 32-bit flags.  Returns NULL if acceptable, else a
 * reason to log before hanging up (the client does not speak fixed
 * newstyle, or sets flags we do not know).
 */
const char *nbd_check_client_flags (const void *buf, uint32_t *flags_out);

struct nbd_option_hdr {
  uint32_t option;
  uint32_t len;                 /* payload bytes that follow */
};

/* Decode an option header (NBD_OPTION_HDR_LEN bytes).  Returns NULL if
 * usable, else a reason to hang up (bad magic, payload too long to read).
 */
const char *nbd_decode_option_hdr (const void *buf, struct nbd_option_hdr *h);

/* What a well-formed option asks for. */
struct nbd_option {
  uint32_t option;
  /* EXPORT_NAME, INFO, GO: the export name.  Points into the payload
   * and is not NUL terminated.
   */
  const char *name;
  uint32_t name_len;
  /* INFO, GO: bit (1 << NBD_INFO_x) set for each info the client asked
   * for that we know; unknown requests are ignored as the spec says.
   */
  uint32_t info_wanted;
};

/* Parse an option's payload.  Returns 0 (NBD_SUCCESS) when it is well
 * formed and one this server implements, otherwise the NBD_REP_ERR_*
 * the server should answer with (NBD_REP_ERR_UNSUP for unknown options,
 * NBD_REP_ERR_INVALID for malformed ones).  NBD_OPT_EXPORT_NAME cannot
 * be answered with an error: the caller must hang up instead.
 */
uint32_t nbd_parse_option (uint32_t option, const void *payload, uint32_t len,
                           struct nbd_option *out);

/* Encode an option reply header (NBD_OPTION_REPLY_LEN bytes); len is
 * the reply payload that follows it.
 */
size_t nbd_encode_option_reply (void *buf, uint32_t option, uint32_t reply,
                                uint32_t len);

/* NBD_REP_INFO payloads (2-byte type included).  Return bytes written. */
size_t nbd_encode_info_export (void *buf, uint64_t size, uint16_t tflags);     /* 12 */
size_t nbd_encode_info_block_size (void *buf, uint32_t min, uint32_t pref,
                                   uint32_t max);                              /* 14 */
/* NBD_INFO_NAME / NBD_INFO_DESCRIPTION: the 2-byte type; the string follows. */
size_t nbd_encode_info_type (void *buf, uint16_t type);                        /* 2 */

/* Reply to NBD_OPT_EXPORT_NAME: size and transmission flags (10 bytes);
 * 124 zero bytes follow unless the client set NBD_FLAG_C_NO_ZEROES.
 */
size_t nbd_encode_export_name_reply (void *buf, uint64_t size, uint16_t tflags);

/* ---- transmission ---- */

struct nbd_request {
  uint32_t magic;
  uint16_t flags;
  uint16_t type;
  uint64_t cookie;
  uint64_t offset;
  uint32_t len;
};

/* The export as negotiated, against which requests are checked. */
struct nbd_export {
  uint64_t size;
  uint16_t tflags;              /* transmission flags advertised */
  uint32_t min_block;           /* power of 2, >= 1 */
  uint32_t pref_block;
  uint32_t max_payload;         /* largest READ/WRITE payload */
  bool structured;              /* structured replies negotiated */
};

void nbd_decode_request (const void *buf, struct nbd_request *r);

enum nbd_verdict {
  NBD_REQ_OK,          /* serve it */
  NBD_REQ_ERROR,       /* reply with *err and carry on (a WRITE's payload
                          must still be read and thrown away) */
  NBD_REQ_HANG_UP,     /* the stream can no longer be trusted: close */
};

/* Check a decoded request against the export.  On NBD_REQ_ERROR sets
 * *err to the NBD error to reply with; on ERROR and HANG_UP sets *why
 * to a reason for the log.
 */
enum nbd_verdict nbd_check_request (const struct nbd_request *r,
                                    const struct nbd_export *e,
                                    uint32_t *err, const char **why);

/* Simple reply (NBD_SIMPLE_REPLY_LEN bytes); a READ's data follows. */
size_t nbd_encode_simple_reply (void *buf, uint64_t cookie, uint32_t err);

/* Structured reply chunk header (NBD_CHUNK_HDR_LEN bytes). */
size_t nbd_encode_chunk_hdr (void *buf, uint16_t flags, uint16_t type,
                             uint64_t cookie, uint32_t len);

/* Final OFFSET_DATA chunk header plus offset (28 bytes); data_len bytes
 * of data follow.
 */
size_t nbd_encode_read_chunk (void *buf, uint64_t cookie, uint64_t offset,
                              uint32_t data_len);

/* Final NONE chunk (20 bytes): success with nothing to say. */
size_t nbd_encode_none_chunk (void *buf, uint64_t cookie);

/* Final ERROR chunk with a message (truncated to NBD_ERROR_MSG_MAX).
 * buf must hold NBD_CHUNK_HDR_LEN + 6 + NBD_ERROR_MSG_MAX bytes.
 */
size_t nbd_encode_error_chunk (void *buf, uint64_t cookie, uint32_t err,
                               const char *msg);

/* Map a host errno (positive) to an NBD error. */
uint32_t nbd_errno_to_nbd (int err);

/* Names for log lines ("NBD_OPT_GO", "NBD_CMD_READ"; "unknown" else). */
const char *nbd_option_name (uint32_t option);
const char *nbd_cmd_name (uint16_t cmd);

#endif
