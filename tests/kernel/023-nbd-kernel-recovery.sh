#!/bin/bash
# Kernel NBD recovery under a mounted ext4: fio writes and verifies a file
# on /dev/nbdN while the attach serving it is SIGKILLed; the device stays
# (the kernel holds its I/O for the dead-connection timeout), a new
# "repvol attach VOL --nbd-device auto" reconnects the same device
# (NBD_CMD_RECONFIGURE), fio finishes with no error, the kernel logged no
# I/O error, e2fsck finds the filesystem clean and both replicas hold the
# same bytes.  Then the recovered attach is killed too and "repvol attach
# VOL --nbd-device /dev/nbdN" recovers the device by name; that one is
# killed as well, and "repvol detach" disconnects the device it left.
# Last, an attach killed and not recovered within --nbd-dead-timeout: the
# device's I/O fails (it does not hang), and detach frees it.
. "$(dirname "$0")/lib.sh"
need_driver nbd
need_frontend nbd-kernel
require_cmd fio mkfs.ext4 e2fsck

two_replicas vol1 256M
# A generous hold: under emulation the next attach takes a while to start.
start_dev_attach vol1 --nbd-device auto --nbd-dead-timeout 120
dev=$DEV
old=${ATTACH_PID[vol1]}
mkfs_ext4 "$dev"
mnt=$T/mnt
mount_dev "$dev" "$mnt"

written_mib() { awk '{print int($7 / 2048)}' "/sys/block/${dev#/dev/}/stat"; }
written_at_least() { (( $(written_mib) >= $1 )); }
base=$(written_mib)
start_client "$T/recover.fio.err" fio --name=recover --filename="$mnt/fio.dat" \
    --ioengine=libaio --direct=1 "${FIO_VERIFY[@]}" --size=32M --output="$T/recover.fio"
fio_pid=$BG_PID

# Kill once fio has written at least 4 MiB (of 32) through the device.
wait_for -t 120 written_at_least $((base + 4))
pid_alive "$fio_pid" || fail "fio finished before the attach could be killed; make it longer"
log "fio has written $(( $(written_mib) - base )) MiB; SIGKILL attach pid $old"
kill -KILL "$old"
wait_exit "$old" || true
dev_has_size "$dev" || fail "$dev was released when its attach process was killed"
pid_alive "$fio_pid" || fail "fio ended when the attach was killed: $(cat "$T/recover.fio" "$T/recover.fio.err")"

start_dev_attach vol1 --nbd-device auto
assert_eq "$dev" "$DEV" "device served by the recovering attach"
grep -q "recovering $dev from the attach that died (pid $old)" "$T/attach-vol1.$ATTACH_N.log" ||
    { cat "$T/attach-vol1.$ATTACH_N.log" >&2; fail "the new attach did not say it recovered $dev"; }
log "attach: $(grep -m1 -o 'nbd-kernel: .*recovering.*' "$T/attach-vol1.$ATTACH_N.log")"
assert_frontend vol1 "nbd-kernel $DEV"
rc=0
wait_exit "$fio_pid" 300 || rc=$?
((rc != 124)) || fail "fio still running 300 s after the recovery"
check_fio recover "$rc"
log "kernel: $(dmesg | tail -n +"$((DMESG_MARK + 1))" | grep "${dev#/dev/}" | sort | uniq -c | sed 's/^ *//' | tr '\n' ';')"
no_kernel_io_errors
umount_dev "$mnt"
fsck_clean "$dev"

# Killed again, and recovered by naming the device.
old=${ATTACH_PID[vol1]}
kill -KILL "$old"
wait_exit "$old" || true
dev_has_size "$dev" || fail "$dev was released when its attach process was killed"
start_dev_attach vol1 --nbd-device "$dev"
assert_eq "$dev" "$DEV" "device served by the attach naming it"
grep -q "recovering $dev from the attach that died (pid $old)" "$T/attach-vol1.$ATTACH_N.log" ||
    { cat "$T/attach-vol1.$ATTACH_N.log" >&2; fail "attach --nbd-device $dev did not recover it"; }
log "attach --nbd-device $dev recovered it from pid $old"

# Killed again, and not recovered: "repvol detach" disconnects the device
# the dead attach left, although the kernel still shows the first
# attach's pid for it (the device's backend names vol1).
old=${ATTACH_PID[vol1]}
kill -KILL "$old"
wait_exit "$old" || true
dev_has_size "$dev" || fail "$dev was released when its attach process was killed"
rc=0
"$REPVOL" detach vol1 >"$T/detach.log" 2>&1 || rc=$?
((rc == 1)) || { cat "$T/detach.log" >&2; fail "detach after a dead attach: exit $rc, expected 1"; }
grep -q "disconnected $dev" "$T/detach.log" ||
    { cat "$T/detach.log" >&2; fail "detach did not disconnect $dev"; }
wait_for dev_released "$dev"
unset "ATTACH_DEV[vol1]"
log "detach disconnected $dev, which the killed attach left"

# Attached once more (it reconciles the replicas after the unclean end):
# the filesystem is whole, and once detached both replicas are the same.
start_dev_attach vol1 --nbd-device auto
fsck_clean "$DEV"
stop_dev_attach vol1
replicas_identical vol1
no_kernel_io_errors

# Not recovered within its dead-connection timeout: the device's I/O then
# fails (EIO, not a hang), and detach still frees the device.
start_dev_attach vol1 --nbd-device auto --nbd-dead-timeout 2
dev=$DEV
old=${ATTACH_PID[vol1]}
kill -KILL "$old"
wait_exit "$old" || true
rc=0
timeout 60 dd if="$dev" of=/dev/null bs=4k count=1 iflag=direct 2>"$T/dd.err" || rc=$?
((rc != 0 && rc != 124)) || { cat "$T/dd.err" >&2; fail "read of $dev with its attach dead past the timeout: exit $rc, expected an I/O error"; }
log "read of $dev past the dead-connection timeout: $(tail -n 1 "$T/dd.err")"
rc=0
"$REPVOL" detach vol1 >"$T/detach2.log" 2>&1 || rc=$?
((rc == 1)) && grep -q "disconnected $dev" "$T/detach2.log" ||
    { cat "$T/detach2.log" >&2; fail "detach after the timeout: exit $rc, or $dev not disconnected"; }
wait_for dev_released "$dev"
unset "ATTACH_DEV[vol1]"
log "detach disconnected $dev after its dead-connection timeout"
