/* freelist.h - finished objects of one size kept for reuse instead of
 * a free and a malloc each time (the per-request structures of the
 * data path: at 4 KiB the allocator was a tenth of the attach's CPU).
 * A kept object's first pointer links the list; freelist_get returns
 * it zeroed, like calloc.  Loop-thread only, no locking.
 */
#ifndef REPVOL_FREELIST_H
#define REPVOL_FREELIST_H

#include <stdlib.h>
#include <string.h>

struct freelist {
  void *head;
  unsigned n, max;              /* kept now; at most (0: FREELIST_MAX) */
};

#define FREELIST_MAX 256

static inline void *
freelist_get (struct freelist *f, size_t size)
{
  void *o = f->head;

  if (o == NULL)
    return calloc (1, size);
  f->head = *(void **) o;
  f->n--;
  memset (o, 0, size);
  return o;
}

static inline void
freelist_put (struct freelist *f, void *o)
{
  if (f->n >= (f->max ? f->max : FREELIST_MAX)) {
    free (o);
    return;
  }
  *(void **) o = f->head;
  f->head = o;
  f->n++;
}

static inline void
freelist_fini (struct freelist *f)
{
  while (f->head) {
    void *o = f->head;
    f->head = *(void **) o;
    free (o);
  }
  f->n = 0;
}

#endif
