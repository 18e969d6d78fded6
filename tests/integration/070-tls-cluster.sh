#!/bin/bash
# Two repvold serving TLS 1.3 only (X.509, --admins admin): create,
# attach, fio verify, detach over TLS; then every bad credential is
# refused at connect with a line naming the cause, and none of them
# reaches the volume (the replicas still hold exactly what fio wrote);
# a non-admin identity may attach but not delete; a client without TLS
# credentials refuses a volume the registry marks TLS (no downgrade).
. "$(dirname "$0")/lib.sh"
require_cmd certtool
require_cmd fio

CERTS=$TOP/scripts/tls-certs.sh
P=$T/pki
"$CERTS" ca "$P" >/dev/null
"$CERTS" server "$P" >/dev/null
"$CERTS" client "$P" admin >/dev/null
"$CERTS" client "$P" app --out "$T/app" >/dev/null
"$CERTS" client "$P" old --out "$T/expired" --expired >/dev/null
# A client certificate from another CA, which trusts our CA for the server.
"$CERTS" ca "$T/rogue-ca" >/dev/null
"$CERTS" client "$T/rogue-ca" admin --out "$T/rogue" >/dev/null
cp "$P/ca-cert.pem" "$T/rogue/ca-cert.pem"
# Our client certificate, trusting another CA: the server is not verified.
mkdir -p "$T/wrongca"
cp "$P"/client-*.pem "$T/wrongca/"
cp "$T/rogue-ca/ca-cert.pem" "$T/wrongca/ca-cert.pem"

start_repvold a zone-a --tls-dir "$P" --admins admin --peer-log-interval 0
start_repvold b zone-b --tls-dir "$P" --admins admin --peer-log-interval 0
grep -q "TLS 1.3 only" "$T/repvold-a.log" || fail "repvold did not log its TLS mode"
if grep -q "without authentication" "$T/repvold-a.log"; then
    fail "a TLS repvold says it is unauthenticated"
fi

export REPVOL_TLS_DIR=$P
repvol create vol --size 32M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
repvol status vol --json | python3 -c 'import json,sys; assert json.load(sys.stdin)["tls"] is True' ||
    fail "the registry does not record that vol needs TLS"

start_attach vol "$T/nbd.sock"
cat > "$T/job.fio" <<JOB
[global]
ioengine=nbd
uri=$(nbd_uri "$T/nbd.sock")
rw=randwrite
bs=4k
iodepth=16
size=8M
verify=crc32c
verify_fatal=1
do_verify=1
[w]
JOB
fio --output="$T/fio.out" "$T/job.fio" || { cat "$T/fio.out" >&2; fail "fio verify over TLS failed"; }
grep -q 'err= 0' "$T/fio.out" || fail "fio reported errors"
nbdcopy "$(nbd_uri "$T/nbd.sock")" "$T/image"
stop_attach vol

# Each bad credential: refused at connect, the cause named.
expect_fail_match "on servers that require TLS" env -u REPVOL_TLS_DIR "$REPVOL" delete vol
expect_fail_match "require TLS" env -u REPVOL_TLS_DIR "$REPVOL" status vol
# ...also when the plaintext client does not know the volume needs TLS.
expect_fail_match "requires TLS" env -u REPVOL_TLS_DIR "$REPVOL" create other --size 8M \
    --replica "${REPVOLD_ADDR[a]}"
expect_fail_match "expired" repvol --tls-dir "$T/expired" delete vol
expect_fail_match "CA is unknown" repvol --tls-dir "$T/rogue" delete vol
expect_fail_match "server's certificate is not accepted.*issuer is unknown" \
    repvol --tls-dir "$T/wrongca" delete vol
expect_fail_match "nosuch.psk: No such file" repvol --tls-psk "$T/nosuch.psk" delete vol
expect_fail_match "ca-cert.pem: No such file" repvol --tls-dir "$T" delete vol
grep -q "certificate is NOT trusted. The certificate chain uses expired certificate" "$T/repvold-a.log" ||
    fail "repvold did not log the expired certificate"
grep -q "plaintext client refused" "$T/repvold-a.log" || fail "repvold did not log the plaintext client"

# Authorization: app may attach and do I/O, not delete.
expect_fail_match "permission denied: app may not delete vol on a" \
    repvol --tls-dir "$T/app" delete vol
start_attach vol "$T/nbd.sock" --tls-dir "$T/app"
nbdcopy "$(nbd_uri "$T/nbd.sock")" "$T/image.app"
assert_files_identical "$T/image" "$T/image.app"
stop_attach vol
grep -q "permission denied: app may not" "$T/repvold-a.log" || fail "no permission log line"

# Nothing refused reached the volume: both replicas hold what fio wrote.
stop_repvold a
stop_repvold b
assert_files_identical "$T/image" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/image" "${REPVOLD_DIR[b]}/vol.data"

# repvold refuses bad TLS options at start, naming the file.
expect_fail_match "server-cert.pem: No such file" "$REPVOLD" --data-dir "$T/a" \
    --listen 127.0.0.1:1 --tls-dir "$T/app"
expect_fail_match "needs --tls-dir or --tls-psk" "$REPVOLD" --data-dir "$T/a" \
    --listen 127.0.0.1:1 --admins admin
log "ok"
