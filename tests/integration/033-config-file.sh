#!/bin/bash
# The site file ($REPVOL_CONFIG here, /etc/repvol/repvol.conf by
# default): repvold takes its zone and TLS credentials from it, repvol
# its registry, run directory and TLS credentials; a flag beats the
# environment, which beats the file; an unknown key stops every program
# with the file and line named, before anything is done.
. "$(dirname "$0")/lib.sh"
require_cmd certtool

CERTS=$TOP/scripts/tls-certs.sh
"$CERTS" ca "$T/pki" >/dev/null
"$CERTS" server "$T/pki" >/dev/null
"$CERTS" client "$T/pki" admin >/dev/null
mkdir -p -m 700 "$T/run"
cat > "$T/repvol.conf" <<CONF
# the site's defaults
registry = $T/reg-file
tls-dir  = $T/pki
run-dir  = $T/run
zone     = zone-f
CONF
export REPVOL_CONFIG=$T/repvol.conf
unset REPVOL_REGISTRY REPVOL_RUN_DIR REPVOL_TLS_DIR REPVOL_TLS_PSK

start_repvold a                # zone and TLS from the file
start_repvold b zone-b         # the flag beats the file's zone
grep -q "zone zone-f" "$T/repvold-a.log" || fail "repvold a did not take its zone from the file"
grep -q "zone zone-b" "$T/repvold-b.log" || fail "--zone did not beat the file"
grep -q "TLS 1.3 only, X.509 from $T/pki" "$T/repvold-a.log" || fail "repvold a did not take TLS from the file"

repvol create vol --size 8M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
[[ -f $T/reg-file/vol.json ]] || fail "the volume is not in the file's registry"
repvol status vol --json | python3 -c 'import json,sys; assert json.load(sys.stdin)["tls"] is True' ||
    fail "the file's tls-dir was not used to create over TLS"
start_attach vol "$T/nbd.sock"
ls "$T"/run/*.ctl >/dev/null 2>&1 || fail "the control socket is not in the file's run-dir"
stop_attach vol

# The environment beats the file, a flag beats both.
mkdir -p "$T/reg-env" "$T/reg-flag"
REPVOL_REGISTRY=$T/reg-env repvol list | grep -q "^vol " && fail "REPVOL_REGISTRY did not beat the file"
repvol --registry "$T/reg-flag" list | grep -q "^vol " && fail "--registry did not beat the file"
repvol list | grep -q "^vol " || fail "the file's registry is not the default"

# Errors: the file and the line, and nothing done.
printf 'registry = %s\nregistri = typo\n' "$T/reg-file" > "$T/bad.conf"
REPVOL_CONFIG=$T/bad.conf expect_fail_match "bad.conf:2: unknown key \"registri\"" "$REPVOL" list
REPVOL_CONFIG=$T/bad.conf expect_fail_match "bad.conf:2: unknown key" "$REPVOLD" --data-dir "$T/c" --listen 127.0.0.1:1
[[ ! -e $T/c ]] || fail "repvold made its data dir despite a bad config file"
REPVOL_CONFIG=$T/none.conf expect_fail_match "none.conf: No such file or directory \(from \\\$REPVOL_CONFIG\)" "$REPVOL" list
