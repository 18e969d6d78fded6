// SPDX-License-Identifier: GPL-2.0
/*
 * repvol_chan.c - requests from blk-mq to the serving process and back.
 *
 * queue_rq puts a request on dev->pending and wakes the channel; the
 * server read()s descriptors from /dev/repvolcN (pending -> in_flight),
 * moves payloads with pread/pwrite at REPVOL_DATA_OFF(tag, off), and
 * write()s completions.  When the channel closes (the server exited or
 * was killed) its requests in flight go back to the front of pending,
 * so a RECOVER hands them to the next server; the recovery window
 * (repvol_main.c) decides when held requests fail instead.
 *
 * Nothing here trusts userspace: a tag is looked up in the tag set and
 * must name a request this device handed out and has not completed; a
 * data range must lie inside that request; bad input gets an errno and
 * changes nothing.
 */
#include <linux/blkdev.h>
#include <linux/fs.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/uio.h>

#include "repvol_internal.h"

#define BATCH 32        /* descriptors or completions per copy */

static inline struct repvol_cmd *rq_cmd(struct request *rq)
{
	return blk_mq_rq_to_pdu(rq);
}

static inline struct request *cmd_rq(struct repvol_cmd *cmd)
{
	return blk_mq_rq_from_pdu(cmd);
}

/* ---- blk-mq side ---- */

static int repvol_init_request(struct blk_mq_tag_set *set, struct request *rq,
			       unsigned int hctx_idx, unsigned int numa_node)
{
	struct repvol_cmd *cmd = rq_cmd(rq);

	INIT_LIST_HEAD(&cmd->list);
	cmd->state = CMD_IDLE;
	return 0;
}

static blk_status_t repvol_queue_rq(struct blk_mq_hw_ctx *hctx,
				    const struct blk_mq_queue_data *bd)
{
	struct repvol_dev *dev = hctx->queue->queuedata;
	struct request *rq = bd->rq;
	struct repvol_cmd *cmd = rq_cmd(rq);

	switch (req_op(rq)) {
	case REQ_OP_READ:
	case REQ_OP_WRITE:
	case REQ_OP_FLUSH:
	case REQ_OP_DISCARD:
	case REQ_OP_WRITE_ZEROES:
		break;
	default:
		return BLK_STS_NOTSUPP;
	}
	spin_lock(&dev->lock);
	if (dev->state == REPVOL_STATE_FAILING || dev->gone) {
		spin_unlock(&dev->lock);
		return BLK_STS_IOERR;
	}
	blk_mq_start_request(rq);
	cmd->tag = (u32)hctx->queue_num << 16 | rq->tag;
	cmd->state = CMD_HELD;
	list_add_tail(&cmd->list, &dev->pending);
	dev->n_held++;
	spin_unlock(&dev->lock);
	wake_up(&dev->wait);
	return BLK_STS_OK;
}

/* Requests do not time out: with a server they wait for it (a slow
 * replica is not an I/O error), without one the recovery window fails
 * them.
 */
static enum blk_eh_timer_return repvol_timeout(struct request *rq)
{
	return BLK_EH_RESET_TIMER;
}

const struct blk_mq_ops repvol_mq_ops = {
	.queue_rq = repvol_queue_rq,
	.timeout = repvol_timeout,
	.init_request = repvol_init_request,
};

void repvol_fail_held(struct repvol_dev *dev)
{
	struct repvol_cmd *cmd, *next;
	LIST_HEAD(failed);

	mutex_lock(&dev->io_lock);
	spin_lock(&dev->lock);
	list_splice_init(&dev->pending, &failed);
	list_for_each_entry(cmd, &failed, list)
		cmd->state = CMD_IDLE;
	dev->n_held = 0;
	spin_unlock(&dev->lock);
	list_for_each_entry_safe(cmd, next, &failed, list) {
		list_del_init(&cmd->list);
		blk_mq_end_request(cmd_rq(cmd), BLK_STS_IOERR);
	}
	mutex_unlock(&dev->io_lock);
}

/* ---- the channel ---- */

