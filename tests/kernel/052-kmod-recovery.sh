#!/bin/bash
# repvol.ko recovery under a mounted filesystem: fio writes and verifies a
# file on ext4 on /dev/repvolN when the attach process is SIGKILLed.  The
# module holds the disk's requests (the channel closed), a new
# "repvol attach VOL --kmod" finds the device in its state file and
# RECOVERs it: the same /dev/repvolN, fio finishes with no error (every
# block it wrote reads back with its crc32c), ext4 logs no error, e2fsck
# is clean and the replicas are identical once detached.
# ktest-timeout: 420
. "$(dirname "$0")/lib.sh"
need_kmod
need_frontend kmod
require_cmd fio mkfs.ext4

# Under emulation a new attach takes a while to serve: give the module's
# window (default 30 s) room, where the parameter can be set at run time.
param=/sys/module/repvol/parameters/recovery_timeout
if [[ -w $param ]]; then
    echo 120 >"$param"
    log "recovery_timeout set to $(cat "$param") s for this test"
fi

two_replicas vol1 256M
start_dev_attach vol1 --kmod
dev=$DEV
old=${ATTACH_PID[vol1]}
assert_frontend vol1 "kmod $dev"
mkfs_ext4 "$dev"
mount_dev "$dev" "$T/mnt"

written_mib() { awk '{print int($7 / 2048)}' "/sys/block/${dev#/dev/}/stat"; }
written_at_least() { (( $(written_mib) >= $1 )); }
base=$(written_mib)
start_client "$T/recover.fio.err" fio --name=recover --filename="$T/mnt/fio.dat" \
    --ioengine=libaio --direct=1 "${FIO_VERIFY[@]}" --size=32M --output="$T/recover.fio"
fio_pid=$BG_PID

# Kill once fio has written at least 4 MiB (of its 32, plus the layout).
wait_for -t 120 written_at_least $((base + 4))
pid_alive "$fio_pid" || fail "fio finished before the attach could be killed; make it longer"
log "fio has written $(( $(written_mib) - base )) MiB; SIGKILL attach pid $old"
kill -KILL "$old"
wait_exit "$old" || true
[[ -b $dev ]] || fail "$dev vanished when its attach process was killed"
pid_alive "$fio_pid" || fail "fio ended when the attach was killed: $(cat "$T/recover.fio" "$T/recover.fio.err")"

start_dev_attach vol1 --kmod
assert_eq "$dev" "$DEV" "device served by the recovering attach"
assert_frontend vol1 "kmod $DEV"
grep -h 'recovered /dev/repvol' "$T"/attach-vol1.*.log >&2 ||
    fail "the second attach did not say it recovered $dev"
rc=0
wait_exit "$fio_pid" 300 || rc=$?
((rc != 124)) || fail "fio still running 300 s after the recovery"
check_fio recover "$rc"
umount_dev "$T/mnt"
fsck_clean "$dev"
stop_dev_attach vol1
replicas_identical vol1
no_kernel_io_errors
