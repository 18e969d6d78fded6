#!/bin/bash
# qemu-img against attach --nbd tcp --tls-dir: info and convert (both
# ways) with --object tls-creds-x509, data read back identical; qemu-img
# without tls-creds is refused (TLS required before option GO).
export REPVOL_TEST_TLS=1
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nbdtlslib.sh"
require_cmd qemu-img

nbd_client_dir "$T/nbdc" qemu
start_repvold a zone-a
repvol create vol --size 16M --replica "${REPVOLD_ADDR[a]}"
port=$(free_port)
start_attach_tcp vol "$port" --tls-dir "$T/pki"

tls=(--object "tls-creds-x509,id=tls0,dir=$T/nbdc,endpoint=client")
img="driver=nbd,host=localhost,port=$port,tls-creds=tls0"

qemu-img info "${tls[@]}" --image-opts "$img" >"$T/info.out" 2>&1 ||
    { cat "$T/info.out" >&2; fail "qemu-img info over TLS failed"; }
grep -q "virtual size: 16 MiB" "$T/info.out" || { cat "$T/info.out" >&2; fail "qemu-img info: wrong size"; }
wait_for grep -q "client identity 'qemu'" "$T/attach-vol.log"

head -c 16M /dev/urandom > "$T/src"
qemu-img convert -n -f raw "${tls[@]}" "$T/src" --target-image-opts "$img" ||
    fail "qemu-img convert to the TLS export failed"
qemu-img convert "${tls[@]}" --image-opts "$img" -O raw "$T/back" ||
    fail "qemu-img convert from the TLS export failed"
assert_files_identical "$T/src" "$T/back"

# No tls-creds: plaintext, refused.
expect_fail_match "TLS" qemu-img info --image-opts "driver=nbd,host=localhost,port=$port"

stop_attach vol
# What qemu wrote is on the replica.
assert_files_identical "$T/src" "${REPVOLD_DIR[a]}/vol.data"
log "ok"
