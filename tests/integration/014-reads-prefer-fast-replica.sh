#!/bin/bash
# Reads go to the replica that answers fastest: with replica b behind a
# link that adds 10 ms each way (a distant zone), a read workload draws
# nearly all its data from replica a.  The data read is still correct.
. "$(dirname "$0")/lib.sh"
require_cmd fio

start_repvold a zone-a
start_repvold b zone-b
slow_port=$(free_port)
start_bg "$T/slowlink.log" python3 "$TOP/tests/tools/slowlink.py" \
    "$slow_port" "${REPVOLD_PORT[b]}" 10 "$T/slow.bytes"
wait_for port_listening "$slow_port"

# The slow replica is listed first, so a picker that ignored latency
# would read from it.
repvol create vol --size 16M --replica "127.0.0.1:$slow_port" --replica "${REPVOLD_ADDR[a]}"
start_attach vol "$T/nbd.sock"
uri=$(nbd_uri "$T/nbd.sock")
fio --name=fill --ioengine=nbd --uri="$uri" --rw=write --bs=256k --iodepth=4 \
    --size=16M --verify=crc32c --do_verify=0 --output="$T/fill.out"

before=$(cat "$T/slow.bytes")
fio --name=fill --ioengine=nbd --uri="$uri" --rw=read --bs=256k --iodepth=4 \
    --size=16M --verify=crc32c --verify_only=1 --loops=4 --output="$T/read.out" ||
    { cat "$T/read.out" >&2; fail "read verify failed"; }
after=$(cat "$T/slow.bytes")
read_bytes=$((4 * 16 * 1024 * 1024))
from_slow=$((after - before))
log "read $read_bytes bytes, $from_slow of them through the slow replica"
# Exploration sends about 1 read in 32 to the other replica; allow 10%.
((from_slow * 10 < read_bytes)) || fail "reads did not avoid the slow replica"
stop_attach vol
assert_files_identical "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
