#!/bin/bash
# ublk user recovery: the attach process is SIGKILLed while fio writes and
# verifies through /dev/ublkb0; the device stays (its I/O waits), a new
# "repvol attach VOL --ublk" recovers the same device, and fio finishes
# with no error: every block it wrote reads back with its crc32c.  Needs
# ublk_drv (Debian 13); on Debian 12 it skips.
. "$(dirname "$0")/lib.sh"
need_driver ublk
need_frontend ublk
require_cmd fio

two_replicas vol1 256M
start_dev_attach vol1 --ublk
dev=$DEV
old=${ATTACH_PID[vol1]}
start_client "$T/recover.fio.err" fio --name=recover --filename="$dev" --ioengine=libaio \
    --direct=1 "${FIO_VERIFY[@]}" --size=32M --output="$T/recover.fio"
fio_pid=$BG_PID

# Kill once fio has written at least 4 MiB (of 32) through the device.
written_mib() { awk '{print int($7 / 2048)}' "/sys/block/${dev#/dev/}/stat"; }
written_at_least() { (( $(written_mib) >= $1 )); }
wait_for -t 120 written_at_least 4
pid_alive "$fio_pid" || fail "fio finished before the attach could be killed; make it longer"
log "fio has written $(written_mib) MiB; SIGKILL attach pid $old"
kill -KILL "$old"
wait_exit "$old" || true
[[ -b $dev ]] || fail "$dev vanished when its attach process was killed (no user recovery?)"
pid_alive "$fio_pid" || fail "fio ended when the attach was killed: $(cat "$T/recover.fio" "$T/recover.fio.err")"

start_dev_attach vol1 --ublk
assert_eq "$dev" "$DEV" "device served by the recovering attach"
assert_frontend vol1 "ublk $DEV"
rc=0
wait_exit "$fio_pid" 300 || rc=$?
((rc != 124)) || fail "fio still running 300 s after the recovery"
check_fio recover "$rc"
stop_dev_attach vol1
replicas_identical vol1
no_kernel_io_errors
