#!/bin/bash
# ublk-manual.sh - the ublk frontend against a real ublk_drv.
#
# Run as root on a kernel with ublk_drv loaded (6.0+; user recovery needs
# 6.1+), for instance inside qemu booting Debian 13's kernel:
#
#     W=/var/tmp/ublk-vm recipe.sh run $PWD/tests/kernel/ublk-manual.sh
#
# It shares tests/integration/lib.sh (processes, bounded waits, cleanup)
# and checks, on /dev/ublkbN served by "repvol attach --ublk" over two
# replica servers:
#   1. mkfs.ext4, mount, write, sync, umount; detach deletes the device;
#      attach again, mount, the file's checksum is unchanged;
#   2. fio (libaio, O_DIRECT) write + crc32c verify;
#   3. recovery: the attach is SIGKILLed while fio writes; the device
#      stays; a new attach takes it over; fio finishes and verifies with
#      no error, and the kernel logged no I/O error;
#   4. detach deletes the device and its state file.
# Skips (77) where there is no usable ublk.
. "$(dirname "$0")/../integration/lib.sh"

require_cmd mkfs.ext4 fio mount umount sha256sum
export REPVOL_RUN_DIR=$T/run
WAIT_TIMEOUT=${WAIT_TIMEOUT:-60}        # TCG guests are slow
FIO_SIZE=${FIO_SIZE:-48M}
[[ -e /dev/ublk-control ]] || skip "no /dev/ublk-control (modprobe ublk_drv)"
log "kernel $(uname -r)"

DEV=
# attach_ublk VOL [ARGS...]: start "repvol attach VOL --ublk" and wait
# until its log says the device is live (or recovered); sets $DEV.
attach_ublk() {
    local vol=$1 logf
    shift
    logf=$T/attach-$vol.$(date +%s%N).log
    start_bg "$logf" "$REPVOL" attach "$vol" --ublk "$@"
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

attach_ublk v
mount "$DEV" "$T/mnt"
got=$(sha256sum < "$T/mnt/data")
assert_eq "$want" "$got" "checksum after detach and attach"
umount "$T/mnt"
log "file system and data intact after re-attach"

# 2. fio write + verify
fio --name=verify --filename="$DEV" --ioengine=libaio --direct=1 \
    --rw=randwrite --bs=4k --iodepth=32 --size="$FIO_SIZE" \
    --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --output="$T/fio1.out" || { cat "$T/fio1.out"; fail "fio verify failed"; }
grep -E 'IOPS|err=' "$T/fio1.out" | head -3 >&2

# 3. SIGKILL the attach under fio; a new attach recovers the device
grep -q 'user recovery on' "$ATTACH_LOG" || skip "kernel without ublk user recovery"
fio --name=recover --filename="$DEV" --ioengine=libaio --direct=1 \
    --rw=randwrite --bs=64k --iodepth=16 --offset=64M --size="$FIO_SIZE" \
    --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --output="$T/fio2.out" &
fio_pid=$!
# Kill once fio is writing (writes completed on the device grow past
# what step 2 left), so that some of its I/O is in the attach's hands.
first=${ATTACH_PID[v]}
base=$(awk -v d="${DEV#/dev/}" '$3==d {print $8}' /proc/diskstats)
wait_for awk -v d="${DEV#/dev/}" -v b="$base" '$3==d && $8>b+64 {f=1} END{exit !f}' /proc/diskstats
kill -KILL "$first"
wait "$first" 2>/dev/null || true
log "attach pid $first SIGKILLed during fio"
attach_ublk v
grep -q 'recovered' "$ATTACH_LOG" || fail "second attach did not recover $DEV"
rc=0
wait "$fio_pid" || rc=$?
cat "$T/fio2.out" >&2
((rc == 0)) || fail "fio failed across the recovery (status $rc)"
grep -q 'err= 0' "$T/fio2.out" || fail "fio reported errors"
no_io_errors || fail "the kernel logged I/O errors on $DEV"
log "fio completed and verified across the recovery"

# 4. detach deletes the device
stop_attach v
wait_for test ! -e "$DEV"
[[ ! -e $REPVOL_RUN_DIR/v.ublk ]] || fail "state file left after detach"
log "PASS"
