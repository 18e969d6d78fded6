/* test_nbd.c - NBD option parsing, request validation and reply
 * encoding (userspace/lib/frontend/nbd_proto.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <endian.h>
#include <errno.h>
#include <cmocka.h>

#include "frontend/nbd_proto.h"
#include "frontend/frontend.h"

/* ---- little builders for raw frames ---- */

static size_t
put16 (char *p, uint16_t v)
{
  v = htobe16 (v);
  memcpy (p, &v, 2);
  return 2;
}

static size_t
put32 (char *p, uint32_t v)
{
  v = htobe32 (v);
  memcpy (p, &v, 4);
  return 4;
}

static size_t
put64 (char *p, uint64_t v)
{
  v = htobe64 (v);
  memcpy (p, &v, 8);
  return 8;
}

static uint16_t get16 (const char *p) { uint16_t v; memcpy (&v, p, 2); return be16toh (v); }
static uint32_t get32 (const char *p) { uint32_t v; memcpy (&v, p, 4); return be32toh (v); }
static uint64_t get64 (const char *p) { uint64_t v; memcpy (&v, p, 8); return be64toh (v); }

/* An INFO / GO payload: name, then the given info requests. */
static size_t
info_payload (char *buf, const char *name, const uint16_t *reqs, int n)
{
  size_t len = strlen (name), off = 0;
  int i;

  off += put32 (buf + off, len);
  memcpy (buf + off, name, len);
  off += len;
  off += put16 (buf + off, n);
  for (i = 0; i < n; i++)
    off += put16 (buf + off, reqs[i]);
  return off;
}

static void
request (char *buf, uint32_t magic, uint16_t flags, uint16_t type,
         uint64_t cookie, uint64_t offset, uint32_t len)
{
  put32 (buf, magic);
  put16 (buf + 4, flags);
  put16 (buf + 6, type);
  put64 (buf + 8, cookie);
  put64 (buf + 16, offset);
  put32 (buf + 24, len);
}

static const struct nbd_export export = {
  .size = 64 << 20,
  .tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
            NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
            NBD_FLAG_CAN_MULTI_CONN,
  .min_block = 512,
  .pref_block = 4096,
  .max_payload = 1 << 20,
};

/* Decode raw bytes and check them against the export. */
static enum nbd_verdict
check (uint32_t magic, uint16_t flags, uint16_t type, uint64_t offset,
       uint32_t len, uint32_t *err)
{
  char buf[NBD_REQUEST_LEN];
  struct nbd_request r;
  const char *why;
  enum nbd_verdict v;

  request (buf, magic, flags, type, 0x1122334455667788ull, offset, len);
  nbd_decode_request (buf, &r);
  assert_int_equal (r.cookie, 0x1122334455667788ull);
  assert_int_equal (r.offset, offset);
  assert_int_equal (r.len, len);
  v = nbd_check_request (&r, &export, err, &why);
  if (v != NBD_REQ_OK)
    assert_non_null (why);
  return v;
}

/* ---- handshake ---- */

static void
test_greeting (void **state)
{
  char buf[NBD_GREETING_LEN];

  assert_int_equal (nbd_encode_greeting (buf, NBD_FLAG_FIXED_NEWSTYLE |
                                         NBD_FLAG_NO_ZEROES), 18);
  assert_memory_equal (buf, "NBDMAGICIHAVEOPT", 16);
  assert_int_equal (get16 (buf + 16), 3);
}

