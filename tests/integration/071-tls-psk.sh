#!/bin/bash
# Pre-shared keys instead of a CA: repvold --tls-psk FILE accepts every
# user in FILE; a client presents the first key of its own file.  The
# right key works end to end (create, attach, data read back); a wrong
# key, an unknown user and an X.509 client are refused at connect, each
# with its cause named, and the server logs why.
. "$(dirname "$0")/lib.sh"
require_cmd psktool

CERTS=$TOP/scripts/tls-certs.sh
"$CERTS" psk "$T/server.psk" admin >/dev/null
"$CERTS" psk "$T/server.psk" app >/dev/null
grep "^admin:" "$T/server.psk" > "$T/admin.psk"
grep "^app:" "$T/server.psk" > "$T/app.psk"
"$CERTS" psk "$T/wrong.psk" admin >/dev/null      # same user, another key
"$CERTS" psk "$T/stranger.psk" stranger >/dev/null
[[ $(stat -c %a "$T/server.psk") == 600 ]] || fail "tls-certs.sh psk made a key file others can read"

start_repvold a zone-a --tls-psk "$T/server.psk" --admins admin
start_repvold b zone-b --tls-psk "$T/server.psk" --admins admin
grep -q "TLS 1.3 only, PSK from" "$T/repvold-a.log" || fail "repvold did not log PSK mode"

export REPVOL_TLS_PSK=$T/admin.psk
repvol create vol --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
head -c 16M /dev/urandom > "$T/in.img"
nbdcopy "$T/in.img" "$(nbd_uri "$T/nbd.sock")"
nbdcopy "$(nbd_uri "$T/nbd.sock")" "$T/out.img"
assert_files_identical "$T/in.img" "$T/out.img"
stop_attach vol

expect_fail_match "PSK user or key is not|refused the TLS handshake" \
    repvol --tls-psk "$T/wrong.psk" delete vol
expect_fail_match "PSK user or key is not|refused the TLS handshake" \
    repvol --tls-psk "$T/stranger.psk" delete vol
"$CERTS" ca "$T/pki" >/dev/null
"$CERTS" client "$T/pki" admin >/dev/null
expect_fail_match "other credentials|refused the TLS handshake" \
    env -u REPVOL_TLS_PSK "$REPVOL" --tls-dir "$T/pki" delete vol
expect_fail_match "permission denied: app may not delete vol" \
    repvol --tls-psk "$T/app.psk" delete vol
printf 'admin:nothex\n' > "$T/bad.psk"
expect_fail_match "bad.psk line 1: not \"username:hexkey\"" repvol --tls-psk "$T/bad.psk" status vol
grep -q "TLS handshake failed" "$T/repvold-a.log" || fail "repvold did not log the refused handshakes"

stop_repvold a
stop_repvold b
assert_files_identical "$T/in.img" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/in.img" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
