#!/bin/bash
# A replica server killed with SIGKILL at random moments during writes,
# many times over (bounded: ITERATIONS, default 8): the writes go on on
# the survivor, which holds every acknowledged write; the killed server
# starts again on the same data directory with its metadata, and is
# caught up; at the end both replicas hold every acknowledged write and
# are byte-identical.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy
ITERATIONS=${ITERATIONS:-8}

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
b_port=${REPVOLD_PORT[b]}

for ((i = 1; i <= ITERATIONS; i++)); do
    start_attach vol "$T/nbd.sock"
    python3 "$TOP/tests/tools/ackwriter.py" write "$T/nbd.sock" "$T/acks-$i.json" \
        --qd 16 --seconds 30 --blocks 4096 > "$T/writer-$i.out" &
    writer=$!
    # A random moment: 20 to 400 ms into the writes.
    delay_ms=$((20 + RANDOM % 380))
    python3 -c "import time; time.sleep($delay_ms / 1000)"
    kill -KILL "${REPVOLD_PID[b]}"
    wait_exit "${REPVOLD_PID[b]}" || true
    # The writes go on, degraded, until the attach is detached.
    python3 -c "import time; time.sleep(0.1)"
    stop_attach vol
    wait "$writer" || fail "iteration $i: the writer failed"
    log "iteration $i: killed after ${delay_ms} ms: $(cat "$T/writer-$i.out")"

    # Restart on the same data dir and port: metadata must load.
    start_repvold b zone-b
    assert_eq "$b_port" "${REPVOLD_PORT[b]}" "restarted port"
    grep -q "1 volume(s)" "$T/repvold-b.log" ||
        { cat "$T/repvold-b.log" >&2; fail "iteration $i: replica b did not load its volume"; }
    python3 "$TOP/tests/tools/ackwriter.py" check "${REPVOLD_DIR[a]}/vol.data" "$T/acks-$i.json" ||
        fail "iteration $i: replica a lost acknowledged writes"
done

# The next attach catches b up; then b holds the last run's writes too.
start_attach vol "$T/nbd.sock"
wait_for -t 60 all_in_sync vol
stop_attach vol
python3 "$TOP/tests/tools/ackwriter.py" check "${REPVOLD_DIR[b]}/vol.data" "$T/acks-$ITERATIONS.json" ||
    fail "replica b lacks acknowledged writes after the catch-up"
assert_files_identical "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
