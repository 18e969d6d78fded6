/* kmod-hostile.h - what the two files of the kmod-hostile test program
 * share: kmod-hostile.c (bad input to the control device and the
 * channel, the device serving real I/O in between, main) and
 * kmod-hostile-recovery.c (a server that dies with a request in
 * flight, the recovery window).
 */
#ifndef KMOD_HOSTILE_H
#define KMOD_HOSTILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "repvol_uapi.h"

#define DISK_SIZE       (16u << 20)
#define DEPTH           16
#define WAIT_S          30      /* every wait's bound */
/* Away from where blkid probes (the start, 64 KiB, 1 MiB, the end). */
#define OFF_HOSTILE     (3u << 20 | 4096)       /* written, read back */

extern int ctrl;                /* /dev/repvol-control */
extern uint8_t *ram;            /* the RAM disk behind the device */

/* The device the program serves, and what the hostile round did. */
struct dev {
  uint32_t id;
  int chan;
  char disk[64], chan_path[64];
  /* What the hostile round has done so far. */
  bool write_tested, read_tested, eio_done;
  int served;
};

/* One check: "ok NAME", or "FAIL NAME: ..." and it counts. */
void check (bool ok, const char *name, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
/* got and want: 0 or -errno. */
void expect (const char *name, int got, int want);
/* A control ioctl: 0 or -errno. */
int ctl (unsigned long ioc, struct repvol_ctrl *c);
/* ADD's parameters that the module must take; the plain ioctls' ones. */
struct repvol_ctrl good_add (void);
struct repvol_ctrl on_dev (uint32_t id);
double now_s (void);
/* Serve one request from RAM (result: complete it with that instead). */
int serve (struct dev *d, const struct repvol_io *io, int result);
/* Serve until pid exits: its exit status, or -ETIMEDOUT after WAIT_S. */
int serve_until_exit (struct dev *d, pid_t pid, bool hostile);
/* 0 once the block device node is there, -ETIMEDOUT after WAIT_S. */
int wait_disk (const char *disk);

/* kmod-hostile-recovery.c */
void recovery_checks (void);

#endif
