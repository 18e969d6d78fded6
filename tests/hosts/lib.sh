# tests/hosts/lib.sh - the host harness: hosts and zones as network
# namespaces on one bridge, with faults (docs/DESIGN.md, "Failure model
# across hosts").  Source it from a test in tests/hosts/ (as root); it
# sources tests/integration/lib.sh for processes, waits and assertions.
#
#   host  zone  address          runs
#   s1    az-a  10.213.1.11      repvold s1, etcd member e1
#   s2    az-b  10.213.2.11      repvold s2, etcd member e2
#   s3    az-c  10.213.3.11      repvold s3, etcd member e3
#   s4    az-a  10.213.1.12      repvold s4 (the spare)
#   h1    -     10.213.9.21      attach, fio, NBD clients
#   h2    -     10.213.9.22      the same
#   (root)      10.213.0.1       the test driver: repvol CLI, checks
#
# Each host is namespace rvh-HOST whose eth0 is a veth into bridge br0 in
# namespace rvh-fab, so faults are applied where the system under test
# cannot undo them: a host's cable pulled (cut_host), one link dropped
# both ways or one way (cut_link, with nftables' bridge family), one
# port (cut_port), every process of a host killed (kill_host).  Every
# replica and etcd link is TCP between the hosts' addresses, so the cuts
# bite (a unix socket would cross namespaces through the filesystem:
# only the host-local NBD socket between fio and its attach is one).
#
# hosts_up creates it all, removing a lab left by a killed run first; the
# EXIT trap stops every process (by pid, then whatever still runs in a
# namespace), then deletes the namespaces and the root veth.
# shellcheck disable=SC2034

. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

[[ $(id -u) == 0 ]] || skip "the host harness needs root (network namespaces)"
require_cmd ip nft etcd curl

HNET=10.213
HP=rvh
FAB=$HP-fab
ROOT_IF=$HP-root
HOST_LIST="s1:az-a:$HNET.1.11 s2:az-b:$HNET.2.11 s3:az-c:$HNET.3.11
s4:az-a:$HNET.1.12 h1:-:$HNET.9.21 h2:-:$HNET.9.22"
REPVOLD_PORT_H=7000
declare -A SERVER_PID=() ETCD_PID=()

_host_col() {   # _host_col HOST N: field N (1 name, 2 zone, 3 address)
    local e f
    for e in $HOST_LIST; do
        IFS=: read -ra f <<<"$e"
        [[ -z $1 || ${f[0]} == "$1" ]] && echo "${f[$2 - 1]}"
    done
    return 0
}
host_ip()    { _host_col "$1" 3; }
host_zone()  { _host_col "$1" 2; }
host_names() { _host_col "" 1; }
# on HOST CMD...: run CMD in HOST's namespace (its pid is CMD's).
on() { local h=$1; shift; ip netns exec "$HP-$h" "$@"; }

# Every process still in a namespace of ours, killed; the namespaces,
# the bridge and the root veth deleted.  Idempotent.
hosts_down() {
    local n pid
    for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$HP-" || true); do
        for pid in $(ip netns pids "$n" 2>/dev/null); do
            kill -9 "$pid" 2>/dev/null || true
        done
    done
    for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$HP-" || true); do
        ip netns del "$n" 2>/dev/null || true
    done
    ip link del "$ROOT_IF" 2>/dev/null || true
}

hosts_up() {
    local h n
    hosts_down
    EXIT_HOOKS+=(hosts_down)
    ip netns add "$FAB"
    ip -n "$FAB" link set lo up
    ip -n "$FAB" link add br0 type bridge
    ip -n "$FAB" link set br0 up
    for h in $(host_names); do
        n=$HP-$h
        ip netns add "$n"
        ip -n "$n" link set lo up
        ip -n "$FAB" link add "v-$h" type veth peer name eth0 netns "$n"
        ip -n "$FAB" link set "v-$h" master br0 up
        ip -n "$n" addr add "$(host_ip "$h")/16" dev eth0
        ip -n "$n" link set eth0 up
    done
    ip -n "$FAB" link add v-root type veth peer name "$ROOT_IF" netns 1
    ip -n "$FAB" link set v-root master br0 up
    ip addr add "$HNET.0.1/16" dev "$ROOT_IF"
    ip link set "$ROOT_IF" up
    # The fault table: rules are added and flushed, never left behind
    # (it goes with the fabric namespace).
    on_fab nft add table bridge fault
    on_fab nft add chain bridge fault xfer \
        '{ type filter hook forward priority 0; policy accept; }'
    log "hosts up: $(host_names | tr '\n' ' ')(bridge in $FAB)"
}
on_fab() { ip netns exec "$FAB" "$@"; }

