/* test_conn.c - conn.c, the framing every protocol endpoint relies on:
 * frames split across many reads, bulk payloads, back-pressure, send
 * completions, a peer closing mid-frame, the stall timeout, and the
 * idle timeout (with the owner's busy callback, and output nobody reads).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <unistd.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "core/conn.h"
#include "core/loop.h"
#include "core/util.h"

struct t {
  struct loop *loop;
  struct conn *c;
  int peer;                     /* the test's end of the socketpair */
  char hdr[8];
  char *payload;
  size_t payload_len;
  int frames, closes, sent_ok, sent_err;
  bool busy;                    /* what the idle timeout's callback says */
  char seen[64];                /* small payloads, concatenated */
  struct loop_timer stop;
};

static void
on_close (struct conn *c, void *opaque)
{
  struct t *t = opaque;
  t->closes++;
  t->c = NULL;                  /* freed once this callback returns */
  loop_stop (t->loop);
}

static void
stop_cb (struct loop_timer *tm)
{
  loop_stop (((struct t *) tm->opaque)->loop);
}

/* Run the loop until something stops it, at most ms. */
static void
run (struct t *t, unsigned ms)
{
  loop_timer_arm (t->loop, &t->stop, ms, stop_cb, t);
  loop_run (t->loop);
  loop_timer_cancel (t->loop, &t->stop);
}

static void
setup_t (struct t *t)
{
  int sv[2];
  memset (t, 0, sizeof *t);
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
  t->loop = loop_new ();
  t->c = conn_new (t->loop, sv[0], "test", on_close, t);
  t->peer = sv[1];
}

static void
teardown_t (struct t *t)
{
  if (t->c)
    conn_close (t->c, NULL);
  close (t->peer);
  loop_free (t->loop);
  free (t->payload);
}

/* header (8 bytes: payload length) then payload, then the next frame */
static void got_payload (struct conn *c, void *opaque);

static void
got_header (struct conn *c, void *opaque)
{
  struct t *t = opaque;
  uint64_t len;
  memcpy (&len, t->hdr, 8);
  free (t->payload);
  t->payload = malloc (len ? len : 1);
  t->payload_len = len;
  conn_expect (c, t->payload, len, got_payload, t);
}

static void
got_payload (struct conn *c, void *opaque)
{
  struct t *t = opaque;
  t->frames++;
  if (strlen (t->seen) + t->payload_len < sizeof t->seen)
    strncat (t->seen, t->payload, t->payload_len);
  loop_stop (t->loop);
  conn_expect (c, t->hdr, sizeof t->hdr, got_header, t);
}

static void
send_frame (int fd, const char *data, uint64_t len, size_t piece)
{
  char buf[8];
  memcpy (buf, &len, 8);
  for (size_t i = 0; i < 8; i += piece)
    assert_true (write (fd, buf + i, MIN (piece, 8 - i)) > 0);
  for (size_t i = 0; i < len; ) {
    ssize_t n = write (fd, data + i, MIN (piece, len - i));
    assert_true (n > 0);
    i += n;
  }
}

static void
test_frame_in_one_byte_pieces (void **state)
{
  struct t t;
  setup_t (&t);
  conn_expect (t.c, t.hdr, sizeof t.hdr, got_header, &t);
  send_frame (t.peer, "hello, frame", 12, 1);
  run (&t, 2000);
  assert_int_equal (t.frames, 1);
  assert_int_equal (t.payload_len, 12);
  assert_memory_equal (t.payload, "hello, frame", 12);
  teardown_t (&t);
}

struct writer { struct loop *loop; int fd; const char *data; size_t len, off; struct loop_watch w; };

static void
writer_ready (struct loop_watch *w, uint32_t ev)
{
  struct writer *wr = w->opaque;
  ssize_t n = write (wr->fd, wr->data + wr->off, wr->len - wr->off);
  if (n > 0)
    wr->off += n;
  if (wr->off == wr->len)
    loop_mod (wr->loop, w, 0);
}

static void
test_bulk_payload_intact (void **state)
{
  struct t t;
  size_t len = 3 << 20;
  char *data = malloc (len + 8);
  uint64_t l = len;

  setup_t (&t);
  memcpy (data, &l, 8);
  for (size_t i = 0; i < len; i++)
    data[8 + i] = (char) (i * 7 + (i >> 12));
  set_nonblock (t.peer);
  struct writer wr = { .loop = t.loop, .fd = t.peer, .data = data, .len = len + 8 };
  loop_add (t.loop, &wr.w, t.peer, EPOLLOUT, writer_ready, &wr);
  conn_expect (t.c, t.hdr, sizeof t.hdr, got_header, &t);
  for (int i = 0; i < 100 && t.frames == 0; i++)
    run (&t, 100);
  loop_del (t.loop, &wr.w);
  assert_int_equal (t.frames, 1);
  assert_int_equal (t.payload_len, len);
  assert_memory_equal (t.payload, data + 8, len);
  free (data);
  teardown_t (&t);
}

