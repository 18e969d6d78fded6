// SPDX-License-Identifier: GPL-2.0
/*
 * repvol_main.c - repvol.ko's control device and the life of a device.
 *
 * /dev/repvol-control takes ADD, START, STOP, DEL, RECOVER, INFO and
 * RESIZE on a struct repvol_ctrl (kmod/repvol_uapi.h).  A device is a
 * blk-mq disk /dev/repvolN plus its request channel /dev/repvolcN
 * (repvol_chan.c), served by a process such as "repvol attach --kmod".
 * docs/DESIGN.md 2.12 describes the protocol and its failure rules.
 *
 * Built for Debian 12's 6.1 and Debian 13's 6.12: the disk's limits are
 * set through struct queue_limits where the kernel has it (6.9+, with
 * the cache features in it from 6.11), through the old setters before.
 */
#include <linux/blkdev.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/uaccess.h>
#include <linux/version.h>

#include "repvol_internal.h"

unsigned int repvol_recovery_timeout = 30;
module_param_named(recovery_timeout, repvol_recovery_timeout, uint, 0644);
MODULE_PARM_DESC(recovery_timeout,
		 "seconds a device holds its I/O after its server went away, waiting for RECOVER, before failing it with EIO (default 30; a device may set its own at ADD)");

static DEFINE_MUTEX(repvol_devs_lock);
static DEFINE_IDR(repvol_devs);
static dev_t repvol_chan_base;
static struct class repvol_class = { .name = "repvol" };

/* ---- parameters ---- */

static bool pow2_between(u32 v, u32 lo, u32 hi)
{
	return v >= lo && v <= hi && is_power_of_2(v);
}

static bool reserved_zero(const struct repvol_ctrl *c)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(c->reserved); i++)
		if (c->reserved[i])
			return false;
	return c->reserved0 == 0 && c->server_pid == 0;
}

/* ADD's parameters, every one range-checked; recovery_timeout_s 0 takes
 * the module parameter.
 */
static int check_add(struct repvol_ctrl *c)
{
	u32 lbs = c->logical_block_size;

	if (c->state || c->arg || c->held || c->in_flight)
		return -EINVAL;
	if (c->dev_id != REPVOL_DEV_ANY && c->dev_id >= REPVOL_MAX_DEVICES)
		return -EINVAL;
	if (!pow2_between(lbs, 512, 4096) ||
	    !pow2_between(c->physical_block_size, lbs, 65536))
		return -EINVAL;
	if (c->size == 0 || c->size % lbs || c->size > (U64_MAX >> 1))
		return -EINVAL;
	if (c->nr_queues < 1 || c->nr_queues > REPVOL_MAX_QUEUES ||
	    c->queue_depth < 1 || c->queue_depth > REPVOL_MAX_DEPTH)
		return -EINVAL;
	if (c->max_io_bytes < REPVOL_MIN_IO_BYTES ||
	    c->max_io_bytes > REPVOL_MAX_IO_BYTES || c->max_io_bytes % lbs)
		return -EINVAL;
	if (c->features & ~REPVOL_F_ALL)
		return -EINVAL;
	if ((c->features & REPVOL_F_FUA) && !(c->features & REPVOL_F_WRITE_CACHE))
		return -EINVAL;
	if (c->recovery_timeout_s > REPVOL_MAX_RECOVERY_S)
		return -EINVAL;
	if (c->recovery_timeout_s == 0)
		c->recovery_timeout_s = min_t(unsigned int, repvol_recovery_timeout,
					      REPVOL_MAX_RECOVERY_S);
	return 0;
}

/* The other ioctls read version, dev_id and (RESIZE) arg only. */
static int check_plain(const struct repvol_ctrl *c, bool with_arg)
{
	if (c->size || c->logical_block_size || c->physical_block_size ||
	    c->nr_queues || c->queue_depth || c->max_io_bytes || c->features ||
	    c->recovery_timeout_s || c->state || c->held || c->in_flight ||
	    c->owner || (!with_arg && c->arg))
		return -EINVAL;
	return c->dev_id < REPVOL_MAX_DEVICES ? 0 : -ENODEV;
}

