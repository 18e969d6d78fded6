#!/bin/bash
# Replacing a replica: while fio writes to the attached volume, "repvol
# replica replace" builds a full copy on a new server (in another zone),
# waits until it is in sync and deletes the old replica; the new replica
# is byte-identical to the survivor and holds fio's verified data.
. "$(dirname "$0")/lib.sh"
require_cmd fio nbdcopy

start_repvold a zone-a
start_repvold b zone-b
start_repvold c zone-c
repvol create vol --size 32M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
uri=$(nbd_uri "$T/nbd.sock")
head -c 32M /dev/urandom > "$T/seed"
nbdcopy --flush "$T/seed" "$uri"

# A same-zone replacement is refused.
start_repvold d zone-a
expect_fail_match "zone" repvol replica replace vol "${REPVOLD_ADDR[b]}" "${REPVOLD_ADDR[d]}"

fio --name=w --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k --iodepth=8 \
    --offset=4M --size=4M --io_size=64M --verify=crc32c --verify_fatal=1 \
    --output="$T/fio.out" &
fio_pid=$!
repvol replica replace vol "${REPVOLD_ADDR[b]}" "${REPVOLD_ADDR[c]}" > "$T/replace.out" ||
    { cat "$T/replace.out" >&2; fail "replace failed"; }
cat "$T/replace.out" >&2
wait "$fio_pid" || { cat "$T/fio.out" >&2; fail "fio failed during the replacement"; }
grep -q "is in sync" "$T/replace.out" || fail "replace did not wait for the copy"
[[ ! -e ${REPVOLD_DIR[b]}/vol.data ]] || fail "the old replica was not deleted"
repvol status vol --json | python3 -c '
import json, sys
v = json.load(sys.stdin)
addrs = [r["addr"] for r in v["replicas"]]
assert sys.argv[1] in addrs and sys.argv[2] not in addrs, addrs
assert all(r["state"] == "in-sync" for r in v["replicas"]), v["replicas"]
' "${REPVOLD_ADDR[c]}" "${REPVOLD_ADDR[b]}" || fail "registry does not show the replacement"
stop_attach vol
assert_files_identical "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[c]}/vol.data"
cmp <(head -c 4M "$T/seed") <(head -c 4M "${REPVOLD_DIR[c]}/vol.data") ||
    fail "the copy lost the seeded data"
log "ok"