/* DEL ran: every call on the channel gets -ENODEV. */
static bool dev_gone(struct repvol_dev *dev)
{
	bool gone;

	spin_lock(&dev->lock);
	gone = dev->gone;
	spin_unlock(&dev->lock);
	return gone;
}

bool repvol_chan_ready(struct repvol_dev *dev)
{
	bool ready;

	spin_lock(&dev->lock);
	ready = dev->gone ||
		(dev->state == REPVOL_STATE_LIVE && !list_empty(&dev->pending));
	spin_unlock(&dev->lock);
	return ready;
}

static int repvol_chan_open(struct inode *inode, struct file *file)
{
	struct repvol_dev *dev = container_of(inode->i_cdev, struct repvol_dev,
					      cdev);
	int ret = 0;

	spin_lock(&dev->lock);
	if (dev->gone)
		ret = -ENODEV;
	else if (dev->chan_open)
		ret = -EBUSY;
	else {
		dev->chan_open = true;
		dev->server_pid = task_tgid_vnr(current);
	}
	spin_unlock(&dev->lock);
	if (ret)
		return ret;
	get_device(&dev->dev);
	file->private_data = dev;
	return 0;
}

/* The server is gone: what it had in flight goes back to the front of
 * pending, in the order it was handed out, for the next server; the
 * recovery window starts.  No call on this file can be running.
 */
static int repvol_chan_release(struct inode *inode, struct file *file)
{
	struct repvol_dev *dev = file->private_data;
	struct repvol_cmd *cmd;
	bool start_window = false;

	spin_lock(&dev->lock);
	dev->chan_open = false;
	dev->server_pid = 0;
	list_for_each_entry(cmd, &dev->in_flight, list)
		cmd->state = CMD_HELD;
	list_splice_init(&dev->in_flight, &dev->pending);
	dev->n_held += dev->n_in_flight;
	dev->n_in_flight = 0;
	if (dev->state == REPVOL_STATE_LIVE && !dev->gone) {
		dev->state = REPVOL_STATE_WAITING;
		start_window = true;
	}
	spin_unlock(&dev->lock);
	if (start_window) {
		dev_info(&dev->dev, "server gone; holding I/O for %u s\n",
			 dev->params.recovery_timeout_s);
		mod_delayed_work(system_wq, &dev->recovery_work,
				 dev->params.recovery_timeout_s * HZ);
	}
	put_device(&dev->dev);
	return 0;
}

static __poll_t repvol_chan_poll(struct file *file, poll_table *wait)
{
	struct repvol_dev *dev = file->private_data;
	__poll_t mask = 0;

	poll_wait(file, &dev->wait, wait);
	spin_lock(&dev->lock);
	if (dev->gone)
		mask = EPOLLHUP | EPOLLERR;
	else if (dev->state == REPVOL_STATE_LIVE && !list_empty(&dev->pending))
		mask = EPOLLIN | EPOLLRDNORM;
	spin_unlock(&dev->lock);
	return mask;
}

static void fill_desc(struct repvol_io *d, struct repvol_cmd *cmd)
{
	struct request *rq = cmd_rq(cmd);

	memset(d, 0, sizeof(*d));
	d->tag = cmd->tag;
	switch (req_op(rq)) {
	case REQ_OP_READ:
		d->op = REPVOL_OP_READ;
		break;
	case REQ_OP_WRITE:
		d->op = REPVOL_OP_WRITE;
		break;
	case REQ_OP_FLUSH:
		d->op = REPVOL_OP_FLUSH;
		break;
	case REQ_OP_DISCARD:
		d->op = REPVOL_OP_DISCARD;
		break;
	default:
		d->op = REPVOL_OP_WRITE_ZEROES;
		if (rq->cmd_flags & REQ_NOUNMAP)
			d->flags |= REPVOL_IO_NOUNMAP;
		break;
	}
	if (rq->cmd_flags & REQ_FUA)
		d->flags |= REPVOL_IO_FUA;
	d->sector = blk_rq_pos(rq);
	d->len = req_op(rq) == REQ_OP_FLUSH ? 0 : blk_rq_bytes(rq);
}

