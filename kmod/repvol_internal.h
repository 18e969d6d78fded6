/* SPDX-License-Identifier: GPL-2.0 */
/*
 * repvol_internal.h - what the two halves of repvol.ko share:
 * repvol_main.c (the control device, the disk, the life of a device)
 * and repvol_chan.c (the request channel /dev/repvolcN and blk-mq's
 * side of it).  kmod/repvol_uapi.h is the contract with userspace;
 * docs/DESIGN.md 2.12 explains both.
 *
 * Locking, outermost first:
 *   repvol_devs_lock (mutex)  the id -> device table
 *   dev->ctl_lock (mutex)     one control ioctl at a time per device
 *   dev->io_lock (mutex)      a data copy or a completion: a request is
 *                             never completed while its pages are copied
 *   dev->lock (spinlock)      the lists, the request states, dev->state,
 *                             chan_open, gone; taken by queue_rq, so
 *                             nothing under it sleeps or completes a
 *                             request (completing can re-enter queue_rq)
 */
#ifndef REPVOL_INTERNAL_H
#define REPVOL_INTERNAL_H

#include <linux/blk-mq.h>
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "repvol_uapi.h"

/* The life of one request, in its blk-mq pdu. */
enum repvol_cmd_state {
	CMD_IDLE,       /* not ours, or completed */
	CMD_HELD,       /* on dev->pending: waiting to be read */
	CMD_IN_FLIGHT,  /* on dev->in_flight: read, not completed */
};

struct repvol_cmd {
	struct list_head list;
	enum repvol_cmd_state state;
	u32 tag;                 /* queue << 16 | blk-mq tag, as userspace sees it */
};

struct repvol_dev {
	struct device dev;       /* /dev/repvolcN; its release frees this */
	struct cdev cdev;
	u32 id;
	struct repvol_ctrl params;      /* as ADD took them (size follows RESIZE) */

	struct mutex ctl_lock;
	struct mutex io_lock;
	spinlock_t lock;
	u32 state;               /* REPVOL_STATE_* */
	bool chan_open;
	u32 server_pid;          /* who holds the channel (INFO), 0 if nobody */
	bool gone;               /* DEL ran: the tag set is freed */
	struct list_head pending;       /* CMD_HELD, oldest first */
	struct list_head in_flight;     /* CMD_IN_FLIGHT */
	u32 n_held, n_in_flight;
	wait_queue_head_t wait;  /* readers and pollers of the channel */
	struct delayed_work recovery_work;

	struct blk_mq_tag_set set;
	bool set_allocated;
	struct gendisk *disk;
	bool disk_added;
};

/* repvol_chan.c */
extern const struct file_operations repvol_chan_fops;
extern const struct blk_mq_ops repvol_mq_ops;
/* Fail every held request with EIO (the recovery window is over, or the
 * device is going); from process context, dev->lock not held.
 */
void repvol_fail_held(struct repvol_dev *dev);
/* Whether a reader of the channel has something to do (or must stop). */
bool repvol_chan_ready(struct repvol_dev *dev);

/* repvol_main.c */
extern unsigned int repvol_recovery_timeout;
void repvol_recovery_work(struct work_struct *work);

#endif
