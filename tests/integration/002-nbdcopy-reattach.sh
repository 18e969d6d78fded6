#!/bin/bash
# Data written through NBD (nbdcopy) reads back identical after detach and
# re-attach, and both replicas' data files hold exactly those bytes.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy nbdinfo

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 32M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"

head -c 32M /dev/urandom > "$T/src"
start_attach vol "$T/nbd.sock"
size=$(nbdinfo --size "$(nbd_uri "$T/nbd.sock")")
assert_eq $((32 << 20)) "$size" "export size"
nbdcopy --flush "$T/src" "$(nbd_uri "$T/nbd.sock")"
stop_attach vol

start_attach vol "$T/nbd.sock"
nbdcopy "$(nbd_uri "$T/nbd.sock")" "$T/back"
stop_attach vol
assert_files_identical "$T/src" "$T/back"

# The replicas hold the volume's bytes at their offsets.
assert_files_identical "$T/src" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/src" "${REPVOLD_DIR[b]}/vol.data"

# Every attach took a new epoch.
epoch=$(repvol status vol --json | python3 -c 'import json,sys; v=json.load(sys.stdin); v=v[0] if isinstance(v,list) else v; print(v["epoch"])')
assert_eq 3 "$epoch" "epoch after two attaches"
log "ok"
