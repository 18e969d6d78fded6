#!/bin/bash
# repvol.ko leaves nothing behind: attach --kmod, write, detach (the
# device goes); attach, SIGKILL the attach, and repvol detach deletes the
# device it left (and a state file that outlived it never gives the
# volume another volume's device); rmmod repvol, and no /dev/repvol* or
# /sys/block/repvol* remains; the module goes in again, serves the data
# written before, and grows online (repvol resize: RESIZE, seen at once);
# --device auto picks repvol.ko where ublk is missing.
. "$(dirname "$0")/lib.sh"
need_kmod
need_frontend kmod

two_replicas vol1 64M
start_dev_attach vol1 --kmod
dd if=/dev/urandom of="$T/data" bs=1M count=4 status=none
dd if="$T/data" of="$DEV" bs=1M oflag=direct status=none || fail "write to $DEV failed"
stop_dev_attach vol1

# An attach that dies leaves its device holding I/O; repvol detach of the
# dead attach deletes it (nobody serves its channel).
start_dev_attach vol1 --kmod
dead=${ATTACH_PID[vol1]}
kill -KILL "$dead"
wait_exit "$dead" || true
[[ -b $DEV ]] || fail "$DEV vanished with its attach (it should wait for recovery)"
rc=0
"$REPVOL" detach vol1 >"$T/detach.log" 2>&1 || rc=$?
cat "$T/detach.log" >&2
((rc == 1)) || fail "repvol detach of a dead attach: exit $rc, want 1 (not clean)"
grep -q "disconnected $DEV, left behind by attach process $dead" "$T/detach.log" ||
    fail "repvol detach did not say it deleted $DEV"
wait_for dev_released "$DEV"
unset "ATTACH_DEV[vol1]"
log "repvol detach deleted $DEV, left by the dead attach $dead"

# vol1's state file still names that number, now free.  Another volume of
# the same size takes it and its attach dies too: vol1's next attach must
# not take that device (its last attach was not serving it), but make
# its own.
old=$DEV
repvol create vol2 --size 64M --replica "${REPVOLD_ADDR[alpha]}" \
    --replica "${REPVOLD_ADDR[beta]}" >/dev/null
start_dev_attach vol2 --kmod
dev2=$DEV
[[ $dev2 == "$old" ]] || log "vol2 got $dev2, not $old: the check below is weaker"
kill -KILL "${ATTACH_PID[vol2]}"
wait_exit "${ATTACH_PID[vol2]}" || true
start_dev_attach vol1 --kmod
[[ $DEV != "$dev2" ]] || fail "vol1's attach took over $dev2, vol2's device"
grep -h "not taking it over" "$T"/attach-vol1.*.log >&2 || true
stop_dev_attach vol1
rc=0
"$REPVOL" detach vol2 >"$T/detach2.log" 2>&1 || rc=$?
((rc == 1)) || { cat "$T/detach2.log" >&2; fail "repvol detach vol2 (dead): exit $rc, want 1"; }
wait_for dev_released "$dev2"
unset "ATTACH_DEV[vol2]"
log "vol1 got its own device; $dev2 (vol2's, left by its dead attach) deleted by repvol detach"

no_repvol_nodes() {
    local n
    for n in /dev/repvol* /sys/block/repvol*; do
        [[ -e $n ]] && return 1
    done
    return 0
}
held() { cat /sys/module/repvol/refcnt 2>/dev/null; }
unused() { [[ $(held) == 0 ]]; }
wait_for unused
rmmod repvol || fail "rmmod repvol failed (refcnt $(held)): $(dmesg | tail -n 5)"
wait_for no_repvol_nodes
[[ ! -e /sys/module/repvol ]] || fail "/sys/module/repvol still there after rmmod"
log "rmmod repvol: no /dev/repvol*, no /sys/block/repvol*"

need_kmod
start_dev_attach vol1 --kmod
cmp -n $((4 << 20)) "$T/data" "$DEV" || fail "data written before rmmod differs"

# Online growth: RESIZE shows the new size at once.
"$REPVOL" resize vol1 --size 96M >"$T/resize.out" || fail "online resize failed"
log "$(cat "$T/resize.out")"
grep -q "shows 96 MiB now" "$T/resize.out" || fail "resize did not say $DEV grew: $(cat "$T/resize.out")"
dev_is_96m() { [[ $(blockdev --getsize64 "$DEV") == $((96 << 20)) ]]; }
wait_for dev_is_96m
cmp -n $((4 << 20)) "$T/data" "$DEV" || fail "data changed by the resize"
cmp -i $((64 << 20)):0 -n $((32 << 20)) "$DEV" /dev/zero || fail "the new space does not read zero"
stop_dev_attach vol1
replicas_identical vol1

# --device auto: ublk where the kernel has it, else repvol.ko (loaded
# now), saying why not ublk.
start_dev_attach vol1 --device auto
if [[ -c /dev/ublk-control ]]; then want=ublk; else want=kmod; fi
assert_frontend vol1 "$want $DEV"
if [[ $want == kmod ]]; then
    grep -h 'attach --device auto: kmod (not usable: ublk: ' "$T"/attach-vol1.*.log >&2 ||
        fail "attach --device auto did not say why it passed over ublk"
fi
stop_dev_attach vol1
no_kernel_io_errors
bad=$(dmesg | tail -n +"$((DMESG_MARK + 1))" | grep -E 'WARNING|BUG|Oops|general protection' || true)
[[ -z $bad ]] || fail "the kernel complained: $bad"