/* No expectation: the bytes wait in the socket; conn_expect later gets
 * them all, including two frames that arrived together.
 */
static void
test_back_pressure_then_resume (void **state)
{
  struct t t;
  setup_t (&t);
  send_frame (t.peer, "one", 3, 64);
  send_frame (t.peer, "two!", 4, 64);
  run (&t, 100);                /* nobody expects anything: nothing happens */
  assert_int_equal (t.frames, 0);
  conn_expect (t.c, t.hdr, sizeof t.hdr, got_header, &t);
  for (int i = 0; i < 20 && t.frames < 2; i++)
    run (&t, 100);
  assert_int_equal (t.frames, 2);
  assert_string_equal (t.seen, "onetwo!");
  teardown_t (&t);
}

static void
test_peer_closes_mid_frame (void **state)
{
  struct t t;
  setup_t (&t);
  conn_expect (t.c, t.hdr, sizeof t.hdr, got_header, &t);
  assert_int_equal (write (t.peer, "\x10\0\0\0", 4), 4);   /* half a header */
  shutdown (t.peer, SHUT_WR);
  run (&t, 2000);
  assert_int_equal (t.frames, 0);
  assert_int_equal (t.closes, 1);
  teardown_t (&t);
}

static void
sent (void *opaque, int err)
{
  struct t *t = opaque;
  if (err)
    t->sent_err++;
  else
    t->sent_ok++;
}

static void
test_send_completions (void **state)
{
  struct t t;
  char buf[64];
  setup_t (&t);
  conn_send (t.c, "ab", 2, "cdef", 4, sent, &t);
  conn_send (t.c, "gh", 2, NULL, 0, sent, &t);
  run (&t, 50);                 /* the batch leaves at the end of an iteration */
  assert_int_equal (t.sent_ok, 2);
  assert_int_equal (read (t.peer, buf, sizeof buf), 8);
  assert_memory_equal (buf, "abcdefgh", 8);
  /* Queued sends fail when the connection closes before they leave. */
  conn_send (t.c, "x", 1, NULL, 0, sent, &t);
  conn_close (t.c, NULL);
  assert_int_equal (t.sent_err, 1);
  assert_int_equal (t.closes, 1);
  teardown_t (&t);
}

static void
test_stall_timeout (void **state)
{
  struct t t;
  setup_t (&t);
  conn_set_stall_timeout (t.c, 200);
  conn_expect (t.c, t.hdr, sizeof t.hdr, got_header, &t);
  send_frame (t.peer, "ok", 2, 64);
  run (&t, 2000);
  assert_int_equal (t.frames, 1);
  /* Idle between frames is fine ... */
  run (&t, 500);
  assert_int_equal (t.closes, 0);
  /* ... a half-sent frame is not. */
  assert_int_equal (write (t.peer, "\x10\0", 2), 2);
  run (&t, 3000);
  assert_int_equal (t.closes, 1);
  teardown_t (&t);
}

static bool
is_busy (struct conn *c, void *opaque)
{
  return ((struct t *) opaque)->busy;
}

static void
test_idle_timeout (void **state)
{
  struct t t;
  struct timespec gap = { 0, 50 * 1000000L };
  setup_t (&t);
  conn_set_idle_timeout (t.c, 200, is_busy);
  conn_expect (t.c, t.hdr, sizeof t.hdr, got_header, &t);
  /* A frame every 50 ms for well over the timeout: kept. */
  for (int i = 0; i < 12; i++) {
    send_frame (t.peer, "k", 1, 64);
    run (&t, 1000);             /* until the frame is in */
    nanosleep (&gap, NULL);
  }
  assert_int_equal (t.frames, 12);
  assert_int_equal (t.closes, 0);
  /* Nothing comes, but the owner is busy (a request in flight): kept. */
  t.busy = true;
  run (&t, 600);
  assert_int_equal (t.closes, 0);
  /* Idle indeed: closed. */
  t.busy = false;
  run (&t, 3000);
  assert_int_equal (t.closes, 1);
  teardown_t (&t);
}

static void
test_idle_unread_output (void **state)
{
  struct t t;
  size_t len = 8u << 20;
  char *big = calloc (1, len);
  setup_t (&t);
  /* Busy, but what we send is never read: that counts as idle. */
  t.busy = true;
  conn_set_idle_timeout (t.c, 200, is_busy);
  conn_send (t.c, NULL, 0, big, len, sent, &t);
  run (&t, 3000);
  assert_int_equal (t.closes, 1);
  assert_int_equal (t.sent_err, 1);
  teardown_t (&t);
  free (big);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_frame_in_one_byte_pieces),
    cmocka_unit_test (test_bulk_payload_intact),
    cmocka_unit_test (test_back_pressure_then_resume),
    cmocka_unit_test (test_peer_closes_mid_frame),
    cmocka_unit_test (test_send_completions),
    cmocka_unit_test (test_stall_timeout),
    cmocka_unit_test (test_idle_timeout),
    cmocka_unit_test (test_idle_unread_output),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
