#!/bin/bash
# Lazy restore of a 256 MiB snapshot: "snapshot restore --lazy" returns at once, and the new
# volume serves at once, fetching chunks on demand while the rest is
# hydrated in the background.
#  - The first I/O, before anything is read: 4 KiB writes into chunks
#    that are (most likely) not hydrated yet, in the middle of a chunk;
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
start_attach lazy "$T/lazy.sock"
# The first I/O: partial writes into the last chunk, a middle chunk and
# chunk 0 (whatever the background does first).
head -c 256M /dev/urandom > "$T/new"
cp "$T/src" "$T/expect"
ranges=($((255 * MiB + 12288)):4096 $((160 * MiB + 512 * 1024)):8192 $((0 * MiB + 4096)):4096)
patch_ranges "$T/new" "$T/expect" "${ranges[@]}"
# (No "repvol status" before this: it takes a while, and the point is to
# write before the background gets there.)
python3 "$NBDRANGE" write "$T/lazy.sock" "$T/new" "${ranges[@]}" || fail "partial writes into the lazy volume failed"
for c in 255 160 0; do
    python3 "$NBDRANGE" read "$T/lazy.sock" "$T/chunk$c" $((c * MiB)) $MiB || fail "reading chunk $c failed"
    cmp "$T/chunk$c" <(tail -c +$((c * MiB + 1)) "$T/expect" | head -c $MiB) ||
        fail "chunk $c: not the snapshot's data merged with the new write"
done

status_restore lazy > "$T/restore-state.json" &&
    log "after the first writes and reads: $(cat "$T/restore-state.json")" ||
    log "after the first writes and reads: status has no restore (already hydrated)"

# The whole device at once.
nbdcopy "$(nbd_uri "$T/lazy.sock")" "$T/read1" || fail "nbdcopy from the lazy volume failed"
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