# ---- faults ----------------------------------------------------------------

cut_host()     { ip -n "$FAB" link set "v-$1" down; log "fault: $1 cut off"; }
restore_host() { ip -n "$FAB" link set "v-$1" up; log "fault: $1 back"; }
# cut_link A B [oneway]: drop A->B (and B->A unless oneway).
cut_link() {
    local a b
    a=$(host_ip "$1") b=$(host_ip "$2")
    on_fab nft add rule bridge fault xfer ip saddr "$a" ip daddr "$b" drop
    [[ ${3-} == oneway ]] ||
        on_fab nft add rule bridge fault xfer ip saddr "$b" ip daddr "$a" drop
    log "fault: link $1 -> $2${3:+ only}${3:- and back} dropped"
}
# cut_port A B PORT: drop A's TCP to B:PORT and its answers.
cut_port() {
    local a b
    a=$(host_ip "$1") b=$(host_ip "$2")
    on_fab nft add rule bridge fault xfer ip saddr "$a" ip daddr "$b" tcp dport "$3" drop
    on_fab nft add rule bridge fault xfer ip saddr "$b" ip daddr "$a" tcp sport "$3" drop
    log "fault: $1 -> $2:$3 dropped"
}
restore_links() { on_fab nft flush chain bridge fault xfer; log "fault: links restored"; }
# kill_host H: every process in H's namespace, SIGKILL (a host dies).
kill_host() {
    local pid
    for pid in $(ip netns pids "$HP-$1"); do kill -9 "$pid" 2>/dev/null || true; done
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do
        [[ -n ${REAPED[$pid]-} ]] || pid_alive "$pid" || wait_exit "$pid" 1 || true
    done
    log "fault: host $1 killed"
}

# ---- services ----------------------------------------------------------------

tcp_open() { timeout 2 bash -c ": </dev/tcp/$1/$2" 2>/dev/null; }
etcd_member_healthy() {
    grep -q '"health":"true"' <<<"$(curl -s -m 2 "http://$(host_ip "$1"):2379/health")"
}

# start_etcd_hosts: members e1-e3 on s1-s3; exports REPVOL_REGISTRY.
start_etcd_hosts() {
    local i h ip peers="" hosts=""
    for i in 1 2 3; do
        peers+="${peers:+,}e$i=http://$(host_ip s$i):2380"
        hosts+="${hosts:+,}$(host_ip s$i):2379"
    done
    for i in 1 2 3; do start_etcd_member $i "$peers"; done
    for i in 1 2 3; do wait_for -t 20 etcd_member_healthy s$i; done
    export REPVOL_REGISTRY=etcd://$hosts/hosts-$$
    ETCD_ENDPOINTS=$hosts
    log "etcd on s1-s3; registry $REPVOL_REGISTRY"
}
start_etcd_member() {   # start_etcd_member N [INITIAL_CLUSTER]
    local i=$1 h=s$1 ip
    ip=$(host_ip "$h")
    mkdir -p -m 700 "$T/etcd"
    start_bg "$T/etcd-e$i.log" ip netns exec "$HP-$h" etcd --name "e$i" \
        --data-dir "$T/etcd/e$i" --log-level warn \
        --listen-client-urls "http://$ip:2379" \
        --advertise-client-urls "http://$ip:2379" \
        --listen-peer-urls "http://$ip:2380" \
        --initial-advertise-peer-urls "http://$ip:2380" \
        --initial-cluster "${2:-e1=http://$(host_ip s1):2380,e2=http://$(host_ip s2):2380,e3=http://$(host_ip s3):2380}" \
        --initial-cluster-state new --initial-cluster-token "rvh-$$" \
        --heartbeat-interval 100 --election-timeout 1000
    ETCD_PID[$h]=$BG_PID
}


