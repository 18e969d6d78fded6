#!/bin/bash
# repvol demo ("make demo"): the whole story of a replicated volume
# across hosts and zones, narrated step by step.
#
# As root, every host is a network namespace (tests/hosts/lib.sh): storage
# hosts s1 (az-a), s2 (az-b), s3 (az-c) and a spare s4 (az-a), each
# running a repvold in the server pool, a 3-member etcd registry on
# s1-s3, and compute hosts h1 and h2.  Without root the same story runs
# on loopback, hosts being names only.
#
#  1. a volume is created with automatic placement in two zones;
#  2. it is attached on h1 and written (its checksum shown);
#  3. it is snapshotted to object storage (a real S3 server, Ceph's RADOS
#     Gateway; a directory if it cannot start);
#  4. h1 dies (every process in it killed); once its lease expires the
#     volume attaches on h2, and the checksum matches;
#  5. the zone of one replica is lost (its hosts killed, an etcd member
#     with them): the volume keeps serving under fio verify, heals onto a
#     spare in another zone and is back in sync;
#  6. the snapshot is restored lazily into a new volume, which serves at
#     once, and reads back the snapshot's checksum;
#  7. repvol events shows the whole history.
#
# Everything lives in a temp dir and every process is stopped by pid at
# the end (KEEP_TMP=1 keeps the dir).
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
MODE=loopback
if [[ $(id -u) == 0 && ${DEMO_LOOPBACK:-0} != 1 ]] &&
    command -v nft >/dev/null && ip netns list >/dev/null 2>&1; then
    MODE=hosts
    # shellcheck source=tests/hosts/lib.sh
    . "$TOP/tests/hosts/lib.sh"
else
    # shellcheck source=tests/integration/lib.sh
    . "$TOP/tests/integration/lib.sh"
    # shellcheck source=tests/integration/etcdlib.sh
    . "$TOP/tests/integration/etcdlib.sh"
fi
require_cmd nbdcopy nbdinfo fio

VOL=vol1
SIZE=256M
DATA=64M
HEAL=5s

say() { printf '\n==> %s\n' "$*"; }
show() { printf '    $ %s\n' "$*"; }
# run_at HOST CMD...: show the command (repvol's path shortened), then
# run it on HOST; run CMD...: the same here, in the driver's namespace.
run_at() {
    local h=$1
    shift
    local shown=("$@")
    [[ ${shown[0]} == "$REPVOL" ]] && shown[0]=repvol
    show "${shown[*]}${h:+   (on $h)}"
    if [[ -n $h ]]; then at "$h" "$@"; else "$@"; fi 2>&1 | sed 's/^/    /' ||
        fail "failed${h:+ on $h}: ${shown[*]}"
}
run() { run_at "" "$@"; }
sum() { head -c "$(numfmt --from=iec "$DATA")" "$1" | sha256sum | cut -c1-16; }

# ---- the lab, in namespaces or on loopback ----------------------------------

