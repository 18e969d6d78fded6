#!/bin/bash
# Fenced in the middle of writing, by a replica (issue 11 items 4 and 6):
# while a writer keeps 8 writes in flight through the attach, replica b
# is handed a newer epoch (epoch + 1, as another attachment that this
# registry does not know would).  The attach's next request to b is
# refused, so it fails the writes in flight with EIO (the writer sees
# EIO replies, then the socket close), stops and exits 3; its NBD and
# control sockets are gone; the registry shows it fenced, naming b, and
# not attached.  The operator sees b ahead with "repvol epoch", resets
# it, attaches again: every acknowledged write is there (the attach
# reconciles the replicas, as after a crash), and the replicas end equal.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fencelib.sh"
require_cmd nbdcopy

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
one=${ATTACH_PID[vol]}
epoch=$(attach_epoch vol)
ctl=$(repvol status vol --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["attachment"]["control"])')
[[ -S $ctl ]] || fail "no control socket at '$ctl'"

# The writer (tests/tools/ackwriter.py) keeps 8 numbered writes in
# flight and records which were acknowledged and how the others failed;
# it stops when the attach closes the socket.
python3 "$TOP/tests/tools/ackwriter.py" write "$T/nbd.sock" "$T/acks.json" \
    --qd 8 --seconds 60 > "$T/writer.out" &
writer=$!
written() { (( $(du -k "${REPVOLD_DIR[a]}/vol.data" | cut -f1) > 2048 )); }
wait_for -t 30 written

# Another attachment, unknown to this registry, presents epoch + 1 at b.
push_epoch b vol "$((epoch + 1))"
expect_fenced_exit "$one" "$T/attach-vol.log" \
    "fenced: replica ${REPVOLD_ADDR[b]} refused epoch $epoch: it holds a newer one; failing I/O and stopping" \
    "$T/nbd.sock"
wait "$writer" || fail "the writer failed"
cat "$T/writer.out" >&2
python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))["errors"]
assert e and set(e) == {5}, e' "$T/acks.json" || fail "the writes in flight did not fail with EIO"
[[ ! -e $ctl ]] || fail "the fenced attach left its control socket"
expect_status_fenced vol "host .*, pid $one, epoch $epoch: replica ${REPVOLD_ADDR[b]} refused epoch $epoch: it holds a newer one; can no longer write \(stopped\)"
# It changed nothing in the registry on its way out but that.
all_in_sync vol || fail "the fenced attach recorded a replica out of sync"

# The operator's repair, then the volume is usable again.
rc=0; repvol epoch vol > "$T/epoch.txt" || rc=$?
assert_eq 1 "$rc" "repvol epoch with b ahead"
grep -q "${REPVOLD_ADDR[b]} .*AHEAD of the registry by 1" "$T/epoch.txt" || { cat "$T/epoch.txt" >&2; fail "repvol epoch does not show b ahead"; }
wait_for repvol epoch vol --reset
repvol epoch vol >/dev/null || fail "a replica is still ahead after --reset"
start_attach vol "$T/nbd.sock"
wait_for -t 60 grep -q "reconciled after an unclean detach" "$T/attach-vol.log"
nbdcopy "$(nbd_uri "$T/nbd.sock")" "$T/image"
python3 "$TOP/tests/tools/ackwriter.py" check "$T/image" "$T/acks.json" ||
    fail "acknowledged writes are missing after the fence"
stop_attach vol
assert_files_identical "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data"
assert_files_identical "$T/image" "${REPVOLD_DIR[a]}/vol.data"
log "ok"
