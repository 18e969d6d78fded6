#!/bin/bash
# A write while one replica server is dead is not acknowledged as
# success: the client gets an error within the timeout, and the data
# that was acknowledged before stays readable from the survivor.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 8M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock" --timeout 3
uri=$(nbd_uri "$T/nbd.sock")

head -c 8M /dev/urandom > "$T/before"
nbdcopy --flush "$T/before" "$uri"

stop_repvold b KILL
head -c 8M /dev/urandom > "$T/after"
start=$(date +%s)
expect_fail timeout 60 nbdcopy --flush "$T/after" "$uri"
(( $(date +%s) - start < 30 )) || fail "the failing write took too long"

# The failed write must not have been acknowledged as if all were well:
# the attach says why, in its log.
grep -Eqi 'replica .*(lost|fail|no answer)' "$T/attach-vol.log" ||
    fail "attach did not log the replica failure"
# Replica a kept what was acknowledged before the failure, plus possibly
# parts of the failed write: but nothing acknowledged is lost.  Replica b
# holds exactly the acknowledged data.
assert_files_identical "$T/before" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
