/* client.c - the replica client layer: a bdev whose I/O goes to
 * one repvold over the replication protocol.
 *
 * Requests are pipelined on one TCP connection and answered out of
 * order; each in-flight request owns a slot, and its wire id is
 * (generation << 16 | slot), so a reply is matched in O(1) and a stale
 * or forged id is detected.  More than RV_MAX_INFLIGHT requests wait in
 * a FIFO so their order on the wire is the order of submission, which
 * the engine relies on (docs/DESIGN.md rule 6).
 *
 * A server with an idle timeout says so in WELCOME; then, whenever
 * nothing has been sent for a third of it, a PING goes out (one at a
 * time, its id outside the slots), so an attached volume nobody uses
 * keeps its connections, and a server that stopped answering is noticed
 * within the timeout even when no I/O is waiting on it.
 *
 * Failure model for now: a broken connection, a protocol violation by
 * the server, or a request (or PING) older than the timeout closes the
 * connection and fails everything with EIO; the engine decides what
 * that means.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "core/conn.h"
#include "replica/admin.h"
#include "replica/client.h"
#include "core/util.h"
#include "core/wire.h"

#define SLOTS RV_MAX_INFLIGHT
#define PING_SLOT 0xffff        /* a PING's id: beyond every slot */

struct rc_slot {
  struct bdev_io *io;           /* NULL when free */
  uint64_t id;
  uint64_t start_ns;
};

struct rc {
  struct bdev bdev;
  struct loop *loop;
  struct conn *conn;
  char addr[128];
  int timeout_ms;
  bool dead;

  struct rc_slot slots[SLOTS];
  int free_slots[SLOTS], nfree;
  uint64_t generation;
  int inflight;

  /* Waiting for a slot, in submission order (linked via layer_priv). */
  struct bdev_io *wait_head, *wait_tail;

  /* Reply being read. */
  uint8_t rep_buf[RV_REP_SIZE];
  struct rv_rep rep;
  struct rc_slot *rep_slot;

  struct loop_timer timer;
  unsigned tick_ms;
  uint64_t latency_ns;          /* EWMA of request service time */

  /* keep-alive: a PING once nothing has been sent for ping_ms */
  unsigned ping_ms;             /* 0: the server needs none */
  uint64_t last_send_ns;
  uint64_t ping_id;             /* the PING in flight, 0: none */
  uint64_t ping_sent_ns;
  bool fenced;                  /* it answered RV_EPERM: a newer epoch */
  bool can_resize;              /* WELCOME had RV_FEAT_RESIZE */

  void (*drain_done) (void *);
  void *drain_opaque;
};

static void expect_reply (struct rc *rc);

/* ---- completion and failure ---- */

static void
complete (struct rc *rc, struct rc_slot *s, int err)
{
  struct bdev_io *io = s->io;
  uint64_t lat = now_ns () - s->start_ns;
  int slot = s - rc->slots;

  if (!err)
    rc->latency_ns = rc->latency_ns ? (rc->latency_ns * 7 + lat) / 8 : lat;
  s->io = NULL;
  rc->free_slots[rc->nfree++] = slot;
  rc->inflight--;
  io->done (io, err);
}

static void
fail_all (struct rc *rc)
{
  /* In-flight first, then waiting: every caller hears EIO (EPERM once
   * the replica refused our epoch) exactly once.
   */
  int err = rc->fenced ? EPERM : EIO;
  for (int i = 0; i < SLOTS; i++)
    if (rc->slots[i].io)
      complete (rc, &rc->slots[i], err);
  while (rc->wait_head) {
    struct bdev_io *io = rc->wait_head;
    rc->wait_head = io->layer_priv;
    io->done (io, err);
  }
  rc->wait_tail = NULL;
  if (rc->drain_done) {
    void (*done) (void *) = rc->drain_done;
    rc->drain_done = NULL;
    done (rc->drain_opaque);
  }
}

