#!/bin/bash
# The tier end to end on every kernel, with what works today: repvol's NBD
# socket frontend handed to the kernel's nbd driver by nbd-client.  ext4
# on /dev/nbd0, files written and synced, unmounted, disconnected,
# detached; attached again, the files read back with their checksums.
. "$(dirname "$0")/lib.sh"
need_driver nbd
require_cmd nbd-client mkfs.ext4

two_replicas vol1 128M
start_attach vol1 "$T/vol1.sock"
nbd_client_connect "$T/vol1.sock" /dev/nbd0
mkfs_ext4 /dev/nbd0
mount_dev /dev/nbd0 "$T/mnt"
write_files "$T/mnt" 4 4
umount_dev "$T/mnt"
nbd_client_disconnect /dev/nbd0
stop_attach vol1
replicas_identical vol1

start_attach vol1 "$T/vol1.sock"
nbd_client_connect "$T/vol1.sock" /dev/nbd0
fsck_clean /dev/nbd0
mount_dev /dev/nbd0 "$T/mnt"
check_files "$T/mnt"
umount_dev "$T/mnt"
nbd_client_disconnect /dev/nbd0
stop_attach vol1
no_kernel_io_errors
