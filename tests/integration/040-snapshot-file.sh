#!/bin/bash
# Snapshots to a file:// store, round trip: a 64 MiB volume partly written
# (13 of its 64 1-MiB chunks hold random data, the rest never written) is
# snapshotted while attached; the store then holds exactly those 13 chunk
# objects (zero chunks are not stored).  Part of it is overwritten and more
# written, and a second snapshot is taken of the detached volume.  Both
# restore (full) to new volumes byte-identical to the image saved at their
# time, and restore again after the source volume is deleted; "snapshot
# list" shows both, the second with the first as parent.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/integration/snaplib.sh"
snap_require

snap_servers
new_vol vol 64M
STORE=$T/store
mkdir -p "$STORE"
URL=$(file_url "$STORE")

# Image 1: random data at 0-8 MiB, at 20.5-23.5 MiB (touches chunks 20-23)
# and 1 MiB at 63 MiB; zeroes elsewhere.  Chunks touched: 8 + 4 + 1 = 13.
head -c 64M /dev/urandom > "$T/rand"
truncate -s 64M "$T/img1"
patch_ranges "$T/rand" "$T/img1" 0:$((8 * MiB)) $((41 * MiB / 2)):$((3 * MiB)) $((63 * MiB)):$MiB
touched1=13

start_attach vol "$T/vol.sock"
python3 "$NBDRANGE" write "$T/vol.sock" "$T/img1" \
    0:$((8 * MiB)) $((41 * MiB / 2)):$((3 * MiB)) $((63 * MiB)):$MiB ||
    fail "writing image 1 failed"
# The first snapshot, of the attached volume.
snap_create vol "$URL" s1
assert_eq "" "$(snap_done s1 parent)" "parent of the first snapshot"

# The store: the manifest, and one chunk object per chunk holding data.
[[ -f $STORE/snapshots/s1.json ]] || fail "no snapshots/s1.json in the store"
store_check_layout "$STORE"
n=$(store_chunks "$STORE")
log "s1: $n chunk objects for $touched1 chunks written"
((n <= touched1)) || fail "s1 stored $n chunk objects, but only $touched1 chunks hold data"
# Random data: every touched chunk is distinct, so none can be missing.
assert_eq "$touched1" "$n" "chunk objects after s1"
assert_eq "$touched1" "$(python3 "$SNAPJSON" manifest "$STORE" s1 entries)" "manifest entries of s1"
assert_eq $((64 * MiB)) "$(python3 "$SNAPJSON" manifest "$STORE" s1 volume_size)" "s1 volume_size"
assert_eq $MiB "$(python3 "$SNAPJSON" manifest "$STORE" s1 chunk_size)" "s1 chunk_size (default 1M)"
up1=$(snap_done s1 bytes_uploaded)
# 12 MiB of random data (the rest of those 13 chunks is zeroes, which
# compresses away): about 12 MiB uploaded.
((up1 >= 12 * MiB * 99 / 100 && up1 <= 12 * MiB * 101 / 100 + 65536)) ||
    fail "s1 bytes_uploaded $up1 is not about the 12 MiB of incompressible data written"
# Every chunk object is a zstd frame of its chunk, named by its SHA-256.
if command -v zstd >/dev/null; then
    idx_hash=$(python3 "$SNAPJSON" manifest "$STORE" s1 index | sed -n 1p)
    read -r idx h <<<"$idx_hash"
    zstd -dc "$STORE/chunks/${h:0:2}/$h" > "$T/chunk.raw" || fail "chunk $h is not a zstd frame"
    assert_eq "$h" "$(sha256sum < "$T/chunk.raw" | cut -d' ' -f1)" "sha256 of chunk $idx's content"
    cmp -s "$T/chunk.raw" <(tail -c +$((idx * MiB + 1)) "$T/img1" | head -c $MiB) ||
        fail "chunk object $h does not hold chunk $idx of the volume"
fi

# Image 2: overwrite 4-12 MiB (half old chunks, half never written) and
# 21 MiB + 4 KiB; the volume is detached for the second snapshot.
cp --sparse=always "$T/img1" "$T/img2"
head -c 64M /dev/urandom > "$T/rand2"
patch_ranges "$T/rand2" "$T/img2" $((4 * MiB)):$((8 * MiB)) $((21 * MiB + 4096)):4096
python3 "$NBDRANGE" write "$T/vol.sock" "$T/img2" $((4 * MiB)):$((8 * MiB)) $((21 * MiB + 4096)):4096 ||
    fail "writing image 2 failed"