/* ---- the disk ---- */

static const struct block_device_operations repvol_bdev_fops = {
	.owner = THIS_MODULE,
};

static struct gendisk *alloc_disk_for(struct repvol_dev *dev)
{
	const struct repvol_ctrl *c = &dev->params;
	u32 max_sectors = c->max_io_bytes >> SECTOR_SHIFT;
	/* A discard's length travels in a u32 of bytes. */
	u32 max_ext = (U32_MAX >> SECTOR_SHIFT) & ~((c->logical_block_size >> SECTOR_SHIFT) - 1);
	struct gendisk *disk;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
	struct queue_limits lim = {
		.logical_block_size = c->logical_block_size,
		.physical_block_size = c->physical_block_size,
		.io_min = c->physical_block_size,
		.max_hw_sectors = max_sectors,
		.max_segments = USHRT_MAX,
		.max_hw_discard_sectors = c->features & REPVOL_F_DISCARD ? max_ext : 0,
		.discard_granularity = c->physical_block_size,
		.max_write_zeroes_sectors = c->features & REPVOL_F_WRITE_ZEROES ? max_ext : 0,
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
		.features = (c->features & REPVOL_F_WRITE_CACHE ? BLK_FEAT_WRITE_CACHE : 0) |
			    (c->features & REPVOL_F_FUA ? BLK_FEAT_FUA : 0),
#endif
	};

	disk = blk_mq_alloc_disk(&dev->set, &lim, dev);
#else
	disk = blk_mq_alloc_disk(&dev->set, dev);
#endif
	if (IS_ERR(disk))
		return disk;
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 9, 0)
	blk_queue_logical_block_size(disk->queue, c->logical_block_size);
	blk_queue_physical_block_size(disk->queue, c->physical_block_size);
	blk_queue_io_min(disk->queue, c->physical_block_size);
	blk_queue_max_hw_sectors(disk->queue, max_sectors);
	blk_queue_max_segments(disk->queue, USHRT_MAX);
	if (c->features & REPVOL_F_DISCARD) {
		blk_queue_max_discard_sectors(disk->queue, max_ext);
		disk->queue->limits.discard_granularity = c->physical_block_size;
	}
	if (c->features & REPVOL_F_WRITE_ZEROES)
		blk_queue_max_write_zeroes_sectors(disk->queue, max_ext);
	blk_queue_flag_set(QUEUE_FLAG_NONROT, disk->queue);
#endif
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 11, 0)
	blk_queue_write_cache(disk->queue, c->features & REPVOL_F_WRITE_CACHE,
			      c->features & REPVOL_F_FUA);
#endif
	disk->fops = &repvol_bdev_fops;
	disk->private_data = dev;
	/* No partition scan: add_disk must not wait for I/O that the
	 * process calling START may be the one to serve.
	 */
	disk->flags |= GENHD_FL_NO_PART;
	snprintf(disk->disk_name, sizeof(disk->disk_name), REPVOL_DISK_PREFIX "%u",
		 dev->id);
	set_capacity(disk, c->size >> SECTOR_SHIFT);
	if (c->features & REPVOL_F_READ_ONLY)
		set_disk_ro(disk, true);
	return disk;
}

/* ---- the life of a device ---- */

static void repvol_dev_release(struct device *d)
{
	struct repvol_dev *dev = container_of(d, struct repvol_dev, dev);

	kfree(dev);
}

void repvol_recovery_work(struct work_struct *work)
{
	struct repvol_dev *dev = container_of(to_delayed_work(work),
					      struct repvol_dev, recovery_work);
	bool fail = false;

	spin_lock(&dev->lock);
	if (dev->state == REPVOL_STATE_WAITING && !dev->chan_open) {
		dev->state = REPVOL_STATE_FAILING;
		fail = true;
	}
	spin_unlock(&dev->lock);
	if (fail) {
		dev_warn(&dev->dev, "no server recovered it within %u s: failing its I/O\n",
			 dev->params.recovery_timeout_s);
		repvol_fail_held(dev);
	}
}

