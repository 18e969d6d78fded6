#!/bin/bash
# A replica server that stops answering (SIGSTOP: its socket stays open,
# nothing is refused) is given up after the attach's bounded timeout:
# the write then succeeds on the other replica (never hangs), the hung
# one is recorded out of sync, and once it answers again it is caught up
# and the replicas end identical.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 8M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock" --timeout 2
uri=$(nbd_uri "$T/nbd.sock")
head -c 8M /dev/urandom > "$T/before"
nbdcopy --flush "$T/before" "$uri"

kill -STOP "${REPVOLD_PID[b]}"
head -c 8M /dev/urandom > "$T/after"
start=$(date +%s%N)
timeout 60 nbdcopy --flush "$T/after" "$uri" || fail "the write failed instead of going on degraded"
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
log "write completed after ${elapsed_ms} ms"
((elapsed_ms >= 1500)) || fail "completed before the timeout (${elapsed_ms} ms): not the timeout path"
grep -q 'no answer for 2000 ms' "$T/attach-vol.log" || fail "attach did not log the timeout"
repvol status vol | grep -E "^  ${REPVOLD_ADDR[b]} .*out-of-sync" >/dev/null ||
    fail "status does not show b out of sync"

# While b stays hung the attach keeps trying to reach it, on a thread of
# its own: client I/O must not stall behind those attempts (each one
# waits out the 2 s timeout).
for round in 1 2 3; do
    start=$(date +%s%N)
    nbdcopy --flush "$T/after" "$uri" || fail "degraded write failed"
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    ((ms < 900)) || fail "a degraded write took ${ms} ms: I/O stalls behind reconnection"
done

kill -CONT "${REPVOLD_PID[b]}"
wait_for -t 60 all_in_sync vol
nbdcopy "$uri" "$T/back"
assert_files_identical "$T/after" "$T/back"
stop_attach vol
assert_files_identical "$T/after" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/after" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
