#!/bin/bash
# repvol resize on a mounted ext4 over /dev/nbdN (kernel NBD frontend):
# fio verify runs on a file in the filesystem while the volume grows
# from 128 to 256 MiB; the device shows the new size in place
# (NBD_CMD_RECONFIGURE), resize2fs grows the mounted filesystem into it,
# more files land there; fio finds no error, the files written before and
# after read back, e2fsck is clean and the replicas are identical.
. "$(dirname "$0")/lib.sh"
need_driver nbd
need_frontend nbd-kernel
require_cmd fio mkfs.ext4 resize2fs blockdev

two_replicas vol1 128M
start_dev_attach vol1 --nbd-device auto
mkfs_ext4 "$DEV"
mount_dev "$DEV" "$T/mnt"
write_files "$T/mnt" 2 4
start_client "$T/fio-grow.log" fio --name=grow --filename="$T/mnt/fio.dat" \
    --ioengine=libaio --direct=1 "${FIO_VERIFY[@]}" --output="$T/grow.fio"
fio_pid=$BG_PID
"$REPVOL" resize vol1 --size 256M >"$T/resize.out" || fail "online resize failed"
log "$(cat "$T/resize.out")"
grep -q "shows 256 MiB now" "$T/resize.out" || fail "resize did not say the device grew: $(cat "$T/resize.out")"
dev_is_256m() { [[ $(blockdev --getsize64 "$DEV") == $((256 << 20)) ]]; }
wait_for dev_is_256m
resize2fs "$DEV" >"$T/resize2fs.log" 2>&1 || { cat "$T/resize2fs.log" >&2; fail "resize2fs $DEV failed"; }
blocks=$(df -k --output=size "$T/mnt" | tail -n 1)
((blocks > 200 * 1024)) || fail "the filesystem did not grow: $blocks KiB"
rc=0
wait "$fio_pid" || rc=$?
check_fio grow "$rc"
head -c 150M /dev/urandom >"$T/mnt/big.bin"     # needs the new space
sync
big=$(sha256sum <"$T/mnt/big.bin")
umount_dev "$T/mnt"
fsck_clean "$DEV"
stop_dev_attach vol1
replicas_identical vol1
start_dev_attach vol1 --nbd-device auto
[[ $(blockdev --getsize64 "$DEV") == $((256 << 20)) ]] || fail "re-attached at $(blockdev --getsize64 "$DEV") bytes"
mount_dev "$DEV" "$T/mnt"
check_files "$T/mnt"
[[ $(sha256sum <"$T/mnt/big.bin") == "$big" ]] || fail "the file in the new space changed"
umount_dev "$T/mnt"
stop_dev_attach vol1
no_kernel_io_errors