static void
on_close (struct conn *c, void *opaque)
{
  struct rc *rc = opaque;

  if (!rc->dead)                /* the engine says what it means for the volume */
    log_warn ("replica %s: connection lost", rc->addr);
  rc->dead = true;
  rc->conn = NULL;
  loop_timer_cancel (rc->loop, &rc->timer);
  fail_all (rc);
}

static void
check_drained (struct rc *rc)
{
  if (rc->drain_done && rc->inflight == 0 && !rc->wait_head) {
    void (*done) (void *) = rc->drain_done;
    rc->drain_done = NULL;
    done (rc->drain_opaque);
  }
}

/* ---- sending ---- */

static uint16_t
wire_cmd (enum bdev_op op)
{
  switch (op) {
  case BDEV_READ: return RV_READ;
  case BDEV_WRITE: return RV_WRITE;
  case BDEV_FLUSH: return RV_FLUSH;
  case BDEV_TRIM: return RV_TRIM;
  case BDEV_WRITE_ZEROES: return RV_WRITE_ZEROES;
  case BDEV_MARK_DIRTY: return RV_MARK_DIRTY;
  case BDEV_DIRTY_GET: return RV_DIRTY_GET;
  case BDEV_DIRTY_CLEAR: return RV_DIRTY_CLEAR;
  case BDEV_CHECKSUM: return RV_CHECKSUM;
  case BDEV_RESIZE: return RV_RESIZE;
  }
  return 0;
}

/* Commands whose offset and length describe a range of the volume, or
 * for RESIZE the new size and 0 (the others send zeroes: FLUSH,
 * DIRTY_GET, DIRTY_CLEAR).
 */
static bool
carries_range (enum bdev_op op)
{
  return op != BDEV_FLUSH && op != BDEV_DIRTY_GET && op != BDEV_DIRTY_CLEAR;
}

/* Bytes of reply payload an op expects into io->buf (0: none). */
static uint32_t
reply_payload_len (const struct bdev_io *io)
{
  switch (io->op) {
  case BDEV_READ: case BDEV_DIRTY_GET: return io->len;
  case BDEV_CHECKSUM: return RV_CHECKSUM_SIZE;
  default: return 0;
  }
}

static void
send_req (struct rc *rc, struct bdev_io *io)
{
  int slot = rc->free_slots[--rc->nfree];
  struct rc_slot *s = &rc->slots[slot];
  struct rv_req req = {
    .cmd = wire_cmd (io->op),
    .id = (++rc->generation << 16) | slot,
    .offset = carries_range (io->op) ? io->offset : 0,
    .length = carries_range (io->op) ? io->len : 0,
  };
  uint8_t hdr[RV_REQ_SIZE];

  if (io->flags & BDEV_FUA)
    req.flags |= RV_F_FUA;
  if (io->op == BDEV_WRITE_ZEROES && (io->flags & BDEV_NO_HOLE))
    req.flags |= RV_F_NO_HOLE;
  if (io->flags & BDEV_DIRTY)
    req.flags |= RV_F_DIRTY;
  if (io->flags & BDEV_RESERVE)
    req.flags |= RV_F_RESERVE;
  if (io->op == BDEV_WRITE)
    req.crc = io->flags & BDEV_HAS_CRC ? io->crc : crc32c (0, io->buf, io->len);
  s->io = io;
  s->id = req.id;
  s->start_ns = now_ns ();
  rc->inflight++;
  rc->last_send_ns = s->start_ns;
  rv_encode_req (&req, hdr);
  conn_send (rc->conn, hdr, sizeof hdr,
             io->op == BDEV_WRITE ? io->buf : NULL,
             io->op == BDEV_WRITE ? io->len : 0, NULL, NULL);
}

static void
send_ping (struct rc *rc)
{
  struct rv_req req = {
    .cmd = RV_PING,
    .id = (++rc->generation << 16) | PING_SLOT,
  };
  uint8_t hdr[RV_REQ_SIZE];

  rc->ping_id = req.id;
  rc->ping_sent_ns = rc->last_send_ns = now_ns ();
  rv_encode_req (&req, hdr);
  conn_send (rc->conn, hdr, sizeof hdr, NULL, 0, NULL, NULL);
}

