#!/bin/bash
# The fenced attach (issue 11 item 6): a second "repvol attach" of a
# volume attached and alive on this host is refused, with a message
# naming --force, and the first one goes on serving; with --force the
# second takes the volume over.  The first, idle (no I/O tells it), learns
# from the registry that it was fenced, exits with status 3, and its NBD
# socket and control socket are gone (the second's control socket is
# left alone); status shows it fenced, the second attached; the data
# reads back through the second, which also writes and verifies.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 8M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
# Each attach gets a run directory of its own, so the first one's
# control socket can be watched going away.
mkdir -p "$T/run1" "$T/run2"
REPVOL_RUN_DIR=$T/run1 start_attach vol "$T/one.sock"
one=${ATTACH_PID[vol]}
head -c 8M /dev/urandom > "$T/data"
nbdcopy --flush "$T/data" "$(nbd_uri "$T/one.sock")"
ctl1=$(repvol status vol --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["attachment"]["control"])')
[[ $ctl1 == "$T/run1/"*.ctl && -S $ctl1 ]] || fail "no control socket of the first attach in run1: '$ctl1'"

# Refused without --force; the first attach is untouched.
expect_fail_match "already attached on this host by a running attach \\(pid $one, .*\\); detach it first, or --force" \
    "$REPVOL" attach vol --nbd "unix:$T/two.sock"
[[ ! -e $T/two.sock ]] || fail "the refused attach made a socket"
timeout 10 nbdinfo --size "$(nbd_uri "$T/one.sock")" >/dev/null || fail "the first attach stopped serving"
repvol status vol --json | python3 -c '
import json, sys
a = json.load(sys.stdin)["attachment"]
assert a["pid"] == int(sys.argv[1]), a' "$one" || fail "the refused attach changed the attachment"

# With --force: taken over.
REPVOL_RUN_DIR=$T/run2 start_attach vol "$T/two.sock" --force
two=${ATTACH_PID[vol]}
grep -q "took over from host .* pid $one" "$T/attach-vol.log" || fail "the second attach did not say it took over"
rc=0; wait_exit "$one" 30 || rc=$?
assert_eq 3 "$rc" "exit status of the fenced attach"
[[ ! -e $T/one.sock ]] || fail "the fenced attach left its NBD socket"
[[ ! -e $ctl1 ]] || fail "the fenced attach left its control socket"
ctl2=$(repvol status vol --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["attachment"]["control"])')
[[ -S $ctl2 ]] || fail "the second attach's control socket is gone"

repvol status vol > "$T/status"
cat "$T/status" >&2
grep -q "^attachment:  host .*, pid $two," "$T/status" || fail "status does not show the second attach"
grep -q "^fenced: .*pid $one, .*: taken over by host .*, pid $two; can no longer write (stopped)" "$T/status" ||
    fail "status does not show the first attach fenced and stopped"

# The volume as written, through the second; verify reaches it by its
# control socket.
nbdcopy "$(nbd_uri "$T/two.sock")" "$T/back"
assert_files_identical "$T/data" "$T/back"
head -c 8M /dev/urandom > "$T/new"
nbdcopy --flush "$T/new" "$(nbd_uri "$T/two.sock")"
nbdcopy "$(nbd_uri "$T/two.sock")" "$T/back"
assert_files_identical "$T/new" "$T/back"
repvol verify vol || fail "verify through the second attach failed"
stop_attach vol
assert_files_identical "$T/new" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/new" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
