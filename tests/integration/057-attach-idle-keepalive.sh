#!/bin/bash
# An attached volume that nobody uses for longer than the servers' idle
# timeout (--idle-timeout 2) stays attached and working: its replica
# connections ping, so they are the same TCP connections afterwards, no
# replica is lost or degraded, and data written before the idle spell
# reads back, as does data written after it, on both replicas.  Meanwhile
# plain connections opened alongside (one per server, silent after HELLO)
# are closed by the same servers, twice in a row: the spell was at least
# two timeouts long.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy python3 ss

start_repvold a zone-a --idle-timeout 2
start_repvold b zone-b --idle-timeout 2
repvol create vol --size 8M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
uri=$(nbd_uri "$T/nbd.sock")
head -c 8M /dev/urandom >"$T/src"
nbdcopy --flush "$T/src" "$uri"

# The attach's established connections to a server: its local ports.
attach_conns() {
    ss -Htnp state established "( dport = :$1 )" |
        grep "pid=${ATTACH_PID[vol]}," | awk '{print $3}' | sort
}
before_a=$(attach_conns "${REPVOLD_PORT[a]}")
before_b=$(attach_conns "${REPVOLD_PORT[b]}")
[[ -n $before_a && -n $before_b ]] || fail "no replica connections of the attach found (ss)"
log "attach connections: a $before_a, b $before_b"

log "idle: two canary connections in a row closed by each server meanwhile"
PYTHONPATH="$TOP/tests/tools" python3 - "${REPVOLD_PORT[a]}" "${REPVOLD_PORT[b]}" <<'PY'
import sys, time
from rvproto import closed, connect
ports = [int(p) for p in sys.argv[1:]]
t0 = time.time()
for round in range(2):
    canaries = [connect("127.0.0.1", p, "canary", epoch=1) for p in ports]
    for s in canaries:
        s.settimeout(15)
        assert closed(s), "a canary was not closed within 15 s"
print("idle for %.1f s" % (time.time() - t0))
assert time.time() - t0 >= 4, "the idle spell was shorter than two timeouts"
PY

after_a=$(attach_conns "${REPVOLD_PORT[a]}")
after_b=$(attach_conns "${REPVOLD_PORT[b]}")
assert_eq "$before_a" "$after_a" "attach's connections to a after the idle spell"
assert_eq "$before_b" "$after_b" "attach's connections to b after the idle spell"
if grep -Ei "connection lost|out of sync|failed" "$T/attach-vol.log"; then
    fail "the attach lost a replica while idle"
fi
all_in_sync vol || fail "replicas not in sync after the idle spell"

nbdcopy "$uri" "$T/back"
assert_files_identical "$T/src" "$T/back"
head -c 1M /dev/urandom >"$T/patch"
dd if="$T/patch" of="$T/src" bs=1M seek=3 conv=notrunc status=none
nbdcopy --flush "$T/src" "$uri"
nbdcopy "$uri" "$T/back2"
assert_files_identical "$T/src" "$T/back2"
stop_attach vol
assert_files_identical "$T/src" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/src" "${REPVOLD_DIR[b]}/vol.data"
grep -q "closing connection: idle" "$T/repvold-a.log" || fail "repvold a closed no idle connection"
log "ok"
