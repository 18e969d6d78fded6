#!/bin/bash
# Replica loss during load: a replica server is killed with SIGKILL in
# the middle of a fio verify run; fio finishes with no error (the volume
# goes on degraded), status shows the replica out of sync; the server
# starts again, the attach catches it up by difference while serving,
# and the two replicas end byte-identical.  The bytes copied are bounded
# by the span written while it was away (under 2x).
. "$(dirname "$0")/lib.sh"
require_cmd fio nbdcopy

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 64M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock" --timeout 3
uri=$(nbd_uri "$T/nbd.sock")
head -c 64M /dev/urandom > "$T/seed"
nbdcopy --flush "$T/seed" "$uri"

span=$((4 << 20))
fio --name=load --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k \
    --iodepth=16 --offset=8M --size=$span --io_size=48M --verify=crc32c \
    --verify_fatal=1 --output="$T/fio.out" &
fio_pid=$!
python3 -c 'import time; time.sleep(0.3)'      # into the run, then the fault
kill -KILL "${REPVOLD_PID[b]}"
wait "$fio_pid" || { cat "$T/fio.out" >&2; fail "fio failed while a replica was lost"; }
grep -q 'err= 0' "$T/fio.out" || fail "fio reported errors"

# Degrading opened a new epoch: created at 1, attached at 2, degraded: 3,
# and the attachment moved to it.
repvol status vol --json | python3 -c '
import json, sys
v = json.load(sys.stdin)
assert v["epoch"] == 3 and v["attachment"]["epoch"] == 3, (v["epoch"], v["attachment"])
b = [r for r in v["replicas"] if r["addr"] == sys.argv[1]][0]
assert b["state"] == "out-of-sync" and b["out_of_sync_epoch"] == 3, b
' "${REPVOLD_ADDR[b]}" || fail "degrading did not open a new epoch"
repvol status vol > "$T/status"
grep -E "^  ${REPVOLD_ADDR[b]} .*out-of-sync" "$T/status" >/dev/null ||
    { cat "$T/status" >&2; fail "status does not show b out of sync"; }

start_repvold b zone-b
wait_for -t 60 all_in_sync vol
copied=$(grep -Po 'caught up \(\K[0-9]+' "$T/attach-vol.log" | tail -1)
log "resynced $copied bytes for a ${span}-byte span written while b was away"
[[ -n $copied ]] || fail "attach did not report the catch-up"
((copied <= 2 * span)) || fail "resync copied $copied bytes, more than 2x the written span"
((copied > 0)) || fail "resync copied nothing"

# Reads and writes go on after the catch-up; then both replicas agree.
fio --name=load --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k --iodepth=16 \
    --offset=8M --size=$span --verify=crc32c --verify_fatal=1 --output="$T/fio2.out" ||
    fail "fio after the catch-up failed"
stop_attach vol
assert_files_identical "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
