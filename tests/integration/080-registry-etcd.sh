#!/bin/bash
# The etcd registry against a real 3-member etcd cluster on loopback:
# the registry conformance suite (the one make check-unit runs on a
# directory); values that are not records are refused with the reason;
# a volume's whole life through "repvol --registry etcd://..." on two
# replica servers; 4 concurrent updaters with the leader killed under
# them lose no update, and the member rejoins; the suite again with the
# leader killed (through the two survivors, the dead member first in the
# list); and with every
# member down, a bounded failure naming each endpoint and its cause.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/etcdlib.sh"
require_cmd nbdcopy nbdinfo curl
require_etcd

CONFORM=$BUILD/tests/test_registry_conformance
[[ -x $CONFORM ]] || fail "$CONFORM not built (make all builds it)"

start_etcd_cluster 3
PREFIX=/it-$$
URL=etcd://$ETCD_HOSTS$PREFIX

# ---- the conformance suite ---------------------------------------------
log "conformance suite against $URL"
"$CONFORM" "$URL" >&2 || fail "conformance suite failed against $URL"

# ---- what etcd holds that is not a record -------------------------------
etcdctl_ put "$PREFIX/volumes/junk" 'not json {' >/dev/null
etcdctl_ put "$PREFIX/volumes/../bad" x >/dev/null    # not a volume name
expect_fail_match "corrupt value of $PREFIX/volumes/junk" \
    repvol --registry "$URL" status junk
repvol --registry "$URL" list > "$T/list" 2>&1 || true
cat "$T/list" >&2
grep -q junk "$T/list" || fail "list does not show the unreadable record"
grep -q 'bad' "$T/list" && fail "list shows a key that is no volume name"
etcdctl_ del --prefix "$PREFIX/volumes/" >/dev/null

# ---- a volume's life through the CLI -------------------------------------
export REPVOL_REGISTRY=$URL           # every repvol below, attach included
start_repvold a zone-a
start_repvold b zone-b
repvol create vol1 --size 32M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
[[ $(etcdctl_ get --print-value-only "$PREFIX/volumes/vol1" |
     python3 -c 'import json,sys; print(json.load(sys.stdin)["name"])') == vol1 ]] ||
    fail "the record is not at $PREFIX/volumes/vol1"
[[ -z $(ls -A "$T/registry") ]] || fail "something was written to the directory registry"
repvol list | grep -q '^vol1 ' || fail "list does not show vol1"
# A valid record under another volume's key is refused.
etcdctl_ get --print-value-only "$PREFIX/volumes/vol1" | etcdctl_ put "$PREFIX/volumes/other" >/dev/null
expect_fail_match 'corrupt value of .*/volumes/other: holds volume "vol1"' repvol status other
etcdctl_ del "$PREFIX/volumes/other" >/dev/null

head -c 32M /dev/urandom > "$T/src"
start_attach vol1 "$T/nbd.sock"
repvol status vol1 --json | python3 -c '
import json, sys
v = json.load(sys.stdin); v = v[0] if isinstance(v, list) else v
assert v["attachment"]["attached"] and v["epoch"] == 2, v' ||
    fail "status does not show the attachment at epoch 2"
nbdcopy --flush "$T/src" "$(nbd_uri "$T/nbd.sock")"
stop_attach vol1
start_attach vol1 "$T/nbd.sock"
nbdcopy "$(nbd_uri "$T/nbd.sock")" "$T/back"
stop_attach vol1
assert_files_identical "$T/src" "$T/back"
repvol status vol1 | tee "$T/status" >&2
grep -q zone-b "$T/status" || fail "status does not show zone-b"
repvol status vol1 --json | python3 -c '
import json, sys
v = json.load(sys.stdin); v = v[0] if isinstance(v, list) else v
assert not v["attachment"]["attached"] and v["epoch"] == 3, v
assert all(r["state"] == "in-sync" for r in v["replicas"]), v' ||
    fail "status after two attaches: not detached at epoch 3, all in sync"

