/* test_proto.c - the replication protocol codec (replica/proto.c): round
 * trips of every frame, and refusal of what a peer must never get past
 * the decoder: wrong magic, unknown commands and flags, oversized
 * lengths, bad names, misaligned or out-of-range offsets; the SET_EPOCH
 * payload, and the HELLO epoch rule (forward only, by a bounded step).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "core/util.h"
#include "core/wire.h"
#include "replica/proto.h"


/* ---- HELLO ---- */

static void
test_hello_roundtrip (void **state)
{
  struct rv_hello in = { .version = RV_PROTO_VERSION, .flags = RV_HELLO_ADMIN,
                         .epoch = 0x0102030405060708ull }, out;
  uint8_t buf[RV_HELLO_SIZE];
  const char *why = NULL;

  strcpy (in.volume, "vol_1.a-b");
  rv_encode_hello (&in, buf);
  assert_int_equal (rv_decode_hello (buf, &out, &why), 0);
  assert_int_equal (out.version, in.version);
  assert_int_equal (out.flags, in.flags);
  assert_true (out.epoch == in.epoch);
  assert_string_equal (out.volume, in.volume);
  /* Little-endian on the wire, magic first. */
  assert_memory_equal (buf, "RLOVHELO", 8);
  assert_int_equal (buf[16], 0x08);
}

static void
test_hello_refused (void **state)
{
  struct rv_hello h = { .version = RV_PROTO_VERSION }, out;
  uint8_t buf[RV_HELLO_SIZE];
  const char *why;

  strcpy (h.volume, "good");
  rv_encode_hello (&h, buf);
  buf[0] ^= 1;
  assert_int_equal (rv_decode_hello (buf, &out, &why), -EPROTO);

  h.version = RV_PROTO_VERSION + 1;
  rv_encode_hello (&h, buf);
  assert_int_equal (rv_decode_hello (buf, &out, &why), -EPROTO);
  h.version = RV_PROTO_VERSION;

  h.flags = 1u << 5;
  rv_encode_hello (&h, buf);
  assert_int_equal (rv_decode_hello (buf, &out, &why), -EPROTO);
  h.flags = 0;

  static const char *bad_names[] = { "", ".dot", "a/b", "sp ace", "x\n" };
  for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
    memset (h.volume, 0, sizeof h.volume);
    strcpy (h.volume, bad_names[i]);
    rv_encode_hello (&h, buf);
    if (rv_decode_hello (buf, &out, &why) != -EPROTO)
      fail_msg ("bad name '%s' accepted", bad_names[i]);
  }
  /* A name with no NUL in its 64 bytes, and garbage after the NUL. */
  strcpy (h.volume, "good");
  rv_encode_hello (&h, buf);
  memset (buf + 24, 'a', RV_NAME_MAX);
  assert_int_equal (rv_decode_hello (buf, &out, &why), -EPROTO);
  rv_encode_hello (&h, buf);
  buf[24 + RV_NAME_MAX - 1] = 'z';
  assert_int_equal (rv_decode_hello (buf, &out, &why), -EPROTO);
}

/* ---- WELCOME ---- */

