#!/bin/bash
# etcd-cluster.sh - an etcd cluster on loopback for repvol's registry
# (tests, demos, trying etcd:// out), with Debian's etcd-server
# (scripts/install-deps.sh installs it).  Everything lives under DIR:
# each member's data (DIR/eI/), log (DIR/eI.log) and pid (DIR/eI.pid),
# and the ports (DIR/cluster.env).  Members are stopped by pid, never by
# name.
#
#   etcd-cluster.sh start DIR [N]     start N members (default 3) on free
#                                     127.0.0.1 ports; wait (30 s at most)
#                                     until every one is healthy; print
#                                     the endpoints ("h:p,h:p,h:p")
#   etcd-cluster.sh stop DIR          SIGTERM each member, SIGKILL after 10 s
#   etcd-cluster.sh kill DIR I        SIGKILL member I (1..N)
#   etcd-cluster.sh restart DIR I     start member I again, with its data
#   etcd-cluster.sh status DIR        each member: pid, endpoint, health
#   etcd-cluster.sh endpoints DIR     "h:p,h:p,h:p"
#   etcd-cluster.sh leader DIR        the leader's index
#
# Use it as REPVOL_REGISTRY=etcd://$(etcd-cluster.sh endpoints DIR).
set -euo pipefail

die() { echo "etcd-cluster.sh: $*" >&2; exit 1; }
usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

free_port() {
    python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

load() {
    [[ -f $DIR/cluster.env ]] || die "$DIR: no cluster here (etcd-cluster.sh start $DIR)"
    # shellcheck disable=SC1091
    . "$DIR/cluster.env"
}

pid_of() { [[ -f $DIR/e$1.pid ]] && cat "$DIR/e$1.pid"; }
alive() { local p; p=$(pid_of "$1") && [[ -n $p ]] && kill -0 "$p" 2>/dev/null; }
healthy() { curl -sS -m 2 "http://${CLIENT[$1]}/health" 2>/dev/null | grep -q '"health":"true"'; }

start_member() {
    local i=$1 cluster="" j
    for ((j = 1; j <= N; j++)); do
        cluster+="${cluster:+,}e$j=http://${PEER[$j]}"
    done
    mkdir -p -m 0700 "$DIR/e$i"
    alive "$i" && die "member $i already runs (pid $(pid_of "$i"))"
    setsid etcd --name "e$i" --data-dir "$DIR/e$i/data" \
        --listen-client-urls "http://${CLIENT[$i]}" \
        --advertise-client-urls "http://${CLIENT[$i]}" \
        --listen-peer-urls "http://${PEER[$i]}" \
        --initial-advertise-peer-urls "http://${PEER[$i]}" \
        --initial-cluster "$cluster" --initial-cluster-state new \
        --initial-cluster-token "$TOKEN" \
        --heartbeat-interval 100 --election-timeout 1000 \
        --logger zap --log-outputs stderr --log-level warn \
        </dev/null >>"$DIR/e$i.log" 2>&1 &
    echo $! > "$DIR/e$i.pid"
}

wait_healthy() {
    local i deadline=$(( $(date +%s) + 30 ))
    for i in "$@"; do
        until healthy "$i"; do
            alive "$i" || die "member $i exited; see $DIR/e$i.log"
            (( $(date +%s) < deadline )) || die "member $i not healthy within 30 s; see $DIR/e$i.log"
            sleep 0.1
        done
    done
}

endpoints() {
    local i out=""
    for ((i = 1; i <= N; i++)); do out+="${out:+,}${CLIENT[$i]}"; done
    echo "$out"
}

stop_member() {   # stop_member I SIGNAL
    local p
    p=$(pid_of "$1") || return 0
    [[ -n $p ]] && kill -0 "$p" 2>/dev/null || { rm -f "$DIR/e$1.pid"; return 0; }
    kill -"$2" "$p" 2>/dev/null || true
    local deadline=$(( $(date +%s) + 10 ))
    while kill -0 "$p" 2>/dev/null; do
        if (( $(date +%s) >= deadline )); then kill -KILL "$p" 2>/dev/null || true; fi
        sleep 0.05
    done
    rm -f "$DIR/e$1.pid"
}

(($# >= 2)) || usage
cmd=$1 DIR=$2
declare -A CLIENT=() PEER=()
case $cmd in
start)
    N=${3:-3}
    [[ $N =~ ^[1-9]$ ]] || die "N must be 1 to 9, not '$N'"
    command -v etcd >/dev/null || die "etcd is not installed (scripts/install-deps.sh installs etcd-server)"
    [[ ! -f $DIR/cluster.env ]] || die "$DIR: a cluster is already there (stop it, or remove $DIR)"
    mkdir -p -m 0700 "$DIR"
    TOKEN=repvol-$$-$RANDOM
    {
        echo "N=$N TOKEN=$TOKEN"
        for ((i = 1; i <= N; i++)); do
            echo "CLIENT[$i]=127.0.0.1:$(free_port) PEER[$i]=127.0.0.1:$(free_port)"
        done
    } > "$DIR/cluster.env"
    load
    for ((i = 1; i <= N; i++)); do start_member "$i"; done
    wait_healthy $(seq "$N") || { "$0" stop "$DIR"; exit 1; }
    endpoints
    ;;
stop)
    load
    for ((i = 1; i <= N; i++)); do stop_member "$i" TERM; done
    ;;
kill)
    load
    [[ ${3-} =~ ^[1-9]$ ]] && (($3 <= N)) || die "kill: no member '${3-}' (1..$N)"
    stop_member "$3" KILL
    ;;
restart)
    load
    [[ ${3-} =~ ^[1-9]$ ]] && (($3 <= N)) || die "restart: no member '${3-}' (1..$N)"
    start_member "$3"
    wait_healthy "$3"
    ;;
status)
    load
    for ((i = 1; i <= N; i++)); do
        h=down
        alive "$i" && { healthy "$i" && h=healthy || h=unhealthy; }
        printf 'e%d pid %s %s %s\n' "$i" "$(pid_of "$i" || echo -)" "${CLIENT[$i]}" "$h"
    done
    ;;
endpoints)
    load
    endpoints
    ;;
leader)
    load
    for ((i = 1; i <= N; i++)); do
        st=$(curl -sS -m 2 -X POST -d '{}' "http://${CLIENT[$i]}/v3/maintenance/status" 2>/dev/null) || continue
        python3 - "$st" <<'PY' && { echo "$i"; exit 0; }
import json, sys
s = json.loads(sys.argv[1])
sys.exit(0 if s.get("leader") and s["leader"] == s["header"]["member_id"] else 1)
PY
    done
    die "no member says it is the leader"
    ;;
*) usage ;;
esac