stop_attach vol
vol_equals vol "$T/img2"
snap_create vol "$URL" s2
assert_eq s1 "$(snap_done s2 parent)" "parent of the second snapshot"
store_check_layout "$STORE"
# s2 adds the 8 chunks at 4-12 MiB and chunk 21: 13 + 9 objects.
assert_eq $((touched1 + 9)) "$(store_chunks "$STORE")" "chunk objects after s2"
assert_eq 17 "$(python3 "$SNAPJSON" manifest "$STORE" s2 entries)" "manifest entries of s2 (chunks 0-11, 20-23, 63)"

# The list shows both, with the parent relation.
snap_list_json "$URL" "$T/list.json"
assert_eq "s1 s2" "$(python3 "$SNAPJSON" list "$T/list.json" | tr '\n' ' ' | sed 's/ $//')" "snapshot list"
assert_eq s1 "$(python3 "$SNAPJSON" list "$T/list.json" s2 parent)" "s2's parent in the list"
assert_eq "" "$(python3 "$SNAPJSON" list "$T/list.json" s1 parent)" "s1's parent in the list"
assert_eq vol "$(python3 "$SNAPJSON" list "$T/list.json" s2 volume)" "s2's volume in the list"
assert_eq $((64 * MiB)) "$(python3 "$SNAPJSON" list "$T/list.json" s1 volume_size)" "s1's volume_size in the list"
repvol snapshot list "$URL" > "$T/list.txt" || fail "snapshot list (text) failed"
grep -q s1 "$T/list.txt" && grep -q s2 "$T/list.txt" || fail "text list lacks a snapshot: $(cat "$T/list.txt")"

# Full restores, each equal to the image of its time.
snap_restore "$URL" s1 r1
snap_restore "$URL" s2 r2
vol_equals r1 "$T/img1"
vol_equals r2 "$T/img2"
# The restored volume is an ordinary volume: both replicas hold the data.
assert_files_identical "$T/img2" "${REPVOLD_DIR[a]}/r2.data"
assert_files_identical "$T/img2" "${REPVOLD_DIR[b]}/r2.data"
# The source volume is not needed to restore.
repvol delete vol || fail "delete vol failed"
snap_restore "$URL" s1 r1b
vol_equals r1b "$T/img1"

# --chunk-size: a 16 MiB volume in 64 KiB chunks; 1 MiB at 0 and 4 KiB at
# 8 MiB are 17 chunks.  Bad chunk sizes are refused at create.
expect_fail repvol create c3m --size 16M "${REPLICAS[@]}" --chunk-size 3M
expect_fail repvol create c32k --size 16M "${REPLICAS[@]}" --chunk-size 32K
new_vol c64 16M --chunk-size 64K
truncate -s 16M "$T/c64img"
patch_ranges "$T/rand" "$T/c64img" 0:$MiB $((8 * MiB)):4096
start_attach c64 "$T/c64.sock"
python3 "$NBDRANGE" write "$T/c64.sock" "$T/c64img" 0:$MiB $((8 * MiB)):4096 || fail "writing c64 failed"
stop_attach c64
STORE2=$T/store2
URL2=$(file_url "$STORE2")
snap_create c64 "$URL2" c1
assert_eq 65536 "$(python3 "$SNAPJSON" manifest "$STORE2" c1 chunk_size)" "chunk_size of c1"
assert_eq 17 "$(python3 "$SNAPJSON" manifest "$STORE2" c1 entries)" "manifest entries of c1"
assert_eq 17 "$(store_chunks "$STORE2")" "chunk objects of c1"
snap_restore "$URL2" c1 rc1
vol_equals rc1 "$T/c64img"
# The store that was never created is created by the first snapshot; the
# other store is unaffected.
assert_eq "s1 s2" "$(snap_names "$URL")" "snapshots in the first store"

# Restoring onto an existing volume name is refused.
expect_fail repvol snapshot restore "$URL" s1 r1 "${REPLICAS[@]}"
expect_fail_match "no snapshot 'nosuch' in " repvol snapshot restore "$URL" nosuch r9 "${REPLICAS[@]}"
log "ok"