static void
test_welcome_roundtrip (void **state)
{
  struct rv_welcome in = {
    .version = RV_PROTO_VERSION, .status = RV_OK, .block_size = 4096,
    .exists = 1, .size = 64ull << 20, .epoch = 7,
  }, out;
  uint8_t buf[RV_WELCOME_SIZE];
  const char *why = NULL;

  strcpy (in.server, "alpha");
  strcpy (in.zone, "us-1a");
  rv_encode_welcome (&in, buf);
  assert_int_equal (rv_decode_welcome (buf, &out, &why), 0);
  assert_string_equal (out.server, "alpha");
  assert_string_equal (out.zone, "us-1a");
  assert_int_equal (out.block_size, 4096);
  assert_int_equal (out.exists, 1);
  assert_true (out.size == in.size && out.epoch == 7);

  /* No zone, no volume: still valid. */
  in.zone[0] = '\0';
  in.exists = 0;
  in.size = 0;
  in.block_size = 0;
  in.status = RV_EPERM;
  rv_encode_welcome (&in, buf);
  assert_int_equal (rv_decode_welcome (buf, &out, &why), 0);
  assert_string_equal (out.zone, "");
  assert_int_equal (out.status, RV_EPERM);

  /* Features and the idle timeout travel in what was padding; a
   * WELCOME from a server before them (zeroes there) means neither, and
   * bits a client does not know are not an error.
   */
  in.features = RV_FEAT_PING | 0x80000000u;
  in.idle_timeout_ms = 60000;
  rv_encode_welcome (&in, buf);
  assert_int_equal (getle32 (buf + 168), RV_FEAT_PING | 0x80000000u);
  assert_int_equal (getle32 (buf + 172), 60000);
  assert_int_equal (rv_decode_welcome (buf, &out, &why), 0);
  assert_int_equal (out.features, RV_FEAT_PING | 0x80000000u);
  assert_int_equal (out.idle_timeout_ms, 60000);
  memset (buf + 168, 0, 8);
  assert_int_equal (rv_decode_welcome (buf, &out, &why), 0);
  assert_int_equal (out.features, 0);
  assert_int_equal (out.idle_timeout_ms, 0);

  buf[3] ^= 0x40;
  assert_int_equal (rv_decode_welcome (buf, &out, &why), -EPROTO);
  in.server[0] = '\0';
  rv_encode_welcome (&in, buf);
  assert_int_equal (rv_decode_welcome (buf, &out, &why), -EPROTO);
}

/* ---- requests ---- */

static int
decode_req (const struct rv_req *r, struct rv_req *out, const char **why)
{
  uint8_t buf[RV_REQ_SIZE];
  rv_encode_req (r, buf);
  return rv_decode_req (buf, out, why);
}

static void
test_req_roundtrip (void **state)
{
  static const struct rv_req reqs[] = {
    { RV_READ, 0, 1, 4096, 65536, 0 },
    { RV_WRITE, RV_F_FUA, 2, 0, RV_MAX_PAYLOAD, 0xdeadbeef },
    { RV_FLUSH, 0, 3, 0, 0, 0 },
    { RV_TRIM, RV_F_FUA, 4, 1ull << 40, 0xfffff000u, 0 },
    { RV_WRITE_ZEROES, RV_F_FUA | RV_F_NO_HOLE, 5, 512, 1u << 30, 0 },
    { RV_CREATE, 0, 6, 0, RV_CREATE_SIZE, 0x1234 },
    { RV_DELETE, 0, 7, 0, 0, 0 },
    { RV_STAT, 0, UINT64_MAX, 0, 0, 0 },
    { RV_MARK_DIRTY, 0, 8, 65536, 4096, 0 },
    { RV_MARK_DIRTY, 0, 9, 0, 0xfffff000u, 0 },      /* beyond a payload */
    { RV_DIRTY_GET, 0, 10, 0, 0, 0 },
    { RV_DIRTY_CLEAR, 0, 11, 0, 0, 0 },
    { RV_WRITE, RV_F_DIRTY, 12, 0, 4096, 0x1 },
    { RV_WRITE, RV_F_DIRTY | RV_F_FUA, 13, 0, 4096, 0x1 },
    { RV_TRIM, RV_F_DIRTY, 14, 0, 1u << 30, 0 },
    { RV_WRITE_ZEROES, RV_F_DIRTY | RV_F_NO_HOLE | RV_F_FUA, 15, 0, 4096, 0 },
    /* CHECKSUM: a range up to the payload maximum, no payload, no flags */
    { RV_CHECKSUM, 0, 16, 0, 4096, 0 },
    { RV_CHECKSUM, 0, 17, 1ull << 40, RV_MAX_PAYLOAD, 0 },
    /* SET_EPOCH: an 8-byte payload, offset 0 */
    { RV_SET_EPOCH, 0, 18, 0, RV_SET_EPOCH_SIZE, 0x77 },
    /* PING: nothing but a command and an id */
    { RV_PING, 0, (18ull << 16) | 0xffff, 0, 0, 0 },
  };
  for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++) {
    struct rv_req out;
    const char *why = NULL;
    if (decode_req (&reqs[i], &out, &why) != 0)
      fail_msg ("%s refused: %s", rv_cmd_name (reqs[i].cmd), why);
    /* Field by field: struct padding is not part of the wire. */
    assert_int_equal (out.cmd, reqs[i].cmd);
    assert_int_equal (out.flags, reqs[i].flags);
    assert_int_equal (out.id, reqs[i].id);
    assert_int_equal (out.offset, reqs[i].offset);
    assert_int_equal (out.length, reqs[i].length);
    assert_int_equal (out.crc, reqs[i].crc);
  }
}