static int dev_add(struct repvol_ctrl *c)
{
	struct repvol_dev *dev;
	int id, ret;

	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev)
		return -ENOMEM;
	dev->params = *c;
	mutex_init(&dev->ctl_lock);
	mutex_init(&dev->io_lock);
	spin_lock_init(&dev->lock);
	INIT_LIST_HEAD(&dev->pending);
	INIT_LIST_HEAD(&dev->in_flight);
	init_waitqueue_head(&dev->wait);
	INIT_DELAYED_WORK(&dev->recovery_work, repvol_recovery_work);
	dev->state = REPVOL_STATE_ADDED;

	mutex_lock(&repvol_devs_lock);
	if (c->dev_id == REPVOL_DEV_ANY)
		id = idr_alloc(&repvol_devs, dev, 0, REPVOL_MAX_DEVICES, GFP_KERNEL);
	else
		id = idr_alloc(&repvol_devs, dev, c->dev_id, c->dev_id + 1, GFP_KERNEL);
	if (id < 0) {
		mutex_unlock(&repvol_devs_lock);
		kfree(dev);
		return id == -ENOSPC && c->dev_id != REPVOL_DEV_ANY ? -EEXIST : id;
	}
	dev->id = id;
	dev->params.dev_id = id;

	dev->set.ops = &repvol_mq_ops;
	dev->set.nr_hw_queues = c->nr_queues;
	dev->set.queue_depth = c->queue_depth;
	dev->set.numa_node = NUMA_NO_NODE;
	dev->set.cmd_size = sizeof(struct repvol_cmd);
	dev->set.timeout = 30 * HZ;
	dev->set.driver_data = dev;
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 14, 0)
	dev->set.flags = BLK_MQ_F_SHOULD_MERGE;
#endif
	ret = blk_mq_alloc_tag_set(&dev->set);
	if (ret)
		goto out_idr;
	dev->set_allocated = true;
	dev->disk = alloc_disk_for(dev);
	if (IS_ERR(dev->disk)) {
		ret = PTR_ERR(dev->disk);
		dev->disk = NULL;
		goto out_set;
	}

	device_initialize(&dev->dev);
	dev->dev.class = &repvol_class;
	dev->dev.devt = MKDEV(MAJOR(repvol_chan_base), id);
	dev->dev.release = repvol_dev_release;
	ret = dev_set_name(&dev->dev, REPVOL_CHAN_PREFIX "%d", id);
	if (ret)
		goto out_put;
	cdev_init(&dev->cdev, &repvol_chan_fops);
	dev->cdev.owner = THIS_MODULE;
	ret = cdev_device_add(&dev->cdev, &dev->dev);
	if (ret)
		goto out_put;
	*c = dev->params;
	mutex_unlock(&repvol_devs_lock);
	dev_info(&dev->dev, "added: %llu bytes, block %u/%u, %u queues x %u, max I/O %u, features %#x, recovery %u s\n",
		 c->size, c->logical_block_size, c->physical_block_size,
		 c->nr_queues, c->queue_depth, c->max_io_bytes, c->features,
		 c->recovery_timeout_s);
	return 0;

out_put:
	/* From device_initialize on, the device's release frees dev. */
	idr_remove(&repvol_devs, id);
	mutex_unlock(&repvol_devs_lock);
	put_disk(dev->disk);
	blk_mq_free_tag_set(&dev->set);
	put_device(&dev->dev);
	return ret;
out_set:
	blk_mq_free_tag_set(&dev->set);
out_idr:
	idr_remove(&repvol_devs, id);
	mutex_unlock(&repvol_devs_lock);
	kfree(dev);
	return ret;
}

/* The device called id with a reference held, or NULL. */
static struct repvol_dev *dev_get(u32 id)
{
	struct repvol_dev *dev;

	mutex_lock(&repvol_devs_lock);
	dev = idr_find(&repvol_devs, id);
	if (dev)
		get_device(&dev->dev);
	mutex_unlock(&repvol_devs_lock);
	return dev;
}

/* START (from ADDED) and RECOVER (from WAITING or FAILING) make the
 * device live; both need a server holding the channel.
 */
