/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * repvol_uapi.h - the interface between repvol.ko and the process that
 * serves its devices (repvol attach --kmod).  Shared by kmod/repvol.c and
 * userspace/lib/frontend/kmod.c; docs/DESIGN.md section 2.12 is the
 * prose version.  Fixed-width types only, no kernel pointers, every
 * struct versioned and padded to a multiple of 8 bytes.
 *
 * Two kinds of character device:
 *
 *   /dev/repvol-control (misc device, root only): ioctls on a
 *   struct repvol_ctrl (ADD, START, STOP, DEL, RECOVER, INFO, RESIZE).
 *   Every field is range-checked; a bad one gets -EINVAL and changes
 *   nothing.  ADD reads the parameters (and owner); the other ioctls
 *   read only version, dev_id and (RESIZE) arg, and want every other
 *   field 0.
 *   A dev_id with no device: -ENODEV.
 *
 *   /dev/repvolcN, one per device N (the block device is /dev/repvolN):
 *   the request channel.  One opener at a time (-EBUSY for a second).
 *     read()   whole struct repvol_io descriptors, as many as fit and are
 *              pending (at least one; -EAGAIN with O_NONBLOCK when none,
 *              else it waits); count < sizeof (struct repvol_io): -EINVAL.
 *     poll()   EPOLLIN while descriptors are pending; EPOLLHUP once the
 *              device is deleted.
 *     pread (fd, buf, len, REPVOL_DATA_OFF (tag, off))
 *              a WRITE request's payload, bytes [off, off + len).
 *     pwrite (fd, buf, len, REPVOL_DATA_OFF (tag, off))
 *              a READ request's data, bytes [off, off + len).
 *              The tag must name a request in flight (read and not
 *              completed), else -ENOENT; the request must be of the
 *              right direction and off + len within its length, else
 *              -EINVAL.
 *     write()  at any position below REPVOL_DATA_BASE (plain write()):
 *              whole struct repvol_done records (count not a multiple of
 *              their size: -EINVAL), each completing one request in
 *              flight; returns the bytes of the records taken.  A bad
 *              record stops there: the count of the good ones before
 *              it, or, if it is the first, -ENOENT (tag not in flight)
 *              or -EINVAL (result not 0 or -4095..-1).
 *   Once the device is deleted every call gets -ENODEV.
 *
 * Life of a device:
 *   ADD      allocates /dev/repvolcN (the disk is not visible yet);
 *            returns dev_id and the parameters as taken.
 *   START    the serving process has /dev/repvolcN open: the disk
 *            /dev/repvolN appears (no partition scan: nothing waits for
 *            I/O inside the ioctl).  -ENOTCONN if nobody holds the
 *            request channel.
 *   RESIZE   new size (arg), announced to the kernel at once.
 *   STOP     the disk goes away (del_gendisk).  Requests it sends while
 *            going are served if the channel is open, else failed.  May
 *            block on such I/O: call it where the server keeps serving.
 *   DEL      STOP if needed, fail what is held with EIO, remove
 *            /dev/repvolcN; the memory goes with the last close.
 *   RECOVER  after the serving process died (its channel closed) and a
 *            new one opened /dev/repvolcN: requests held since, and the
 *            ones in flight when it died, are handed out again (re-read
 *            from the channel).  -EBUSY if the device is not waiting
 *            for recovery, -ENOTCONN if the caller has not opened the
 *            channel.
 *   INFO     parameters and state of dev_id.
 *
 * While the channel is closed the disk holds its requests for
 * recovery_timeout seconds (per device, from ADD; 0: the module
 * parameter recovery_timeout, default 30), then fails them and every
 * new one with EIO until a RECOVER.  While the channel is open requests
 * have no timeout: a slow replica is not an I/O error.
 */
#ifndef REPVOL_UAPI_H
#define REPVOL_UAPI_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define REPVOL_UAPI_VERSION    1

#define REPVOL_CONTROL_NAME    "repvol-control"  /* /dev/repvol-control */
#define REPVOL_DISK_PREFIX     "repvol"          /* /dev/repvolN */
#define REPVOL_CHAN_PREFIX     "repvolc"         /* /dev/repvolcN */

/* Limits checked by ADD. */
#define REPVOL_MAX_DEVICES     1024     /* dev_id < this */
#define REPVOL_MAX_QUEUES      32
#define REPVOL_MAX_DEPTH       1024
#define REPVOL_MIN_IO_BYTES    4096
#define REPVOL_MAX_IO_BYTES    (4u << 20)
#define REPVOL_MAX_RECOVERY_S  86400
#define REPVOL_DEV_ANY         0xffffffffu      /* ADD: pick a free id */