static void
test_req_refused (void **state)
{
  struct rv_req r = { RV_READ, 0, 1, 0, 4096, 0 }, out;
  uint8_t buf[RV_REQ_SIZE];
  const char *why = NULL;

  rv_encode_req (&r, buf);
  buf[0] = 'X';
  assert_int_equal (rv_decode_req (buf, &out, &why), -EPROTO);
  assert_non_null (why);

  static const struct rv_req bad[] = {
    { 0, 0, 1, 0, 4096, 0 },                            /* unknown cmd */
    { RV_CMD_MAX + 1, 0, 1, 0, 4096, 0 },
    { 0xffff, 0, 1, 0, 4096, 0 },
    { RV_READ, RV_F_FUA, 1, 0, 4096, 0 },               /* flag not allowed */
    { RV_WRITE, RV_F_NO_HOLE, 1, 0, 4096, 0 },
    { RV_WRITE, 1u << 9, 1, 0, 4096, 0 },
    { RV_READ, 0, 1, 0, RV_MAX_PAYLOAD + 1, 0 },        /* oversized */
    { RV_WRITE, 0, 1, 0, RV_MAX_PAYLOAD + 4096, 0 },
    { RV_CREATE, 0, 1, 0, RV_CREATE_SIZE + 1, 0 },      /* wrong payload */
    { RV_CREATE, 0, 1, 0, 0, 0 },
    { RV_FLUSH, 0, 1, 0, 4096, 0 },                     /* no payload cmds */
    { RV_STAT, 0, 1, 8, 0, 0 },
    { RV_DELETE, 0, 1, 0, 1, 0 },
    { RV_READ, 0, 1, 0, 4096, 0x55 },                   /* crc without payload */
    /* dirty map: flags only on WRITE/TRIM/WRITE_ZEROES, GET/CLEAR bare */
    { RV_READ, RV_F_DIRTY, 1, 0, 4096, 0 },
    { RV_FLUSH, RV_F_DIRTY, 1, 0, 0, 0 },
    { RV_MARK_DIRTY, RV_F_DIRTY, 1, 0, 4096, 0 },
    { RV_MARK_DIRTY, RV_F_FUA, 1, 0, 4096, 0 },
    { RV_MARK_DIRTY, 0, 1, 0, 4096, 0x55 },             /* crc, no payload */
    { RV_DIRTY_GET, 0, 1, 0, 16, 0 },
    { RV_DIRTY_GET, 0, 1, 4096, 0, 0 },
    { RV_DIRTY_GET, RV_F_DIRTY, 1, 0, 0, 0 },
    { RV_DIRTY_CLEAR, 0, 1, 0, 4096, 0 },
    { RV_DIRTY_CLEAR, 0, 1, 65536, 0, 0 },
    { RV_DIRTY_CLEAR, RV_F_FUA, 1, 0, 0, 0 },
    /* CHECKSUM: no flags, no crc (it carries no payload), at most
     * RV_MAX_PAYLOAD bytes of range
     */
    { RV_CHECKSUM, RV_F_FUA, 1, 0, 4096, 0 },
    { RV_CHECKSUM, RV_F_DIRTY, 1, 0, 4096, 0 },
    { RV_CHECKSUM, RV_F_NO_HOLE, 1, 0, 4096, 0 },
    { RV_CHECKSUM, 0, 1, 0, 4096, 0x55 },
    { RV_CHECKSUM, 0, 1, 0, RV_MAX_PAYLOAD + 1, 0 },
    { RV_CHECKSUM, 0, 1, 0, 0xfffff000u, 0 },
    /* SET_EPOCH: exactly its 8-byte payload, at offset 0, no flags */
    { RV_SET_EPOCH, 0, 1, 0, 0, 0 },
    { RV_SET_EPOCH, 0, 1, 0, RV_SET_EPOCH_SIZE + 1, 0 },
    { RV_SET_EPOCH, 0, 1, 4096, RV_SET_EPOCH_SIZE, 0 },
    { RV_SET_EPOCH, RV_F_FUA, 1, 0, RV_SET_EPOCH_SIZE, 0 },
    { RV_CMD_MAX + 1, 0, 1, 0, 0, 0 },                  /* past the last */
    { RV_CMD_MAX + 1, 0, 1, 0, 4096, 0 },
    /* PING carries nothing: no flags, offset, length or crc */
    { RV_PING, RV_F_FUA, 1, 0, 0, 0 },
    { RV_PING, 0, 1, 4096, 0, 0 },
    { RV_PING, 0, 1, 0, 4096, 0 },
    { RV_PING, 0, 1, 0, 0, 0x55 },
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    why = NULL;
    if (decode_req (&bad[i], &out, &why) != -EPROTO)
      fail_msg ("bad request %zu (cmd %u) accepted", i, bad[i].cmd);
    assert_non_null (why);
  }
}

