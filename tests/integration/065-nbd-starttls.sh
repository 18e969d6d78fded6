#!/bin/bash
# attach --nbd tcp --tls-dir requires NBD STARTTLS (nbdkit's
# --tls=require --tls-verify-peer): nbdinfo over nbds:// works and the
# attach logs the client's identity, plaintext nbd:// is refused,
# nbdcopy writes 16M of random data over TLS and reads it back, a client
# certificate from another CA is refused; missing server credentials
# fail the attach in one line; unix-socket exports and the control
# socket are created 0600.
export REPVOL_TEST_TLS=1
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nbdtlslib.sh"
require_cmd nbdinfo nbdcopy

export REPVOL_RUN_DIR=$T/run      # the control socket's directory, made by attach
nbd_client_dir "$T/nbdc"
start_repvold a zone-a
repvol create vol --size 32M --replica "${REPVOLD_ADDR[a]}"

# Server credentials missing: one clear line, nothing attached.
mkdir "$T/clientonly"
cp "$T/pki/ca-cert.pem" "$T/pki/client-cert.pem" "$T/pki/client-key.pem" "$T/clientonly/"
chmod 600 "$T/clientonly/client-key.pem"
nport=$(free_port)
expect_fail_match "server-cert.pem" repvol attach vol --nbd "tcp:127.0.0.1:$nport" --tls-dir "$T/clientonly"
assert_eq 1 "$(grep -c . <<<"$EXPECT_STDERR")" "lines of the missing-credentials error"

port=$(free_port)
start_attach_tcp vol "$port" --tls-dir "$T/pki"
uri=$(nbds_uri "$port" "$T/nbdc")

size=$(nbdinfo --size "$uri") || fail "nbdinfo over nbds:// failed"
assert_eq $((32 << 20)) "$size" "export size over TLS"
wait_for grep -q "client identity 'nbduser'" "$T/attach-vol.log" ||
    fail "the attach did not log the NBD client's TLS identity"

# Plaintext: every option is answered TLS_REQD, which libnbd reports.
if nbdinfo --size "nbd://localhost:$port" >"$T/plain.out" 2>&1; then
    fail "plaintext nbd:// was served by a TLS-only export"
fi
grep -qi "not supported\|TLS" "$T/plain.out" || { cat "$T/plain.out" >&2; fail "unexpected plaintext failure"; }
if nbdinfo --list "nbd://localhost:$port" >"$T/plainlist.out" 2>&1; then
    fail "plaintext NBD_OPT_LIST was answered"
fi

# nbdcopy over TLS, both ways.
head -c 16M /dev/urandom > "$T/src"
nbdcopy --flush "$T/src" "$uri" || fail "nbdcopy to nbds:// failed"
nbdcopy "$uri" "$T/back" || fail "nbdcopy from nbds:// failed"
head -c 16M "$T/back" > "$T/back16"
assert_files_identical "$T/src" "$T/back16"

# A client certificate from another CA (same DN, so the client offers
# it): refused by the server, which says why; the export is unharmed.
"$TOP/scripts/tls-certs.sh" ca "$T/rogue" >/dev/null
"$TOP/scripts/tls-certs.sh" client "$T/rogue" nbduser >/dev/null
mkdir "$T/bad"
cp "$T/pki/ca-cert.pem" "$T/bad/"
cp "$T/rogue/client-cert.pem" "$T/rogue/client-key.pem" "$T/bad/"
if nbdinfo --size "$(nbds_uri "$port" "$T/bad")" >"$T/rogue.out" 2>&1; then
    fail "a client certificate from another CA was accepted"
fi
wait_for grep -q "TLS handshake after NBD_OPT_STARTTLS failed: the client.s certificate is not accepted" "$T/attach-vol.log" ||
    fail "the attach did not log why it refused the rogue certificate"
nbdcopy "$uri" "$T/back2" || fail "nbdcopy after the refusals failed"
head -c 16M "$T/back2" | cmp -s - "$T/src" || fail "data changed after the refusals"

stop_attach vol
mv "$T/attach-vol.log" "$T/attach-tcp.log"

# Credentials from $REPVOL_TLS_DIR alone (lib.sh exports it) turn on
# STARTTLS too: TLS to the replicas never comes with a plaintext port.
start_attach_tcp vol "$port"
grep -q "requires TLS" "$T/attach-vol.log" || fail "the attach did not say its NBD port requires TLS"
if nbdinfo --size "nbd://localhost:$port" >"$T/plainenv.out" 2>&1; then
    fail "plaintext nbd:// was served with TLS credentials from the environment"
fi
assert_eq $((32 << 20)) "$(nbdinfo --size "$uri")" "export size over TLS (environment credentials)"
stop_attach vol
mv "$T/attach-vol.log" "$T/attach-tcp-env.log"

# A unix-socket export (with --tls-dir: it stays plaintext) is 0600,
# and so is the control socket.
start_attach vol "$T/nbd.sock" --tls-dir "$T/pki"
assert_eq 600 "$(stat -c %a "$T/nbd.sock")" "NBD unix socket mode"
assert_eq 700 "$(stat -c %a "$T/run")" "control socket directory mode"
ctls=("$T"/run/*.ctl)
[[ -S ${ctls[0]} ]] || fail "no control socket in $T/run"
assert_eq 600 "$(stat -c %a "${ctls[0]}")" "control socket mode"
nbdcopy "$(nbd_uri "$T/nbd.sock")" "$T/back3"
head -c 16M "$T/back3" | cmp -s - "$T/src" || fail "unix-socket read differs"
stop_attach vol
log "ok"
