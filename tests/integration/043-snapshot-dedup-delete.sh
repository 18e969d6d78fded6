#!/bin/bash
# Content addressing and reference-counted delete in a file:// store.
# Two snapshots of a 32 MiB volume share 30 of their 32 chunks: the store
# holds 34 chunk objects, not 64.  Deleting the first leaves the second
# restorable, byte-identical; the two chunks only the first used are gone
# (the store holds exactly the second manifest's unique hashes).
# Deleting it again fails.  Two concurrent deletes of two of three
# snapshots leave the third restorable with all its chunks.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/integration/snaplib.sh"
snap_require

snap_servers
new_vol vol 32M
STORE=$T/store
mkdir -p "$STORE"
URL=$(file_url "$STORE")

head -c 32M /dev/urandom > "$T/img1"
# Two identical chunks inside the volume are stored once: chunk 31 is a
# copy of chunk 30.
dd if="$T/img1" of="$T/img1" bs=1M skip=30 seek=31 count=1 conv=notrunc status=none
start_attach vol "$T/vol.sock"
nbdcopy --flush "$T/img1" "$(nbd_uri "$T/vol.sock")" || fail "nbdcopy into vol failed"
snap_create vol "$URL" s1
assert_eq 31 "$(store_chunks "$STORE")" "chunk objects after s1 (32 chunks, two equal)"
assert_eq 32 "$(python3 "$SNAPJSON" manifest "$STORE" s1 entries)" "manifest entries of s1"

# Change chunks 3 and 7 (one 4 KiB block each) and take s2.
head -c 32M /dev/urandom > "$T/rand"
cp "$T/img1" "$T/img2"
ranges=($((3 * MiB + 4096)):4096 $((7 * MiB)):4096)
patch_ranges "$T/rand" "$T/img2" "${ranges[@]}"
python3 "$NBDRANGE" write "$T/vol.sock" "$T/img2" "${ranges[@]}" || fail "writes for s2 failed"
snap_create vol "$URL" s2
assert_eq 33 "$(store_chunks "$STORE")" "chunk objects after s2 (shares 30 of s1's)"
manifest_hashes "$STORE" s1 > "$T/h1"
manifest_hashes "$STORE" s2 > "$T/h2"
comm -23 "$T/h1" "$T/h2" > "$T/only1"
assert_eq 2 "$(wc -l < "$T/only1")" "chunks only s1 uses"

# Delete s1: s2 stays whole, s1's own chunks go.
repvol snapshot delete "$URL" s1 || fail "snapshot delete s1 failed"
assert_eq s2 "$(snap_names "$URL")" "snapshots after deleting s1"
[[ ! -e $STORE/snapshots/s1.json ]] || fail "s1's manifest is still there"
assert_eq "$(wc -l < "$T/h2")" "$(store_chunks "$STORE")" "chunk objects after deleting s1 (s2's unique hashes)"
while read -r h; do
    [[ ! -e $STORE/chunks/${h:0:2}/$h ]] || fail "chunk $h, used only by s1, survived its delete"
done < "$T/only1"
while read -r h; do
    [[ -f $STORE/chunks/${h:0:2}/$h ]] || fail "chunk $h of s2 was deleted with s1"
done < "$T/h2"
store_check_layout "$STORE"
snap_restore "$URL" s2 r2
vol_equals r2 "$T/img2"

# Deleting it again, or a name never created, fails and changes nothing.
expect_fail repvol snapshot delete "$URL" s1
expect_fail repvol snapshot delete "$URL" nosuch
assert_eq "$(wc -l < "$T/h2")" "$(store_chunks "$STORE")" "chunk objects after failed deletes"

# Three snapshots (s2, s3, s4: each adds a changed chunk); delete s2 and
# s3 at the same time.
cp "$T/img2" "$T/img3"
patch_ranges "$T/rand" "$T/img3" $((11 * MiB)):4096
python3 "$NBDRANGE" write "$T/vol.sock" "$T/img3" $((11 * MiB)):4096 || fail "writes for s3 failed"
snap_create vol "$URL" s3
cp "$T/img3" "$T/img4"
patch_ranges "$T/rand" "$T/img4" $((3 * MiB + 8192)):4096 $((20 * MiB)):$MiB
python3 "$NBDRANGE" write "$T/vol.sock" "$T/img4" $((3 * MiB + 8192)):4096 $((20 * MiB)):$MiB ||
    fail "writes for s4 failed"
snap_create vol "$URL" s4
stop_attach vol
assert_eq "s2 s3 s4" "$(snap_names "$URL")" "three snapshots"

repvol snapshot delete "$URL" s2 > "$T/del2.out" 2>&1 &
d2=$!
repvol snapshot delete "$URL" s3 > "$T/del3.out" 2>&1 &
d3=$!
rc2=0 rc3=0
wait_exit "$d2" 60 || rc2=$?
wait_exit "$d3" 60 || rc3=$?
cat "$T/del2.out" "$T/del3.out" >&2
assert_eq 0 "$rc2" "exit status of deleting s2"
assert_eq 0 "$rc3" "exit status of deleting s3"
assert_eq s4 "$(snap_names "$URL")" "snapshots after the concurrent deletes"
manifest_hashes "$STORE" s4 > "$T/h4"
while read -r h; do
    [[ -f $STORE/chunks/${h:0:2}/$h ]] || fail "chunk $h of s4 was deleted by a concurrent delete"
done < "$T/h4"
# Chunks only s2 or s3 used may survive a race between the two sweeps,
# never the other way round.
n=$(store_chunks "$STORE")
((n >= $(wc -l < "$T/h4"))) || fail "fewer chunk objects ($n) than s4 references"
log "after the concurrent deletes: $n chunk objects, s4 references $(wc -l < "$T/h4")"
snap_restore "$URL" s4 r4
vol_equals r4 "$T/img4"
# Deleting the last one empties the store's chunks.
repvol snapshot delete "$URL" s4 || fail "deleting s4 failed"
assert_eq "" "$(snap_names "$URL")" "snapshots after deleting all"
assert_eq 0 "$(store_chunks "$STORE")" "chunk objects after deleting every snapshot"
log "ok"
