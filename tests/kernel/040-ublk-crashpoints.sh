#!/bin/bash
# Crash points with ext4 on a ublk device (the kernel tier's part of the
# crash-point campaign, tests/soak/crashpoints.sh): KCRASH_POINTS times
# (default 20), with a file written and fsynced (the last point's) and
# another being written, the attach is killed with SIGKILL at a random moment and a new
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
# ktest-timeout: 600
POINTS=${KCRASH_POINTS:-20}

two_replicas vol1 64M
start_dev_attach vol1 --ublk
dev=$DEV
# Few inodes: e2fsck, once per point, then has little to read.
mkfs_ext4 "$dev" -N 256
mount_dev "$dev" "$T/mnt"
head -c 2M /dev/urandom >"$T/srcB"
read -r sum _ < <(sha256sum "$T/srcB")
printf '%s  %s\n' "$sum" "$T/mnt/b0" >"$T/sums"
violations=0 during=0
violation() { violations=$((violations + 1)); log "VIOLATION at point $p: $*"; }

t0=$(date +%s%N)
# The file fsynced before the kill of point p is b(p-1), the one written
# across the kill of point p-1; b0 is written before the first.
dd if="$T/srcB" of="$T/mnt/b0" bs=64k conv=fsync status=none || fail "writing b0 failed"
for ((p = 1; p <= POINTS; p++)); do
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
    # flushed and checkpointed, nothing written meanwhile, every cached
    # page clean), then the caches dropped so that e2fsck, and the reads
    # below, see what the replicas hold.  Cheaper than an unmount and a
    # mount per point under emulation, where every program started costs
    # a second or so; the end of the test unmounts and checks once more.
    fsfreeze -f "$T/mnt" || fail "point $p: fsfreeze failed"
    echo 3 >/proc/sys/vm/drop_caches
    e2fsck -fn "$dev" >"$T/fsck.log" 2>&1 || violation "e2fsck -fn: $(tail -n 5 "$T/fsck.log")"
    fsfreeze -u "$T/mnt"
    printf '%s  %s\n' "$sum" "$T/mnt/b$((p - 1))" "$sum" "$T/mnt/b$p" >"$T/point.sums"
    printf '%s  %s\n' "$sum" "$T/mnt/b$p" >>"$T/sums"
    sha256sum --quiet -c "$T/point.sums" ||
        violation "b$((p - 1)) (fsynced before the kill) or b$p (written across it) differs"
    log "point $p done"
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
log "$POINTS points in $((ms / 1000)) s ($((ms / POINTS)) ms each), $during with the write of b under way at the kill"
umount_dev "$T/mnt"
fsck_clean "$dev"
mount_dev "$dev" "$T/mnt"
sha256sum --quiet -c "$T/sums" || violation "files differ after the remount"
umount_dev "$T/mnt"
# The last attach reconciles the replicas after the kill in the background;
# only then are they comparable.
wait_for -t 120 grep -q "reconciled after an unclean detach" "$T/attach-vol1.$ATTACH_N.log"
stop_dev_attach vol1
replicas_identical vol1
no_kernel_io_errors
echo "crashpoints: $POINTS points tried, $violations violations"
((violations == 0)) || fail "$violations violations"
