#!/bin/bash
# Attach leases, on the directory registry and on a 3-member etcd: an
# attach on host1 holds a lease that status shows (holder, pid, seconds
# left); an attach on host2 is refused while it is alive and names the
# holder; host1 is killed (kill -9) and host2 gets the volume once the
# lease has expired, saying so, with every write acknowledged on host1
# read back; host3 takes it from a live host2 only with --force, and
# host2 is fenced (exit 3).  The replicas are identical at the end.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/etcdlib.sh"
require_cmd nbdcopy python3

TTL=3

lease_left() {
    repvol status "$1" --json | python3 -c '
import json, sys
v = json.load(sys.stdin); v = v[0] if isinstance(v, list) else v
print(v["attachment"].get("lease_left", "none"))'
}
lease_expired() { local l; l=$(lease_left "$1"); [[ $l != none ]] && ((l <= 0)); }

lease_story() {
    local tag=$1 vol=$1vol
    log "---- leases on $REPVOL_REGISTRY"
    start_repvold "${tag}a" az-a
    start_repvold "${tag}b" az-b
    repvol create "$vol" --size 16M --replica "${REPVOLD_ADDR[${tag}a]}" \
        --replica "${REPVOLD_ADDR[${tag}b]}"
    start_attach "$vol" "$T/$tag-1.sock" --host host1 --lease-ttl $TTL
    local one=${ATTACH_PID[$vol]}
    head -c 16M /dev/urandom > "$T/$tag.data"
    nbdcopy --flush "$T/$tag.data" "$(nbd_uri "$T/$tag-1.sock")"
    repvol status "$vol" | tee "$T/$tag.status" >&2
    grep -Eq "^attachment: +host host1, pid $one, .*lease [0-9]+ s left" "$T/$tag.status" ||
        fail "status does not show host1's lease"

    # Another host, lease alive: refused, naming the holder.
    expect_fail_match "attached on host1 \\(pid $one\\), lease alive \\([0-9]+ s left\\); use --force" \
        repvol attach "$vol" --host host2 --nbd "unix:$T/$tag-x.sock"

    # host1 dies; once its lease expired host2 gets the volume.
    kill_pid "$one" KILL
    wait_for -t $((TTL + 3)) lease_expired "$vol"
    repvol status "$vol" | grep -q "lease EXPIRED" || fail "status does not say the lease expired"
    start_attach "$vol" "$T/$tag-2.sock" --host host2 --lease-ttl $TTL
    local two=${ATTACH_PID[$vol]}
    grep -q "took over from host host1, pid $one .*whose lease expired" "$T/attach-$vol.log" ||
        fail "host2 did not say host1's lease expired"
    nbdcopy "$(nbd_uri "$T/$tag-2.sock")" "$T/$tag.back"
    assert_files_identical "$T/$tag.data" "$T/$tag.back"

    # A live holder: only --force takes the volume, and fences it.
    expect_fail_match "attached on host2" \
        repvol attach "$vol" --host host3 --nbd "unix:$T/$tag-y.sock"
    start_attach "$vol" "$T/$tag-3.sock" --host host3 --force
    local rc=0
    wait_exit "$two" 30 || rc=$?
    assert_eq 3 "$rc" "exit status of host2's fenced attach"
    head -c 4M /dev/urandom > "$T/$tag.more"
    nbdcopy --flush "$T/$tag.more" "$(nbd_uri "$T/$tag-3.sock")"
    REPVOL_HOST=host3 stop_attach "$vol"
    assert_files_identical "${REPVOLD_DIR[${tag}a]}/$vol.data" "${REPVOLD_DIR[${tag}b]}/$vol.data"
    cmp -n 4194304 "$T/$tag.more" "${REPVOLD_DIR[${tag}a]}/$vol.data" ||
        fail "the last write is not on the replica"
    repvol delete "$vol"
    stop_repvold "${tag}a"; stop_repvold "${tag}b"
}

lease_story d
start_etcd_cluster 3
export REPVOL_REGISTRY=etcd://$ETCD_HOSTS/it-$$
lease_story e
log ok