static void
test_client_flags (void **state)
{
  char buf[4];
  uint32_t f;

  put32 (buf, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  assert_null (nbd_check_client_flags (buf, &f));
  assert_int_equal (f, 3);
  put32 (buf, NBD_FLAG_C_FIXED_NEWSTYLE);
  assert_null (nbd_check_client_flags (buf, &f));
  /* Plain (not fixed) newstyle, and unknown bits, are refused. */
  put32 (buf, 0);
  assert_non_null (nbd_check_client_flags (buf, &f));
  put32 (buf, NBD_FLAG_C_NO_ZEROES);
  assert_non_null (nbd_check_client_flags (buf, &f));
  put32 (buf, NBD_FLAG_C_FIXED_NEWSTYLE | (1u << 7));
  assert_non_null (nbd_check_client_flags (buf, &f));
}

static void
test_option_hdr (void **state)
{
  char buf[NBD_OPTION_HDR_LEN];
  struct nbd_option_hdr h;

  put64 (buf, NBD_OPTS_MAGIC);
  put32 (buf + 8, NBD_OPT_GO);
  put32 (buf + 12, 20);
  assert_null (nbd_decode_option_hdr (buf, &h));
  assert_int_equal (h.option, NBD_OPT_GO);
  assert_int_equal (h.len, 20);

  put32 (buf + 12, NBD_MAX_OPTION_LEN + 1);
  assert_non_null (nbd_decode_option_hdr (buf, &h));   /* too long */
  put32 (buf + 12, UINT32_MAX);
  assert_non_null (nbd_decode_option_hdr (buf, &h));

  put32 (buf + 12, 0);
  put64 (buf, NBD_MAGIC);                               /* wrong magic */
  assert_non_null (nbd_decode_option_hdr (buf, &h));
}

static void
test_opt_go_with_info (void **state)
{
  char buf[256];
  uint16_t reqs[] = { NBD_INFO_NAME, NBD_INFO_BLOCK_SIZE, 77 /* unknown */ };
  struct nbd_option o;
  size_t n = info_payload (buf, "vol1", reqs, 3);

  assert_int_equal (nbd_parse_option (NBD_OPT_GO, buf, n, &o), NBD_SUCCESS);
  assert_int_equal (o.option, NBD_OPT_GO);
  assert_int_equal (o.name_len, 4);
  assert_memory_equal (o.name, "vol1", 4);
  assert_int_equal (o.info_wanted,
                    (1u << NBD_INFO_NAME) | (1u << NBD_INFO_BLOCK_SIZE));

  /* Same layout for INFO; empty name and empty request list are fine. */
  n = info_payload (buf, "", NULL, 0);
  assert_int_equal (n, 6);
  assert_int_equal (nbd_parse_option (NBD_OPT_INFO, buf, n, &o), NBD_SUCCESS);
  assert_int_equal (o.name_len, 0);
  assert_int_equal (o.info_wanted, 0);
}

static void
test_opt_go_malformed (void **state)
{
  char buf[256];
  uint16_t reqs[] = { NBD_INFO_DESCRIPTION };
  struct nbd_option o;
  size_t n = info_payload (buf, "vol1", reqs, 1);

  /* Too short for the fixed fields. */
  assert_int_equal (nbd_parse_option (NBD_OPT_GO, buf, 5, &o),
                    NBD_REP_ERR_INVALID);
  assert_int_equal (nbd_parse_option (NBD_OPT_GO, buf, 0, &o),
                    NBD_REP_ERR_INVALID);
  /* Trailing garbage, and a count that runs past the end. */
  assert_int_equal (nbd_parse_option (NBD_OPT_GO, buf, n + 1, &o),
                    NBD_REP_ERR_INVALID);
  assert_int_equal (nbd_parse_option (NBD_OPT_GO, buf, n - 1, &o),
                    NBD_REP_ERR_INVALID);
  /* Name length larger than the payload (and one that would wrap). */
  put32 (buf, 1000);
  assert_int_equal (nbd_parse_option (NBD_OPT_GO, buf, n, &o),
                    NBD_REP_ERR_INVALID);
  put32 (buf, UINT32_MAX - 2);
  assert_int_equal (nbd_parse_option (NBD_OPT_INFO, buf, n, &o),
                    NBD_REP_ERR_INVALID);
  /* NUL inside the name. */
  memcpy (buf + 4, "vo\0l", 4);
  put32 (buf, 4);
  put16 (buf + 8, 0);
  assert_int_equal (nbd_parse_option (NBD_OPT_GO, buf, 10, &o),
                    NBD_REP_ERR_INVALID);
}

static void
test_opt_simple (void **state)
{
  struct nbd_option o;
  char junk[4] = "abcd";

  assert_int_equal (nbd_parse_option (NBD_OPT_LIST, NULL, 0, &o), NBD_SUCCESS);
  assert_int_equal (nbd_parse_option (NBD_OPT_LIST, junk, 4, &o),
                    NBD_REP_ERR_INVALID);
  assert_int_equal (nbd_parse_option (NBD_OPT_STRUCTURED_REPLY, NULL, 0, &o),
                    NBD_SUCCESS);
  assert_int_equal (nbd_parse_option (NBD_OPT_STRUCTURED_REPLY, junk, 1, &o),
                    NBD_REP_ERR_INVALID);
  /* ABORT: data is to be ignored, not refused. */
  assert_int_equal (nbd_parse_option (NBD_OPT_ABORT, NULL, 0, &o), NBD_SUCCESS);
  assert_int_equal (nbd_parse_option (NBD_OPT_ABORT, junk, 4, &o), NBD_SUCCESS);
  /* Unimplemented and unknown options. */
  assert_int_equal (nbd_parse_option (NBD_OPT_STARTTLS, NULL, 0, &o),
                    NBD_REP_ERR_UNSUP);
  assert_int_equal (nbd_parse_option (NBD_OPT_SET_META_CONTEXT, junk, 4, &o),
                    NBD_REP_ERR_UNSUP);
  assert_int_equal (nbd_parse_option (12345, NULL, 0, &o), NBD_REP_ERR_UNSUP);
}

static void
test_opt_export_name (void **state)
{
  struct nbd_option o;

  assert_int_equal (nbd_parse_option (NBD_OPT_EXPORT_NAME, "vol1", 4, &o),
                    NBD_SUCCESS);
  assert_int_equal (o.name_len, 4);
  assert_memory_equal (o.name, "vol1", 4);
  assert_int_equal (nbd_parse_option (NBD_OPT_EXPORT_NAME, NULL, 0, &o),
                    NBD_SUCCESS);
  assert_int_equal (o.name_len, 0);
  assert_int_equal (nbd_parse_option (NBD_OPT_EXPORT_NAME, "a\0b", 3, &o),
                    NBD_REP_ERR_INVALID);
}

static void
test_option_replies (void **state)
{
  char buf[64];

  assert_int_equal (nbd_encode_option_reply (buf, NBD_OPT_GO,
                                             NBD_REP_ERR_UNKNOWN, 7), 20);
  assert_int_equal (get64 (buf), NBD_REP_MAGIC);
  assert_int_equal (get32 (buf + 8), NBD_OPT_GO);
  assert_int_equal (get32 (buf + 12), 0x80000006);
  assert_int_equal (get32 (buf + 16), 7);

  assert_int_equal (nbd_encode_info_export (buf, 1ull << 40, 0x12d), 12);
  assert_int_equal (get16 (buf), NBD_INFO_EXPORT);
  assert_int_equal (get64 (buf + 2), 1ull << 40);
  assert_int_equal (get16 (buf + 10), 0x12d);

  assert_int_equal (nbd_encode_info_block_size (buf, 512, 4096, 32 << 20), 14);
  assert_int_equal (get16 (buf), NBD_INFO_BLOCK_SIZE);
  assert_int_equal (get32 (buf + 2), 512);
  assert_int_equal (get32 (buf + 6), 4096);
  assert_int_equal (get32 (buf + 10), 32 << 20);

  assert_int_equal (nbd_encode_export_name_reply (buf, 4096, 0x3), 10);
  assert_int_equal (get64 (buf), 4096);
  assert_int_equal (get16 (buf + 8), 3);
}

/* ---- transmission ---- */

static void
test_request_ok (void **state)
{
  uint32_t err;

  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_READ, 0, 4096, &err),
                    NBD_REQ_OK);
  assert_int_equal (check (NBD_REQUEST_MAGIC, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE,
                           (64 << 20) - 512, 512, &err), NBD_REQ_OK);
  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_FLUSH, 0, 0, &err),
                    NBD_REQ_OK);
  assert_int_equal (check (NBD_REQUEST_MAGIC, NBD_CMD_FLAG_FUA, NBD_CMD_TRIM,
                           0, 64 << 20, &err), NBD_REQ_OK);
  /* WRITE_ZEROES may exceed the maximum payload: it has none. */
  assert_int_equal (check (NBD_REQUEST_MAGIC,
                           NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE,
                           NBD_CMD_WRITE_ZEROES, 4096, 8 << 20, &err),
                    NBD_REQ_OK);
  /* FUA on a read or flush is allowed (and ignored). */
  assert_int_equal (check (NBD_REQUEST_MAGIC, NBD_CMD_FLAG_FUA, NBD_CMD_READ,
                           0, 512, &err), NBD_REQ_OK);
  assert_int_equal (check (NBD_REQUEST_MAGIC, NBD_CMD_FLAG_FUA, NBD_CMD_FLUSH,
                           0, 0, &err), NBD_REQ_OK);
  /* Zero-length requests at the very end are in range. */
  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_READ, 64 << 20, 0,
                           &err), NBD_REQ_OK);
  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_DISC, 0, 0, &err),
                    NBD_REQ_OK);
}

