/* fake_owner.h - the engine's owner for unit tests: the hooks attach/
 * gives the engine (registry records, reconnection), recording what the
 * engine asked, and a volume of fake replicas on a real event loop.
 */
#ifndef REPVOL_TEST_FAKE_OWNER_H
#define REPVOL_TEST_FAKE_OWNER_H

#include "engine/engine.h"
#include "fake_bdev.h"

struct fake_owner {
  struct engine_hooks hooks;    /* opaque: this struct */
  int out_of_sync[ENGINE_MAX_REPLICAS];   /* mark_out_of_sync calls */
  int in_sync[ENGINE_MAX_REPLICAS];       /* mark_in_sync calls */
  int reconnects[ENGINE_MAX_REPLICAS];    /* reconnect calls */
  int fenced[ENGINE_MAX_REPLICAS];        /* fenced calls */
  int out_err, in_err;          /* what those two hooks return */
  /* The next reconnect of replica i hands this out (and forgets it). */
  struct bdev *back[ENGINE_MAX_REPLICAS];
  uint64_t progress_done[ENGINE_MAX_REPLICAS];
  uint64_t progress_total[ENGINE_MAX_REPLICAS];
};

void fake_owner_init (struct fake_owner *o);

/* n fake replicas of size bytes, each reached by a fake_bdev on the
 * loop, and the engine over them with the owner's hooks.  A replica
 * whose state is ENGINE_OUT gets no connection.
 */
struct fake_vol {
  struct loop *loop;
  int n;
  uint64_t size;
  struct fake_replica *rep[ENGINE_MAX_REPLICAS];
  struct fake_owner owner;
  struct bdev *engine;
};

/* states NULL: all in sync; cfg NULL: 1 GiB/s, reconnect every tick. */
void fake_vol_open (struct fake_vol *v, int n, uint64_t size,
                    const enum engine_rep_state *states,
                    const struct engine_config *cfg);
/* The same pattern (seed) in every replica's image, as in-sync
 * replicas hold the same data.
 */
void fake_vol_fill (struct fake_vol *v, unsigned seed);
/* Close the engine (if still open), free the loop and the replicas. */
void fake_vol_close (struct fake_vol *v);
/* A new connection to replica i, on the volume's loop. */
struct fake_bdev *fake_vol_connect (struct fake_vol *v, int i);
/* Run the loop until replica i is recorded in sync again. */
bool fake_vol_wait_in_sync (struct fake_vol *v, int i, int calls,
                            unsigned timeout_ms);

/* A client request on the engine and how it ended. */
struct fake_client_io {
  struct bdev_io io;
  int done, err;
};

/* Start a request; it completes into c->done / c->err. */
void fake_client_submit (struct bdev *b, struct fake_client_io *c,
                         enum bdev_op op, uint64_t offset, uint32_t len,
                         void *buf);
/* Run the loop until c completes; false on timeout. */
bool fake_client_wait (struct fake_vol *v, struct fake_client_io *c,
                       unsigned timeout_ms);
/* Submit and run the loop until it completes.  Returns how it completed
 * (0 or a positive errno, as a bdev completion carries it; ETIMEDOUT if
 * it did not).
 */
int fake_client_sync (struct fake_vol *v, enum bdev_op op, uint64_t offset,
                      uint32_t len, void *buf);

/* Fill buf with a pattern that differs with seed and offset. */
void fake_pattern (void *buf, size_t len, uint64_t offset, unsigned seed);

#endif
