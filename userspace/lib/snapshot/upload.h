/* upload.h - between the cow layer (loop thread) and its upload thread.
 *
 * The loop thread owns the volume: it takes the point in time, reads
 * chunks (captures) and queues them here.  The upload thread owns the
 * object store: it asks for the point once the store is open, asks for
 * chunks as it has room for them, has its worker pool
 * (upload_workers.h) hash and compress them, and stores them.
 */
#ifndef REPVOL_SNAPSHOT_UPLOAD_H
#define REPVOL_SNAPSHOT_UPLOAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/mailbox.h"
#include "objstore/objstore.h"
#include "snapshot/snapshot.h"

/* A chunk read at the point in time, on its way to the store. */
struct capture {
  struct capture *next;
  uint64_t index;
  uint32_t len;                 /* bytes in buf (a whole chunk) */
  void *buf;                    /* NULL: spilled to the spill file */
};

enum upload_msg_kind {
  UP_READY,                     /* store open: take the point */
  UP_CREDIT,                    /* send n more chunks */
  UP_LINE,                      /* an event line for the caller */
  UP_DONE,                      /* finished: err 0 or an errno */
};

struct upload_msg {
  struct mailbox_msg m;         /* first */
  enum upload_msg_kind kind;
  int n;                        /* UP_CREDIT: chunks; UP_DONE: err */
  char text[600];               /* UP_LINE, UP_DONE: the event line */
};

struct upload {
  /* Set before the thread starts, then read only. */
  char *url, *name, *volume, *volume_uuid, *base_url, *base_name;
  uint64_t volume_size;
  uint32_t chunk_size;
  bool cbt_valid;
  char **env;                   /* the store's settings, NULL: ours */
  struct mailbox *mb;           /* to the loop */

  pthread_t thread;
  pthread_mutex_t lock;         /* guards what follows */
  struct capture *ready, *ready_tail;
  uint64_t ready_bytes;         /* in memory in the queue */
  uint64_t pipe_bytes;          /* taken by the thread and still held:
                                   in the worker pool, compressed, in
                                   flight (upload.c, PIPE_CHARGE) */
  uint64_t mem_max;             /* beyond this (queue and pipeline
                                   together), captures are spilled */
  int spill_fd;                 /* captures beyond UPLOAD_MEM_MAX, -1: none yet */
  bool point_taken;
  uint64_t chunks_total;        /* set with point_taken */
  bool abort;                   /* the loop gave up (a read failed) */
  char abort_why[256];
  struct objstore *os;          /* set by the thread; for wakeups */
  bool incremental;             /* decided by the thread before UP_READY */
};

/* Start the upload thread.  0 or a negative errno. */
int upload_start (struct upload *u);
/* Loop side: hand a captured chunk over (takes ownership): 0; or -1
 * with why (no room for it: the snapshot must fail), c still the
 * caller's.
 */
int upload_give (struct upload *u, struct capture *c, char *why,
                 size_t whylen);
/* Loop side: the point is taken, with total chunks to store. */
void upload_point (struct upload *u, uint64_t total);
/* Loop side: stop; the thread reports UP_DONE with an error. */
void upload_abort (struct upload *u, const char *why);
/* Loop side, after UP_DONE: join and free. */
void upload_free (struct upload *u);

#endif
