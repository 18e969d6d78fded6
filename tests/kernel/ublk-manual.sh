#!/bin/bash
# ublk-manual.sh - the ublk frontend against a real ublk_drv.
#
# Longer than the tier's ublk tests (010-012), so not part of it: run it
# by hand as root on a kernel with ublk_drv loaded (6.0+; user recovery
# needs 6.1+), for instance inside qemu booting Debian 13's kernel:
#
#     scripts/kernel-vm.sh run trixie $PWD/tests/kernel/ublk-manual.sh
#
# It shares tests/integration/lib.sh (processes, bounded waits, cleanup)
# and checks, on /dev/ublkbN served by "repvol attach --ublk" over two
# replica servers:
#   1. mkfs.ext4, mount, write, sync, umount; detach deletes the device;
#      attach again, mount, the file's checksum is unchanged;
#   2. fio (libaio, O_DIRECT) write + crc32c verify, with 1 queue and
#      with 2 queues;
#   3. recovery: the attach is SIGKILLed while fio writes; the device
#      stays; a new attach takes it over; fio finishes and verifies with
#      no error, and the kernel logged no I/O error;
#   4. the same with ext4 mounted and a file being written (O_DIRECT,
#      fsync): the copy completes and reads back identical;
#   5. detach while fio writes: requests in flight finish, the device
#      is deleted once fio lets go of it, the state file goes;
#   6. detach while mounted: the attach says it waits for the device to
#      be let go of, and exits 0 once it is unmounted.
# Skips (77) where there is no usable ublk.
. "$(dirname "$0")/../integration/lib.sh"

require_cmd mkfs.ext4 fio mount umount sha256sum
export REPVOL_RUN_DIR=$T/run
WAIT_TIMEOUT=${WAIT_TIMEOUT:-60}        # TCG guests are slow
FIO_SIZE=${FIO_SIZE:-16M}
[[ -e /dev/ublk-control ]] || skip "no /dev/ublk-control (modprobe ublk_drv)"
log "kernel $(uname -r)"

