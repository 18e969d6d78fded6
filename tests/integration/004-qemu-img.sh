#!/bin/bash
# qemu-img as the NBD client: convert an image into the volume, compare,
# and check the replicas against it.
. "$(dirname "$0")/lib.sh"
require_cmd qemu-img

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
uri=$(nbd_uri "$T/nbd.sock")

# A partly sparse source: random data with a hole in the middle.
head -c 16M /dev/urandom > "$T/src.raw"
dd if=/dev/zero of="$T/src.raw" bs=1M seek=4 count=4 conv=notrunc status=none
qemu-img info "$uri" | tee "$T/info" >&2
grep -q 'virtual size: 16 MiB' "$T/info" || fail "qemu-img sees the wrong size"
qemu-img convert -n -f raw -O raw "$T/src.raw" "$uri"
qemu-img compare -f raw -F raw "$T/src.raw" "$uri" || fail "qemu-img compare differs"
stop_attach vol
assert_files_identical "$T/src.raw" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/src.raw" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
