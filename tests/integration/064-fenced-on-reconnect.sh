#!/bin/bash
# A replica that comes back holding a newer epoch fences the attach
# (issue 11 items 4 and 6): replica b's server is stopped under an
# attach, which records b out of sync (a new epoch) and goes on; b's
# server restarts and is at once handed epoch + 1 (as another attachment
# would).  When the attach reaches b again, b refuses its epoch (at the
# reconnect's HELLO, or on the catch-up's first request if the attach
# got there first): it stops and exits 3 without recording b in sync;
# status shows it fenced.  After "repvol epoch --reset" the next attach
# catches b up, and both replicas hold what was written.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fencelib.sh"
require_cmd nbdcopy

start_repvold a zone-a
start_repvold b zone-b
B=${REPVOLD_ADDR[b]}
repvol create vol --size 8M --replica "${REPVOLD_ADDR[a]}" --replica "$B"
start_attach vol "$T/nbd.sock"
one=${ATTACH_PID[vol]}
uri=$(nbd_uri "$T/nbd.sock")
head -c 8M /dev/urandom > "$T/data"
nbdcopy --flush "$T/data" "$uri"

stop_repvold b
head -c 1M /dev/urandom > "$T/more"
nbdcopy --flush "$T/more" "$uri"         # degrades b: a new epoch
b_out() { ! all_in_sync vol; }
wait_for b_out
epoch=$(attach_epoch vol)
log "b out of sync; the attachment is at epoch $epoch"

start_repvold b zone-b
push_epoch b vol "$((epoch + 1))"
expect_fenced_exit "$one" "$T/attach-vol.log" "fenced: replica $B:? refused epoch $epoch" "$T/nbd.sock"
expect_status_fenced vol "host .*, pid $one, epoch $epoch: replica $B"
repvol status vol --json | python3 -c '
import json, sys
v = json.load(sys.stdin)
assert [r["state"] for r in v["replicas"]] == ["in-sync", "out-of-sync"], v["replicas"]
assert v["fenced"]["running"] is False, v["fenced"]' || fail "the fenced attach changed replica states"

wait_for repvol epoch vol --reset
start_attach vol "$T/nbd.sock"
wait_for -t 60 all_in_sync vol
cp "$T/data" "$T/expect"
dd if="$T/more" of="$T/expect" conv=notrunc status=none
nbdcopy "$uri" "$T/back"
assert_files_identical "$T/expect" "$T/back"
stop_attach vol
assert_files_identical "$T/expect" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/expect" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