# start_server H [EXTRA...]: repvold H on H's address, in the pool.
start_server() {
    local h=$1 ip
    shift
    ip=$(host_ip "$h")
    mkdir -p -m 700 "$T/data-$h"
    start_bg "$T/repvold-$h.log" ip netns exec "$HP-$h" "$REPVOLD" \
        --data-dir "$T/data-$h" --listen "$ip:$REPVOLD_PORT_H" --name "$h" \
        --zone "$(host_zone "$h")" --registry "$REPVOL_REGISTRY" \
        --lease-ttl 2 --peer-log-interval 0 "$@"
    SERVER_PID[$h]=$BG_PID
    REPVOLD_DIR[$h]=$T/data-$h
    wait_for tcp_open "$ip" $REPVOLD_PORT_H
    wait_for server_is "$h" up
}

# lab_up: hosts, etcd on s1-s3, repvold on s1-s4.
lab_up() {
    hosts_up
    start_etcd_hosts
    local h
    for h in s1 s2 s3 s4; do start_server "$h"; done
}

# attach_on H VOL [EXTRA...]: repvol attach VOL on host H, serving NBD on
# $T/H-VOL.sock; ATTACH_PID[H-VOL] and URI (for clients on H).
attach_on() {
    local h=$1 vol=$2 sock=$T/$1-$2.sock deadline
    shift 2
    start_bg "$T/attach-$h-$vol.log" ip netns exec "$HP-$h" "$REPVOL" attach \
        "$vol" --host "$h" --nbd "unix:$sock" "$@"
    ATTACH_PID[$h-$vol]=$BG_PID
    deadline=$(( $(date +%s%N) + 20 * 1000000000 ))
    until [[ -S $sock ]] && timeout 5 nbdinfo --size "$(nbd_uri "$sock")" >/dev/null 2>&1; do
        pid_alive "$BG_PID" || { cat "$T/attach-$h-$vol.log" >&2; fail "attach $vol on $h exited"; }
        (( $(date +%s%N) < deadline )) || fail "attach $vol on $h not serving within 20 s"
        sleep 0.05
    done
    URI=$(nbd_uri "$sock")
    log "attach $vol on $h pid $BG_PID"
}
# detach_on H VOL: repvol detach on H; the attach must exit 0.
detach_on() {
    local pid=${ATTACH_PID[$1-$2]} rc=0
    on "$1" env REPVOL_HOST="$1" "$REPVOL" detach "$2" || fail "detach $2 on $1 failed"
    wait_exit "$pid" 30 || rc=$?
    ((rc == 0)) || fail "attach $2 on $1 exited $rc after detach"
}

# fio_on H NAME URI OFFSET SIZE [EXTRA...]: fio verify on host H in the
# background (FIO_PID); fio_ok NAME checks it ended with no error.
fio_on() {
    local h=$1 name=$2 uri=$3 off=$4 size=$5
    shift 5
    start_bg "$T/fio-$name.log" ip netns exec "$HP-$h" fio --name="$name" \
        --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k --iodepth=8 \
        --offset="$off" --size="$size" --verify=crc32c --verify_fatal=1 \
        --output="$T/fio-$name.out" "$@"
    FIO_PID=$BG_PID
}
fio_ok() {
    local rc=0
    wait_exit "$FIO_PID" 120 || rc=$?
    ((rc == 0)) || { cat "$T/fio-$1.out" >&2; fail "fio $1 exited $rc"; }
    grep -q 'err= 0' "$T/fio-$1.out" || { cat "$T/fio-$1.out" >&2; fail "fio $1 reported errors"; }
}

# vol_field VOL PYEXPR: evaluate PYEXPR on the volume's status JSON (v).
vol_field() {
    repvol status "$1" --json | python3 -c "
import json, sys
v = json.load(sys.stdin)
print($2)"
}
servers_of() { vol_field "$1" '" ".join(sorted(r["server"] for r in v["replicas"]))'; }
in_sync()    { [[ $(vol_field "$1" 'all(r["state"] == "in-sync" for r in v["replicas"])') == True ]]; }
# replicas_identical VOL: every replica's data file is the same bytes.
replicas_identical() {
    local first="" f s
    for s in $(servers_of "$1"); do
        f=${REPVOLD_DIR[$s]}/$1.data
        if [[ -z $first ]]; then first=$f; else
            cmp "$first" "$f" || fail "replicas of $1 differ: $first $f"
        fi
    done
}
