/* store_fixture.h - a store's data directory under /tmp and a loop, for
 * the store's unit tests, run once per I/O engine: a test table entry's
 * initial state is the engine's name ("auto", "libaio"), which
 * store_fixture_setup replaces with the fixture.  store_fixture_open
 * opens (or reopens, after a simulated crash) the store on it.
 */
#ifndef REPVOL_TEST_STORE_FIXTURE_H
#define REPVOL_TEST_STORE_FIXTURE_H

#include "core/loop.h"
#include "store/store.h"

struct fixture {
  char dir[64];
  int dirfd;
  struct loop *loop;
  const char *engine;
};

int store_fixture_setup (void **state);
int store_fixture_teardown (void **state);
/* The store on f's directory (writeback cache); fails the test if it
 * cannot be opened.
 */
struct store *store_fixture_open (struct fixture *f);

#endif
