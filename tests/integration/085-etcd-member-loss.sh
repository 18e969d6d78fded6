#!/bin/bash
# One etcd member lost under fio changes nothing: a 3-member cluster from
# scripts/etcd-cluster.sh (stopped by pid at exit), a volume attached
# through it under fio verify; the leader is SIGKILLed mid-run, then
# restarted, then a follower: fio verifies, status and a create work
# through the survivors meanwhile, the members rejoin, and after a clean
# detach the replicas are byte-identical.
. "$(dirname "$0")/lib.sh"
require_cmd fio curl python3
command -v etcd >/dev/null || fail "etcd is not installed (scripts/install-deps.sh installs etcd-server)"

EC=$T/etcd-cluster
stop_cluster() { "$TOP/scripts/etcd-cluster.sh" stop "$EC" || true; }
EXIT_HOOKS+=(stop_cluster)
"$TOP/scripts/etcd-cluster.sh" start "$EC" 3 > "$T/endpoints"
export REPVOL_REGISTRY=etcd://$(cat "$T/endpoints")/it-$$
"$TOP/scripts/etcd-cluster.sh" status "$EC" >&2

start_repvold a zone-a --registry "$REPVOL_REGISTRY"
start_repvold b zone-b --registry "$REPVOL_REGISTRY"
repvol create vol --size 64M
start_attach vol "$T/nbd.sock"
uri=$(nbd_uri "$T/nbd.sock")
fio --name=load --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k \
    --iodepth=16 --size=64M --io_size=96M --verify=crc32c --verify_fatal=1 \
    --output="$T/fio.out" &
fio_pid=$!

leader=$("$TOP/scripts/etcd-cluster.sh" leader "$EC")
log "killing the leader, member $leader"
"$TOP/scripts/etcd-cluster.sh" kill "$EC" "$leader"
repvol status vol >/dev/null || fail "status failed with the leader dead"
repvol create other --size 8M || fail "create failed with the leader dead"
"$TOP/scripts/etcd-cluster.sh" restart "$EC" "$leader"
follower=$(( leader % 3 + 1 ))
[[ $("$TOP/scripts/etcd-cluster.sh" leader "$EC") != "$follower" ]] ||
    follower=$(( follower % 3 + 1 ))
log "killing a follower, member $follower"
"$TOP/scripts/etcd-cluster.sh" kill "$EC" "$follower"
repvol list | grep -q '^other ' || fail "list failed with a follower dead"
"$TOP/scripts/etcd-cluster.sh" restart "$EC" "$follower"

wait "$fio_pid" || { cat "$T/fio.out" >&2; fail "fio failed while etcd members died"; }
grep -q 'err= 0' "$T/fio.out" || fail "fio reported errors"
"$TOP/scripts/etcd-cluster.sh" status "$EC" > "$T/status"
[[ $(grep -c healthy "$T/status") == 3 ]] || { cat "$T/status" >&2; fail "not every member rejoined"; }
all_in_sync vol || fail "a replica fell out of sync"
stop_attach vol
assert_files_identical "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data"
repvol delete vol
repvol delete other
log ok
