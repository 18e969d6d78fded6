#!/bin/bash
# A corrupt chunk object in a file:// store is never restored as data.
#  - Chunk 5's object replaced by a valid zstd frame of other bytes of the
#    right size (only the SHA-256 can tell): a full restore fails with an
#    error naming chunks/HH/HASH, and whatever the target volume's
#    replicas hold, chunk 5 is not the forged bytes.
#  - Through a lazy restore, reading chunk 5 fails with an I/O error
#    while chunks 4 and 15 read right (15 after the failure); the
#    restore's status ends "failed" with an error naming the key.
#  - Chunk 9's object replaced by garbage (not zstd): a full restore fails
#    naming that key.
#  - With the original objects back, a full restore equals the source.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/integration/snaplib.sh"
snap_require
require_cmd zstd

snap_servers
new_vol vol 16M
STORE=$T/store
mkdir -p "$STORE"
URL=$(file_url "$STORE")
head -c 16M /dev/urandom > "$T/src"
vol_write vol "$T/src"
snap_create vol "$URL" s1

k5=$(chunk_key_of "$STORE" s1 5)
k9=$(chunk_key_of "$STORE" s1 9)
log "corrupting $k5 (forged frame) and later $k9 (garbage)"
cp "$STORE/$k5" "$T/orig5"
cp "$STORE/$k9" "$T/orig9"
head -c 1M /dev/urandom > "$T/forged"
zstd -q -c "$T/forged" > "$STORE/$k5"

# Full restore: fails, names the key.
expect_fail_match "$k5" repvol snapshot restore "$URL" s1 bad1 "${REPLICAS[@]}"
# Whatever was written to the target is not the forged data.
for s in a b; do
    f=${REPVOLD_DIR[$s]}/bad1.data
    [[ -f $f ]] || continue
    if cmp -s <(tail -c +$((5 * MiB + 1)) "$f" | head -c $MiB) "$T/forged"; then
        fail "replica $s of bad1 holds the forged chunk's bytes"
    fi
done

# Lazy restore: reading chunk 5 is an I/O error, never the forged bytes.
snap_restore "$URL" s1 bad2 --lazy
start_attach bad2 "$T/bad2.sock"
python3 "$NBDRANGE" read "$T/bad2.sock" "$T/c4" $((4 * MiB)) $MiB || fail "reading chunk 4 failed"
cmp "$T/c4" <(tail -c +$((4 * MiB + 1)) "$T/src" | head -c $MiB) || fail "chunk 4 reads wrong"
rc=0
python3 "$NBDRANGE" read "$T/bad2.sock" "$T/c5" $((5 * MiB)) $MiB 2> "$T/c5.err" || rc=$?
cat "$T/c5.err" >&2
if ((rc == 0)); then
    cmp -s "$T/c5" "$T/forged" && fail "the lazy volume served the forged chunk's bytes"
    fail "reading the corrupt chunk through the lazy volume succeeded"
fi
assert_eq 3 "$rc" "nbdrange read of the corrupt chunk (3: the server answered with an error)"
# A read that fails once fails again (no wrong bytes on retry either).
rc=0
python3 "$NBDRANGE" read "$T/bad2.sock" "$T/c5" $((5 * MiB + 4096)) 4096 2>/dev/null || rc=$?
assert_eq 3 "$rc" "second read of the corrupt chunk"
# The background hydration meets it too: state "failed", error names the key.
deadline=$(( $(date +%s%N) + 120 * 1000000000 ))
until [[ $(status_restore bad2 state 2>/dev/null || true) == failed ]]; do
    (( $(date +%s%N) < deadline )) || fail "restore of bad2 never reported failed: $(status_restore bad2 || echo 'no restore in status')"
    sleep 0.05
done
err=$(status_restore bad2 error) || fail "failed restore without an error"
grep -qF "$k5" <<<"$err" || fail "the restore error does not name $k5: $err"
# One bad chunk costs only itself: the others are still served (the
# background stopped, so later ones are fetched on demand).
python3 "$NBDRANGE" read "$T/bad2.sock" "$T/c15" $((15 * MiB)) $MiB || fail "reading chunk 15 after the failure failed"
cmp "$T/c15" <(tail -c +$((15 * MiB + 1)) "$T/src" | head -c $MiB) || fail "chunk 15 reads wrong"
# Detach; its exit status after a failed restore is not the point here.
"$REPVOL" detach bad2 || true
wait_exit "${ATTACH_PID[bad2]}" || true

# A garbage object (not zstd) is named too.
cp "$T/orig5" "$STORE/$k5"
head -c 100K /dev/urandom > "$STORE/$k9"
expect_fail_match "$k9" repvol snapshot restore "$URL" s1 bad3 "${REPLICAS[@]}"
for s in a b; do
    f=${REPVOLD_DIR[$s]}/bad3.data
    [[ -f $f ]] || continue
    cmp -s <(tail -c +$((9 * MiB + 1)) "$f" | head -c 102400) "$STORE/$k9" &&
        fail "replica $s of bad3 holds the garbage object's bytes"
done

# Repaired: the snapshot restores whole.
cp "$T/orig9" "$STORE/$k9"
snap_restore "$URL" s1 good
vol_equals good "$T/src"
log "ok"
