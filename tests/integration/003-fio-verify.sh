#!/bin/bash
# fio through the NBD socket at depth 32, four jobs on four connections,
# random writes with verify=crc32c, then again after re-attach (reads
# only); the two replicas end byte-identical.
. "$(dirname "$0")/lib.sh"
require_cmd fio

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 64M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"

cat > "$T/job.fio" <<JOB
[global]
ioengine=nbd
uri=$(nbd_uri "$T/nbd.sock")
rw=randwrite
bsrange=4k-64k
bs_unaligned=0
iodepth=32
size=16M
verify=crc32c
verify_fatal=1
do_verify=1
randrepeat=0

[w0]
offset=0
[w1]
offset=16M
[w2]
offset=32M
[w3]
offset=48M
JOB
fio --output="$T/fio.out" "$T/job.fio" || { cat "$T/fio.out" >&2; fail "fio verify failed"; }
grep -q 'err= 0' "$T/fio.out" || fail "fio reported errors"
stop_attach vol

# Verify again from a fresh attach: only reads.
start_attach vol "$T/nbd.sock"
sed -i 's/^do_verify=1/do_verify=1\nverify_only=1/' "$T/job.fio"
fio --output="$T/fio2.out" "$T/job.fio" || { cat "$T/fio2.out" >&2; fail "verify after re-attach failed"; }
stop_attach vol

assert_files_identical "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data"
# The files must hold data (fio wrote), not only zeroes.
[[ $(tr -d '\0' < "${REPVOLD_DIR[a]}/vol.data" | head -c 1 | wc -c) == 1 ]] ||
    fail "replica holds only zeroes"
log "ok"
