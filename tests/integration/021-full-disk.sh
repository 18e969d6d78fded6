#!/bin/bash
# A full disk on one replica server degrades that replica rather than
# failing the volume (issue 3): replica b's data dir is a 12 MiB tmpfs,
# the thin (not reserved) volume is 32 MiB.  Writing 32 MiB of random
# data through the attach succeeds (b answers ENOSPC, the engine records
# it out of sync and goes on with a); status shows b out of sync and a
# in sync; b's server is still up; the data read back through NBD and
# a's data file both equal what was written.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy mount umount

[[ $(id -u) == 0 ]] || skip "needs root to mount a tmpfs"
mount_small_tmpfs "$REPVOLD_DATA_ROOT/b" 12M

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 32M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
uri=$(nbd_uri "$T/nbd.sock")

head -c 32M /dev/urandom > "$T/src"
nbdcopy --flush "$T/src" "$uri" ||
    fail "writing through the attach failed when one replica's disk filled up"

# b really ran out of space (not some other failure).
grep -q "No space left on device" "$T/attach-vol.log" ||
    { cat "$T/attach-vol.log" >&2; fail "attach did not see ENOSPC from b"; }
avail=$(df --output=avail -B1 "${REPVOLD_DIR[b]}" | tail -1)
((avail < 1 << 20)) || fail "b's tmpfs still has $avail bytes free"

repvol status vol > "$T/status"
grep -E "^  ${REPVOLD_ADDR[b]} .*out-of-sync" "$T/status" >/dev/null ||
    { cat "$T/status" >&2; fail "status does not show b out of sync"; }
grep -E "^  ${REPVOLD_ADDR[a]} .*in-sync" "$T/status" >/dev/null ||
    { cat "$T/status" >&2; fail "status does not show a in sync"; }
pid_alive "${REPVOLD_PID[b]}" || fail "repvold b died of a full disk"
pid_alive "${ATTACH_PID[vol]}" || fail "attach died"

nbdcopy "$uri" "$T/back"
assert_files_identical "$T/src" "$T/back"
stop_attach vol
assert_files_identical "$T/src" "${REPVOLD_DIR[a]}/vol.data"
repvol status vol > "$T/status"
grep -E "^  ${REPVOLD_ADDR[b]} .*out-of-sync" "$T/status" >/dev/null ||
    { cat "$T/status" >&2; fail "b not out of sync after detach"; }
log "ok"