static void
test_request_bad_magic (void **state)
{
  uint32_t err;

  assert_int_equal (check (0x25609514, 0, NBD_CMD_READ, 0, 512, &err),
                    NBD_REQ_HANG_UP);
  assert_int_equal (check (NBD_SIMPLE_REPLY_MAGIC, 0, NBD_CMD_WRITE, 0, 512,
                           &err), NBD_REQ_HANG_UP);
  assert_int_equal (check (0, 0, 0, 0, 0, &err), NBD_REQ_HANG_UP);
}

static void
test_request_unknown_command (void **state)
{
  uint32_t err;

  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_CACHE, 0, 512, &err),
                    NBD_REQ_ERROR);
  assert_int_equal (err, NBD_EINVAL);
  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_BLOCK_STATUS, 0, 512,
                           &err), NBD_REQ_ERROR);
  assert_int_equal (err, NBD_EINVAL);
  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, 999, 0, 0, &err),
                    NBD_REQ_ERROR);
  assert_int_equal (err, NBD_EINVAL);
}

static void
test_request_bad_flags (void **state)
{
  uint32_t err;

  /* DF was not advertised; NO_HOLE belongs to WRITE_ZEROES only. */
  assert_int_equal (check (NBD_REQUEST_MAGIC, NBD_CMD_FLAG_DF, NBD_CMD_READ,
                           0, 512, &err), NBD_REQ_ERROR);
  assert_int_equal (err, NBD_EINVAL);
  assert_int_equal (check (NBD_REQUEST_MAGIC, NBD_CMD_FLAG_NO_HOLE,
                           NBD_CMD_WRITE, 0, 512, &err), NBD_REQ_ERROR);
  assert_int_equal (err, NBD_EINVAL);
  assert_int_equal (check (NBD_REQUEST_MAGIC, NBD_CMD_FLAG_NO_HOLE,
                           NBD_CMD_TRIM, 0, 512, &err), NBD_REQ_ERROR);
  /* FAST_ZERO was not advertised either; unknown bits never are. */
  assert_int_equal (check (NBD_REQUEST_MAGIC, NBD_CMD_FLAG_FAST_ZERO,
                           NBD_CMD_WRITE_ZEROES, 0, 512, &err), NBD_REQ_ERROR);
  assert_int_equal (check (NBD_REQUEST_MAGIC, 1u << 12, NBD_CMD_READ, 0, 512,
                           &err), NBD_REQ_ERROR);
  assert_int_equal (err, NBD_EINVAL);
  /* Flush with an offset or length. */
  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_FLUSH, 512, 0, &err),
                    NBD_REQ_ERROR);
  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_FLUSH, 0, 512, &err),
                    NBD_REQ_ERROR);
}

