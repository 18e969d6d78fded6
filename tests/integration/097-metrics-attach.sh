#!/bin/bash
# repvol attach --metrics (docs/DESIGN.md 2.8): a known load through the
# NBD socket (16 writes of 64 KiB, 8 reads, 3 flushes, 2 reads past the
# end) shows exactly: 16 writes and 1 MiB, 8 reads and 512 KiB, 3
# flushes, each latency histogram's count equal to its op count, no
# errors, 2 refused; both replicas in sync, up, no lag.  repvold b
# killed with SIGKILL: under more writes its state turns out_of_sync,
# not up, with a lag of at least what was written since; started again:
# reconnected, caught up (resync progress done = total > 0), in sync,
# lag 0.  Every scrape passes promtool check metrics.  A port in use
# stops a second attach before it claims its volume.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/metricslib.sh"

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
repvol create vol2 --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
m=127.0.0.1:$(free_port)
start_attach vol "$T/nbd.sock" --metrics "$m"

scrape "$m" "$T/m0"
python3 "$TOP/tests/tools/nbdio.py" "$T/nbd.sock" --writes 16 --reads 8 \
    --flushes 3 --past-end 2 --size 65536 || fail "the NBD I/O failed"
scrape "$m" "$T/m1"
delta() { echo $(( $(prom "$T/m1" "$@") - $(prom "$T/m0" "$@") )); }
assert_eq 16 "$(delta repvol_attach_ops_total volume=vol op=write)" "writes"
assert_eq $((16 * 65536)) "$(delta repvol_attach_bytes_total volume=vol op=write)" "bytes written"
assert_eq 8 "$(delta repvol_attach_ops_total volume=vol op=read)" "reads"
assert_eq $((8 * 65536)) "$(delta repvol_attach_bytes_total volume=vol op=read)" "bytes read"
assert_eq 3 "$(delta repvol_attach_ops_total volume=vol op=flush)" "flushes"
assert_eq 0 "$(delta repvol_attach_errors_total volume=vol)" "errors"
for op in read write flush trim write_zeroes; do
    assert_eq "$(prom "$T/m1" repvol_attach_ops_total volume=vol op=$op)" \
        "$(prom "$T/m1" repvol_attach_latency_seconds_count volume=vol op=$op)" \
        "$op latency histogram count"
done
# The sampler copies the refusals every 500 ms.
wait_for prom_is "$m" 2 repvol_attach_refused_total volume=vol
for r in a b; do
    assert_eq 1 "$(prom "$T/m1" repvol_attach_replica_state volume=vol replica=$r state=in_sync)" "$r in sync"
    assert_eq 0 "$(prom "$T/m1" repvol_attach_replica_state volume=vol replica=$r state=out_of_sync)" "$r not out"
    assert_eq 1 "$(prom "$T/m1" repvol_attach_replica_up volume=vol replica=$r)" "$r up"
    assert_eq 0 "$(prom "$T/m1" repvol_attach_replica_lag_bytes volume=vol replica=$r)" "$r lag"
done
log "16 writes, 8 reads, 3 flushes, 2 refused; both replicas in sync"

# b dies: the next writes find it gone.
stop_repvold b KILL
python3 "$TOP/tests/tools/nbdio.py" "$T/nbd.sock" --writes 8 --flushes 1 \
    --offset $((4 << 20)) --size 65536 || fail "the degraded I/O failed"
wait_for prom_is "$m" 1 repvol_attach_replica_state volume=vol replica=b state=out_of_sync
wait_for prom_is "$m" 0 repvol_attach_replica_up volume=vol replica=b
# The lag is sampled: the sample that first showed b out may have come
# before the writes completed.
wait_for prom_at_least "$m" $((8 * 65536)) repvol_attach_replica_lag_bytes volume=vol replica=b
scrape "$m" "$T/m2"
lag=$(prom "$T/m2" repvol_attach_replica_lag_bytes volume=vol replica=b)
assert_eq 1 "$(prom "$T/m2" repvol_attach_replica_state volume=vol replica=a state=in_sync)" "a in sync"
assert_eq 0 "$(prom "$T/m2" repvol_attach_replica_lag_bytes volume=vol replica=a)" "a lag"
log "b out of sync, lag $lag"

# b comes back: reconnected, caught up, in sync.
start_repvold b zone-b
wait_for -t 30 prom_is "$m" 1 repvol_attach_replica_state volume=vol replica=b state=in_sync
wait_for prom_is "$m" 1 repvol_attach_replica_up volume=vol replica=b
scrape "$m" "$T/m3"
rc=$(prom "$T/m3" repvol_attach_replica_reconnects_total volume=vol replica=b)
((rc >= 1)) || fail "b reconnected $rc times"
total=$(prom "$T/m3" repvol_attach_replica_resync_total_bytes volume=vol replica=b)
done_=$(prom "$T/m3" repvol_attach_replica_resync_done_bytes volume=vol replica=b)
((total > 0)) || fail "b's catch-up had $total bytes to copy"
assert_eq "$total" "$done_" "b's catch-up: copied of total"
assert_eq 0 "$(prom "$T/m3" repvol_attach_replica_lag_bytes volume=vol replica=b)" "b lag after catch-up"
wait_for all_in_sync vol
log "b back: $rc reconnect(s), catch-up $done_ of $total bytes"

# The metrics port is taken: a second attach stops before claiming vol2.
expect_fail_match "cannot listen on $m: Address already in use" \
    "$REPVOL" attach vol2 --nbd "unix:$T/nbd2.sock" --metrics "$m"
grep -q '"attached": false' <<<"$(repvol status vol2 --json)" ||
    { repvol status vol2 --json >&2; fail "vol2 was claimed"; }
expect_fail_match "bad --metrics address 'nowhere'" \
    "$REPVOL" attach vol2 --nbd "unix:$T/nbd2.sock" --metrics nowhere
stop_attach vol
log "ok"
