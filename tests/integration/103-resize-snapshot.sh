#!/bin/bash
# Snapshots across an online grow stay incremental and correct: a
# 63.5 MiB volume (its last 1 MiB chunk half full) fully written,
# snapshot s1; grown online to 96 MiB; three blocks change before the
# old end and two land in the new space; snapshot s2 (parent s1) reads
# only those chunks and the grown partial one, not the whole volume, and
# restoring it gives exactly the volume's data, zeroes in the rest of
# the new space.  A restore lands at the snapshot's own size.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/integration/snaplib.sh"
snap_require

OLD=$((63 * MiB + 512 * 1024))
snap_servers
new_vol vol "$OLD"
STORE=$T/store
mkdir -p "$STORE"
URL=$(file_url "$STORE")
head -c "$OLD" /dev/urandom > "$T/img1"
start_attach vol "$T/vol.sock"
nbdcopy --flush "$T/img1" "$(nbd_uri "$T/vol.sock")" || fail "nbdcopy into vol failed"
snap_create vol "$URL" s1

repvol resize vol --size 96M || fail "online resize failed"
# Changes: chunks 2 and 40 before the old end, chunks 70 and 90 after it.
printf '%d:4096\n' $((2 * MiB + 8192)) $((40 * MiB)) $((70 * MiB + 4096)) $((90 * MiB)) > "$T/ranges2"
head -c 96M /dev/urandom > "$T/rand2"
cp "$T/img1" "$T/img2"
truncate -s 96M "$T/img2"
patch_ranges "$T/rand2" "$T/img2" "@$T/ranges2"
python3 "$NBDRANGE" write "$T/vol.sock" "$T/img2" "@$T/ranges2" || fail "the writes for s2 failed"
snap_create vol "$URL" s2
assert_eq s1 "$(snap_done s2 parent)" "parent of s2"
read2=$(snap_done s2 bytes_read)
log "s2: read $read2 bytes for 4 changed chunks and the grown partial one"
((read2 <= 5 * MiB)) || fail "s2 read $read2 bytes: not incremental across the grow"
# The 64 chunks of s1 and the two written in the new space; the rest
# of the new space is holes.
assert_eq 66 "$(python3 "$SNAPJSON" manifest "$STORE" s2 entries)" "manifest entries of s2"
stop_attach vol

vol_equals vol "$T/img2"
snap_restore "$URL" s2 r2
vol_equals r2 "$T/img2"
snap_restore "$URL" s1 r1
vol_equals r1 "$T/img1"
log "ok"
