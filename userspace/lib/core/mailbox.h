/* mailbox.h - hand messages from worker threads to an event loop.
 *
 * The loop (loop.h) is single threaded; a worker thread (a snapshot
 * upload, a restore's fetcher) posts a message, and the loop runs the
 * mailbox's callback with it on its own thread.  Messages are the
 * caller's structs, linked through a struct mailbox_msg at their start.
 */
#ifndef REPVOL_MAILBOX_H
#define REPVOL_MAILBOX_H

#include <pthread.h>
#include "core/loop.h"

struct mailbox_msg {
  struct mailbox_msg *next;
};

struct mailbox {
  struct loop *loop;
  int efd;                      /* eventfd: wakes the loop */
  struct loop_watch watch;
  pthread_mutex_t lock;
  struct mailbox_msg *head, *tail;
  void (*cb) (struct mailbox *mb, struct mailbox_msg *msg);
  void *opaque;
};

/* 0, or -1 with errno. */
int mailbox_init (struct mailbox *mb, struct loop *loop,
                  void (*cb) (struct mailbox *mb, struct mailbox_msg *msg),
                  void *opaque);
/* Any thread.  cb runs later on the loop thread, in posting order. */
void mailbox_post (struct mailbox *mb, struct mailbox_msg *msg);
/* Loop thread, once no thread posts any more; undelivered messages are
 * delivered first.
 */
void mailbox_fini (struct mailbox *mb);

#endif