/* read(): descriptors of held requests, which become in flight. */
static ssize_t read_descs(struct repvol_dev *dev, struct kiocb *iocb,
			  struct iov_iter *to)
{
	struct repvol_io descs[BATCH];
	struct repvol_cmd *taken[BATCH];
	size_t want = iov_iter_count(to) / sizeof(struct repvol_io), n, i;
	bool nowait = (iocb->ki_filp->f_flags & O_NONBLOCK) ||
		      (iocb->ki_flags & IOCB_NOWAIT);

	if (want == 0)
		return -EINVAL;
	want = min_t(size_t, want, BATCH);
	for (;;) {
		spin_lock(&dev->lock);
		if (dev->gone) {
			spin_unlock(&dev->lock);
			return -ENODEV;
		}
		if (dev->state == REPVOL_STATE_LIVE && !list_empty(&dev->pending))
			break;
		spin_unlock(&dev->lock);
		if (nowait)
			return -EAGAIN;
		if (wait_event_interruptible(dev->wait, repvol_chan_ready(dev)))
			return -ERESTARTSYS;
	}
	for (n = 0; n < want && !list_empty(&dev->pending); n++) {
		struct repvol_cmd *cmd = list_first_entry(&dev->pending,
							  struct repvol_cmd, list);

		list_move_tail(&cmd->list, &dev->in_flight);
		cmd->state = CMD_IN_FLIGHT;
		fill_desc(&descs[n], cmd);
		taken[n] = cmd;
	}
	dev->n_held -= n;
	dev->n_in_flight += n;
	spin_unlock(&dev->lock);

	if (copy_to_iter(descs, n * sizeof(descs[0]), to) == n * sizeof(descs[0]))
		return n * sizeof(descs[0]);
	/* The server never saw them: hold them again, at the front. */
	spin_lock(&dev->lock);
	for (i = n; i-- > 0;) {
		if (taken[i]->state != CMD_IN_FLIGHT)
			continue;
		taken[i]->state = CMD_HELD;
		list_move(&taken[i]->list, &dev->pending);
		dev->n_in_flight--;
		dev->n_held++;
	}
	spin_unlock(&dev->lock);
	return -EFAULT;
}

/* The in-flight request called tag, or NULL; dev->lock held. */
static struct request *in_flight_rq_locked(struct repvol_dev *dev, u64 tag)
{
	u32 q = tag >> 16, t = tag & 0xffff;
	struct request *rq;

	lockdep_assert_held(&dev->lock);
	if (dev->gone || tag > U32_MAX || q >= dev->params.nr_queues ||
	    t >= dev->params.queue_depth)
		return NULL;
	rq = blk_mq_tag_to_rq(dev->set.tags[q], t);
	if (rq && (rq_cmd(rq)->state != CMD_IN_FLIGHT || rq_cmd(rq)->tag != tag))
		return NULL;
	return rq;
}

/* The same, dev->io_lock held instead: every path that ends a request
 * takes io_lock, so the request stays in flight under the caller.
 */
static struct request *in_flight_rq(struct repvol_dev *dev, u64 tag)
{
	struct request *rq;

	lockdep_assert_held(&dev->io_lock);
	spin_lock(&dev->lock);
	rq = in_flight_rq_locked(dev, tag);
	spin_unlock(&dev->lock);
	return rq;
}

/* Copy bytes [off, off + iov_iter_count(iter)) of rq's data to or from
 * the user's buffer.
 */
static ssize_t copy_rq_data(struct request *rq, size_t off,
			    struct iov_iter *iter, bool to_user)
{
	size_t want = iov_iter_count(iter), done = 0;
	struct req_iterator it;
	struct bio_vec bv;

	rq_for_each_segment(bv, rq, it) {
		size_t len, n;

		if (off >= bv.bv_len) {
			off -= bv.bv_len;
			continue;
		}
		len = min_t(size_t, bv.bv_len - off, want - done);
		if (to_user)
			n = copy_page_to_iter(bv.bv_page, bv.bv_offset + off,
					      len, iter);
		else
			n = copy_page_from_iter(bv.bv_page, bv.bv_offset + off,
						len, iter);
		done += n;
		if (n < len || done == want)
			break;
		off = 0;
	}
	return done == 0 && want ? -EFAULT : done;
}