static void
test_request_out_of_range (void **state)
{
  uint32_t err;

  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_READ, 64 << 20, 512,
                           &err), NBD_REQ_ERROR);
  assert_int_equal (err, NBD_EINVAL);
  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_TRIM,
                           (64 << 20) - 512, 1024, &err), NBD_REQ_ERROR);
  assert_int_equal (err, NBD_EINVAL);
  /* Writes past the end are ENOSPC, as the spec recommends. */
  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_WRITE,
                           (64 << 20) - 512, 1024, &err), NBD_REQ_ERROR);
  assert_int_equal (err, NBD_ENOSPC);
  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_WRITE_ZEROES,
                           1ull << 40, 512, &err), NBD_REQ_ERROR);
  assert_int_equal (err, NBD_ENOSPC);
  /* offset + len wrapping around 2^64 must not pass. */
  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_READ,
                           UINT64_MAX - 511, 1024, &err), NBD_REQ_ERROR);
  assert_int_equal (err, NBD_EINVAL);
}

static void
test_request_misaligned (void **state)
{
  uint32_t err;

  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_READ, 100, 512,
                           &err), NBD_REQ_ERROR);
  assert_int_equal (err, NBD_EINVAL);
  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_WRITE, 512, 513,
                           &err), NBD_REQ_ERROR);
  assert_int_equal (err, NBD_EINVAL);
  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_WRITE_ZEROES, 1, 511,
                           &err), NBD_REQ_ERROR);
  assert_int_equal (err, NBD_EINVAL);
}

