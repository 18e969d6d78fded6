#!/bin/bash
# A replica server SIGKILLed under a mounted ext4 that is being written:
# the writer sees no error, the kernel logs no I/O or ext4 error, e2fsck
# finds nothing, the status shows the replica out of sync, and every file
# reads back intact after a remount.  Runs on the best block device this
# guest and build offer (ublk, else kernel NBD frontend, else the NBD socket
# through nbd-client), so it runs on every kernel today.
. "$(dirname "$0")/lib.sh"
require_cmd mkfs.ext4

two_replicas vol1 256M
best_device vol1
mkfs_ext4 "$DEV"
mount_dev "$DEV" "$T/mnt"

N=16
mkdir -p "$T/parts"
head -c $((N * 2))M /dev/urandom >"$T/src"
split -b 2M -d -a 2 "$T/src" "$T/parts/w"      # w00 .. w15
(cd "$T/parts" && sha256sum w*) >"$T/sums"
# The workload: the N 2 MiB files copied in, each fsynced.
start_client "$T/workload.log" bash -c '
    for f in "$1"/w*; do
        dd if="$f" of="$2/${f##*/}" bs=1M conv=fsync status=none || exit 1
    done' workload "$T/parts" "$T/mnt"
wl=$BG_PID
wait_for -t 120 test -e "$T/mnt/w03"
pid_alive "$wl" || fail "the workload finished before the replica could be killed"
files=("$T"/mnt/w*)
log "workload at ${#files[@]} files; SIGKILL repvold beta"
stop_repvold beta KILL
rc=0
wait_exit "$wl" 300 || rc=$?
((rc == 0)) || fail "the workload failed (exit $rc): $(cat "$T/workload.log")"
sync

state_of_beta() {
    "$REPVOL" status vol1 --json | python3 -c '
import json, sys
v = json.load(sys.stdin)
print([r["state"] for r in v["replicas"] if r["addr"] == sys.argv[1]][0])' "${REPVOLD_ADDR[beta]}"
}
st=$(state_of_beta)
[[ $st != in-sync ]] || fail "beta is still listed in sync after it was killed under writes"
log "status: beta is $st"

umount_dev "$T/mnt"
fsck_clean "$DEV"
mount_dev "$DEV" "$T/mnt"
check_files "$T/mnt"
umount_dev "$T/mnt"
case $HOW in
nbd-client) nbd_client_disconnect "$DEV"; stop_attach vol1 ;;
*) stop_dev_attach vol1 ;;
esac
no_kernel_io_errors
