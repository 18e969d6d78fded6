#!/bin/bash
# A crash keeps the change map (issue 16 item 3): the map is journaled
# in the registry before a write into a fresh chunk goes down, so the
# next snapshot after a crash is still incremental and still right.
# s0 is taken and the volume detached cleanly (the map is saved, base
# s0).  A new attach loads it, writes chunk 3, takes s1 (just chunk 3),
# writes chunk 7 and chunk 12, and is SIGKILLed.  The next attach's
# snapshot s2 builds on s1 and stores exactly chunks 7 and 12; restoring
# s2 gives the volume's data byte for byte.  Then a crash right after a
# snapshot, with no write since: s3 stores nothing new but is right.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/integration/snaplib.sh"
snap_require

snap_servers
new_vol vol 16M
STORE=$T/store
mkdir -p "$STORE"
URL=$(file_url "$STORE")
chunk_image 16 "$T/img"
vol_write vol "$T/img"
snap_create vol "$URL" s0                    # detached: saves the map, valid

head -c 16M /dev/urandom > "$T/rand"
start_attach vol "$T/vol.sock"
printf '%d:4096\n' $((3 * MiB + 8192)) > "$T/r1"
patch_ranges "$T/rand" "$T/img" "@$T/r1"
python3 "$NBDRANGE" write "$T/vol.sock" "$T/img" "@$T/r1" || fail "write to chunk 3 failed"
snap_create vol "$URL" s1
assert_eq s0 "$(snap_done s1 parent)" "parent of s1"
printf '%d:4096\n' $((7 * MiB + 4096)) > "$T/r2"
patch_ranges "$T/rand" "$T/img" "@$T/r2"
python3 "$NBDRANGE" write "$T/vol.sock" "$T/img" "@$T/r2" || fail "write to chunk 7 failed"
printf '%d:8192\n' $((12 * MiB)) > "$T/r3"
patch_ranges "$T/rand" "$T/img" "@$T/r3"
python3 "$NBDRANGE" write "$T/vol.sock" "$T/img" "@$T/r3" || fail "write to chunk 12 failed"
kill -KILL "${ATTACH_PID[vol]}"
wait_exit "${ATTACH_PID[vol]}" || true
unset "ATTACH_PID[vol]"

start_attach vol "$T/vol.sock"                # takes over the dead attach
snap_create vol "$URL" s2
assert_eq s1 "$(snap_done s2 parent)" "parent of s2"
assert_eq 2 "$(snap_done s2 chunks_total)" "chunks s2 read after the crash (7 and 12)"
kill -KILL "${ATTACH_PID[vol]}"              # just after a snapshot
wait_exit "${ATTACH_PID[vol]}" || true
unset "ATTACH_PID[vol]"

start_attach vol "$T/vol.sock"
snap_create vol "$URL" s3
stop_attach vol
assert_eq s2 "$(snap_done s3 parent)" "parent of s3"
assert_eq 0 "$(snap_done s3 chunks_total)" "chunks s3 read (nothing written since s2)"
snap_restore "$URL" s2 r2
vol_equals r2 "$T/img"
snap_restore "$URL" s3 r3
vol_equals r3 "$T/img"
vol_equals vol "$T/img"
log "ok"