static void
rc_submit (struct bdev *b, struct bdev_io *io)
{
  struct rc *rc = b->priv;

  if (rc->dead) {
    io->done (io, EIO);
    return;
  }
  /* An older server closes the connection on a command it does not
   * know; the caller hears it cannot, and the replica stays up.
   */
  if (io->op == BDEV_RESIZE && !rc->can_resize) {
    io->done (io, ENOTSUP);
    return;
  }
  if (rc->nfree == 0 || rc->wait_head) {
    io->layer_priv = NULL;
    if (rc->wait_tail)
      rc->wait_tail->layer_priv = io;
    else
      rc->wait_head = io;
    rc->wait_tail = io;
    return;
  }
  send_req (rc, io);
}

static void
send_waiting (struct rc *rc)
{
  while (rc->wait_head && rc->nfree > 0 && !rc->dead) {
    struct bdev_io *io = rc->wait_head;
    rc->wait_head = io->layer_priv;
    if (!rc->wait_head)
      rc->wait_tail = NULL;
    send_req (rc, io);
  }
}

/* ---- receiving ---- */

static void
got_payload (struct conn *c, void *opaque)
{
  struct rc *rc = opaque;
  struct rc_slot *s = rc->rep_slot;

  if (crc32c (0, s->io->buf, rc->rep.length) != rc->rep.crc) {
    /* Data damaged on the wire or on the server: never hand it up. */
    log_error ("replica %s: reply checksum mismatch", rc->addr);
    complete (rc, s, EIO);
  }
  else {
    if (s->io->op == BDEV_CHECKSUM) {   /* wire order to host order */
      uint32_t v = getle32 (s->io->buf);
      memcpy (s->io->buf, &v, sizeof v);
    }
    complete (rc, s, 0);
  }
  send_waiting (rc);
  check_drained (rc);
  expect_reply (rc);
}

static void
got_reply (struct conn *c, void *opaque)
{
  struct rc *rc = opaque;
  const char *why;
  uint32_t slot;
  struct rc_slot *s;

  if (rv_decode_rep (rc->rep_buf, &rc->rep, &why) < 0) {
    conn_close (c, "replica %s: %s", rc->addr, why);
    return;
  }
  if (rc->ping_id && rc->rep.id == rc->ping_id) {
    /* An idle connection learns it was fenced from its PING: the
     * server refuses a PING at an epoch older than the volume's.
     */
    if (rc->rep.status == RV_EPERM && rc->rep.length == 0) {
      log_error ("replica %s: PING refused: this attachment has been fenced "
                 "by a newer epoch", rc->addr);
      rc->fenced = true;
      rc->dead = true;          /* said above; the engine fences */
      conn_close (c, NULL);
      return;
    }
    if (rc->rep.status != RV_OK || rc->rep.length != 0) {
      conn_close (c, "replica %s: PING answered with status %u", rc->addr,
                  rc->rep.status);
      return;
    }
    rc->ping_id = 0;
    expect_reply (rc);
    return;
  }
  slot = rc->rep.id & 0xffff;
  s = slot < SLOTS ? &rc->slots[slot] : NULL;
  if (!s || !s->io || s->id != rc->rep.id) {
    conn_close (c, "replica %s: reply for unknown request id %#llx",
                rc->addr, (unsigned long long) rc->rep.id);
    return;
  }
  if (rc->rep.status == RV_OK && reply_payload_len (s->io)) {
    /* A DIRTY_GET reply may be shorter than asked: a server with larger
     * regions than the attach derived (one from before issue 15, 64 KiB
     * at every size) sends a smaller map; its header says how large.
     */
    bool shorter_ok = s->io->op == BDEV_DIRTY_GET &&
                      rc->rep.length >= RV_DIRTY_HDR_SIZE &&
                      rc->rep.length <= reply_payload_len (s->io);
    if (rc->rep.length != reply_payload_len (s->io) && !shorter_ok) {
      conn_close (c, "replica %s: %s reply of %u bytes for %u expected",
                  rc->addr, rv_cmd_name (wire_cmd (s->io->op)),
                  rc->rep.length, reply_payload_len (s->io));
      return;
    }
    rc->rep_slot = s;
    conn_expect (c, s->io->buf, rc->rep.length, got_payload, rc);
    return;
  }
  if (rc->rep.length != 0) {
    conn_close (c, "replica %s: unexpected reply payload", rc->addr);
    return;
  }
  if (rc->rep.status == RV_EPERM) {
    log_error ("replica %s: request refused: this attachment has been fenced "
               "by a newer epoch", rc->addr);
    rc->fenced = true;
  }
  /* The replica's size is what the server answered, before done runs
   * (the bdev.h contract for BDEV_RESIZE).
   */
  if (rc->rep.status == RV_OK && s->io->op == BDEV_RESIZE)
    rc->bdev.info.size = s->io->offset;
  complete (rc, s, rv_status_to_errno (rc->rep.status));
  send_waiting (rc);
  check_drained (rc);
  expect_reply (rc);
}