static int go_live(struct repvol_dev *dev, bool recovering)
{
	bool from;
	int ret;

	spin_lock(&dev->lock);
	from = recovering ? dev->state == REPVOL_STATE_WAITING ||
			    dev->state == REPVOL_STATE_FAILING
			  : dev->state == REPVOL_STATE_ADDED;
	ret = !from ? -EBUSY : !dev->chan_open ? -ENOTCONN : 0;
	if (!ret)
		dev->state = REPVOL_STATE_LIVE;
	spin_unlock(&dev->lock);
	return ret;
}

static int dev_start(struct repvol_dev *dev)
{
	int ret = go_live(dev, false);

	if (ret)
		return ret;
	ret = add_disk(dev->disk);
	if (ret) {
		spin_lock(&dev->lock);
		dev->state = REPVOL_STATE_ADDED;
		spin_unlock(&dev->lock);
		return ret;
	}
	dev->disk_added = true;
	return 0;
}

/* The disk goes.  Without a server nothing could answer the writes
 * del_gendisk makes, so what is held fails at once instead of after
 * the recovery window.
 */
static int dev_stop(struct repvol_dev *dev)
{
	bool fail;

	if (!dev->disk_added)
		return dev->state == REPVOL_STATE_STOPPED ? 0 : -EINVAL;
	spin_lock(&dev->lock);
	fail = !dev->chan_open;
	if (fail)
		dev->state = REPVOL_STATE_FAILING;
	spin_unlock(&dev->lock);
	if (fail)
		repvol_fail_held(dev);
	del_gendisk(dev->disk);
	dev->disk_added = false;
	spin_lock(&dev->lock);
	dev->state = REPVOL_STATE_STOPPED;
	spin_unlock(&dev->lock);
	cancel_delayed_work_sync(&dev->recovery_work);
	return 0;
}

/* Stop if needed, free the disk and the tag set, remove /dev/repvolcN.
 * dev stays allocated until its last reference (an open channel) goes.
 */
static void dev_del(struct repvol_dev *dev)
{
	if (dev->disk_added)
		dev_stop(dev);
	mutex_lock(&repvol_devs_lock);
	idr_remove(&repvol_devs, dev->id);
	mutex_unlock(&repvol_devs_lock);
	cancel_delayed_work_sync(&dev->recovery_work);
	repvol_fail_held(dev);
	mutex_lock(&dev->io_lock);
	spin_lock(&dev->lock);
	dev->gone = true;
	dev->state = REPVOL_STATE_STOPPED;
	spin_unlock(&dev->lock);
	mutex_unlock(&dev->io_lock);
	wake_up_all(&dev->wait);
	put_disk(dev->disk);
	dev->disk = NULL;
	blk_mq_free_tag_set(&dev->set);
	cdev_device_del(&dev->cdev, &dev->dev);
	dev_info(&dev->dev, "deleted\n");
	put_device(&dev->dev);          /* the table's reference */
}

static int dev_recover(struct repvol_dev *dev)
{
	int ret = go_live(dev, true);

	if (ret)
		return ret;
	cancel_delayed_work_sync(&dev->recovery_work);
	dev_info(&dev->dev, "recovered: %u requests handed to the new server\n",
		 dev->n_held);
	wake_up_all(&dev->wait);
	return 0;
}

static int dev_resize(struct repvol_dev *dev, u64 size)
{
	if (size == 0 || size % dev->params.logical_block_size ||
	    size > (U64_MAX >> 1))
		return -EINVAL;
	if (!dev->disk)
		return -ENODEV;
	dev->params.size = size;
	set_capacity_and_notify(dev->disk, size >> SECTOR_SHIFT);
	return 0;
}

static void dev_info_fill(struct repvol_dev *dev, struct repvol_ctrl *c)
{
	*c = dev->params;
	spin_lock(&dev->lock);
	c->state = dev->state;
	c->held = dev->n_held;
	c->in_flight = dev->n_in_flight;
	c->server_pid = dev->server_pid;
	spin_unlock(&dev->lock);
}

/* ---- the control device ---- */

