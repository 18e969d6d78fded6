/* mailbox.c - worker threads to event loop messages (see mailbox.h). */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include "core/mailbox.h"

static void
mailbox_deliver (struct mailbox *mb)
{
  struct mailbox_msg *m;

  pthread_mutex_lock (&mb->lock);
  m = mb->head;
  mb->head = mb->tail = NULL;
  pthread_mutex_unlock (&mb->lock);
  while (m) {
    struct mailbox_msg *next = m->next;
    mb->cb (mb, m);             /* may free m */
    m = next;
  }
}

static void
mailbox_ready (struct loop_watch *w, uint32_t revents)
{
  struct mailbox *mb = w->opaque;
  uint64_t n;

  if (read (mb->efd, &n, sizeof n) == -1 && errno != EAGAIN)
    return;
  mailbox_deliver (mb);
}

int
mailbox_init (struct mailbox *mb, struct loop *loop,
              void (*cb) (struct mailbox *mb, struct mailbox_msg *msg),
              void *opaque)
{
  mb->loop = loop;
  mb->cb = cb;
  mb->opaque = opaque;
  mb->head = mb->tail = NULL;
  mb->efd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (mb->efd == -1)
    return -1;
  pthread_mutex_init (&mb->lock, NULL);
  if (loop_add (loop, &mb->watch, mb->efd, EPOLLIN, mailbox_ready, mb) == -1) {
    int e = errno;
    close (mb->efd);
    pthread_mutex_destroy (&mb->lock);
    errno = e;
    return -1;
  }
  return 0;
}

void
mailbox_post (struct mailbox *mb, struct mailbox_msg *msg)
{
  uint64_t one = 1;

  msg->next = NULL;
  pthread_mutex_lock (&mb->lock);
  if (mb->tail)
    mb->tail->next = msg;
  else
    mb->head = msg;
  mb->tail = msg;
  pthread_mutex_unlock (&mb->lock);
  /* An eventfd write only fails when the counter would overflow, and
   * then the loop is already woken.
   */
  (void) !write (mb->efd, &one, sizeof one);
}

void
mailbox_fini (struct mailbox *mb)
{
  mailbox_deliver (mb);
  loop_del (mb->loop, &mb->watch);
  close (mb->efd);
  pthread_mutex_destroy (&mb->lock);
}
