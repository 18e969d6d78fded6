#!/bin/bash
# repvol snapshot list and delete on a file:// store: list shows exactly
# the manifests there are; delete removes the snapshot and precisely the
# chunks no remaining snapshot references, and collects nothing while an
# upload is in progress.  The store is filled by tests/tools/mksnap.c
# (the catalog API on raw image files).
. "$(dirname "$0")/lib.sh"

MKSNAP=$BUILD/tests/mksnap
[[ -x $MKSNAP ]] || fail "missing $MKSNAP (make builds it)"
require_cmd python3

STORE=$T/store
URL=file://$STORE
CS=65536

# write_chunk IMAGE INDEX SEED: fill chunk INDEX with bytes derived from
# SEED (the same SEED gives the same chunk, in any image).
write_chunk() {
    python3 -c 'import hashlib, sys
seed = sys.argv[1].encode()
out = b"".join(hashlib.sha256(seed + i.to_bytes(4, "little")).digest()
               for i in range(65536 // 32))
sys.stdout.buffer.write(out)' "$3" |
        dd of="$1" bs=$CS seek="$2" conv=notrunc status=none
}

# hashes FILE: the chunk hashes mksnap printed, one per line, sorted.
hashes() { grep -v '^new ' "$1" | awk '{print $2}' | sort -u; }

# stored: every chunk hash in the store, sorted.
stored() {
    find "$STORE/chunks" -type f -printf '%f\n' 2>/dev/null | sort
}

# An 1 MiB image (16 chunks) with data in chunks 0, 3, 7, 15.
truncate -s 1M a.img
write_chunk a.img 0 A0
write_chunk a.img 3 A3
write_chunk a.img 7 A7
write_chunk a.img 15 A15
# b: a with chunk 3 changed and chunk 9 added.
cp a.img b.img
write_chunk b.img 3 B3
write_chunk b.img 9 B9
# c: shares chunk 0 with a and chunk 9 with b, has its own 5; a 1.5 MiB
# volume whose last chunk is partial.
truncate -s 1536K c.img
write_chunk c.img 0 A0
write_chunk c.img 9 B9
write_chunk c.img 5 C5
write_chunk c.img 23 C23

"$MKSNAP" "$URL" snap-a a.img --volume vol1 --created 1700000000 >a.out
"$MKSNAP" "$URL" snap-b b.img --volume vol1 --parent snap-a \
    --created 1700003600 >b.out
"$MKSNAP" "$URL" snap-c c.img --volume vol2 --created 1700007200 >c.out
assert_eq "new 4" "$(tail -n1 a.out)" "chunks snap-a uploaded"
assert_eq "new 2" "$(tail -n1 b.out)" "chunks snap-b uploaded (dedup)"
assert_eq "new 2" "$(tail -n1 c.out)" "chunks snap-c uploaded (dedup)"
hashes a.out >a.h
hashes b.out >b.h
hashes c.out >c.h
sort -u a.h b.h c.h >all.h
assert_eq "8" "$(wc -l <all.h)" "distinct chunks"
assert_eq "$(cat all.h)" "$(stored)" "chunks in the store"
[[ -z $(find "$STORE" -name '.tmp-*') ]] || fail "temp files left in the store"
[[ -z $(find "$STORE/inprogress" -type f 2>/dev/null) ]] ||
    fail "upload markers left behind"

# ---- list
repvol snapshot list "$URL" >list.out
cat list.out >&2
assert_eq "NAME snap-a snap-b snap-c" "$(awk '{print $1}' list.out | xargs)" \
    "names listed"
assert_eq "vol1 -" "$(awk '$1 == "snap-a" {print $4, $7}' list.out)" "snap-a row"
assert_eq "vol1 snap-a" "$(awk '$1 == "snap-b" {print $4, $7}' list.out)" \
    "snap-b row"
grep -q '^snap-c .* vol2 .*1\.5 MiB' list.out || fail "snap-c row: $(grep snap-c list.out)"

repvol snapshot list "$URL" --json >list.json
python3 - list.json <<'EOF' || fail "list --json does not match the store"
import json, sys
snaps = json.load(open(sys.argv[1]))
assert [s["name"] for s in snaps] == ["snap-a", "snap-b", "snap-c"], snaps
a, b, c = snaps
assert a["parent"] is None and b["parent"] == "snap-a", snaps
assert a["volume"] == "vol1" and c["volume"] == "vol2"
assert a["volume_size"] == 1 << 20 and c["volume_size"] == 1536 << 10
assert a["chunk_size"] == 65536
assert a["created"] == 1700000000 and a["created_iso"] == "2023-11-14T22:13:20Z"
assert [s["chunks"] for s in snaps] == [4, 5, 4], snaps
assert a["data_bytes"] == 4 * 65536
assert a["uploaded_bytes"] > 0
EOF

# An empty store lists nothing (one that does not exist is an error:
# test 049).
mkdir "$T/empty"
repvol snapshot list "file://$T/empty" --json >empty.json
python3 -c 'import json, sys; assert json.load(open(sys.argv[1])) == []' \
    empty.json || fail "empty store did not list []"

# A damaged manifest is reported and skipped; the others still list.
printf '{"format":1,"name":"snap-x"' >"$STORE/snapshots/snap-x.json"
repvol snapshot list "$URL" >list2.out 2>list2.err
grep -q "snap-x" list2.err || fail "no warning about snap-x: $(cat list2.err)"
assert_eq "NAME snap-a snap-b snap-c" "$(awk '{print $1}' list2.out | xargs)" \
    "names listed past a damaged manifest"

# While it is there, no delete may collect: it could reference anything.
repvol snapshot delete "$URL" snap-b --json >del0.json
python3 - del0.json <<'EOF' || fail "delete next to a damaged manifest collected chunks"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["deleted"] and d["collection_skipped"], d
assert "snap-x" in d["skip_reason"], d
assert d["chunks_deleted"] == 0, d
EOF
assert_eq "$(cat all.h)" "$(stored)" "chunks after a skipped collection"
rm "$STORE/snapshots/snap-x.json"

# ---- delete: snap-b's manifest is gone; now snap-a is deleted, which
# must free exactly the chunks neither snap-c references (A3, A7, A15,
# and B3 that the deleted snap-b left behind).
repvol snapshot delete "$URL" snap-a --json >del1.json
cat del1.json >&2
comm -23 all.h c.h >gone.h
python3 - del1.json "$(wc -l <gone.h)" "$(wc -l <c.h)" <<'EOF' || fail "delete snap-a stats"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["name"] == "snap-a" and not d["collection_skipped"], d
assert d["chunks_deleted"] == int(sys.argv[2]), d
assert d["chunks_kept"] == int(sys.argv[3]), d
assert d["bytes_freed"] > 0, d
EOF
assert_eq "$(cat c.h)" "$(stored)" "chunks left are exactly snap-c's"
assert_eq "NAME snap-c" "$(repvol snapshot list "$URL" | awk '{print $1}' | xargs)" \
    "names after deletes"

# ---- an upload in progress: the manifest goes, the chunks stay.
"$MKSNAP" "$URL" snap-d a.img --volume vol1 >d.out
hashes d.out >d.h
"$MKSNAP" --begin "$URL" upload-1
[[ -f $STORE/inprogress/upload-1 ]] || fail "no inprogress marker"
repvol snapshot delete "$URL" snap-d >del2.out
cat del2.out >&2
grep -q "not collected: an upload is in progress (inprogress/upload-1)" del2.out ||
    fail "delete did not say collection was skipped"
sort -u c.h d.h >cd.h
assert_eq "$(cat cd.h)" "$(stored)" "chunks kept during an upload"
"$MKSNAP" --end "$URL" upload-1
[[ ! -e $STORE/inprogress/upload-1 ]] || fail "marker not removed"

# A stale marker (an upload that died a day ago) does not block collection.
"$MKSNAP" --begin "$URL" upload-dead
touch -d '25 hours ago' "$STORE/inprogress/upload-dead"
repvol snapshot delete "$URL" snap-c >del3.out
cat del3.out >&2
grep -Eq "^deleted snapshot 'snap-c': 7 chunks deleted \(.* freed\), 0 kept" del3.out ||
    fail "last delete output: $(cat del3.out)"
assert_eq "" "$(stored)" "chunks after the last delete"
[[ -z $(find "$STORE/collecting" -type f 2>/dev/null) ]] ||
    fail "collection marker left behind"
assert_eq "NAME" "$(repvol snapshot list "$URL" | awk '{print $1}' | xargs)" \
    "list of an empty store"

# ---- errors: one line, exit 1; usage errors exit 2.
expect_fail_match "no snapshot 'snap-a'" repvol snapshot delete "$URL" snap-a
expect_fail_match 'not a valid snapshot name' repvol snapshot delete "$URL" ../x
expect_fail_match 'missing NAME' repvol snapshot delete "$URL"
expect_fail_match 'missing URL' repvol snapshot list
expect_fail_match 'unexpected argument' repvol snapshot list "$URL" extra
expect_fail_match 'not an object store URL' repvol snapshot list /not/a/url
expect_fail_match 'absolute' repvol snapshot list file://relative
touch plain
expect_fail_match 'not a directory' repvol snapshot list "file://$T/plain"
expect_fail_match 'plain/sub: Not a directory' repvol snapshot list "file://$T/plain/sub"
rc=0; repvol snapshot delete "$URL" >/dev/null 2>&1 || rc=$?
assert_eq 2 "$rc" "exit status of a usage error"
rc=0; repvol snapshot delete "$URL" nosuch >/dev/null 2>&1 || rc=$?
assert_eq 1 "$rc" "exit status of a failed delete"
for f in "$T"/expect_fail.stderr; do
    assert_eq 1 "$(wc -l <"$f")" "error lines"
done
log "ok"
