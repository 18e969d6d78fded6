#!/bin/bash
# Incremental snapshots read and upload only what changed: a 256 MiB
# volume fully written with random data, snapshot 1 (reads and uploads it
# all); then 1% of it (640 scattered 4 KiB writes, 2.5 MiB) changes,
# confined to 20 known chunks of 1 MiB; snapshot 2 must read at most
# those 20 chunks and upload about as much, not a full scan.  Restoring
# snapshot 2 gives exactly the volume's current data.  Then the volume is
# detached, a few more blocks change in 3 chunks through a new attach, and
# snapshot 3 (taken detached) is incremental too: the changed-chunk record
# survives a detach.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/integration/snaplib.sh"
snap_require

snap_servers
new_vol vol 256M
STORE=$T/store
mkdir -p "$STORE"
URL=$(file_url "$STORE")
head -c 256M /dev/urandom > "$T/img1"
start_attach vol "$T/vol.sock"
nbdcopy --flush "$T/img1" "$(nbd_uri "$T/vol.sock")" || fail "nbdcopy into vol failed"

snap_create vol "$URL" s1
read1=$(snap_done s1 bytes_read)
up1=$(snap_done s1 bytes_uploaded)
log "s1: read $read1, uploaded $up1"
((read1 >= 256 * MiB)) || fail "s1 read only $read1 bytes of a fully written 256 MiB volume"
((up1 >= 250 * MiB)) || fail "s1 uploaded only $up1 bytes of 256 MiB of random data"
assert_eq 256 "$(store_chunks "$STORE")" "chunk objects after s1"

# 640 scattered 4 KiB writes (32 in each of 20 chunks spread over the
# volume), random new data.
python3 - > "$T/ranges" <<'EOF'
import random
r = random.Random()
chunks = sorted(r.sample(range(256), 20))
for c in chunks:
    for b in sorted(r.sample(range(256), 32)):       # 4 KiB blocks in the chunk
        print("%d:4096" % ((c << 20) + (b << 12)))
EOF
assert_eq 640 "$(wc -l < "$T/ranges")" "number of 4 KiB writes"
distinct=$(awk -F: '{ print int($1 / 1048576) }' "$T/ranges" | sort -u | wc -l)
assert_eq 20 "$distinct" "distinct chunks touched"
head -c 256M /dev/urandom > "$T/rand2"
cp "$T/img1" "$T/img2"
patch_ranges "$T/rand2" "$T/img2" "@$T/ranges"
python3 "$NBDRANGE" write "$T/vol.sock" "$T/img2" "@$T/ranges" || fail "the scattered writes failed"

snap_create vol "$URL" s2
assert_eq s1 "$(snap_done s2 parent)" "parent of s2"
read2=$(snap_done s2 bytes_read)
up2=$(snap_done s2 bytes_uploaded)
log "s2: read $read2, uploaded $up2 for $distinct changed chunks"
((read2 <= distinct * MiB)) ||
    fail "s2 read $read2 bytes: more than the $distinct changed chunks ($((distinct * MiB)))"
# Random data does not compress: allow zstd's framing (under 1%) and a
# manifest's worth on top.
((up2 <= distinct * MiB + distinct * MiB / 64 + 256 * 1024)) ||
    fail "s2 uploaded $up2 bytes: more than the $distinct changed chunks"
((up2 >= distinct * MiB / 2)) || fail "s2 uploaded only $up2 bytes for $distinct changed chunks"
assert_eq $((256 + distinct)) "$(store_chunks "$STORE")" "chunk objects after s2"
assert_eq 256 "$(python3 "$SNAPJSON" manifest "$STORE" s2 entries)" "manifest entries of s2"
stop_attach vol

snap_restore "$URL" s2 r2
vol_equals r2 "$T/img2"
vol_equals vol "$T/img2"

# Changes made in a later attach, snapshot of the detached volume.
printf '%d:4096\n' $((3 * MiB + 8192)) $((100 * MiB)) $((255 * MiB + 4096 * 255)) > "$T/ranges3"
head -c 256M /dev/urandom > "$T/rand3"
cp "$T/img2" "$T/img3"
patch_ranges "$T/rand3" "$T/img3" "@$T/ranges3"
start_attach vol "$T/vol.sock"
python3 "$NBDRANGE" write "$T/vol.sock" "$T/img3" "@$T/ranges3" || fail "the writes for s3 failed"
stop_attach vol
snap_create vol "$URL" s3
assert_eq s2 "$(snap_done s3 parent)" "parent of s3"
read3=$(snap_done s3 bytes_read)
up3=$(snap_done s3 bytes_uploaded)
log "s3: read $read3, uploaded $up3 for 3 changed chunks"
((read3 <= 3 * MiB)) || fail "s3 (detached) read $read3 bytes for 3 changed chunks: the change record was lost"
((up3 <= 3 * MiB + 3 * MiB / 64 + 256 * 1024)) || fail "s3 uploaded $up3 bytes for 3 changed chunks"
snap_restore "$URL" s3 r3
vol_equals r3 "$T/img3"
log "ok"
