#!/bin/bash
# The crash-point campaign (make crashpoints; test 099 runs it with 100
# points): CRASH_POINTS times (default 100), kill -9 the attach or one of
# the two replica servers at a random moment of an acknowledged-write
# workload with flushes (tests/tools/ackload.c), recover, and check that
# every write acknowledged before the kill reads back (DESIGN.md rule 1:
# a killed attach is a host that died, rule 2: a killed server is a
# replica that died, and neither loses an acknowledged write, flushed or
# not, since no disk cache is lost with a process).
#
#   attach victim (CRASH_ATTACH_PCT, default 70 %): the servers stay up; a
#     new attach takes over (one attach start per point) and the blocks
#     written since the last check are read back through it;
#   server victim: a or b is killed, the writes go on degraded, the server
#     restarts on its data directory, the attach catches it up, then the
#     blocks written since the last check are read back.
#
# Every CRASH_FULL_EVERY points (default 25) and at the end: a clean
# detach, the two replicas compared byte for byte, and a full read-back
# of the volume through a fresh attach.  Then a negative control: one
# acknowledged block zeroed on both replicas must be reported lost.  The
# last line is "crashpoints: N points tried, M violations"; any violation
# fails.
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
require_cmd nbdinfo
POINTS=${CRASH_POINTS:-100}
# CRASH_ASAN_POINTS: how many against an ASan build, which is slower.
! built_with_asan || POINTS=${CRASH_ASAN_POINTS:-$POINTS}
FULL_EVERY=${CRASH_FULL_EVERY:-25}
ATTACH_PCT=${CRASH_ATTACH_PCT:-70}
AL=$BUILD/tests/ackload
[[ -x $AL ]] || fail "$AL not built"

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 32M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
SOCK=$T/nbd.sock
URI=$(nbd_uri "$SOCK")
ACKS=$T/acks.log
# A catch-up as fast as this machine copies: a server point waits for it.
attach_vol() { start_attach vol "$SOCK" --resync-rate 1G; }
attach_vol

violations=0 tried=0 attach_points=0 server_points=0 from=0 writes=0
attach_ms=0 server_ms=0 victim=
violation() { violations=$((violations + 1)); log "VIOLATION at point $tried: $*"; }

log_size() { stat -c %s "$ACKS" 2>/dev/null || echo 0; }
log_grew() { (( $(log_size) > $1 )); }

# check_since: read back the blocks written since the last check.
check_since() {
    local out rc=0
    out=$("$AL" check "$URI" "$ACKS" --tag vol --from "$from" 2>&1) || rc=$?
    ((rc == 0)) || violation "$(tail -n 5 <<<"$out")"
    from=$(sed -n 's/^log-offset //p' <<<"$out")
    [[ -n $from ]] || fail "ackload check said nothing usable: $out"
    writes=$((writes + $(sed -n 's/^checked \([0-9]*\) .*/\1/p' <<<"$out")))
}


# full_check: clean detach, replicas byte-identical, full read-back.
full_check() {
    # The attach after a kill reconciles in the background: a detach
    # before it ends would leave an unacknowledged write on one replica.
    if grep -q "did not detach cleanly" "$T/attach-vol.log"; then
        wait_for -t 60 grep -q "reconciled after an unclean detach" "$T/attach-vol.log"
    fi
    stop_attach vol
    cmp -s "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data" ||
        violation "replicas differ after a clean detach: $(cmp "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data" 2>&1)"
    attach_vol
    local out rc=0
    out=$("$AL" check "$URI" "$ACKS" --tag vol 2>&1) || rc=$?
    ((rc == 0)) || violation "full read-back: $(tail -n 5 <<<"$out")"
    log "full check after point $tried: $(tail -n 1 <<<"$out")"
}

t0=$(date +%s%N)
for ((p = 1; p <= POINTS; p++)); do
    tried=$p
    pt0=$(date +%s%N)
    before=$(log_size)
    start_bg "$T/writer.log" "$AL" write "$URI" "$ACKS" --tag vol --qd 16 --flush-every 32
    writer=$BG_PID
    # A random moment of the workload: once writes are being acknowledged,
    # 10 to 400 ms more.
    wait_for -t 20 log_grew "$before"
    sleep "$(printf '0.%03d' $((10 + RANDOM % 390)))"
    if ((RANDOM % 100 < ATTACH_PCT)); then
        attach_points=$((attach_points + 1))
        kill -KILL "${ATTACH_PID[vol]}"
        wait_exit "${ATTACH_PID[vol]}" || true
        # The writer's connection died with the attach: it stops.
        wait_exit "$writer" 20 || fail "point $p: the writer did not stop with its attach"
        attach_vol
    else
        server_points=$((server_points + 1))
        victim=$([[ $((RANDOM % 2)) == 0 ]] && echo a || echo b)
        kill -KILL "${REPVOLD_PID[$victim]}"
        wait_exit "${REPVOLD_PID[$victim]}" || true
        sleep "$(printf '0.%03d' $((50 + RANDOM % 300)))"
        start_repvold "$victim" "zone-$victim"
        wait_for -t 60 all_in_sync vol
        kill_pid "$writer" TERM 30
    fi
    pid_alive "${ATTACH_PID[vol]}" || fail "point $p: the attach died"
    check_since
    # What each kind of point costs, for the report.
    if [[ -n ${victim-} ]]; then server_ms=$((server_ms + ($(date +%s%N) - pt0) / 1000000)); victim=
    else attach_ms=$((attach_ms + ($(date +%s%N) - pt0) / 1000000)); fi
    if ((p % FULL_EVERY == 0 || p == POINTS)); then
        full_check
    fi
done
secs=$(( ($(date +%s%N) - t0) / 1000000 ))
log "$tried points ($attach_points attach, $server_points server) in $((secs / 1000)).$(printf '%03d' $((secs % 1000))) s, $((secs / tried)) ms per point (attach points $((attach_ms / (attach_points ? attach_points : 1))) ms, server points $((server_ms / (server_points ? server_points : 1))) ms, full checks included in neither); $writes acknowledged writes checked"

# Negative control: the checker must see a lost acknowledged write.
stop_attach vol
read -r blk _ < <(tail -n 1 "$ACKS")
for s in a b; do
    dd if=/dev/zero of="${REPVOLD_DIR[$s]}/vol.data" bs=4096 seek="$blk" count=1 \
        conv=notrunc,fsync status=none
done
attach_vol
rc=0
out=$("$AL" check "$URI" "$ACKS" --tag vol 2>&1) || rc=$?
((rc == 1)) && grep -q ", 1 lost$" <<<"$out" ||
    fail "negative control: block $blk zeroed on both replicas was not reported lost: $out"
log "negative control: block $blk zeroed on both replicas: $(grep LOST <<<"$out")"
stop_attach vol

echo "crashpoints: $tried points tried, $violations violations"
((violations == 0)) || fail "$violations violations"
