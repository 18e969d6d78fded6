/* test_control.c - the attach's control channel (attach/control.c): a
 * server on a unix socket, its loop on a thread, and the blocking
 * client: every answer line arrives in order, "ok" and "error" endings
 * give 0 and 1 (control_call_timeout: OK, ERROR, NO_ANSWER, TIMEOUT,
 * UNREACHABLE), a handler may answer later, quoting round-trips any
 * string, and stop removes the socket.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "core/util.h"
#include "core/loop.h"
#include "attach/control.h"

static char dir[64], path[96];
static struct loop *loop;
static struct control_req *later;     /* answered from a timer */
static struct loop_timer later_timer;

static void
answer_later (struct loop_timer *t)
{
  control_reply (later, "still working");
  control_finish (later, "ok later");
}

static void
handler (struct control_req *req, const char *line, void *opaque)
{
  char buf[256];

  if (strcmp (line, "quit") == 0) {
    control_finish (req, "ok bye");
    loop_stop (loop);
  }
  else if (strncmp (line, "echo ", 5) == 0) {
    snprintf (buf, sizeof buf, "got %s", line + 5);
    control_reply (req, "first");
    control_reply (req, buf);
    control_finish (req, "ok");
  }
  else if (strcmp (line, "slow") == 0) {
    later = req;
    loop_timer_arm (loop, &later_timer, 50, answer_later, NULL);
  }
  else if (strcmp (line, "mute") == 0)
    control_finish (req, "");   /* closes with no ok/error line */
  else
    control_finish (req, "error: unknown command");
}

static void *
serve (void *arg)
{
  loop_run (loop);
  return NULL;
}

struct lines {
  char got[8][128];
  int n;
};

static void
collect (void *opaque, const char *line)
{
  struct lines *l = opaque;
  if (l->n < 8)
    snprintf (l->got[l->n++], sizeof l->got[0], "%s", line);
}

static void
test_channel (void **state)
{
  struct control *c;
  struct lines l = { 0 };
  struct stat st;
  pthread_t t;

  snprintf (dir, sizeof dir, "/tmp/test_control.XXXXXX");
  assert_non_null (mkdtemp (dir));
  snprintf (path, sizeof path, "%s/ctl", dir);
  loop = loop_new ();
  c = control_start (loop, path, handler, NULL);
  assert_non_null (c);
  assert_int_equal (stat (path, &st), 0);
  assert_true (S_ISSOCK (st.st_mode));
  assert_int_equal (pthread_create (&t, NULL, serve, NULL), 0);

  assert_int_equal (control_call_lines (path, "echo hello", collect, &l), 0);
  assert_int_equal (l.n, 3);
  assert_string_equal (l.got[0], "first");
  assert_string_equal (l.got[1], "got hello");
  assert_string_equal (l.got[2], "ok");

  l.n = 0;
  assert_int_equal (control_call_lines (path, "slow", collect, &l), 0);
  assert_int_equal (l.n, 2);
  assert_string_equal (l.got[0], "still working");
  assert_string_equal (l.got[1], "ok later");

  l.n = 0;
  assert_int_equal (control_call_lines (path, "frobnicate", collect, &l), 1);
  assert_int_equal (l.n, 1);
  assert_string_equal (l.got[0], "error: unknown command");

  /* control_call_timeout says how it ended. */
  l.n = 0;
  assert_int_equal (control_call_timeout (path, "echo x", collect, &l, 5000),
                    CONTROL_OK);
  assert_int_equal (control_call_timeout (path, "frobnicate", collect, &l,
                                          -1), CONTROL_ERROR);
  assert_int_equal (control_call_timeout (path, "mute", collect, &l, 5000),
                    CONTROL_NO_ANSWER);
  assert_int_equal (control_call_timeout (path, "slow", collect, &l, 10),
                    CONTROL_TIMEOUT);
  usleep (100 * 1000);          /* the late answer finds the client gone */

  l.n = 0;
  assert_int_equal (control_call_lines (path, "quit", collect, &l), 0);
  assert_int_equal (pthread_join (t, NULL), 0);
  control_stop (c);
  assert_int_equal (stat (path, &st), -1);  /* removed */
  /* Nobody listening: the client says so and fails. */
  assert_int_equal (control_call_lines (path, "echo x", collect, &l), 1);
  assert_int_equal (control_call_timeout (path, "echo x", collect, &l, 1000),
                    CONTROL_UNREACHABLE);
  loop_free (loop);
  rmdir (dir);
}

static void
test_quote (void **state)
{
  static const char *const cases[] = {
    "plain", "", "with space", "new\nline", "100%", "%41", "tab\there",
    "file:///a b/c?x=%20",
  };

  for (size_t i = 0; i < ARRAY_SIZE (cases); i++) {
    char *q = control_quote (cases[i]);
    assert_non_null (q);
    assert_null (strchr (q, ' '));
    assert_null (strchr (q, '\n'));
    control_unquote (q);
    assert_string_equal (q, cases[i]);
    free (q);
  }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_channel),
    cmocka_unit_test (test_quote),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