static void
expect_reply (struct rc *rc)
{
  if (rc->conn)
    conn_expect (rc->conn, rc->rep_buf, RV_REP_SIZE, got_reply, rc);
}

/* ---- timeout ---- */

static void
tick (struct loop_timer *t)
{
  struct rc *rc = t->opaque;
  uint64_t limit = (uint64_t) rc->timeout_ms * 1000000ull, now = now_ns ();

  for (int i = 0; i < SLOTS; i++) {
    struct rc_slot *s = &rc->slots[i];
    if (s->io && now - s->start_ns > limit) {
      /* Closing fails every request, including payloads still queued. */
      conn_close (rc->conn, "replica %s: no answer for %d ms", rc->addr,
                  rc->timeout_ms);
      return;
    }
  }
  if (rc->ping_id && now - rc->ping_sent_ns > limit) {
    conn_close (rc->conn, "replica %s: no answer to PING for %d ms",
                rc->addr, rc->timeout_ms);
    return;
  }
  if (rc->ping_ms && !rc->ping_id &&
      now - rc->last_send_ns >= rc->ping_ms * 1000000ull)
    send_ping (rc);
  loop_timer_arm (rc->loop, &rc->timer, rc->tick_ms, tick, rc);
}

/* ---- the rest of the table ---- */

static void
rc_drain (struct bdev *b, void (*done) (void *), void *opaque)
{
  struct rc *rc = b->priv;

  rc->drain_done = done;
  rc->drain_opaque = opaque;
  check_drained (rc);
}

static void
rc_health (struct bdev *b, struct bdev_health *h)
{
  struct rc *rc = b->priv;

  h->up = !rc->dead;
  h->fenced = rc->fenced;
  h->latency_ns = rc->latency_ns;
}

static void
rc_close (struct bdev *b)
{
  struct rc *rc = b->priv;

  rc->dead = true;              /* quiet: this close is ours */
  if (rc->conn)
    conn_close (rc->conn, NULL);
  loop_timer_cancel (rc->loop, &rc->timer);
  free (rc);
}

static const struct bdev_ops replica_client_ops = {
  .name = "replica-client",
  .submit = rc_submit,
  .drain = rc_drain,
  .health = rc_health,
  .close = rc_close,
};

/* The data HELLO at epoch, walking the replica's epoch up first when it
 * is more than RV_EPOCH_JUMP_MAX behind (one that missed many attaches
 * and degrades while it was away): each step is one HELLO the server
 * accepts and persists, then closed (docs/DESIGN.md rule 8).
 */