declare -A ZONE_OF=([s1]=az-a [s2]=az-b [s3]=az-c [s4]=az-a)
declare -A APID=()
lab() {
    if [[ $MODE == hosts ]]; then
        lab_up
        return
    fi
    local s
    start_etcd_cluster 3
    export REPVOL_REGISTRY=etcd://$ETCD_HOSTS/demo
    for s in s1 s2 s3 s4; do
        start_repvold "$s" "${ZONE_OF[$s]}" --registry "$REPVOL_REGISTRY" --lease-ttl 2
    done
}
# attach_at HOST VOL: attach VOL on HOST; sets URI.
attach_at() {
    local h=$1 vol=$2
    local opts=(--lease-ttl 3 --heal-after "$HEAL" --timeout 2)
    show "repvol attach $vol --host $h --nbd unix:$T/$h-$vol.sock ${opts[*]} &"
    if [[ $MODE == hosts ]]; then
        attach_on "$h" "$vol" "${opts[@]}"
        APID[$h-$vol]=${ATTACH_PID[$h-$vol]}
    else
        start_attach "$vol" "$T/$h-$vol.sock" --host "$h" "${opts[@]}"
        APID[$h-$vol]=${ATTACH_PID[$vol]}
        URI=$(nbd_uri "$T/$h-$vol.sock")
    fi
}
# at HOST CMD...: run a client command on HOST.
at() {
    local h=$1
    shift
    if [[ $MODE == hosts ]]; then on "$h" env REPVOL_HOST="$h" "$@"; else REPVOL_HOST=$h "$@"; fi
}
# host_dies HOST: every process of HOST killed (loopback: its attach).
host_dies() {
    if [[ $MODE == hosts ]]; then
        kill_host "$1"
    else
        local k
        for k in "${!APID[@]}"; do
            [[ $k == "$1"-* ]] && kill_pid "${APID[$k]}" KILL
        done
    fi
}
# zone_lost ZONE: every storage host of ZONE killed, its etcd member too.
zone_lost() {
    local s
    for s in s1 s2 s3 s4; do
        [[ ${ZONE_OF[$s]} == "$1" ]] || continue
        if [[ $MODE == hosts ]]; then
            kill_host "$s"
        else
            stop_repvold "$s" KILL
            case $s in s1) etcd_kill 1 ;; s2) etcd_kill 2 ;; s3) etcd_kill 3 ;; esac
        fi
        echo "    host $s ($1) is gone"
    done
}
field() {   # field VOL PYEXPR, on the status JSON v
    "$REPVOL" status "$1" --json 2>/dev/null | python3 -c "
import json, sys
v = json.load(sys.stdin)
print($2)"
}
in_sync() { [[ $(field "$1" 'all(r["state"] == "in-sync" for r in v["replicas"])') == True ]]; }

# ---- the story ----------------------------------------------------------------

if [[ $MODE == hosts ]]; then
    say "Six hosts as network namespaces on one bridge: storage hosts s1 (az-a),
    s2 (az-b), s3 (az-c) and a spare s4 (az-a), each running a repvold;
    an etcd registry with a member on each of s1-s3; compute hosts h1, h2"
else
    say "Not root: no network namespaces here, so the same story runs on
    loopback, hosts and zones being names only (servers s1-s4, etcd x3)"
fi
lab
run "$REPVOL" server list

# The S3 server starts meanwhile (about 20 s); the attach reaches it
# across the namespaces at the root namespace's address.
S3_STATE=$T/objstore-s3   # (not $T/s3: the data dir of server s3 on loopback)
[[ $MODE == hosts ]] && export S3_LISTEN=$HNET.0.1
"$TOP/scripts/s3-server.sh" start "$S3_STATE" >"$T/s3.log" 2>&1 &
S3_START=$!
stop_s3() { "$TOP/scripts/s3-server.sh" stop "$S3_STATE" >/dev/null 2>&1 || true; }
EXIT_HOOKS+=(stop_s3)

say "1. A $SIZE volume, its two replicas placed by the pool in two zones"
run "$REPVOL" create "$VOL" --size "$SIZE"
zones=$(field "$VOL" '" and ".join(r["server"] + " (" + r["zone"] + ")" for r in v["replicas"])')
echo "    placed on $zones"

say "2. Attached on h1; $DATA of random data written through NBD"
attach_at h1 "$VOL"
head -c "$(numfmt --from=iec "$DATA")" /dev/urandom >"$T/data.bin"
show "nbdcopy --flush data.bin $URI   (on h1)"
at h1 nbdcopy --flush "$T/data.bin" "$URI"
want=$(sum "$T/data.bin")
echo "    checksum of what h1 wrote: $want"

say "3. A snapshot of the live volume to object storage"
if wait "$S3_START"; then
    # shellcheck disable=SC1091
    . "$S3_STATE/env"
    STORE=$REPVOL_TEST_S3_URL
    echo "    S3: Ceph RADOS Gateway at $AWS_ENDPOINT_URL"
