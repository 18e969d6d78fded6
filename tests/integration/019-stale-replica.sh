#!/bin/bash
# Serve only current data: with replica b out of sync and replica a
# stopped, attach refuses and names both; --force-stale b serves b's
# (older) data after saying what may be lost; when a comes back it is
# made a full copy of b, and the replicas end identical.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

start_repvold a zone-a
start_repvold b zone-b
A=${REPVOLD_ADDR[a]} B=${REPVOLD_ADDR[b]}
repvol create vol --size 8M --replica "$A" --replica "$B"
start_attach vol "$T/nbd.sock"
uri=$(nbd_uri "$T/nbd.sock")
head -c 8M /dev/urandom > "$T/old"
nbdcopy --flush "$T/old" "$uri"
stop_repvold b KILL
head -c 8M /dev/urandom > "$T/new"
nbdcopy --flush "$T/new" "$uri"                 # on a only: b falls behind
stop_attach vol
stop_repvold a KILL
start_repvold b zone-b

expect_fail_match "no replica that is in sync" repvol attach vol --nbd "unix:$T/x.sock"
grep -q "$A" <<<"$EXPECT_STDERR" || fail "the refusal does not name $A"
grep -q "$B: out of sync since epoch" <<<"$EXPECT_STDERR" || fail "the refusal does not name $B"
expect_fail_match "not a replica" repvol attach vol --nbd "unix:$T/x.sock" --force-stale 127.0.0.1:1

start_attach vol "$T/nbd.sock" --force-stale "$B"
grep -q "FORCING stale replica $B: it fell out of sync at epoch" "$T/attach-vol.log" ||
    fail "attach did not say what may be lost"
nbdcopy "$uri" "$T/back"
assert_files_identical "$T/old" "$T/back"     # b's data: the writes after it fell behind are gone

start_repvold a zone-a
wait_for -t 60 all_in_sync vol
stop_attach vol
assert_files_identical "$T/old" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/old" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
