/* proto.c - codec for the replication protocol (see proto.h and
 * man/repvol-protocol.7).  Pure functions: no I/O, no allocation.
 */
#include <errno.h>
#include <string.h>
#include <endian.h>

#include "replica/proto.h"
#include "core/util.h"
#include "core/wire.h"

#define FAIL(msg) do { *why = (msg); return -EPROTO; } while (0)

/* A fixed-size name field must be NUL terminated, NUL padded. */
static bool
get_name (const uint8_t *p, char out[RV_NAME_MAX], bool may_be_empty)
{
  const uint8_t *nul = memchr (p, 0, RV_NAME_MAX);
  if (!nul)
    return false;
  for (const uint8_t *q = nul; q < p + RV_NAME_MAX; q++)
    if (*q)
      return false;
  memcpy (out, p, RV_NAME_MAX);
  if (out[0] == '\0')
    return may_be_empty;
  return valid_name (out);
}

static void
put_name (uint8_t *p, const char *name)
{
  memset (p, 0, RV_NAME_MAX);
  memcpy (p, name, strnlen (name, RV_NAME_MAX - 1));
}

/* HELLO: magic 8, version 4, flags 4, epoch 8, volume 64 = 88 */
void
rv_encode_hello (const struct rv_hello *h, uint8_t out[RV_HELLO_SIZE])
{
  putle64 (out, RV_HELLO_MAGIC);
  putle32 (out + 8, h->version);
  putle32 (out + 12, h->flags);
  putle64 (out + 16, h->epoch);
  put_name (out + 24, h->volume);
}

int
rv_decode_hello (const uint8_t in[RV_HELLO_SIZE], struct rv_hello *h,
                 const char **why)
{
  if (getle64 (in) != RV_HELLO_MAGIC)
    FAIL ("bad HELLO magic");
  h->version = getle32 (in + 8);
  h->flags = getle32 (in + 12);
  h->epoch = getle64 (in + 16);
  if (h->version != RV_PROTO_VERSION)
    FAIL ("unsupported protocol version");
  if (h->flags & ~RV_HELLO_ADMIN)
    FAIL ("unknown HELLO flags");
  if (!get_name (in + 24, h->volume, false))
    FAIL ("bad volume name in HELLO");
  return 0;
}

/* WELCOME: magic 8, version 4, status 4, server 64, zone 64,
 * block_size 4, exists 4, size 8, epoch 8, features 4, idle timeout 4
 * = 176.  The last two were zero padding before PING: an older server's
 * WELCOME reads as "no features, no idle timeout".
 */
void
rv_encode_welcome (const struct rv_welcome *w, uint8_t out[RV_WELCOME_SIZE])
{
  memset (out, 0, RV_WELCOME_SIZE);
  putle64 (out, RV_WELCOME_MAGIC);
  putle32 (out + 8, w->version);
  putle32 (out + 12, w->status);
  put_name (out + 16, w->server);
  put_name (out + 80, w->zone);
  putle32 (out + 144, w->block_size);
  putle32 (out + 148, w->exists);
  putle64 (out + 152, w->size);
  putle64 (out + 160, w->epoch);
  putle32 (out + 168, w->features);
  putle32 (out + 172, w->idle_timeout_ms);
}

int
rv_decode_welcome (const uint8_t in[RV_WELCOME_SIZE], struct rv_welcome *w,
                   const char **why)
{
  if (getle64 (in) != RV_WELCOME_MAGIC)
    FAIL ("bad WELCOME magic");
  w->version = getle32 (in + 8);
  w->status = getle32 (in + 12);
  if (w->version != RV_PROTO_VERSION)
    FAIL ("unsupported protocol version");
  if (!get_name (in + 16, w->server, false))
    FAIL ("bad server name in WELCOME");
  if (!get_name (in + 80, w->zone, true))
    FAIL ("bad zone name in WELCOME");
  w->block_size = getle32 (in + 144);
  w->exists = getle32 (in + 148);
  w->size = getle64 (in + 152);
  w->epoch = getle64 (in + 160);
  w->features = getle32 (in + 168);
  w->idle_timeout_ms = getle32 (in + 172);
  if (w->exists > 1)
    FAIL ("bad exists field in WELCOME");
  if (w->exists && (w->block_size != 512 && w->block_size != 4096))
    FAIL ("bad block size in WELCOME");
  if (w->exists && w->size % w->block_size)
    FAIL ("volume size not a multiple of its block size");
  return 0;
}

/* Request: magic 4, cmd 2, flags 2, id 8, offset 8, length 4, crc 4 = 32 */
void
rv_encode_req (const struct rv_req *r, uint8_t out[RV_REQ_SIZE])
{
  putle32 (out, RV_REQ_MAGIC);
  putle16 (out + 4, r->cmd);
  putle16 (out + 6, r->flags);
  putle64 (out + 8, r->id);
  putle64 (out + 16, r->offset);
  putle32 (out + 24, r->length);
  putle32 (out + 28, r->crc);
}

