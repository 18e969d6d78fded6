#!/bin/bash
# Many volumes on the same two servers, attached and written at the same
# time by separate attaches: every volume verifies, and every volume's
# two replicas are byte-identical (no request reaches the wrong volume).
. "$(dirname "$0")/lib.sh"
require_cmd fio

start_repvold a zone-a
start_repvold b zone-b
vols=(v1 v2 v3 v4)
for v in "${vols[@]}"; do
    repvol create "$v" --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
    start_attach "$v" "$T/$v.sock"
done

fio_pids=()
for v in "${vols[@]}"; do
    fio --name="$v" --ioengine=nbd --uri="$(nbd_uri "$T/$v.sock")" \
        --rw=randwrite --bs=4k --iodepth=32 --size=16M --verify=crc32c \
        --verify_fatal=1 --output="$T/fio-$v.out" &
    fio_pids+=($!)
done
for i in "${!vols[@]}"; do
    wait "${fio_pids[i]}" || { cat "$T/fio-${vols[i]}.out" >&2; fail "fio on ${vols[i]} failed"; }
done

for v in "${vols[@]}"; do
    stop_attach "$v"
    assert_files_identical "${REPVOLD_DIR[a]}/$v.data" "${REPVOLD_DIR[b]}/$v.data"
done
# Each volume got its own data: no two volumes are identical.
sums=$(for v in "${vols[@]}"; do sha256sum < "${REPVOLD_DIR[a]}/$v.data"; done | sort -u | wc -l)
assert_eq "${#vols[@]}" "$sums" "distinct volume contents"
log "ok"
