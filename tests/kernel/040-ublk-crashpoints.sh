#!/bin/bash
# Crash points with ext4 on a ublk device (the kernel tier's part of the
# crash-point campaign, tests/soak/crashpoints.sh): KCRASH_POINTS times
# (default 20), with a file written and fsynced and another being written,
# the attach is killed with SIGKILL at a random moment and a new
# "repvol attach --ublk" recovers the same device (the kernel holds the
# I/O meanwhile).  After each: the writer finishes without an error,
# "e2fsck -fn" finds nothing in the file system frozen on the device, and
# read back from the device the file fsynced before the kill and the one
# written across it hold their bytes.  At the end: unmounted, e2fsck -fn
# once more, every point's files checked after a remount, the replicas
# byte-identical after a clean detach.  Prints
# "crashpoints: N points tried, M violations".  Needs ublk_drv (Debian 13).
. "$(dirname "$0")/lib.sh"
need_driver ublk
need_frontend ublk
require_cmd mkfs.ext4 e2fsck
POINTS=${KCRASH_POINTS:-20}

two_replicas vol1 128M
start_dev_attach vol1 --ublk
dev=$DEV
mkfs_ext4 "$dev"
mount_dev "$dev" "$T/mnt"
head -c 1M /dev/urandom >"$T/srcA"     # fsynced before each kill
head -c 4M /dev/urandom >"$T/srcB"     # being written across it
violations=0 during=0
violation() { violations=$((violations + 1)); log "VIOLATION at point $p: $*"; }

t0=$(date +%s%N)
for ((p = 1; p <= POINTS; p++)); do
    dd if="$T/srcA" of="$T/mnt/a$p" bs=1M conv=fsync status=none || fail "point $p: writing a$p failed"
    start_client "$T/writer.log" dd if="$T/srcB" of="$T/mnt/b$p" bs=64k conv=fsync status=none
    writer=$BG_PID
    sleep "$(printf '0.%03d' $((RANDOM % 400)))"
    ! pid_alive "$writer" || during=$((during + 1))
    kill -KILL "${ATTACH_PID[vol1]}"
    wait_exit "${ATTACH_PID[vol1]}" || true
    [[ -b $dev ]] || fail "point $p: $dev vanished with its attach"
    start_dev_attach vol1 --ublk
    [[ $DEV == "$dev" ]] || fail "point $p: the new attach serves $DEV, not $dev"
    rc=0
    wait_exit "$writer" 120 || rc=$?
    ((rc == 0)) || violation "the write of b$p across the kill failed (exit $rc): $(cat "$T/writer.log")"
    # The file system checked as it is on the device: frozen (the journal
    # flushed and checkpointed, nothing written meanwhile), the device's
    # cache dropped so e2fsck reads what the replicas hold.  Cheaper than
    # an unmount and a mount per point under emulation; the end of the
    # test unmounts and checks once more.
    fsfreeze -f "$T/mnt" || fail "point $p: fsfreeze failed"
    blockdev --flushbufs "$dev"
    e2fsck -fn "$dev" >"$T/fsck.log" 2>&1 || violation "e2fsck -fn: $(tail -n 5 "$T/fsck.log")"
    fsfreeze -u "$T/mnt"
    # Read the files back from the device, not from the page cache.
    echo 3 >/proc/sys/vm/drop_caches
    cmp -s "$T/srcA" "$T/mnt/a$p" || violation "a$p, fsynced before the kill, differs"
    cmp -s "$T/srcB" "$T/mnt/b$p" || violation "b$p, written across the kill, differs"
    log "point $p done"
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
log "$POINTS points in $((ms / 1000)) s ($((ms / POINTS)) ms each), $during with the write of b under way at the kill"
umount_dev "$T/mnt"
fsck_clean "$dev"
mount_dev "$dev" "$T/mnt"
for ((p = 1; p <= POINTS; p++)); do
    cmp -s "$T/srcA" "$T/mnt/a$p" && cmp -s "$T/srcB" "$T/mnt/b$p" ||
        violation "point $p's files differ at the end"
done
umount_dev "$T/mnt"
# The last attach reconciles the replicas after the kill in the background;
# only then are they comparable.
wait_for -t 120 grep -q "reconciled after an unclean detach" "$T/attach-vol1.$ATTACH_N.log"
stop_dev_attach vol1
replicas_identical vol1
no_kernel_io_errors
echo "crashpoints: $POINTS points tried, $violations violations"
((violations == 0)) || fail "$violations violations"
