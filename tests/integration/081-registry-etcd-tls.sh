#!/bin/bash
# The etcd registry over https: etcd members that serve TLS only and
# require a client certificate (--client-cert-auth) signed by the CA of
# the process's --tls-dir / $REPVOL_TLS_DIR, whose ca-cert.pem,
# client-cert.pem and client-key.pem the registry hands to libcurl.  The
# conformance suite passes over https; a volume's life on TLS servers
# with its record in etcd; without credentials, or with a certificate of
# another CA, every call fails naming the endpoint and the cause.
REPVOL_TEST_TLS=1      # lib.sh: $T/pki (ca, server, client "admin"), REPVOL_TLS_DIR
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/etcdlib.sh"
require_cmd nbdcopy nbdinfo curl
require_etcd
CONFORM=$BUILD/tests/test_registry_conformance
[[ -x $CONFORM ]] || fail "$CONFORM not built (make all builds it)"

ETCD_TLS_DIR=$T/pki
start_etcd_cluster 3
URL=etcd://$ETCD_HOSTS/tls-$$
export REPVOL_REGISTRY=$URL

log "conformance suite over https against $URL"
"$CONFORM" "$URL" >&2 || fail "conformance suite failed over https"

start_repvold a zone-a
start_repvold b zone-b
repvol create vol1 --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
head -c 16M /dev/urandom > "$T/src"
start_attach vol1 "$T/nbd.sock"
nbdcopy --flush "$T/src" "$(nbd_uri "$T/nbd.sock")"
stop_attach vol1
start_attach vol1 "$T/nbd.sock"
nbdcopy "$(nbd_uri "$T/nbd.sock")" "$T/back"
stop_attach vol1
assert_files_identical "$T/src" "$T/back"
repvol status vol1 --json | python3 -c '
import json, sys
v = json.load(sys.stdin); v = v[0] if isinstance(v, list) else v
assert v["tls"] and v["epoch"] == 3 and not v["attachment"]["attached"], v' ||
    fail "status: not a TLS volume detached at epoch 3"
[[ -n $(etcdctl_ get --keys-only "/tls-$$/volumes/vol1") ]] || fail "no record in etcd"

# No credentials: plain http to a TLS-only member is refused, by name.
expect_fail_match "etcd ${ETCD_CLIENT[1]//./\\.}: empty reply \\(a member that serves only TLS\\? give --tls-dir\\)" \
    env -u REPVOL_TLS_DIR "$REPVOL" list
# A client certificate from another CA is refused by the members.
"$TOP/scripts/tls-certs.sh" ca "$T/other" >/dev/null
"$TOP/scripts/tls-certs.sh" client "$T/other" intruder >/dev/null
cp "$T/pki/ca-cert.pem" "$T/other/ca-cert.pem"     # trusts the real servers
# TLS 1.3 checks the client's certificate after the client has sent its
# request: the member's alert ("bad certificate") or, when it closes
# before reading the request, a reset is what the client sees; the
# member's log says why either way.
expect_fail_match "etcd ${ETCD_CLIENT[1]//./\\.}: .*(bad certificate|Connection reset by peer)" \
    env REPVOL_TLS_DIR="$T/other" "$REPVOL" list
grep -q 'failed to verify client certificate' "$T"/etcd/e*.log ||
    fail "no etcd member says it refused the foreign client certificate"
repvol delete vol1
log "ok"
