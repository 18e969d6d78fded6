#!/bin/bash
# NBD clients that do not negotiate block sizes (issue 16 item 11):
# NBD_OPT_EXPORT_NAME and NBD_OPT_GO without NBD_INFO_BLOCK_SIZE get
# 1 KiB, 512-byte and 1-byte reads and writes at odd offsets on a
# 4096-byte-block volume served by read-modify-write, overlapping
# unaligned writes (pipelined, and from two connections into the same
# blocks) in order, unaligned write-zeroes, a 36 MiB write and a 40 MiB
# read; past the end still fails (EINVAL / ENOSPC), and a client that
# did negotiate keeps to the block size (EINVAL).  tests/tools/nbdloose.py
# checks every read against a local model of the volume; here the
# replicas must agree with it and with each other byte for byte, while
# attached (repvol verify) and after detach (the data files).  Closing a
# connection between requests is a normal close: nothing about "the
# middle of a frame" in the log.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 64M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
head -c 64M /dev/urandom > "$T/seed"
nbdcopy --flush "$T/seed" "$(nbd_uri "$T/nbd.sock")"

python3 "$TOP/tests/tools/nbdloose.py" "$T/nbd.sock" "$T/seed" "$T/model" ||
    fail "an unaligned client saw wrong data or errors"

# What a fresh (negotiating) client reads is the model.
nbdcopy "$(nbd_uri "$T/nbd.sock")" "$T/back"
assert_files_identical "$T/model" "$T/back"
repvol verify vol > "$T/verify.out" 2>&1 || { cat "$T/verify.out" >&2; fail "repvol verify failed"; }
grep -q "differs" "$T/verify.out" && { cat "$T/verify.out" >&2; fail "the replicas differ"; }
if grep -E "middle of a frame" "$T/attach-vol.log"; then
    fail "a close between requests was logged as a broken frame"
fi
stop_attach vol
assert_files_identical "$T/model" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/model" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
