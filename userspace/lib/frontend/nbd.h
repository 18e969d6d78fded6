/* nbd.h - the NBD server of nbd.c, for frontends that bring their own
 * connection instead of listening (nbd_kernel.c: the kernel's nbd
 * driver on one end of a socketpair).
 */
#ifndef REPVOL_NBD_H
#define REPVOL_NBD_H

#include <stdbool.h>
#include <stdint.h>

#include "frontend/frontend.h"

struct nbd_server;

/* Serve f->dev on fd, a connected stream socket whose peer already
 * knows the export (size and the transmission flags tflags) from
 * elsewhere: no handshake, requests from the first byte, simple
 * replies only.  Takes fd (closed on failure too).  NULL after
 * logging one line.
 */
struct nbd_server *nbd_serve_connected_fd (struct frontend *f, int fd,
                                           uint16_t tflags);

/* As frontend_ops.stop: take no new requests, finish those in flight
 * and send their replies, close, then call stopped(opaque) from the
 * loop.
 */
void nbd_server_stop (struct nbd_server *s, void (*stopped) (void *),
                      void *opaque);

/* After stopped ran.  NULL is a no-op. */
void nbd_server_free (struct nbd_server *s);
/* The bdev grew: new connections get its size; with connected_too the
 * ones already in transmission as well (a kernel device that was told
 * the new size out of band).
 */
void nbd_server_resized (struct nbd_server *s, bool connected_too);

#endif
