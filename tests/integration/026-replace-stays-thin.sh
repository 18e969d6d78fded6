#!/bin/bash
# A replacement replica of a thin volume stays thin: of a 256 MiB volume,
# 8 MiB are written in scattered 1 MiB pieces and 2 MiB more are written
# as zero bytes; "repvol replica replace" copies it to a new server,
# whose data file then has no more blocks allocated than the survivor's
# (zero regions are sent as WRITE_ZEROES and stay holes), far from the
# 256 MiB a byte-for-byte copy allocated, and is byte-identical to it.
. "$(dirname "$0")/lib.sh"
require_cmd python3

start_repvold a zone-a
start_repvold b zone-b
start_repvold c zone-c
repvol create vol --size 256M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
truncate -s 256M "$T/src"
ranges=()
for mib in 0 17 40 90 128 200 230 255; do
    head -c 1M /dev/urandom | dd of="$T/src" bs=1M seek="$mib" conv=notrunc status=none
    ranges+=("$((mib << 20)):$((1 << 20))")
done
ranges+=("$((60 << 20)):$((2 << 20))")      # zero bytes, written as data
python3 "$TOP/tests/tools/nbdrange.py" write "$T/nbd.sock" "$T/src" "${ranges[@]}" ||
    fail "writing the pieces failed"

repvol replica replace vol "${REPVOLD_ADDR[b]}" "${REPVOLD_ADDR[c]}" > "$T/replace.out" ||
    { cat "$T/replace.out" >&2; fail "replace failed"; }
grep -q "is in sync" "$T/replace.out" || fail "replace did not wait for the copy"
stop_attach vol

alloc() { echo $(( $(stat -c '%b * %B' "$1") )); }
a=$(alloc "${REPVOLD_DIR[a]}/vol.data")
c=$(alloc "${REPVOLD_DIR[c]}/vol.data")
log "allocated: survivor $((a >> 10)) KiB, replacement $((c >> 10)) KiB"
((c <= a)) || fail "the replacement allocated $c bytes, more than the survivor's $a"
((c < 16 << 20)) || fail "the replacement allocated $c bytes for 8 MiB of data: not thin"
assert_files_identical "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[c]}/vol.data"
cmp "$T/src" "${REPVOLD_DIR[c]}/vol.data" || fail "the replacement's bytes differ from what was written"
