#!/bin/bash
# repvol resize: a volume grows online under fio verify (every replica
# grows, thin stays thin, the registry records it, a new NBD connection
# sees it; data before the old end intact, the new space reads zero and
# takes writes); grows again with one replica down (it is grown and
# caught up when it comes back, and the replicas end byte-identical);
# grows detached with --reserve (the new range allocated); shrinking is
# refused while attached and without --allow-shrink, and done detached
# with it, keeping the data before the new end.
. "$(dirname "$0")/lib.sh"
require_cmd fio nbdcopy nbdinfo

M=$((1 << 20))
start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 64M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock" --timeout 3
uri=$(nbd_uri "$T/nbd.sock")
head -c 64M /dev/urandom > "$T/seed"
nbdcopy --flush "$T/seed" "$uri"

size_of() { nbdinfo --size "$uri"; }
registry_size() { repvol status vol --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])'; }
allocated() { echo $(( $(stat -c '%b * %B' "$1") )); }

# 1. Grow 64 -> 128 MiB while fio writes and verifies [32, 48) MiB.
fio --name=load --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k \
    --iodepth=16 --offset=32M --size=16M --io_size=48M --verify=crc32c \
    --verify_fatal=1 --output="$T/fio.out" &
fio_pid=$!
python3 -c 'import time; time.sleep(0.3)'      # into the run
repvol resize vol --size 128M > "$T/resize.out" || fail "online resize failed"
cat "$T/resize.out" >&2
wait "$fio_pid" || { cat "$T/fio.out" >&2; fail "fio failed across the resize"; }
grep -q 'err= 0' "$T/fio.out" || fail "fio reported errors"
grep -q '^resized vol from 64 MiB to 128 MiB (online)' "$T/resize.out" ||
    fail "resize said: $(cat "$T/resize.out")"
assert_eq "$(size_of)" $((128 * M)) "size seen by a new NBD connection"
assert_eq "$(registry_size)" $((128 * M)) "size in the registry"
for s in a b; do
    assert_eq "$(stat -c %s "${REPVOLD_DIR[$s]}/vol.data")" $((128 * M)) "replica $s's data file"
    alloc=$(allocated "${REPVOLD_DIR[$s]}/vol.data")
    ((alloc < 80 * M)) || fail "replica $s is no longer thin: $alloc bytes allocated"
done
nbdcopy "$uri" "$T/after"
cmp -n $((32 * M)) "$T/seed" "$T/after" || fail "data before the fio range changed"
cmp -i $((48 * M)) -n $((16 * M)) "$T/seed" "$T/after" || fail "data after the fio range changed"
cmp -i $((64 * M)):0 -n $((64 * M)) "$T/after" /dev/zero || fail "the new space does not read zero"
fio --name=tail --ioengine=nbd --uri="$uri" --rw=randwrite --bs=64k \
    --iodepth=8 --offset=100M --size=8M --verify=crc32c --verify_fatal=1 \
    --output="$T/fio-tail.out" || { cat "$T/fio-tail.out" >&2; fail "writing the new space failed"; }
grep -q "resized" <(repvol events --volume vol) || fail "no resized event"

# 2. Grow with replica b down: b is degraded, then grown and caught up.
stop_repvold b KILL
repvol resize vol --size 192M || fail "resize with one replica down failed"
fio --name=deg --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k \
    --iodepth=16 --offset=150M --size=8M --verify=crc32c --verify_fatal=1 \
    --output="$T/fio-deg.out" || { cat "$T/fio-deg.out" >&2; fail "writing the grown volume degraded failed"; }
start_repvold b zone-b
wait_for -t 60 all_in_sync vol
assert_eq "$(stat -c %s "${REPVOLD_DIR[b]}/vol.data")" $((192 * M)) "replica b after its catch-up"
grep -q 'volume vol resized 128 MiB -> 192 MiB' "$T/repvold-b.log" ||
    fail "b was not grown on its way back: $(grep resized "$T/repvold-b.log")"
grep -q 'caught up' "$T/attach-vol.log" || fail "no catch-up of b after the grow"

# 3. Shrinking an attached volume is refused and changes nothing.
expect_fail_match 'shrinking needs it detached' "$REPVOL" resize vol --size 96M --allow-shrink
assert_eq "$(registry_size)" $((192 * M)) "size after a refused shrink"
nbdcopy "$uri" "$T/before-detach"
stop_attach vol
assert_files_identical "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data"

# 4. Detached: grow with --reserve (the new 64 MiB allocated), then
#    shrink, which needs --allow-shrink.
before=$(allocated "${REPVOLD_DIR[a]}/vol.data")
repvol resize vol --size 256M --reserve --json > "$T/grow.json" || fail "detached grow failed"
python3 - "$T/grow.json" <<'PY' || fail "resize --json: $(cat "$T/grow.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["how"] == "detached" and d["resized"] and d["size"] == 256 << 20, d
assert len(d["replicas"]) == 2 and all(r["resized"] for r in d["replicas"]), d
PY
after=$(allocated "${REPVOLD_DIR[a]}/vol.data")
((after >= before + 64 * M)) || fail "--reserve did not allocate the new range ($before -> $after)"
expect_fail_match 'give --allow-shrink' "$REPVOL" resize vol --size 96M
expect_fail_match 'not a multiple' "$REPVOL" resize vol --size 100000
repvol resize vol --size 96M --allow-shrink || fail "detached shrink failed"
for s in a b; do
    assert_eq "$(stat -c %s "${REPVOLD_DIR[$s]}/vol.data")" $((96 * M)) "replica $s after the shrink"
done
start_attach vol "$T/nbd.sock"
assert_eq "$(size_of)" $((96 * M)) "size after the shrink"
nbdcopy "$uri" "$T/shrunk"
cmp -n $((96 * M)) "$T/before-detach" "$T/shrunk" || fail "data before the new end changed in the shrink"
stop_attach vol
log "ok"