DEV=
# attach_ublk VOL [ARGS...]: start "repvol attach VOL ARGS" (default
# --ublk) and wait until its log says the device is live (or
# recovered); sets $DEV.
attach_ublk() {
    local vol=$1 logf
    shift
    (($#)) || set -- --ublk
    logf=$T/attach-$vol.$(date +%s%N).log
    start_bg "$logf" "$REPVOL" attach "$vol" "$@"
    ATTACH_PID[$vol]=$BG_PID
    wait_for grep -qE 'is (live|recovered)|did not start' "$logf"
    grep -q 'did not start' "$logf" && { cat "$logf" >&2; fail "ublk did not start"; }
    DEV=$(grep -oE '/dev/ublkb[0-9]+' "$logf" | head -1)
    [[ -b $DEV ]] || fail "$DEV is not a block device"
    log "attach $vol pid $BG_PID serving $DEV"
    ATTACH_LOG=$logf
}

no_io_errors() {
    ! dmesg | grep -E "(I/O error|blk_update_request|Buffer I/O).*ublkb" >&2
}

start_repvold a zone-a
start_repvold b zone-b
repvol create v --size 256M --replica "${REPVOLD_ADDR[a]}" \
    --replica "${REPVOLD_ADDR[b]}" >/dev/null

# 1. a file system survives detach and attach
attach_ublk v
mkfs.ext4 -q -F "$DEV"
mkdir -p "$T/mnt"
mount "$DEV" "$T/mnt"
head -c 24M /dev/urandom > "$T/mnt/data"
sync
want=$(sha256sum < "$T/mnt/data")
umount "$T/mnt"
stop_attach v
wait_for test ! -e "$DEV"
[[ ! -e $REPVOL_RUN_DIR/v.ublk ]] || fail "state file left after detach"
log "detached: $DEV is gone"

attach_ublk v --device auto           # picks ublk where ublk_drv is loaded
mount "$DEV" "$T/mnt"
got=$(sha256sum < "$T/mnt/data")
assert_eq "$want" "$got" "checksum after detach and attach"
umount "$T/mnt"
log "file system and data intact after re-attach"

# 2. fio write + verify, one queue, then two
fio_verify() {
    fio --name=verify --filename="$DEV" --ioengine=libaio --direct=1 \
        --rw=randwrite --bs=4k --iodepth=32 --size="$FIO_SIZE" \
        --verify=crc32c --do_verify=1 --verify_fatal=1 \
        --output="$T/$1.out" || { cat "$T/$1.out"; fail "fio verify failed"; }
    grep -E 'IOPS|err=' "$T/$1.out" | head -3 >&2
}
fio_verify fio-q1
stop_attach v
attach_ublk v --ublk --queues 2 --depth 64
grep -q '2 queues, depth 64' "$ATTACH_LOG" || fail "not 2 queues of depth 64"
fio_verify fio-q2

# kill_attach_when_writing VOL: SIGKILL VOL's attach once the device's
# completed writes have grown, so that some I/O is in its hands.
kill_attach_when_writing() {
    local pid=${ATTACH_PID[$1]} d=${DEV#/dev/} base
    base=$(awk -v d="$d" '$3==d {print $8}' /proc/diskstats)
    wait_for awk -v d="$d" -v b="$base" '$3==d && $8>b+32 {f=1} END{exit !f}' /proc/diskstats
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    log "attach pid $pid SIGKILLed while writing"
}

# 3. SIGKILL the attach under fio; a new attach recovers the device
grep -q 'user recovery on' "$ATTACH_LOG" || skip "kernel without ublk user recovery"
fio --name=recover --filename="$DEV" --ioengine=libaio --direct=1 \
    --rw=randwrite --bs=64k --iodepth=16 --offset=64M --size=48M \
    --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --output="$T/fio-recover.out" &
fio_pid=$!
kill_attach_when_writing v
attach_ublk v
grep -q 'is recovered' "$ATTACH_LOG" || fail "second attach did not recover $DEV"
grep -q 'keeps the 2 queue' "$ATTACH_LOG" || fail "recovery did not keep 2 queues"
rc=0
wait "$fio_pid" || rc=$?
grep -E 'err=|IOPS' "$T/fio-recover.out" >&2
((rc == 0)) || { cat "$T/fio-recover.out"; fail "fio failed across the recovery (status $rc)"; }
grep -q 'err= 0' "$T/fio-recover.out" || fail "fio reported errors"
no_io_errors || fail "the kernel logged I/O errors on $DEV"
log "fio completed and verified across the recovery"

# 4. the same under a mounted file system
head -c 32M /dev/urandom > "$T/src"
mkfs.ext4 -q -F "$DEV"
mount "$DEV" "$T/mnt"
dd if="$T/src" of="$T/mnt/copy" bs=64k oflag=direct conv=fsync status=none &
dd_pid=$!
kill_attach_when_writing v
attach_ublk v
grep -q 'is recovered' "$ATTACH_LOG" || fail "third attach did not recover $DEV"
wait "$dd_pid" || fail "the copy failed across the recovery"
umount "$T/mnt"
mount "$DEV" "$T/mnt"
cmp "$T/src" "$T/mnt/copy" || fail "the copy differs after recovery"
umount "$T/mnt"
no_io_errors || fail "the kernel logged I/O errors on $DEV"
! dmesg | grep -E 'EXT4-fs (error|warning).*ublkb' >&2 || fail "ext4 complained"
log "ext4 copy completed and intact across the recovery"

# 5. detach under I/O: what is in flight completes, then the device goes
fio --name=busy --filename="$DEV" --ioengine=libaio --direct=1 \
    --rw=randwrite --bs=4k --iodepth=32 --size=64M --time_based --runtime=120 \
    --output="$T/fio-busy.out" &
fio_pid=$!
d=${DEV#/dev/}
base=$(awk -v d="$d" '$3==d {print $8}' /proc/diskstats)
wait_for awk -v d="$d" -v b="$base" '$3==d && $8>b+32 {f=1} END{exit !f}' /proc/diskstats
stop_attach v                   # fio fails from here on, then lets go
wait "$fio_pid" || true
wait_for test ! -e "$DEV"
[[ ! -e $REPVOL_RUN_DIR/v.ublk ]] || fail "state file left after detach"
grep -q 'deleted' "$ATTACH_LOG" || fail "detach did not delete the device"
! dmesg | grep -E 'BUG|WARNING|Oops|hung_task' >&2 || fail "kernel complained"
log "detach under fio deleted the device"

# 6. detach with the file system still mounted: the attach says what it
# waits for, and finishes once the file system is unmounted.
attach_ublk v
mount "$DEV" "$T/mnt"
sync
pid=${ATTACH_PID[v]}
kill -TERM "$pid"
wait_for grep -q 'still mounted or open' "$ATTACH_LOG"
umount "$T/mnt" || true          # the device is gone: errors are expected
rc=0
wait_exit "$pid" || rc=$?
((rc == 0)) || fail "attach exited with status $rc after the unmount"
unset "ATTACH_PID[v]"
wait_for test ! -e "$DEV"
log "PASS"