static void
test_request_oversized (void **state)
{
  uint32_t err;

  /* A WRITE bigger than the maximum cannot be skipped: hang up. */
  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_WRITE, 0,
                           (1 << 20) + 512, &err), NBD_REQ_HANG_UP);
  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_WRITE, 0,
                           UINT32_MAX, &err), NBD_REQ_HANG_UP);
  /* A READ that big has no payload to skip: an error will do. */
  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_READ, 0,
                           (1 << 20) + 512, &err), NBD_REQ_ERROR);
  assert_int_equal (err, NBD_EINVAL);
  /* Exactly the maximum is fine. */
  assert_int_equal (check (NBD_REQUEST_MAGIC, 0, NBD_CMD_WRITE, 0, 1 << 20,
                           &err), NBD_REQ_OK);
}

static void
test_simple_reply (void **state)
{
  char buf[NBD_SIMPLE_REPLY_LEN];

  assert_int_equal (nbd_encode_simple_reply (buf, 0xabcdef0123456789ull,
                                             NBD_EIO), 16);
  assert_int_equal (get32 (buf), NBD_SIMPLE_REPLY_MAGIC);
  assert_int_equal (get32 (buf + 4), NBD_EIO);
  assert_int_equal (get64 (buf + 8), 0xabcdef0123456789ull);
}

