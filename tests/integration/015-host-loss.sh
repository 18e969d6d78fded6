#!/bin/bash
# Host loss: a writer keeps 16 numbered writes in flight through attach
# #1, which is killed with SIGKILL in the middle; attach #2 (as on a
# replacement host) takes the volume over, and every write the writer saw
# acknowledged reads back (or a newer write to the same block).
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 64M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/one.sock"
one=${ATTACH_PID[vol]}

# The writer records which writes were acknowledged; it stops when the
# attach dies under it.
python3 "$TOP/tests/tools/ackwriter.py" write "$T/one.sock" "$T/acks.json" \
    --qd 16 --seconds 60 --blocks 4096 > "$T/writer.out" &
writer=$!
# Kill the attach once a few MiB have landed on the replicas.
written_mib() { (( $(du -k "${REPVOLD_DIR[a]}/vol.data" | cut -f1) > 4096 )); }
wait_for -t 30 written_mib
kill -KILL "$one"
wait "$writer" || fail "the writer failed"
cat "$T/writer.out" >&2

# The replacement host: attach takes over the dead host's attachment.
start_attach vol "$T/two.sock"
repvol status vol > "$T/status"
grep -q "^fenced: .*pid $one" "$T/status" || { cat "$T/status" >&2; fail "status does not name the fenced attachment"; }
nbdcopy "$(nbd_uri "$T/two.sock")" "$T/image"
# Writes in flight when the host died may have reached one replica and
# not the other: the new attach makes them equal again, in the background.
wait_for -t 60 grep -q "reconciled after an unclean detach" "$T/attach-vol.log"
python3 "$TOP/tests/tools/ackwriter.py" check "$T/image" "$T/acks.json" ||
    fail "acknowledged writes are missing after host loss"
stop_attach vol
assert_files_identical "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
