#!/bin/bash
# Lazy restore of a 256 MiB snapshot: "snapshot restore --lazy" returns at once, and the new
# volume serves at once, fetching chunks on demand while the rest is
# hydrated in the background.
#  - The first I/O, before anything is read: 4 KiB writes into chunks
#    that are (most likely) not hydrated yet, in the middle of a chunk,
#    then reads of the end of the device first;
#    reading those chunks back gives the snapshot's data merged with the
#    new writes, and so does the volume after full hydration (the
#    background must not overwrite a newer write with snapshot data).
#  - The whole device, read at once (nbdcopy), equals the source image
#    with those writes.
#  - status --json shows "restore" (url, snapshot, chunks_total,
#    chunks_hydrated, state) while hydrating, and no "restore" once done;
#    both replicas then hold the data.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/integration/snaplib.sh"
snap_require

snap_servers
new_vol vol 256M
STORE=$T/store
mkdir -p "$STORE"
URL=$(file_url "$STORE")
head -c 256M /dev/urandom > "$T/src"
vol_write vol "$T/src"
snap_create vol "$URL" s1

# restore --lazy returns at once (bounded, not timed: it must not need
# the whole copy, but we only check that it returns).
rc=0
timeout 60 "$REPVOL" snapshot restore "$URL" s1 lazy "${REPLICAS[@]}" --lazy > "$T/restore.out" 2>&1 || rc=$?
cat "$T/restore.out" >&2
assert_eq 0 "$rc" "exit status of restore --lazy"
# Everything the first I/O needs is made before the attach, so that it
# comes right after it: partial writes into chunks 223 and 160 and chunk 0,
# then a read of the last 32 MiB (the end first: a background that goes
# in order gets there last), the written chunks, and the whole device.
head -c 256M /dev/urandom > "$T/new"
cp "$T/src" "$T/expect"
ranges=($((223 * MiB + 12288)):4096 $((160 * MiB + 512 * 1024)):8192 $((0 * MiB + 4096)):4096)
patch_ranges "$T/new" "$T/expect" "${ranges[@]}"
tail -c $((32 * MiB)) "$T/expect" > "$T/expect-tail"
for c in 223 160 0; do
    dd if="$T/expect" of="$T/expect$c" bs=1M skip=$c count=1 status=none
done
start_attach lazy "$T/lazy.sock"
# (No "repvol status" until the reads are done: it takes a while, and the
# point is to get there before the background does.)
python3 "$NBDRANGE" write "$T/lazy.sock" "$T/new" "${ranges[@]}" || fail "partial writes into the lazy volume failed"
python3 "$NBDRANGE" read "$T/lazy.sock" "$T/tail" $((224 * MiB)) $((32 * MiB)) || fail "reading the last 32 MiB failed"
for c in 223 160 0; do
    python3 "$NBDRANGE" read "$T/lazy.sock" "$T/chunk$c" $((c * MiB)) $MiB || fail "reading chunk $c failed"
done
nbdcopy "$(nbd_uri "$T/lazy.sock")" "$T/read1" || fail "nbdcopy from the lazy volume failed"
status_restore lazy > "$T/restore-state.json" &&
    log "after the first writes and reads: $(cat "$T/restore-state.json")" ||
    log "after the first writes and reads: status has no restore (already hydrated)"
cmp "$T/tail" "$T/expect-tail" || fail "the last 32 MiB, read first, differ from the snapshot"
for c in 223 160 0; do
    cmp "$T/chunk$c" "$T/expect$c" || fail "chunk $c: not the snapshot's data merged with the new write"
done
assert_files_identical "$T/expect" "$T/read1"

# Hydration: status shows it while it lasts, and is gone when done.
if st=$(status_restore lazy); then
    log "restore status: $st"
    python3 - "$st" "$URL" <<'EOF' || fail "bad restore status: $st"
import json, sys
r = json.loads(sys.argv[1])
for k in ("url", "snapshot", "chunks_total", "chunks_hydrated", "state"):
    assert k in r, "no %s" % k
assert r["snapshot"] == "s1", r
assert r["url"].rstrip("/") == sys.argv[2].rstrip("/"), r
assert r["state"] == "hydrating", r
assert 0 <= r["chunks_hydrated"] <= r["chunks_total"] <= 256, r
EOF
fi
wait_hydrated lazy 120
nbdcopy "$(nbd_uri "$T/lazy.sock")" "$T/read2" || fail "nbdcopy after hydration failed"
assert_files_identical "$T/expect" "$T/read2"
stop_attach lazy
# Both replicas hold the whole volume: nothing is left in the store only.
assert_files_identical "$T/expect" "${REPVOLD_DIR[a]}/lazy.data"
assert_files_identical "$T/expect" "${REPVOLD_DIR[b]}/lazy.data"
vol_equals lazy "$T/expect"
# The snapshot itself is unchanged by writes to the restored volume.
snap_restore "$URL" s1 full
vol_equals full "$T/src"
log "ok"
