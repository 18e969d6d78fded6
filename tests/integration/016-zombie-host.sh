#!/bin/bash
# Zombie host: attach #1 is stopped (SIGSTOP: a host that is only cut
# off), attach #2 takes the volume over (--force: #1 still runs on this
# host) and writes new data; attach #1 is continued and tries to write:
# its write fails, it learns it was fenced and exits with status 3, and
# the data read through attach #2 (and on both replicas) is unchanged.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 8M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/one.sock"
one=${ATTACH_PID[vol]}
head -c 8M /dev/urandom > "$T/old"
nbdcopy --flush "$T/old" "$(nbd_uri "$T/one.sock")"

kill -STOP "$one"
start_attach vol "$T/two.sock" --force
grep -q "took over from host .* pid $one" "$T/attach-vol.log" ||
    fail "attach #2 did not say it took over"
head -c 8M /dev/urandom > "$T/new"
nbdcopy --flush "$T/new" "$(nbd_uri "$T/two.sock")"

# The zombie wakes up and writes: refused at every replica.
kill -CONT "$one"
head -c 8M /dev/urandom > "$T/zombie"
expect_fail timeout 60 nbdcopy --flush "$T/zombie" "$(nbd_uri "$T/one.sock")"
rc=0; wait_exit "$one" 30 || rc=$?
assert_eq 3 "$rc" "exit status of the fenced attach"

nbdcopy "$(nbd_uri "$T/two.sock")" "$T/back"
assert_files_identical "$T/new" "$T/back"
assert_files_identical "$T/new" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/new" "${REPVOLD_DIR[b]}/vol.data"
repvol status vol | grep -q "^fenced: .*pid $one" || fail "status does not show the fenced attachment"
# The refused zombie must not have marked any replica out of sync.
all_in_sync vol || { repvol status vol >&2; fail "the zombie changed replica states"; }
log "ok"