static void
test_structured_replies (void **state)
{
  char buf[NBD_CHUNK_HDR_LEN + 6 + NBD_ERROR_MSG_MAX];
  char longmsg[300];

  assert_int_equal (nbd_encode_read_chunk (buf, 42, 1 << 20, 4096), 28);
  assert_int_equal (get32 (buf), NBD_STRUCTURED_REPLY_MAGIC);
  assert_int_equal (get16 (buf + 4), NBD_REPLY_FLAG_DONE);
  assert_int_equal (get16 (buf + 6), NBD_REPLY_TYPE_OFFSET_DATA);
  assert_int_equal (get64 (buf + 8), 42);
  assert_int_equal (get32 (buf + 16), 8 + 4096);
  assert_int_equal (get64 (buf + 20), 1 << 20);

  assert_int_equal (nbd_encode_none_chunk (buf, 7), 20);
  assert_int_equal (get16 (buf + 4), NBD_REPLY_FLAG_DONE);
  assert_int_equal (get16 (buf + 6), NBD_REPLY_TYPE_NONE);
  assert_int_equal (get32 (buf + 16), 0);

  assert_int_equal (nbd_encode_error_chunk (buf, 9, NBD_EIO, "boom"), 30);
  assert_int_equal (get16 (buf + 4), NBD_REPLY_FLAG_DONE);
  assert_int_equal (get16 (buf + 6), NBD_REPLY_TYPE_ERROR);
  assert_int_equal (get32 (buf + 16), 10);
  assert_int_equal (get32 (buf + 20), NBD_EIO);
  assert_int_equal (get16 (buf + 24), 4);
  assert_memory_equal (buf + 26, "boom", 4);

  /* Long messages are cut to fit; an error chunk never says 0. */
  memset (longmsg, 'x', sizeof longmsg - 1);
  longmsg[sizeof longmsg - 1] = '\0';
  assert_int_equal (nbd_encode_error_chunk (buf, 9, 0, longmsg),
                    NBD_CHUNK_HDR_LEN + 6 + NBD_ERROR_MSG_MAX);
  assert_int_equal (get32 (buf + 20), NBD_EIO);
  assert_int_equal (get16 (buf + 24), NBD_ERROR_MSG_MAX);
}

static void
test_errno_map (void **state)
{
  assert_int_equal (nbd_errno_to_nbd (0), NBD_SUCCESS);
  assert_int_equal (nbd_errno_to_nbd (EIO), NBD_EIO);
  assert_int_equal (nbd_errno_to_nbd (ETIMEDOUT), NBD_EIO);
  assert_int_equal (nbd_errno_to_nbd (EROFS), NBD_EPERM);
  assert_int_equal (nbd_errno_to_nbd (EDQUOT), NBD_ENOSPC);
  assert_int_equal (nbd_errno_to_nbd (EFBIG), NBD_ENOSPC);
  assert_int_equal (nbd_errno_to_nbd (EINVAL), NBD_EINVAL);
  assert_int_equal (nbd_errno_to_nbd (ENOMEM), NBD_ENOMEM);
  assert_int_equal (nbd_errno_to_nbd (EOPNOTSUPP), NBD_ENOTSUP);
  assert_int_equal (nbd_errno_to_nbd (ESHUTDOWN), NBD_ESHUTDOWN);
}

static void
test_frontend_find (void **state)
{
  assert_non_null (frontend_find ("nbd"));
  assert_string_equal (frontend_find ("nbd")->name, "nbd");
  assert_string_equal (frontend_find ("nbd-kernel")->name, "nbd-kernel");
  assert_null (frontend_find ("nope"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_greeting),
    cmocka_unit_test (test_client_flags),
    cmocka_unit_test (test_option_hdr),
    cmocka_unit_test (test_opt_go_with_info),
    cmocka_unit_test (test_opt_go_malformed),
    cmocka_unit_test (test_opt_simple),
    cmocka_unit_test (test_opt_export_name),
    cmocka_unit_test (test_option_replies),
    cmocka_unit_test (test_request_ok),
    cmocka_unit_test (test_request_bad_magic),
    cmocka_unit_test (test_request_unknown_command),
    cmocka_unit_test (test_request_bad_flags),
    cmocka_unit_test (test_request_out_of_range),
    cmocka_unit_test (test_request_misaligned),
    cmocka_unit_test (test_request_oversized),
    cmocka_unit_test (test_simple_reply),
    cmocka_unit_test (test_structured_replies),
    cmocka_unit_test (test_errno_map),
    cmocka_unit_test (test_frontend_find),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