static long repvol_ctrl_ioctl(struct file *file, unsigned int cmd,
			      unsigned long arg)
{
	void __user *argp = (void __user *)arg;
	struct repvol_dev *dev;
	struct repvol_ctrl c;
	long ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	switch (cmd) {
	case REPVOL_IOC_ADD: case REPVOL_IOC_START: case REPVOL_IOC_STOP:
	case REPVOL_IOC_DEL: case REPVOL_IOC_RECOVER: case REPVOL_IOC_INFO:
	case REPVOL_IOC_RESIZE:
		break;
	default:
		return -ENOTTY;
	}
	if (copy_from_user(&c, argp, sizeof(c)))
		return -EFAULT;
	if (c.version != REPVOL_UAPI_VERSION || !reserved_zero(&c))
		return -EINVAL;

	if (cmd == REPVOL_IOC_ADD) {
		ret = check_add(&c);
		if (!ret)
			ret = dev_add(&c);
		if (!ret && copy_to_user(argp, &c, sizeof(c)))
			ret = -EFAULT;  /* the device exists: INFO finds it */
		return ret;
	}

	ret = check_plain(&c, cmd == REPVOL_IOC_RESIZE);
	if (ret)
		return ret;
	dev = dev_get(c.dev_id);
	if (!dev)
		return -ENODEV;
	mutex_lock(&dev->ctl_lock);
	if (dev->gone) {
		ret = -ENODEV;
		goto out;
	}
	switch (cmd) {
	case REPVOL_IOC_START:
		ret = dev_start(dev);
		break;
	case REPVOL_IOC_STOP:
		ret = dev_stop(dev);
		break;
	case REPVOL_IOC_DEL:
		dev_del(dev);
		ret = 0;
		break;
	case REPVOL_IOC_RECOVER:
		ret = dev_recover(dev);
		break;
	case REPVOL_IOC_RESIZE:
		ret = dev_resize(dev, c.arg);
		break;
	case REPVOL_IOC_INFO:
		dev_info_fill(dev, &c);
		ret = copy_to_user(argp, &c, sizeof(c)) ? -EFAULT : 0;
		break;
	}
out:
	mutex_unlock(&dev->ctl_lock);
	put_device(&dev->dev);
	return ret;
}

static const struct file_operations repvol_ctrl_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = repvol_ctrl_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice repvol_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = REPVOL_CONTROL_NAME,
	.fops = &repvol_ctrl_fops,
};

/* ---- the module ---- */

static int __init repvol_init(void)
{
	int ret;

	ret = alloc_chrdev_region(&repvol_chan_base, 0, REPVOL_MAX_DEVICES,
				  REPVOL_CHAN_PREFIX);
	if (ret)
		return ret;
	ret = class_register(&repvol_class);
	if (ret)
		goto out_region;
	ret = misc_register(&repvol_misc);
	if (ret)
		goto out_class;
	pr_info("repvol: /dev/" REPVOL_CONTROL_NAME " ready (uapi %u, recovery_timeout %u s)\n",
		REPVOL_UAPI_VERSION, repvol_recovery_timeout);
	return 0;

out_class:
	class_unregister(&repvol_class);
out_region:
	unregister_chrdev_region(repvol_chan_base, REPVOL_MAX_DEVICES);
	return ret;
}

/* No channel is open (each holds the module) and no disk is open; the
 * devices left are deleted, their held I/O failed.
 */
static void __exit repvol_exit(void)
{
	struct repvol_dev *dev;
	int id;

	misc_deregister(&repvol_misc);
	for (;;) {
		mutex_lock(&repvol_devs_lock);
		id = 0;
		dev = idr_get_next(&repvol_devs, &id);
		if (dev)
			get_device(&dev->dev);
		mutex_unlock(&repvol_devs_lock);
		if (!dev)
			break;
		mutex_lock(&dev->ctl_lock);
		dev_del(dev);
		mutex_unlock(&dev->ctl_lock);
		put_device(&dev->dev);
	}
	idr_destroy(&repvol_devs);
	class_unregister(&repvol_class);
	unregister_chrdev_region(repvol_chan_base, REPVOL_MAX_DEVICES);
}

module_init(repvol_init);
module_exit(repvol_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("repvol: block devices served by a userspace replication engine");
MODULE_AUTHOR("the repvol developers");