static void
test_check_range (void **state)
{
  const uint64_t size = 1 << 20;
  const char *why;
  struct rv_req r = { RV_READ, 0, 1, 0, 4096, 0 };

  assert_int_equal (rv_check_range (&r, size, 4096, &why), 0);
  r.offset = size - 4096;
  assert_int_equal (rv_check_range (&r, size, 4096, &why), 0);

  r.offset = size;                                       /* past the end */
  assert_int_equal (rv_check_range (&r, size, 4096, &why), -EPROTO);
  r.offset = size - 4096; r.length = 8192;               /* straddles it */
  assert_int_equal (rv_check_range (&r, size, 4096, &why), -EPROTO);
  r.offset = UINT64_MAX - 4095; r.length = 8192;         /* wraps */
  assert_int_equal (rv_check_range (&r, size, 4096, &why), -EPROTO);
  r.offset = 512; r.length = 4096;                       /* misaligned */
  assert_int_equal (rv_check_range (&r, size, 4096, &why), -EPROTO);
  assert_int_equal (rv_check_range (&r, size, 512, &why), 0);
  r.offset = 0; r.length = 1000;
  assert_int_equal (rv_check_range (&r, size, 512, &why), -EPROTO);
  r.length = 0;                                          /* empty */
  assert_int_equal (rv_check_range (&r, size, 512, &why), -EPROTO);
  r.cmd = RV_FLUSH;
  assert_int_equal (rv_check_range (&r, size, 512, &why), 0);

  /* MARK_DIRTY is range-checked like data. */
  r = (struct rv_req) { RV_MARK_DIRTY, 0, 1, size - 4096, 4096, 0 };
  assert_int_equal (rv_check_range (&r, size, 4096, &why), 0);
  r.length = 8192;
  assert_int_equal (rv_check_range (&r, size, 4096, &why), -EPROTO);
  r.offset = 100; r.length = 4096;
  assert_int_equal (rv_check_range (&r, size, 4096, &why), -EPROTO);
  r.offset = 0; r.length = 0;
  assert_int_equal (rv_check_range (&r, size, 4096, &why), -EPROTO);

  /* So is CHECKSUM (a zero-length one, which decodes, is refused here). */
  r = (struct rv_req) { RV_CHECKSUM, 0, 1, 0, size, 0 };
  assert_int_equal (rv_check_range (&r, size, 4096, &why), 0);
  r.offset = 4096;
  assert_int_equal (rv_check_range (&r, size, 4096, &why), -EPROTO);
  r.offset = size; r.length = 4096;
  assert_int_equal (rv_check_range (&r, size, 4096, &why), -EPROTO);
  r.offset = 512; r.length = 4096;
  assert_int_equal (rv_check_range (&r, size, 4096, &why), -EPROTO);
  r.offset = 0; r.length = 0;
  assert_int_equal (rv_check_range (&r, size, 4096, &why), -EPROTO);
  {
    struct rv_req out;
    assert_int_equal (decode_req (&r, &out, &why), 0);
  }
}

/* ---- replies and payloads ---- */