/* pread/pwrite at REPVOL_DATA_OFF(tag, off). */
static ssize_t rw_data(struct repvol_dev *dev, loff_t pos,
		       struct iov_iter *iter, bool to_user)
{
	u64 rel = (u64)pos - REPVOL_DATA_BASE;
	size_t off = rel & ((1u << REPVOL_TAG_SHIFT) - 1);
	size_t len = iov_iter_count(iter);
	struct request *rq;
	ssize_t ret;

	mutex_lock(&dev->io_lock);
	rq = in_flight_rq(dev, rel >> REPVOL_TAG_SHIFT);
	if (!rq)
		ret = dev_gone(dev) ? -ENODEV : -ENOENT;
	else if (req_op(rq) != (to_user ? REQ_OP_WRITE : REQ_OP_READ) ||
		 off > blk_rq_bytes(rq) || len > blk_rq_bytes(rq) - off)
		ret = -EINVAL;
	else
		ret = len ? copy_rq_data(rq, off, iter, to_user) : 0;
	mutex_unlock(&dev->io_lock);
	return ret;
}

static int complete_one(struct repvol_dev *dev, const struct repvol_done *d)
{
	struct request *rq;
	struct repvol_cmd *cmd;

	if (d->result > 0 || d->result < -MAX_ERRNO)
		return -EINVAL;
	spin_lock(&dev->lock);
	rq = in_flight_rq_locked(dev, d->tag);
	if (rq) {
		cmd = rq_cmd(rq);
		list_del_init(&cmd->list);
		cmd->state = CMD_IDLE;
		dev->n_in_flight--;
	}
	spin_unlock(&dev->lock);
	if (!rq)
		return -ENOENT;
	blk_mq_end_request(rq, errno_to_blk_status(d->result));
	return 0;
}

/* write(): completion records. */
static ssize_t write_dones(struct repvol_dev *dev, struct iov_iter *from)
{
	size_t count = iov_iter_count(from), done = 0;
	struct repvol_done recs[BATCH];
	int err = 0;

	if (dev_gone(dev))
		return -ENODEV;
	if (count == 0 || count % sizeof(recs[0]))
		return -EINVAL;
	mutex_lock(&dev->io_lock);
	while (done < count && !err) {
		size_t n = min_t(size_t, (count - done) / sizeof(recs[0]), BATCH);
		size_t i;

		if (copy_from_iter(recs, n * sizeof(recs[0]), from) !=
		    n * sizeof(recs[0])) {
			err = -EFAULT;
			break;
		}
		for (i = 0; i < n; i++) {
			err = complete_one(dev, &recs[i]);
			if (err)
				break;
			done += sizeof(recs[0]);
		}
	}
	mutex_unlock(&dev->io_lock);
	return done ? done : err;
}

static ssize_t repvol_chan_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	struct repvol_dev *dev = iocb->ki_filp->private_data;

	if ((u64)iocb->ki_pos >= REPVOL_DATA_BASE)
		return rw_data(dev, iocb->ki_pos, to, true);
	return read_descs(dev, iocb, to);
}

static ssize_t repvol_chan_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	struct repvol_dev *dev = iocb->ki_filp->private_data;

	if ((u64)iocb->ki_pos >= REPVOL_DATA_BASE)
		return rw_data(dev, iocb->ki_pos, from, false);
	return write_dones(dev, from);
}

/* The file position is never advanced: a plain read() or write() always
 * means descriptors or completions, a pread/pwrite at a data offset a
 * request's bytes.
 */
const struct file_operations repvol_chan_fops = {
	.owner = THIS_MODULE,
	.open = repvol_chan_open,
	.release = repvol_chan_release,
	.read_iter = repvol_chan_read_iter,
	.write_iter = repvol_chan_write_iter,
	.poll = repvol_chan_poll,
	.llseek = noop_llseek,
};