# ---- the leader dies under 4 concurrent updaters --------------------------
# The suite's 4 x 200 read-modify-write increments, the leader killed once
# they are under way: the count must still come out exact.
race_epoch_over() {   # race_epoch_over N: conf-race's epoch is above N
    local e
    e=$(etcdctl_ get --print-value-only "$PREFIX/volumes/conf-race" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["epoch"])' 2>/dev/null) || return 1
    ((e > $1))
}
REPVOL_CONFORMANCE_ONLY=test_concurrent_updaters \
    start_bg "$T/race.log" "$CONFORM" "$URL"
race=$BG_PID
wait_for -t 30 race_epoch_over 100
leader=$(etcd_leader) || fail "no etcd leader"
log "killing the leader, e$leader, under 4 updaters"
etcd_kill "$leader"
start=$(date +%s%N)
rc=0; wait_exit "$race" 120 || rc=$?
cat "$T/race.log" >&2
((rc == 0)) || fail "concurrent updaters failed (exit $rc) with the leader killed under them"
log "updaters done $(( ($(date +%s%N) - start) / 1000000 )) ms after the kill; no update lost"
etcd_start_member "$leader"
wait_for -t 30 etcd_healthy "$leader"
log "e$leader rejoined"

# ---- the leader dies -------------------------------------------------------
leader=$(etcd_leader) || fail "no etcd leader"
log "killing the leader, e$leader (${ETCD_CLIENT[$leader]})"
etcd_kill "$leader"
# The dead member first: every request must fail over.
hosts=${ETCD_CLIENT[$leader]}
for ((i = 1; i <= 3; i++)); do
    ((i == leader)) || hosts+=,${ETCD_CLIENT[$i]}
done
URL2=etcd://$hosts$PREFIX
start=$(date +%s%N)
repvol --registry "$URL2" status vol1 >/dev/null ||
    fail "status through the survivors failed"
log "first read after the leader's death: $(( ($(date +%s%N) - start) / 1000000 )) ms"
start=$(date +%s%N)
"$CONFORM" "$URL2" >&2 || fail "conformance suite failed with the leader dead"
log "conformance suite with the leader dead: $(( ($(date +%s%N) - start) / 1000000 )) ms"
repvol --registry "$URL2" delete vol1
repvol --registry "$URL2" list | grep -q '^vol1 ' && fail "vol1 still listed after delete"
[[ -z $(etcdctl_ get --prefix --keys-only "$PREFIX/" 2>/dev/null | grep -v '^$' | grep -v '/conf-' | grep -v '/events/' || true) ]] ||
    fail "keys left under $PREFIX after delete: $(etcdctl_ get --prefix --keys-only "$PREFIX/")"

# ---- every member down ------------------------------------------------------
for ((i = 1; i <= 3; i++)); do
    ((i == leader)) || etcd_kill "$i"
done
start=$(date +%s%N)
expect_fail_match "etcd ${ETCD_CLIENT[1]//./\\.}: connection refused" repvol --registry "$URL" list
ms=$(( ($(date +%s%N) - start) / 1000000 ))
for ((i = 2; i <= 3; i++)); do
    grep -q "etcd ${ETCD_CLIENT[$i]}: connection refused" <<<"$EXPECT_STDERR" ||
        fail "the error does not name ${ETCD_CLIENT[$i]}: $EXPECT_STDERR"
done
((ms < 15000)) || fail "the failure took ${ms} ms"
log "every member down: failed in ${ms} ms"

# An endpoint that accepts and never answers is given up after the
# request timeout, and the error says so.
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(8)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
' "$T/mute.port" > "$T/mute.log" 2>&1 &
PIDS+=("$!"); PID_LOG[$!]=$T/mute.log
wait_for test -s "$T/mute.port"
start=$(date +%s%N)
expect_fail_match "etcd 127\.0\.0\.1:$(cat "$T/mute.port"): no answer within" \
    repvol --registry "etcd://127.0.0.1:$(cat "$T/mute.port")" list
ms=$(( ($(date +%s%N) - start) / 1000000 ))
((ms < 15000)) || fail "the mute endpoint took ${ms} ms"
log "a mute endpoint: failed in ${ms} ms"
log "ok"