static void
test_rep_roundtrip (void **state)
{
  struct rv_rep in = { RV_OK, 42, 4096, 0xcafef00d }, out;
  uint8_t buf[RV_REP_SIZE];
  const char *why = NULL;

  rv_encode_rep (&in, buf);
  assert_int_equal (rv_decode_rep (buf, &out, &why), 0);
  assert_int_equal (out.status, in.status);
  assert_int_equal (out.id, in.id);
  assert_int_equal (out.length, in.length);
  assert_int_equal (out.crc, in.crc);

  in.length = RV_MAX_PAYLOAD + 1;
  rv_encode_rep (&in, buf);
  assert_int_equal (rv_decode_rep (buf, &out, &why), -EPROTO);
  in = (struct rv_rep) { RV_EIO, 1, 16, 0 };     /* error with payload */
  rv_encode_rep (&in, buf);
  assert_int_equal (rv_decode_rep (buf, &out, &why), -EPROTO);
  in.length = 0;
  rv_encode_rep (&in, buf);
  buf[1] ^= 0xff;
  assert_int_equal (rv_decode_rep (buf, &out, &why), -EPROTO);
}

static void
test_create_roundtrip (void **state)
{
  struct rv_create in = { 10ull << 30, 4096, RV_F_RESERVE, 3 }, out;
  uint8_t buf[RV_CREATE_SIZE];
  const char *why = NULL;

  rv_encode_create (&in, buf);
  assert_int_equal (rv_decode_create (buf, &out, &why), 0);
  assert_memory_equal (&in, &out, sizeof in);

  static const struct rv_create bad[] = {
    { 1 << 20, 1000, 0, 0 },          /* block size */
    { 1 << 20, 0, 0, 0 },
    { 0, 4096, 0, 0 },                /* size 0 */
    { 4096 + 512, 4096, 0, 0 },       /* unaligned size */
    { 1 << 20, 512, 1u << 4, 0 },     /* unknown flag */
    { UINT64_MAX - 511, 512, 0, 0 },  /* absurd size */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    rv_encode_create (&bad[i], buf);
    if (rv_decode_create (buf, &out, &why) != -EPROTO)
      fail_msg ("bad CREATE %zu accepted", i);
  }
}

static void
test_volinfo_roundtrip (void **state)
{
  struct rv_volinfo in = { 1, 512, 1 << 30, 9, 12345 * 512, RV_F_RESERVE, 0,
                           0x0102030405060708ull }, out;
  uint8_t buf[RV_STAT_SIZE];
  const char *why = NULL;

  rv_encode_volinfo (&in, buf);
  assert_int_equal (rv_decode_volinfo (buf, &out, &why), 0);
  assert_memory_equal (&in, &out, sizeof in);
  /* dirty_regions sits in the last 8 bytes, little-endian. */
  assert_int_equal (buf[40], 0x08);
  assert_int_equal (buf[47], 0x01);

  in.exists = 2;
  rv_encode_volinfo (&in, buf);
  assert_int_equal (rv_decode_volinfo (buf, &out, &why), -EPROTO);
  in.exists = 1;
  in.block_size = 100;
  rv_encode_volinfo (&in, buf);
  assert_int_equal (rv_decode_volinfo (buf, &out, &why), -EPROTO);
}