/* struct repvol_ctrl.features */
#define REPVOL_F_WRITE_CACHE   (1u << 0)  /* volatile cache: FLUSH is sent */
#define REPVOL_F_FUA           (1u << 1)  /* needs WRITE_CACHE */
#define REPVOL_F_DISCARD       (1u << 2)
#define REPVOL_F_WRITE_ZEROES  (1u << 3)
#define REPVOL_F_READ_ONLY     (1u << 4)
#define REPVOL_F_ALL           0x1fu

/* struct repvol_ctrl.state (INFO) */
#define REPVOL_STATE_ADDED     0  /* no disk yet */
#define REPVOL_STATE_LIVE      1  /* disk up, channel open */
#define REPVOL_STATE_WAITING   2  /* disk up, channel closed: holding I/O */
#define REPVOL_STATE_FAILING   3  /* recovery window over: EIO */
#define REPVOL_STATE_STOPPED   4  /* disk gone */

struct repvol_ctrl {
	__u32 version;             /* REPVOL_UAPI_VERSION */
	__u32 dev_id;              /* ADD: wanted or REPVOL_DEV_ANY; out: N */
	__u64 size;                /* ADD: bytes, multiple of logical_block_size */
	__u32 logical_block_size;  /* ADD: 512..4096, power of two */
	__u32 physical_block_size; /* ADD: logical..65536, power of two */
	__u32 nr_queues;           /* ADD: 1..REPVOL_MAX_QUEUES */
	__u32 queue_depth;         /* ADD: 1..REPVOL_MAX_DEPTH */
	__u32 max_io_bytes;        /* ADD: MIN..MAX_IO_BYTES, multiple of
	                            * logical_block_size */
	__u32 features;            /* ADD: REPVOL_F_* */
	__u32 recovery_timeout_s;  /* ADD: 0 = module parameter */
	__u32 state;               /* INFO: REPVOL_STATE_*; else 0 */
	__u64 arg;                 /* RESIZE: the new size; else 0 */
	__u32 held;                /* INFO: requests not yet handed out */
	__u32 in_flight;           /* INFO: handed out, not completed */
	__u64 owner;               /* ADD: the caller's name for whoever the
	                            * device is for (repvol attach: a hash of
	                            * the volume's name), so that a recovery
	                            * takes over only its own; INFO: as given */
	__u32 server_pid;          /* INFO: the process holding the request
	                            * channel open (its thread group), 0 if none */
	__u32 reserved0;           /* 0 */
	__u64 reserved[2];         /* 0 */
};

#define REPVOL_IOC_MAGIC       0xb7
#define REPVOL_IOC_ADD         _IOWR (REPVOL_IOC_MAGIC, 0x00, struct repvol_ctrl)
#define REPVOL_IOC_START       _IOW  (REPVOL_IOC_MAGIC, 0x01, struct repvol_ctrl)
#define REPVOL_IOC_STOP        _IOW  (REPVOL_IOC_MAGIC, 0x02, struct repvol_ctrl)
#define REPVOL_IOC_DEL         _IOW  (REPVOL_IOC_MAGIC, 0x03, struct repvol_ctrl)
#define REPVOL_IOC_RECOVER     _IOW  (REPVOL_IOC_MAGIC, 0x04, struct repvol_ctrl)
#define REPVOL_IOC_INFO        _IOWR (REPVOL_IOC_MAGIC, 0x05, struct repvol_ctrl)
#define REPVOL_IOC_RESIZE      _IOW  (REPVOL_IOC_MAGIC, 0x06, struct repvol_ctrl)

/* struct repvol_io.op */
#define REPVOL_OP_READ         0
#define REPVOL_OP_WRITE        1
#define REPVOL_OP_FLUSH        2
#define REPVOL_OP_DISCARD      3
#define REPVOL_OP_WRITE_ZEROES 4

/* struct repvol_io.flags */
#define REPVOL_IO_FUA          (1u << 0)
#define REPVOL_IO_NOUNMAP      (1u << 1)  /* WRITE_ZEROES: keep allocated */

/* A request, read from /dev/repvolcN. */
struct repvol_io {
	__u32 tag;                 /* queue << 16 | tag within the queue */
	__u8  op;                  /* REPVOL_OP_* */
	__u8  reserved0;
	__u16 flags;               /* REPVOL_IO_* */
	__u64 sector;              /* 512-byte units */
	__u32 len;                 /* bytes (0 for FLUSH) */
	__u32 reserved1;
};

/* A completion, written to /dev/repvolcN. */
struct repvol_done {
	__u32 tag;
	__s32 result;              /* 0 or -errno */
};

/* The file position that reaches a request's data. */
#define REPVOL_DATA_BASE       (1ull << 62)
#define REPVOL_TAG_SHIFT       22  /* REPVOL_MAX_IO_BYTES == 1 << 22 */
#define REPVOL_DATA_OFF(tag, off) \
	(REPVOL_DATA_BASE + ((__u64)(tag) << REPVOL_TAG_SHIFT) + (__u64)(off))

#endif
