/* test_ratelimit.c - core/ratelimit.c: a key's first line in an interval
 * is logged and the rest counted; the interval's end says how many, once;
 * a key that keeps going gets one line per interval; beyond the table's
 * keys the others share one entry; without a loop the count comes with
 * the key's next line; fini says what is still counted; interval 0 logs
 * every line.  The log (stderr)
 * is captured in a file and its lines counted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/loop.h"
#include "core/ratelimit.h"
#include "core/util.h"

/* Long enough that 1000 calls under valgrind on a loaded machine still
 * fit in one interval (at 100 ms they did not, now and then).
 */
#define INTERVAL_MS 1000

static FILE *capture;
static int saved_stderr;

static void
capture_begin (void)
{
  fflush (stderr);
  capture = tmpfile ();
  assert_non_null (capture);
  saved_stderr = dup (2);
  assert_true (dup2 (fileno (capture), 2) == 2);
}

/* Stop capturing; the number of lines containing what (NULL: all). */
static int
capture_count (const char *what)
{
  char line[1024];
  int n = 0;

  fflush (stderr);
  rewind (capture);
  while (fgets (line, sizeof line, capture))
    if (!what || strstr (line, what))
      n++;
  return n;
}

static void
capture_end (void)
{
  fflush (stderr);
  dup2 (saved_stderr, 2);
  close (saved_stderr);
  fclose (capture);
}

static void
stop_cb (struct loop_timer *t)
{
  loop_stop (t->opaque);
}

/* Run loop for ms (its timers fire meanwhile). */
static void
run_for (struct loop *loop, unsigned ms)
{
  struct loop_timer t = { 0 };

  loop_timer_arm (loop, &t, ms, stop_cb, loop);
  loop_run (loop);
}

static void
sleep_ms (unsigned ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  nanosleep (&ts, NULL);
}

static void
test_one_line_per_interval (void **state)
{
  struct loop *loop = loop_new ();
  struct ratelimit rl;

  ratelimit_init (&rl, loop, INTERVAL_MS);
  capture_begin ();
  assert_true (ratelimit_warn (&rl, "10.0.0.1", "bad frame %d", 0));
  for (int i = 1; i < 1000; i++)
    assert_false (ratelimit_warn (&rl, "10.0.0.1", "bad frame %d", i));
  /* Another key has its own budget. */
  assert_true (ratelimit_warn (&rl, "10.0.0.2", "bad frame from b"));
  assert_int_equal (capture_count (NULL), 2);

  /* The interval ends: one line with the count and the last line. */
  run_for (loop, INTERVAL_MS * 3 / 2);
  assert_int_equal (capture_count (NULL), 3);
  assert_int_equal (capture_count ("10.0.0.1: 999 more lines suppressed in "
                                   "the last 1 s; the last: bad frame 999"),
                    1);
  assert_int_equal (capture_count ("10.0.0.2: "), 0);

  /* Still going: that line was this interval's, so the next is counted
   * and said at its end.
   */
  assert_false (ratelimit_warn (&rl, "10.0.0.1", "bad frame again"));
  run_for (loop, INTERVAL_MS * 3 / 2);
  assert_int_equal (capture_count ("10.0.0.1: 1 more line suppressed"), 1);
  assert_int_equal (capture_count (NULL), 4);

  /* Quiet for a whole interval: the next line is logged at once. */
  run_for (loop, INTERVAL_MS * 3 / 2);
  assert_true (ratelimit_warn (&rl, "10.0.0.1", "after a pause"));
  assert_int_equal (capture_count ("after a pause"), 1);

  ratelimit_fini (&rl);
  capture_end ();
  loop_free (loop);
}

static void
test_other_peers_share_one_entry (void **state)
{
  struct loop *loop = loop_new ();
  struct ratelimit rl;
  char key[32];

  ratelimit_init (&rl, loop, INTERVAL_MS);
  capture_begin ();
  /* Twice as many addresses as the table holds, each twice. */
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < 2 * RATELIMIT_KEYS; i++) {
      snprintf (key, sizeof key, "192.0.2.%d", i);
      ratelimit_warn (&rl, key, "refused %s", key);
    }
  /* One line per address in the table, one for all the others. */
  assert_int_equal (capture_count (NULL), RATELIMIT_KEYS + 1);
  run_for (loop, INTERVAL_MS * 3 / 2);
  assert_int_equal (capture_count ("other peers: 63 more lines suppressed"),
                    1);
  assert_int_equal (capture_count ("more line"), RATELIMIT_KEYS + 1);
  ratelimit_fini (&rl);
  capture_end ();
  loop_free (loop);
}

static void
test_without_loop_and_fini (void **state)
{
  struct ratelimit rl;

  ratelimit_init (&rl, NULL, INTERVAL_MS);
  capture_begin ();
  for (int i = 0; i < 3; i++)
    ratelimit_warn (&rl, "local", "line %d", i);
  assert_int_equal (capture_count (NULL), 1);
  /* No timer: the count comes with the key's next line. */
  sleep_ms (INTERVAL_MS * 3 / 2);
  assert_true (ratelimit_warn (&rl, "local", "line 3"));
  assert_int_equal (capture_count ("local: 2 more lines suppressed"), 1);
  assert_int_equal (capture_count (NULL), 3);
  /* fini says what is still counted. */
  ratelimit_warn (&rl, "local", "line 4");
  ratelimit_fini (&rl);
  assert_int_equal (capture_count ("local: 1 more line suppressed"), 1);
  capture_end ();
}

/* Interval 0 logs every line; changing the interval says what was
 * counted under the old one first.
 */
static void
test_no_limit_and_set_interval (void **state)
{
  struct ratelimit rl;

  ratelimit_init (&rl, NULL, 0);
  capture_begin ();
  for (int i = 0; i < 5; i++)
    assert_true (ratelimit_warn (&rl, "peer", "line %d", i));
  assert_int_equal (capture_count (NULL), 5);
  ratelimit_set_interval (&rl, 60000);
  assert_true (ratelimit_warn (&rl, "peer", "line 5"));
  assert_false (ratelimit_warn (&rl, "peer", "line 6"));
  assert_int_equal (capture_count (NULL), 6);
  ratelimit_set_interval (&rl, 0);
  assert_int_equal (capture_count ("peer: 1 more line suppressed"), 1);
  assert_true (ratelimit_warn (&rl, "peer", "line 7"));
  assert_int_equal (capture_count (NULL), 8);
  ratelimit_fini (&rl);
  capture_end ();
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_one_line_per_interval),
    cmocka_unit_test (test_other_peers_share_one_entry),
    cmocka_unit_test (test_without_loop_and_fini),
    cmocka_unit_test (test_no_limit_and_set_interval),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
