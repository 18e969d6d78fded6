#!/bin/bash
# A replica server that stops answering (SIGSTOP: its socket stays open,
# nothing is refused) makes writes fail with an error after the attach's
# bounded timeout, rather than hang or succeed.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 8M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock" --timeout 2
uri=$(nbd_uri "$T/nbd.sock")
head -c 8M /dev/urandom > "$T/before"
nbdcopy --flush "$T/before" "$uri"

kill -STOP "${REPVOLD_PID[b]}"
head -c 1M /dev/urandom > "$T/after"
start=$(date +%s%N)
expect_fail timeout 60 nbdcopy --flush "$T/after" "$uri"
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
log "write failed after ${elapsed_ms} ms"
((elapsed_ms >= 1500)) || fail "failed before the timeout (${elapsed_ms} ms): not the timeout path"
((elapsed_ms < 20000)) || fail "took ${elapsed_ms} ms to fail with a 2 s timeout"
grep -q 'no answer for 2000 ms' "$T/attach-vol.log" || fail "attach did not log the timeout"
kill -CONT "${REPVOLD_PID[b]}"

# The hung replica held the acknowledged data all along.  The failed
# write covered the first 1 MiB: there either version may have landed
# (it was never acknowledged); beyond it nothing may have changed.
for s in a b; do
    cmp <(tail -c +$((1024 * 1024 + 1)) "$T/before") \
        <(tail -c +$((1024 * 1024 + 1)) "${REPVOLD_DIR[$s]}/vol.data") ||
        fail "replica $s lost acknowledged data outside the failed write"
done
log "ok"