static int
data_handshake (struct replica_admin *ra, const char *addr, const char *volume,
                uint64_t epoch, int timeout_ms, struct error *err)
{
  uint64_t step = epoch;

  for (unsigned steps = 0;; steps++) {
    int r = replica_handshake (ra, addr, volume, step, 0, timeout_ms, err);
    if (r == 0 && step == epoch)
      return 0;
    if (r == -EPERM)
      return error_set (err, EPERM, "refused epoch %llu: the replica holds "
                        "a newer one, %llu", (unsigned long long) step,
                        (unsigned long long) ra->welcome.epoch);
    if (r == 0)                 /* a step: the replica holds it now */
      replica_admin_close (ra);
    else if (r != -ERANGE || ra->welcome.epoch >= epoch)
      return r;
    uint64_t held = r == 0 ? step : ra->welcome.epoch;
    if (steps == RV_EPOCH_STEPS_MAX)
      return error_set (err, ERANGE, "the replica holds epoch %llu, more "
                        "than %u steps of %u behind this attachment's %llu "
                        "(repvol epoch --reset sets it)",
                        (unsigned long long) held, RV_EPOCH_STEPS_MAX,
                        RV_EPOCH_JUMP_MAX, (unsigned long long) epoch);
    step = held + MIN (epoch - held, (uint64_t) RV_EPOCH_JUMP_MAX);
  }
}

int
replica_client_connect (const char *addr, const char *volume, uint64_t epoch,
                        int timeout_ms, struct replica_admin *ra,
                        struct error *err)
{
  struct timeval tv = { 0, 0 };
  int r;

  r = data_handshake (ra, addr, volume, epoch, timeout_ms, err);
  if (r < 0)
    return r;
  if (!ra->welcome.exists) {
    replica_admin_close (ra);
    return error_set (err, ENOENT, "volume does not exist on this server");
  }
  /* The event loop owns timing from now on. */
  setsockopt (ra->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt (ra->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return 0;
}

struct bdev *
replica_client_adopt (struct loop *loop, struct replica_admin *ra,
                      const char *addr, int timeout_ms)
{
  const struct rv_welcome *w = &ra->welcome;
  struct rc *rc = calloc (1, sizeof *rc);
  char name[160];

  if (!rc) {
    replica_admin_close (ra);
    return NULL;
  }
  snprintf (rc->addr, sizeof rc->addr, "%s", addr);
  snprintf (name, sizeof name, "replica %s", addr);
  rc->loop = loop;
  rc->timeout_ms = timeout_ms;
  rc->tick_ms = MAX (timeout_ms / 4, 10);
  if ((w->features & RV_FEAT_PING) && w->idle_timeout_ms) {
    rc->ping_ms = MAX (w->idle_timeout_ms / 3, 1u);
    rc->tick_ms = MIN (rc->tick_ms, MAX (rc->ping_ms / 2, 10u));
  }
  rc->can_resize = w->features & RV_FEAT_RESIZE;
  rc->last_send_ns = now_ns ();
  for (int i = 0; i < SLOTS; i++)
    rc->free_slots[i] = SLOTS - 1 - i;
  rc->nfree = SLOTS;
  rc->conn = conn_new (loop, ra->fd, name, on_close, rc);
  if (!rc->conn) {
    replica_admin_close (ra);
    free (rc);
    return NULL;
  }
  if (ra->tls)
    conn_adopt_tls (rc->conn, ra->tls);
  ra->tls = NULL;               /* the conn's now */
  ra->fd = -1;
  rc->bdev.ops = &replica_client_ops;
  rc->bdev.priv = rc;
  rc->bdev.info = (struct bdev_info) {
    .size = w->size, .block_size = w->block_size,
    .max_io = RV_MAX_PAYLOAD, .volatile_cache = 1,
  };
  expect_reply (rc);
  loop_timer_arm (loop, &rc->timer, rc->tick_ms, tick, rc);
  return &rc->bdev;
}

struct bdev *
replica_client_open (struct loop *loop, const char *addr, const char *volume,
                     uint64_t epoch, int timeout_ms, struct rv_welcome *w,
                     struct error *err)
{
  struct replica_admin ra;
  struct bdev *b;

  if (replica_client_connect (addr, volume, epoch, timeout_ms, &ra, err) < 0)
    return NULL;
  if (w)
    *w = ra.welcome;
  b = replica_client_adopt (loop, &ra, addr, timeout_ms);
  if (!b)
    error_set (err, ENOMEM, "out of memory");
  return b;
}
