/* nbd_kernel_internal.h - what the two files of the kernel NBD
 * frontend share: nbd_kernel.c (generic netlink, connect, serve,
 * disconnect, the frontend ops) and nbd_kernel_recover.c (the state
 * file and taking over a device whose attach died).  Nothing outside
 * frontend/ includes it.
 */
#ifndef REPVOL_NBD_KERNEL_INTERNAL_H
#define REPVOL_NBD_KERNEL_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/netlink.h>

#include "core/loop.h"
#include "frontend/frontend.h"
#include "frontend/nbd_proto.h"

/* What the kernel is told the server does.  No CAN_MULTI_CONN: there
 * is one socket.  Kernels older than NBD_FLAG_SEND_WRITE_ZEROES (6.1)
 * ignore the bit and never send the command.
 */
#define NBD_KERNEL_FLAGS \
  (NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | \
   NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES)

/* The request timeout, NBD_ATTR_TIMEOUT: 0 = the kernel never gives up
 * on a request (every 30 s it logs "possible stuck request" and, if the
 * socket was replaced since the request went out, sends it again on
 * the new one).  Any other value would, with our single socket, shut
 * the socket down at the first slow request; the engine already bounds
 * every request by the replica --timeout.
 */
#define NBD_KERNEL_TIMEOUT_S    0
/* The default dead-connection timeout, NBD_ATTR_DEAD_CONN_TIMEOUT:
 * once our end is gone (the attach died), new requests wait this long
 * for a reconnect (the next attach's NBD_CMD_RECONFIGURE) before the
 * kernel fails them and every later one.  attach --nbd-dead-timeout.
 */
#define NBD_KERNEL_DEAD_CONN_S  30

struct nbd_kernel {
  struct frontend *fe;
  struct nbd_server *srv;
  int nl_fd;
  uint16_t family;
  uint32_t seq;
  int index;                    /* /dev/nbdN, or -1 for auto until connected */
  unsigned dead_timeout;        /* seconds, NBD_ATTR_DEAD_CONN_TIMEOUT */
  bool connected;
  bool recovered;               /* took over a device a dead attach left */
  /* NBD_ATTR_BACKEND_IDENTIFIER, "repvol:VOLUME": the kernel shows it
   * in /sys/block/nbdN/backend and refuses a RECONFIGURE naming
   * another, so a device is known to be this volume's.
   */
  char backend[80];
  char state_path[PATH_MAX];    /* RUN_DIR/VOLUME.nbd */

  /* Detach: NBD_CMD_DISCONNECT runs on its own thread, because the
   * kernel sends NBD_CMD_DISC and may wait on the socket while it
   * does, and only this loop reads that socket.
   */
  pthread_t disc_thread;
  bool disc_running;
  int disc_err;                 /* NBD_CMD_DISCONNECT: 0 or -errno */
  int disc_efd;
  struct loop_watch disc_watch;
  void (*stopped) (void *opaque);
  void *stopped_opaque;
};

/* ---- nbd_kernel.c: generic netlink and the device ---- */

struct nlmsg {
  struct nlmsghdr *n;
  char buf[1024] __attribute__ ((aligned (NLMSG_ALIGNTO)));
};

void nk_msg_init (struct nlmsg *m, uint16_t type, uint8_t cmd);
void nk_put_u32 (struct nlmsg *m, uint16_t type, uint32_t v);
void nk_put_u64 (struct nlmsg *m, uint16_t type, uint64_t v);
void nk_put_str (struct nlmsg *m, uint16_t type, const char *s);
/* NBD_ATTR_SOCKETS with the one socket fd. */
void nk_put_socket (struct nlmsg *m, int fd);
/* Send m, wait for the ACK: 0 or a negative errno; see nbd_kernel.c. */
int nk_talk (int fd, uint32_t *seq, struct nlmsg *m, uint16_t want_attr,
             uint32_t *value);
/* A generic netlink socket and the id of family "nbd", or -errno. */
int nk_open_nbd (uint16_t *family, uint32_t *seq);
/* NBD_CMD_DISCONNECT of /dev/nbd<nk->index>: 0 or a negative errno. */
int nk_disconnect (struct nbd_kernel *nk);

/* "/dev/nbdN" (*index N) or "auto" (-1), optionally followed by
 * ",dead-timeout=SECONDS" (*dead_timeout, else left alone): 0 or
 * -EINVAL.
 */
int nk_parse_spec (const char *spec, int *index, unsigned *dead_timeout);
/* The pid the kernel shows for a connected /dev/nbdN (the process that
 * sent NBD_CMD_CONNECT, kept across reconnects), or 0 if free.
 */
long nk_device_pid (int index);
/* Log why /dev/nbdN cannot be had. */
void nk_say_busy (int index);

/* ---- nbd_kernel_recover.c: the state file and recovery ---- */

/* Fill nk->backend and nk->state_path for volume name. */
void nk_state_init (struct nbd_kernel *nk, const char *name);
/* Record nk->index as served by this process (after it serves). */
void nk_state_write (const struct nbd_kernel *nk);
/* Forget the state file if it still names nk->index. */
void nk_state_remove (const struct nbd_kernel *nk);

/* /dev/nbd<nk->index> is this volume's (its backend says so) and no
 * live process serves it: neither the one that connected it nor the
 * one the state file names.
 */
bool nk_abandoned (const struct nbd_kernel *nk);

/* If /dev/nbd<nk->index> (auto: the device the state file names) is
 * this volume's and its attach died, reconnect it to a fresh socket:
 * 1 with our end in *fd and nk->index set, 0 when a new device must be
 * connected (nothing to recover, or a leftover that was not this
 * volume's shape, now disconnected), a negative errno (logged) when
 * the attach must not go on.
 */
int nk_try_recover (struct nbd_kernel *nk, uint64_t size, uint32_t bs,
                    int *fd);

#endif
