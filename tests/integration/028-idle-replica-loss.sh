#!/bin/bash
# An attached volume with no I/O notices at once that a replica server
# died: within a few seconds of kill -9 the registry shows it out of
# sync (status), without a single write; when the server is back the
# attach catches it up and both replicas hold the same bytes.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
head -c 16M /dev/urandom > "$T/img"
nbdcopy --flush "$T/img" "$(nbd_uri "$T/nbd.sock")"
wait_for all_in_sync vol || fail "not in sync after the first copy"

b_state() {
    repvol status vol --json | python3 -c '
import json, sys
v = json.load(sys.stdin)
print([r["state"] for r in v["replicas"] if r["addr"] == sys.argv[1]][0])' "${REPVOLD_ADDR[b]}"
}
b_out() { [[ $(b_state) == out-of-sync ]]; }

kill_pid "${REPVOLD_PID[b]}" KILL
wait_for -t 5 b_out || fail "the idle attach did not notice b's death within 5 s (state $(b_state))"
grep -q "recorded out of sync" "$T/attach-vol.log" || fail "the attach did not say it degraded"

start_repvold b zone-b
wait_for all_in_sync vol || fail "b was not caught up after it came back"
stop_attach vol
assert_files_identical "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data"
cmp "$T/img" "${REPVOLD_DIR[a]}/vol.data" || fail "the data changed"
