#!/bin/bash
# Every replica lost, then detach (issue 16 item 12): both replica
# servers of an attached volume are SIGKILLed under a write load; the
# attach stays up and fails I/O with EIO; then it is detached, by
# "repvol detach" (rounds 1 and 2) or SIGTERM (round 3).  It must exit
# 1 (its final flush fails), not crash (writes failing inside their
# submits once took a replica slot's bdev away in the middle of a
# fan-out: bdev_submit with no bdev), and "repvol detach" must say the
# detach was not clean and exit 1, where it used to print "detached".
# Then: an attach that died (SIGKILL) is reported by detach (exit 1)
# and its stale attachment cleared; a clean detach still exits 0.
. "$(dirname "$0")/lib.sh"
require_cmd fio nbdcopy

crashed() {         # the attach's log shows a crash
    grep -Eq 'Assertion|Segmentation|AddressSanitizer|runtime error' "$1"
}

for round in 1 2 3; do
    start_repvold "a$round" zone-a
    start_repvold "b$round" zone-b
    vol=vol$round
    repvol create "$vol" --size 64M --replica "${REPVOLD_ADDR[a$round]}" \
        --replica "${REPVOLD_ADDR[b$round]}"
    start_attach "$vol" "$T/$vol.sock" --timeout 3
    uri=$(nbd_uri "$T/$vol.sock")
    pid=${ATTACH_PID[$vol]}
    # Writes go on whatever fails, so some are in flight and waiting at
    # every moment of the loss and of the detach.
    fio --name=load --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k-64k \
        --iodepth=32 --size=64M --time_based --runtime=60 \
        --continue_on_error=all --output="$T/fio$round.out" >/dev/null 2>&1 &
    fio_pid=$!
    PIDS+=("$fio_pid")
    wait_for -t 20 test -s "${REPVOLD_DIR[a$round]}/$vol.data"
    python3 -c 'import time; time.sleep(0.3)'      # into the run
    kill -KILL "${REPVOLD_PID[a$round]}" "${REPVOLD_PID[b$round]}"
    wait_exit "${REPVOLD_PID[a$round]}" || true
    wait_exit "${REPVOLD_PID[b$round]}" || true
    wait_for -t 30 grep -q "no replica of the volume is in sync: failing I/O" \
        "$T/attach-$vol.log"
    crashed "$T/attach-$vol.log" && fail "round $round: the attach crashed when the replicas died"
    pid_alive "$pid" || fail "round $round: the attach died with its replicas"
    # It serves and fails I/O with EIO.
    head -c 1M /dev/urandom > "$T/blk"
    if nbdcopy "$T/blk" "$uri" 2>"$T/nbdcopy$round.err"; then
        fail "round $round: a write succeeded with every replica gone"
    fi
    pid_alive "$pid" || fail "round $round: the attach died failing a write"

    rc=0
    if ((round < 3)); then
        expect_fail_match "$vol: detached, but not cleanly: the final flush failed" \
            repvol detach "$vol" --timeout 30
        wait_exit "$pid" 30 || rc=$?
    else
        kill -TERM "$pid"
        wait_exit "$pid" 30 || rc=$?
    fi
    kill_pid "$fio_pid"
    crashed "$T/attach-$vol.log" && { tail -n 30 "$T/attach-$vol.log" >&2; fail "round $round: the attach crashed while detaching"; }
    ((rc == 1)) || { tail -n 30 "$T/attach-$vol.log" >&2; fail "round $round: attach exit status $rc after detach, expected 1"; }
    grep -q "final flush failed" "$T/attach-$vol.log" || fail "round $round: no 'final flush failed' in the attach log"
    unset "ATTACH_PID[$vol]"
    # The attachment is cleared: a second detach says so.
    expect_fail_match "not attached" repvol detach "$vol"
    log "round $round: exit 1, no crash"
done

# An attach that died: detach clears its attachment and says it did not
# detach cleanly (exit 1).
start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 8M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
kill_pid "${ATTACH_PID[vol]}" KILL
expect_fail_match "attach process [0-9]+ on .* is gone: it did not detach cleanly; cleared its stale attachment" \
    repvol detach vol
expect_fail_match "not attached" repvol detach vol

# A clean detach: "detached vol", exit 0 (stop_attach checks both ends).
start_attach vol "$T/nbd.sock"
head -c 8M /dev/urandom > "$T/data"
nbdcopy --flush "$T/data" "$(nbd_uri "$T/nbd.sock")"
out=$(repvol detach vol) || fail "a clean detach failed"
assert_eq "detached vol" "$out" "clean detach output"
wait_exit "${ATTACH_PID[vol]}" || fail "attach exit status $? after a clean detach"
unset "ATTACH_PID[vol]"
assert_files_identical "$T/data" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/data" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