static uint16_t
allowed_flags (uint16_t cmd)
{
  switch (cmd) {
  case RV_WRITE: case RV_TRIM: return RV_F_FUA | RV_F_DIRTY;
  case RV_WRITE_ZEROES: return RV_F_FUA | RV_F_NO_HOLE | RV_F_DIRTY;
  case RV_RESIZE: return RV_F_RESERVE;
  default: return 0;
  }
}

int
rv_decode_req (const uint8_t in[RV_REQ_SIZE], struct rv_req *r,
               const char **why)
{
  if (getle32 (in) != RV_REQ_MAGIC)
    FAIL ("bad request magic");
  r->cmd = getle16 (in + 4);
  r->flags = getle16 (in + 6);
  r->id = getle64 (in + 8);
  r->offset = getle64 (in + 16);
  r->length = getle32 (in + 24);
  r->crc = getle32 (in + 28);
  if (r->cmd < 1 || r->cmd > RV_CMD_MAX)
    FAIL ("unknown command");
  if (r->flags & ~allowed_flags (r->cmd))
    FAIL ("flags not allowed for this command");
  switch (r->cmd) {
  case RV_READ: case RV_WRITE: case RV_TRIM: case RV_WRITE_ZEROES:
  case RV_MARK_DIRTY: case RV_CHECKSUM:
    if (r->length > RV_MAX_PAYLOAD &&
        (r->cmd == RV_READ || r->cmd == RV_WRITE || r->cmd == RV_CHECKSUM))
      FAIL ("length larger than the protocol maximum");
    break;
  case RV_CREATE:
    if (r->length != RV_CREATE_SIZE)
      FAIL ("CREATE payload has the wrong length");
    break;
  case RV_SET_EPOCH:
    if (r->length != RV_SET_EPOCH_SIZE || r->offset != 0)
      FAIL ("SET_EPOCH needs offset 0 and an 8-byte payload");
    break;
  case RV_RESIZE:               /* offset: the new size, checked by the
                                   server against the volume's bounds */
    if (r->length != 0)
      FAIL ("RESIZE carries no length");
    break;
  default:    /* FLUSH, DELETE, STAT, DIRTY_GET/CLEAR, PING: no payload */
    if (r->length != 0 || r->offset != 0)
      FAIL ("length/offset must be zero for this command");
  }
  if (!rv_req_has_payload (r->cmd) && r->crc != 0)
    FAIL ("checksum on a command without payload");
  return 0;
}

int
rv_check_range (const struct rv_req *r, uint64_t size, uint32_t block_size,
                const char **why)
{
  if (r->cmd == RV_FLUSH)
    return 0;
  if (r->length == 0)
    FAIL ("zero length");
  if (r->offset % block_size || r->length % block_size)
    FAIL ("offset or length not aligned to the block size");
  if (r->offset > size || r->length > size - r->offset)
    FAIL ("request beyond the end of the volume");
  return 0;
}

bool
rv_req_has_payload (uint16_t cmd)
{
  return cmd == RV_WRITE || cmd == RV_CREATE || cmd == RV_SET_EPOCH;
}

/* Reply: magic 4, status 4, id 8, length 4, crc 4 = 24 */
void
rv_encode_rep (const struct rv_rep *r, uint8_t out[RV_REP_SIZE])
{
  putle32 (out, RV_REP_MAGIC);
  putle32 (out + 4, r->status);
  putle64 (out + 8, r->id);
  putle32 (out + 16, r->length);
  putle32 (out + 20, r->crc);
}

int
rv_decode_rep (const uint8_t in[RV_REP_SIZE], struct rv_rep *r,
               const char **why)
{
  if (getle32 (in) != RV_REP_MAGIC)
    FAIL ("bad reply magic");
  r->status = getle32 (in + 4);
  r->id = getle64 (in + 8);
  r->length = getle32 (in + 16);
  r->crc = getle32 (in + 20);
  if (r->length > RV_MAX_PAYLOAD)
    FAIL ("reply payload larger than the protocol maximum");
  if (r->status != RV_OK && r->length != 0)
    FAIL ("error reply with a payload");
  return 0;
}

/* CREATE payload: size 8, block_size 4, flags 4, epoch 8 = 24 */
void
rv_encode_create (const struct rv_create *c, uint8_t out[RV_CREATE_SIZE])
{
  putle64 (out, c->size);
  putle32 (out + 8, c->block_size);
  putle32 (out + 12, c->flags);
  putle64 (out + 16, c->epoch);
}

