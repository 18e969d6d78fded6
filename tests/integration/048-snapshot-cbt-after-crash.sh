#!/bin/bash
# A crash after a live snapshot must not make the next attach trust a
# stale change map.  s0 is taken and the volume detached cleanly (the
# map is saved, valid, base s0).  A new attach loads it (the registry now
# says "invalid until a clean detach"), writes chunk 3, takes s1, writes
# chunk 7, and is SIGKILLed.  The next attach must not use the saved map
# (it predates both writes): its snapshot s2 then holds chunk 7, and
# restoring s2 gives the volume's data byte for byte.
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
kill -KILL "${ATTACH_PID[vol]}"
wait_exit "${ATTACH_PID[vol]}" || true
unset "ATTACH_PID[vol]"

start_attach vol "$T/vol.sock"                # takes over the dead attach
snap_create vol "$URL" s2
stop_attach vol
assert_eq s1 "$(snap_done s2 parent)" "parent of s2"
snap_restore "$URL" s2 r2
vol_equals r2 "$T/img"
vol_equals vol "$T/img"
log "ok"
