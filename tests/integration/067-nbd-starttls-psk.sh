#!/bin/bash
# attach --nbd tcp --tls-psk FILE: NBD STARTTLS with a pre-shared key
# (the replication link uses the same file).  nbdinfo and nbdcopy over
# nbds://USER@...?tls-psk-file=, qemu-img with tls-creds-psk; the
# attach logs the PSK user; a wrong key and an unknown user are refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nbdtlslib.sh"
require_cmd nbdinfo nbdcopy qemu-img

mkdir -p "$T/psk" "$T/wrong"
psk=$T/psk/keys.psk               # qemu wants exactly this name in its dir
"$TOP/scripts/tls-certs.sh" psk "$psk" admin >/dev/null   # first line: the CLI's
"$TOP/scripts/tls-certs.sh" psk "$psk" nbduser >/dev/null
"$TOP/scripts/tls-certs.sh" psk "$T/wrong/keys.psk" nbduser >/dev/null
export REPVOL_TLS_PSK=$psk

start_repvold a zone-a --tls-psk "$psk"
repvol create vol --size 16M --replica "${REPVOLD_ADDR[a]}"
port=$(free_port)
start_attach_tcp vol "$port" --tls-psk "$psk"
uri="nbds://nbduser@localhost:$port?tls-psk-file=$psk"

size=$(nbdinfo --size "$uri") || fail "nbdinfo over PSK failed"
assert_eq $((16 << 20)) "$size" "export size over PSK"
wait_for grep -q "client identity 'nbduser'" "$T/attach-vol.log"

head -c 16M /dev/urandom > "$T/src"
nbdcopy --flush "$T/src" "$uri" || fail "nbdcopy to the PSK export failed"
nbdcopy "$uri" "$T/back" || fail "nbdcopy from the PSK export failed"
assert_files_identical "$T/src" "$T/back"

# qemu: tls-creds-psk reads DIR/keys.psk.
tls=(--object "tls-creds-psk,id=tls0,dir=$T/psk,username=nbduser,endpoint=client")
qemu-img convert "${tls[@]}" --image-opts "driver=nbd,host=localhost,port=$port,tls-creds=tls0" \
    -O raw "$T/qback" || fail "qemu-img convert over PSK failed"
assert_files_identical "$T/src" "$T/qback"

# Wrong key, unknown user, plaintext: refused.
expect_fail nbdinfo --size "nbds://nbduser@localhost:$port?tls-psk-file=$T/wrong/keys.psk"
"$TOP/scripts/tls-certs.sh" psk "$T/wrong/other.psk" mallory >/dev/null
expect_fail nbdinfo --size "nbds://mallory@localhost:$port?tls-psk-file=$T/wrong/other.psk"
expect_fail qemu-img info --object "tls-creds-psk,id=tls0,dir=$T/wrong,username=nbduser,endpoint=client" \
    --image-opts "driver=nbd,host=localhost,port=$port,tls-creds=tls0"
expect_fail nbdinfo --size "nbd://localhost:$port"
wait_for grep -q "TLS handshake after NBD_OPT_STARTTLS failed" "$T/attach-vol.log"

# The export still serves the right data after the refusals.
nbdcopy "$uri" "$T/back2"
assert_files_identical "$T/src" "$T/back2"
stop_attach vol
log "ok"