int
rv_decode_create (const uint8_t in[RV_CREATE_SIZE], struct rv_create *c,
                  const char **why)
{
  c->size = getle64 (in);
  c->block_size = getle32 (in + 8);
  c->flags = getle32 (in + 12);
  c->epoch = getle64 (in + 16);
  if (c->block_size != 512 && c->block_size != 4096)
    FAIL ("block size must be 512 or 4096");
  if (c->size == 0 || c->size % c->block_size)
    FAIL ("size must be a non-zero multiple of the block size");
  /* The format's sanity bound; what a server creates is smaller and its
   * own to say (RV_EFBIG, docs/DESIGN.md 3.7).
   */
  if (c->size > (1ull << 60))
    FAIL ("size too large");
  if (c->flags & ~RV_F_RESERVE)
    FAIL ("unknown CREATE flags");
  return 0;
}

/* STAT payload: exists 4, block_size 4, size 8, epoch 8, allocated 8,
 * flags 4, state 4, dirty_regions 8 = 48
 */
void
rv_encode_volinfo (const struct rv_volinfo *v, uint8_t out[RV_STAT_SIZE])
{
  memset (out, 0, RV_STAT_SIZE);
  putle32 (out, v->exists);
  putle32 (out + 4, v->block_size);
  putle64 (out + 8, v->size);
  putle64 (out + 16, v->epoch);
  putle64 (out + 24, v->allocated);
  putle32 (out + 32, v->flags);
  putle32 (out + 36, v->state);
  putle64 (out + 40, v->dirty_regions);
}

int
rv_decode_volinfo (const uint8_t in[RV_STAT_SIZE], struct rv_volinfo *v,
                   const char **why)
{
  v->exists = getle32 (in);
  v->block_size = getle32 (in + 4);
  v->size = getle64 (in + 8);
  v->epoch = getle64 (in + 16);
  v->allocated = getle64 (in + 24);
  v->flags = getle32 (in + 32);
  v->state = getle32 (in + 36);
  v->dirty_regions = getle64 (in + 40);
  if (v->exists > 1)
    FAIL ("bad exists field in STAT");
  if (v->exists && (v->block_size != 512 && v->block_size != 4096))
    FAIL ("bad block size in STAT");
  return 0;
}

void
rv_encode_set_epoch (uint64_t epoch, uint8_t out[RV_SET_EPOCH_SIZE])
{
  putle64 (out, epoch);
}

int
rv_decode_set_epoch (const uint8_t in[RV_SET_EPOCH_SIZE], uint64_t *epoch,
                     const char **why)
{
  *epoch = getle64 (in);
  if (*epoch == 0)
    FAIL ("epoch 0 is never valid");
  return 0;
}

int
rv_hello_epoch_check (uint64_t stored, uint64_t hello)
{
  if (hello < stored)
    return -EPERM;
  if (hello - stored > RV_EPOCH_JUMP_MAX)
    return -ERANGE;
  return 0;
}

int
rv_status_to_errno (uint32_t status)
{
  switch (status) {
  case RV_OK: return 0;
  case RV_EPERM: return EPERM;
  case RV_ENOENT: return ENOENT;
  case RV_EEXIST: return EEXIST;
  case RV_EBUSY: return EBUSY;
  case RV_EINVAL: return EINVAL;
  case RV_ENOSPC: return ENOSPC;
  case RV_ECRC: return EBADMSG;
  case RV_ENOTSUP: return ENOTSUP;
  case RV_EACCES: return EACCES;
  case RV_ETLSREQ: return EPROTONOSUPPORT;
  case RV_ERANGE: return ERANGE;
  case RV_EFBIG: return EFBIG;
  default: return EIO;
  }
}

uint32_t
rv_errno_to_status (int err)
{
  switch (err) {
  case 0: return RV_OK;
  case EPERM: return RV_EPERM;
  case ENOENT: return RV_ENOENT;
  case EEXIST: return RV_EEXIST;
  case EBUSY: return RV_EBUSY;
  case EINVAL: return RV_EINVAL;
  case ENOSPC: case EDQUOT: return RV_ENOSPC;
  case EBADMSG: return RV_ECRC;
  case ENOTSUP: return RV_ENOTSUP;
  case EACCES: return RV_EACCES;
  case ERANGE: return RV_ERANGE;
  case EFBIG: return RV_EFBIG;
  default: return RV_EIO;
  }
}

const char *
rv_cmd_name (uint16_t cmd)
{
  static const char *names[] = {
    [RV_READ] = "READ", [RV_WRITE] = "WRITE", [RV_FLUSH] = "FLUSH",
    [RV_TRIM] = "TRIM", [RV_WRITE_ZEROES] = "WRITE_ZEROES",
    [RV_CREATE] = "CREATE", [RV_DELETE] = "DELETE", [RV_STAT] = "STAT",
    [RV_MARK_DIRTY] = "MARK_DIRTY", [RV_DIRTY_GET] = "DIRTY_GET",
    [RV_DIRTY_CLEAR] = "DIRTY_CLEAR", [RV_CHECKSUM] = "CHECKSUM",
    [RV_SET_EPOCH] = "SET_EPOCH",
    [RV_PING] = "PING", [RV_RESIZE] = "RESIZE",
  };
  return cmd <= RV_CMD_MAX && names[cmd] ? names[cmd] : "UNKNOWN";
}
