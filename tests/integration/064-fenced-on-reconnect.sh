#!/bin/bash
# A replica that comes back holding a newer epoch fences the attach
# (issue 11 items 4 and 6): replica b's server is stopped under an
# attach, which records b out of sync (a new epoch) and goes on; b's
# server restarts and is at once handed epoch + 1 (as another attachment
# would).  When the attach reaches b again, b refuses its epoch (at the
# reconnect's HELLO, or on the catch-up's first request if the attach
# got there first; or, if it caught b up before b had the new epoch, by
# its next PING): it stops and exits 3 without recording anything
# after that; status shows it fenced.  After "repvol epoch --reset" the next attach
# catches b up.  Then, with that attach idle and in sync, b is handed a
# newer epoch once more: no request is coming, so the attach hears it
# from its keep-alive PING (b's idle timeout is 3 s: a PING every
# second), which b refuses; it stops fenced without recording anything.
# After another reset both replicas hold what was written.
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

start_repvold b zone-b --idle-timeout 3
push_epoch b vol "$((epoch + 1))"
expect_fenced_exit "$one" "$T/attach-vol.log" "fenced: replica $B:? refused epoch $epoch" "$T/nbd.sock"
expect_status_fenced vol "host .*, pid $one, epoch $epoch: replica $B"
# b stays out of sync, unless the attach caught it up (and recorded
# that, rightly) before the new epoch reached b: then it was fenced by
# its next request or PING.  Either way nothing changed after the fence.
b_state=out-of-sync
grep -q "replica $B: caught up" "$T/attach-vol.log" && b_state=in-sync
repvol status vol --json | python3 -c '
import json, sys
v = json.load(sys.stdin)
assert [r["state"] for r in v["replicas"]] == ["in-sync", sys.argv[1]], v["replicas"]
assert v["fenced"]["running"] is False, v["fenced"]' "$b_state" || fail "the fenced attach changed replica states"

wait_for repvol epoch vol --reset
start_attach vol "$T/nbd.sock"
wait_for -t 60 all_in_sync vol
cp "$T/data" "$T/expect"
dd if="$T/more" of="$T/expect" conv=notrunc status=none
nbdcopy "$uri" "$T/back"
assert_files_identical "$T/expect" "$T/back"

# Idle and in sync: only the PING can tell it.
two=${ATTACH_PID[vol]}
epoch=$(attach_epoch vol)
push_epoch b vol "$((epoch + 1))"
expect_fenced_exit "$two" "$T/attach-vol.log" "PING refused: this attachment has been fenced" "$T/nbd.sock"
expect_status_fenced vol "host .*, pid $two, epoch $epoch: replica $B"
all_in_sync vol || fail "the idle fenced attach recorded a replica out of sync"
log "the idle attach was fenced by its PING"

wait_for repvol epoch vol --reset
start_attach vol "$T/nbd.sock"
wait_for -t 60 all_in_sync vol
nbdcopy "$uri" "$T/back"
assert_files_identical "$T/expect" "$T/back"
stop_attach vol
assert_files_identical "$T/expect" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/expect" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