static void
test_status_mapping (void **state)
{
  static const int errs[] = { 0, EPERM, ENOENT, EEXIST, EINVAL, ENOSPC,
                              EBADMSG, ENOTSUP, EIO, EBUSY, ERANGE };
  for (size_t i = 0; i < sizeof errs / sizeof *errs; i++)
    assert_int_equal (rv_status_to_errno (rv_errno_to_status (errs[i])),
                      errs[i]);
  assert_int_equal (rv_status_to_errno (12345), EIO);
  assert_int_equal (rv_errno_to_status (ETIMEDOUT), RV_EIO);
  assert_string_equal (rv_cmd_name (RV_WRITE), "WRITE");
  assert_string_equal (rv_cmd_name (999), "UNKNOWN");
  assert_string_equal (rv_cmd_name (RV_MARK_DIRTY), "MARK_DIRTY");
  assert_string_equal (rv_cmd_name (RV_DIRTY_GET), "DIRTY_GET");
  assert_string_equal (rv_cmd_name (RV_DIRTY_CLEAR), "DIRTY_CLEAR");
  assert_string_equal (rv_cmd_name (RV_CHECKSUM), "CHECKSUM");
  assert_string_equal (rv_cmd_name (RV_SET_EPOCH), "SET_EPOCH");
  assert_string_equal (rv_cmd_name (RV_CMD_MAX + 1), "UNKNOWN");
  assert_int_equal (RV_ERANGE, 34);
  assert_true (rv_req_has_payload (RV_SET_EPOCH));
  assert_string_equal (rv_cmd_name (RV_PING), "PING");
  assert_string_equal (rv_cmd_name (RV_RESIZE), "RESIZE");
  assert_string_equal (rv_cmd_name (RV_RESIZE + 1), "UNKNOWN");
  assert_int_equal (RV_CMD_MAX, RV_RESIZE);
  assert_false (rv_req_has_payload (RV_PING));
  assert_false (rv_req_has_payload (RV_RESIZE));
  assert_int_equal (RV_CHECKSUM_SIZE, 4);
  assert_false (rv_req_has_payload (RV_CHECKSUM));
  assert_false (rv_req_has_payload (RV_MARK_DIRTY));
  assert_false (rv_req_has_payload (RV_DIRTY_GET));
  assert_true (rv_req_has_payload (RV_WRITE));
  assert_true (rv_req_has_payload (RV_CREATE));
  assert_false (rv_req_has_payload (RV_READ));
}

static void
test_set_epoch_payload (void **state)
{
  uint8_t buf[RV_SET_EPOCH_SIZE];
  const char *why = NULL;
  uint64_t e = 0;

  rv_encode_set_epoch (0x0102030405060708ull, buf);
  assert_int_equal (buf[0], 0x08);          /* little-endian */
  assert_int_equal (buf[7], 0x01);
  assert_int_equal (rv_decode_set_epoch (buf, &e, &why), 0);
  assert_true (e == 0x0102030405060708ull);
  rv_encode_set_epoch (UINT64_MAX, buf);   /* an admin may set any */
  assert_int_equal (rv_decode_set_epoch (buf, &e, &why), 0);
  assert_true (e == UINT64_MAX);
  rv_encode_set_epoch (0, buf);
  assert_int_equal (rv_decode_set_epoch (buf, &e, &why), -EPROTO);
  assert_non_null (why);
}

/* docs/DESIGN.md rule 8: forward only, by at most RV_EPOCH_JUMP_MAX. */
static void
test_hello_epoch_check (void **state)
{
  assert_int_equal (rv_hello_epoch_check (7, 7), 0);       /* reconnect */
  assert_int_equal (rv_hello_epoch_check (7, 8), 0);       /* next attach */
  assert_int_equal (rv_hello_epoch_check (7, 7 + RV_EPOCH_JUMP_MAX), 0);
  assert_int_equal (rv_hello_epoch_check (7, 8 + RV_EPOCH_JUMP_MAX), -ERANGE);
  assert_int_equal (rv_hello_epoch_check (7, 1007), -ERANGE);
  assert_int_equal (rv_hello_epoch_check (7, UINT64_MAX), -ERANGE);
  assert_int_equal (rv_hello_epoch_check (7, 6), -EPERM);
  assert_int_equal (rv_hello_epoch_check (7, 0), -EPERM);
  assert_int_equal (rv_hello_epoch_check (UINT64_MAX - 1, UINT64_MAX), 0);
  assert_int_equal (rv_hello_epoch_check (0, RV_EPOCH_JUMP_MAX), 0);
  assert_true (RV_EPOCH_JUMP_MAX < 1000);  /* a jump of 1000 is refused */
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_hello_roundtrip),
    cmocka_unit_test (test_hello_refused),
    cmocka_unit_test (test_welcome_roundtrip),
    cmocka_unit_test (test_req_roundtrip),
    cmocka_unit_test (test_req_refused),
    cmocka_unit_test (test_check_range),
    cmocka_unit_test (test_rep_roundtrip),
    cmocka_unit_test (test_create_roundtrip),
    cmocka_unit_test (test_volinfo_roundtrip),
    cmocka_unit_test (test_status_mapping),
    cmocka_unit_test (test_set_epoch_payload),
    cmocka_unit_test (test_hello_epoch_check),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
