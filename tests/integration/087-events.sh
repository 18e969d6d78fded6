#!/bin/bash
# The registry's event stream, on the directory registry and on a
# 3-member etcd: a volume's whole life (servers up, created, attached,
# a replica killed: degraded, back: resync-started and resync-done, a
# snapshot: snapshot-done, a takeover by another host: fenced, detached,
# deleted, servers down) appears in order in "repvol events --json";
# "--follow" started before the end sees the later events as they come;
# "--since" and "--volume" filter.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/etcdlib.sh"
require_cmd nbdcopy python3

types() {   # types [ARGS]: the event types, one line, space-separated
    repvol events --json "$@" | python3 -c '
import json, sys
print(" ".join(json.loads(l)["type"] for l in sys.stdin if l.strip()))'
}

lease_expired() {
    repvol status "$1" --json | python3 -c '
import json, sys
v = json.load(sys.stdin); v = v[0] if isinstance(v, list) else v
sys.exit(0 if v["attachment"].get("lease_left", 1) <= 0 else 1)'
}

events_story() {
    local tag=$1 vol=$1vol reg=(--registry "$REPVOL_REGISTRY")
    log "---- events on $REPVOL_REGISTRY"
    start_repvold "${tag}a" zone-a "${reg[@]}"
    start_repvold "${tag}b" zone-b "${reg[@]}"
    wait_for grep -q "registered as ${tag}b" "$T/repvold-${tag}b.log"
    # The binary itself in the background, not the repvol function: $!
    # must be the follower, or killing it leaves the binary running.
    "$REPVOL" events --follow --json > "$T/$tag.follow" 2>"$T/$tag.follow.err" &
    local follower=$!
    PIDS+=("$follower")
    PID_LOG[$follower]=$T/$tag.follow.err
    repvol create "$vol" --size 16M --replica "${tag}a" --replica "${tag}b"
    start_attach "$vol" "$T/$tag.sock" --host "${tag}h1" --lease-ttl 3
    head -c 16M /dev/urandom > "$T/$tag.data"
    nbdcopy --flush "$T/$tag.data" "$(nbd_uri "$T/$tag.sock")"
    stop_repvold "${tag}b" KILL
    nbdcopy --flush "$T/$tag.data" "$(nbd_uri "$T/$tag.sock")"
    start_repvold "${tag}b" zone-b "${reg[@]}"
    wait_for -t 60 all_in_sync "$vol"
    REPVOL_HOST=${tag}h1 repvol snapshot create "$vol" --to "file://$T/$tag-snaps" --name s1 >/dev/null
    # Another host takes over once host1 is gone and its lease expired.
    kill_pid "${ATTACH_PID[$vol]}" KILL
    local since
    since=$(repvol events --json | python3 -c '
import json, sys
print([json.loads(l) for l in sys.stdin if l.strip()][-1]["revision"])')
    wait_for -t 10 lease_expired "$vol"
    start_attach "$vol" "$T/$tag-2.sock" --host "${tag}h2"
    REPVOL_HOST=${tag}h2 stop_attach "$vol"
    repvol delete "$vol"
    stop_repvold "${tag}a"; stop_repvold "${tag}b"

    local got want
    got=$(types --volume "$vol")
    want="created attached degraded resync-started resync-done snapshot-done fenced attached detached deleted"
    assert_eq "$want" "$got" "the events of $vol"
    got=$(types --since "$since" --volume "$vol")
    assert_eq "fenced attached detached deleted" "$got" "the events after revision $since"
    got=$(types)
    grep -q "server-up .*server-down" <<<"$got" || fail "no server-up/server-down events"
    repvol events > "$T/$tag.table"
    grep -Eq "^[0-9]+ +[0-9T:.-]+Z +fenced +$vol +- +${tag}h2 +host ${tag}h1 pid [0-9]+" "$T/$tag.table" ||
        { cat "$T/$tag.table" >&2; fail "the table does not show the fencing"; }
    # The follower saw everything after it started, the deletion last.
    wait_for -t 10 grep -q '"type":"deleted","volume":"'"$vol"'"' "$T/$tag.follow"
    kill "$follower"; wait "$follower" 2>/dev/null || true
    python3 - "$T/$tag.follow" "$vol" "$want" <<'PY' || fail "the follower's stream differs"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
mine = [e["type"] for e in evs if e["volume"] == sys.argv[2]]
assert " ".join(mine) == sys.argv[3], mine
revs = [e["revision"] for e in evs]
assert revs == sorted(revs) and len(set(revs)) == len(revs), revs
PY
}

events_story d
start_etcd_cluster 3
export REPVOL_REGISTRY=etcd://$ETCD_HOSTS/it-$$
events_story e
log ok