else
    tail -3 "$T/s3.log" | sed 's/^/    | /'
    STORE=file://$T/store
    echo "    (the S3 server did not start; a directory store instead)"
fi
run_at h1 "$REPVOL" snapshot create "$VOL" --to "$STORE" --name monday

say "4. Host h1 dies: every process in it is killed"
{ host_dies h1; } 2>/dev/null   # (not bash's "Killed" notices)
run "$REPVOL" status "$VOL"
lease_over() { (( $(field "$VOL" 'v["attachment"]["lease_left"]') <= 0 )); }
wait_for -t 20 lease_over
echo "    h1's lease has expired: h2 may take the volume over (h1 is fenced"
echo "    by the new epoch at every replica, should it ever come back)"
attach_at h2 "$VOL"
show "nbdcopy $URI back.bin   (on h2)"
at h2 nbdcopy "$URI" "$T/back.bin"
got=$(sum "$T/back.bin")
echo "    written on h1: $want"
echo "    read on h2:    $got"
assert_eq "$want" "$got" "checksum read on h2"
echo "    identical: no acknowledged write was lost with h1"

say "5. A zone is lost while h2 runs fio verify on the volume"
lost=$(field "$VOL" 'v["replicas"][1]["zone"]')
fio_args=(--name=zone --ioengine=nbd --uri="$URI" --rw=randwrite --bs=4k
          --iodepth=8 --offset=128M --size=64M --io_size=96M --verify=crc32c
          --verify_fatal=1 --output="$T/fio-zone.out")
show "fio ${fio_args[*]}   (on h2) &"
on_h2=()
[[ $MODE == hosts ]] && on_h2=(ip netns exec "$HP-h2")
start_bg "$T/fio-zone.log" ${on_h2[@]+"${on_h2[@]}"} fio "${fio_args[@]}"
fio_pid=$BG_PID
echo "    zone $lost goes dark:"
{ zone_lost "$lost"; } 2>/dev/null
healed() { in_sync "$VOL" && [[ $(field "$VOL" '" ".join(r["zone"] for r in v["replicas"])') != *"$lost"* ]]; }
wait_for -t 90 healed
rc=0; wait_exit "$fio_pid" 120 || rc=$?
((rc == 0)) && grep -q 'err= 0' "$T/fio-zone.out" || { cat "$T/fio-zone.out"; fail "fio saw errors"; }
echo "    fio: every write acknowledged and verified, no error across the loss"
echo "    healed: replicas now on $(field "$VOL" '" and ".join(r["server"] + " (" + r["zone"] + ")" for r in v["replicas"])'), in sync"
run "$REPVOL" server list

say "6. The snapshot restored lazily into a new volume, served at once"
run "$REPVOL" snapshot restore "$STORE" monday vol2 --lazy
attach_at h2 vol2
show "nbdcopy $URI restored.bin   (on h2)"
at h2 nbdcopy "$URI" "$T/restored.bin"
got=$(sum "$T/restored.bin")
echo "    snapshot monday: $want"
echo "    restored:        $got"
assert_eq "$want" "$got" "checksum of the restored volume"
echo "    identical, while its chunks were still streaming in from the store"

say "7. The registry's events: the whole history"
run "$REPVOL" events

say "Cleaning up: detach, delete, stop every server"
for v in vol2 "$VOL"; do
    at h2 "$REPVOL" detach "$v" >/dev/null
    wait_exit "${APID[h2-$v]}" 30 || fail "attach of $v did not detach"
    "$REPVOL" delete "$v" >/dev/null
done
"$REPVOL" snapshot delete "$STORE" monday >/dev/null
echo "    done"

say "Demo complete ($MODE): placed in two zones, survived a dead host and a
    lost zone without losing an acknowledged write, healed itself onto a
    spare, and restored from object storage"
