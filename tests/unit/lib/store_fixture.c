/* store_fixture.c - see store_fixture.h. */
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/util.h"
#include "store_fixture.h"

int
store_fixture_setup (void **state)
{
  struct fixture *f = calloc (1, sizeof *f);

  assert_non_null (f);
  snprintf (f->dir, sizeof f->dir, "/tmp/repvol-test-store.XXXXXX");
  assert_non_null (mkdtemp (f->dir));
  f->dirfd = open (f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (f->dirfd >= 0);
  f->loop = loop_new ();
  assert_non_null (f->loop);
  f->engine = *state;
  *state = f;
  return 0;
}

int
store_fixture_teardown (void **state)
{
  struct fixture *f = *state;
  char cmd[128];

  loop_free (f->loop);
  close (f->dirfd);
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  if (system (cmd) != 0)
    return -1;
  free (f);
  return 0;
}

struct store *
store_fixture_open (struct fixture *f)
{
  struct error err = { 0 };
  struct store *s = store_open (f->loop, f->dir, f->engine,
                                STORE_CACHE_WRITEBACK, &err);
  if (s == NULL)
    fail_msg ("store_open: %s", error_msg (&err));
  return s;
}
