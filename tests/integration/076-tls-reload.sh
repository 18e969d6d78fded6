#!/bin/bash
# Certificates are rotated without a restart: both repvold get SIGHUP
# after their --tls-dir has been refilled from a new CA.  The attached
# volume keeps serving on the sessions it has (data checked); new
# connections need the new CA (a client of the old one is refused, with
# the cause named; one of the new is served; with both CAs in every
# ca-cert.pem, as during a rotation, both are); a reload that cannot read
# its files says so and leaves the credentials in use; the replicas end
# byte-identical.
. "$(dirname "$0")/lib.sh"
require_cmd certtool
require_cmd nbdcopy

CERTS=$TOP/scripts/tls-certs.sh
"$CERTS" ca "$T/ca1" >/dev/null
"$CERTS" server "$T/ca1" --out "$T/srv" >/dev/null
"$CERTS" client "$T/ca1" admin --out "$T/c1" >/dev/null

start_repvold a zone-a --tls-dir "$T/srv"
start_repvold b zone-b --tls-dir "$T/srv"
export REPVOL_TLS_DIR=$T/c1
repvol create vol --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
head -c 8M /dev/urandom > "$T/first"
nbdcopy --flush "$T/first" "$(nbd_uri "$T/nbd.sock")"

# Rotate: a new CA, the server's files replaced in place.
"$CERTS" ca "$T/ca2" >/dev/null
"$CERTS" server "$T/ca2" --out "$T/srv" >/dev/null
"$CERTS" client "$T/ca2" admin --out "$T/c2" >/dev/null
for s in a b; do kill -HUP "${REPVOLD_PID[$s]}"; done
for s in a b; do
    wait_for grep -q "SIGHUP: TLS credentials reloaded" "$T/repvold-$s.log" ||
        fail "repvold $s did not reload its TLS credentials"
done

# Open sessions keep working: write the second half, read it all back.
head -c 8M /dev/urandom > "$T/second"
cat "$T/first" "$T/second" > "$T/all"
nbdcopy --flush "$T/all" "$(nbd_uri "$T/nbd.sock")" || fail "the attach stopped serving after the reload"
nbdcopy "$(nbd_uri "$T/nbd.sock")" "$T/back"
assert_files_identical "$T/all" "$T/back"

# New connections: the old CA's client cannot verify the server (and
# would not be accepted); the new CA's client is served.
expect_fail_match "the server.s certificate is not accepted: .*issuer is unknown" repvol --tls-dir "$T/c1" create v1 --size 4M \
    --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
repvol --tls-dir "$T/c2" create v2 --size 4M \
    --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}" ||
    fail "a client of the new CA was not served after the reload"

# During a CA rotation every ca-cert.pem holds both CAs: a client of the
# old CA is served again (and so would be one of the new).
cat "$T/ca2/ca-cert.pem" "$T/ca1/ca-cert.pem" > "$T/srv/ca-cert.pem"
cat "$T/ca1/ca-cert.pem" "$T/ca2/ca-cert.pem" > "$T/c1/ca-cert.pem"
kill -HUP "${REPVOLD_PID[a]}" "${REPVOLD_PID[b]}"
reloads() { [[ $(grep -c "SIGHUP: TLS credentials reloaded" "$T/repvold-$1.log") -ge $2 ]]; }
for s in a b; do
    wait_for reloads "$s" 2 || fail "repvold $s did not reload the CA bundle"
done
repvol --tls-dir "$T/c1" create v1 --size 4M \
    --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}" ||
    fail "a client of the old CA was refused with both CAs trusted"
repvol --tls-dir "$T/c1" delete v1

# A reload that cannot read its files keeps the credentials in use.
rm "$T/srv/server-key.pem"
kill -HUP "${REPVOLD_PID[a]}"
wait_for grep -q "SIGHUP: TLS credentials not reloaded, the old ones stay in use: .*server-key.pem" "$T/repvold-a.log" ||
    fail "repvold a did not say why its reload failed"
pid_alive "${REPVOLD_PID[a]}" || fail "repvold a died on a failed reload"
repvol --tls-dir "$T/c2" delete v2 || fail "the credentials in use were lost by a failed reload"

repvol verify vol || fail "the replicas differ after the rotation"
stop_attach vol
log "rotation without restart: sessions kept, new CA required, failed reload harmless"
