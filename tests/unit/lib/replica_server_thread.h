/* replica_server_thread.h - a real replica server (store, listener,
 * replica_server) on its own thread and loop, on a free loopback port,
 * with a data directory of its own under /tmp: what the replica client
 * and the admin client are tested against.  As cmocka group setup and
 * teardown: test_server_setup (state, idle_ms) puts the server in
 * *state; test_server_teardown (state) shuts it down as repvold does
 * and removes its directory.
 */
#ifndef REPVOL_TEST_REPLICA_SERVER_THREAD_H
#define REPVOL_TEST_REPLICA_SERVER_THREAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/bdev.h"
#include "core/loop.h"
#include "core/mailbox.h"
#include "replica/server.h"
#include "store/store.h"

struct server {
  char dir[64];
  char addr[64];                /* "127.0.0.1:PORT" */
  struct loop *loop;
  struct store *store;
  struct replica_server *srv;
  struct mailbox mb;
  struct mailbox_msg stop;
  pthread_t thread;
};

/* A server whose connections may idle for idle_ms. */
int test_server_setup (void **state, unsigned idle_ms);
int test_server_teardown (void **state);
/* A TCP socket bound (not listening) to a free loopback port; its
 * "ADDR:PORT" in addr.
 */
int test_loopback_socket (char *addr, size_t addrlen);

/* The client side: requests on the test thread's loop, each in a slot
 * of a waiter, and a wait for all of them (bounded: 10 s fails).
 */
struct waiter {
  struct loop *loop;
  struct loop_timer timer;
  int pending;
  int err[4];
  bool timed_out;
};

/* Each io's opaque is its slot in w->err. */
struct slot_io {
  struct bdev_io io;
  struct waiter *w;
  int slot;
};

void slot_done (struct bdev_io *io, int err);
/* A waiter's timer callback: stops its loop, sets timed_out. */
void wait_timeout (struct loop_timer *t);
/* Run the test thread's loop until every submitted io has completed. */
void wait_all (struct waiter *w);

#endif
