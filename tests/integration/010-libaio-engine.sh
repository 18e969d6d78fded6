#!/bin/bash
# The libaio fallback engine (used where io_uring is barred) carries a
# full fio verify run, with one replica on each engine; the replicas end
# byte-identical.
. "$(dirname "$0")/lib.sh"
require_cmd fio

start_repvold a zone-a --io-engine libaio
start_repvold b zone-b --io-engine io_uring
grep -qi 'libaio' "$T/repvold-a.log" || fail "repvold a does not say it uses libaio"
grep -qi 'io_uring' "$T/repvold-b.log" || fail "repvold b does not say it uses io_uring"
repvol create vol --size 32M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
fio --name=v --ioengine=nbd --uri="$(nbd_uri "$T/nbd.sock")" --rw=randrw \
    --bs=4k --iodepth=16 --size=32M --io_size=16M --verify=crc32c \
    --verify_fatal=1 --output="$T/fio.out" ||
    { cat "$T/fio.out" >&2; fail "fio verify failed"; }
stop_attach vol
assert_files_identical "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
