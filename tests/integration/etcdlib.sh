# etcdlib.sh - a 3-member etcd cluster on loopback for the tests, on top
# of lib.sh (source lib.sh first):
#
#   require_etcd                  fail clearly when etcd is not installed
#                                 (scripts/install-deps.sh installs it)
#   start_etcd_cluster [N]        N members (default 3) on free 127.0.0.1
#                                 ports, data under $T/etcd/eI, each started
#                                 through start_bg (so the EXIT trap stops it
#                                 by pid, also on failure); waits, bounded,
#                                 until every member is healthy.  Sets
#                                 ETCD_CLIENT[I] (HOST:PORT), ETCD_PID[I],
#                                 ETCD_HOSTS ("h:p,h:p,h:p").
#   etcd_kill I                   SIGKILL member I
#   etcd_start_member I           (re)start member I (rejoins with its data)
#   etcd_healthy I                true when member I says {"health":"true"}
#   etcd_leader                   the index of the current leader
#   etcdctl_ ARGS...              etcdctl against the live members
#
# With TLS (ETCD_TLS_DIR set before start_etcd_cluster to a directory
# made by scripts/tls-certs.sh: ca, client) the members serve https only,
# with a certificate of that CA made here, and require client
# certificates of that CA.

[[ -z ${ETCDLIB_LOADED-} ]] || return 0
ETCDLIB_LOADED=1
# shellcheck disable=SC2034
declare -A ETCD_CLIENT=() ETCD_PEER=() ETCD_PID=()
ETCD_N=0
ETCD_HOSTS=
ETCD_TLS_DIR=${ETCD_TLS_DIR-}

require_etcd() {
    command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1 ||
        fail "etcd and etcdctl are not installed (scripts/install-deps.sh installs etcd-server etcd-client)"
}

_etcd_scheme() { [[ -n $ETCD_TLS_DIR ]] && echo https || echo http; }

_etcd_curl() {   # _etcd_curl HOSTPORT PATH [DATA]
    local tls=()
    [[ -z $ETCD_TLS_DIR ]] || tls=(--cacert "$ETCD_TLS_DIR/ca-cert.pem"
        --cert "$ETCD_TLS_DIR/client-cert.pem" --key "$ETCD_TLS_DIR/client-key.pem")
    if (($# > 2)); then
        curl -sS -m 2 "${tls[@]}" -X POST -d "$3" "$(_etcd_scheme)://$1$2"
    else
        curl -sS -m 2 "${tls[@]}" "$(_etcd_scheme)://$1$2"
    fi
}

etcd_start_member() {
    local i=$1 cluster="" j sch tls=()
    sch=$(_etcd_scheme)
    for ((j = 1; j <= ETCD_N; j++)); do
        cluster+="${cluster:+,}e$j=http://${ETCD_PEER[$j]}"
    done
    [[ -z $ETCD_TLS_DIR ]] || tls=(--cert-file "$T/etcd/pki/member-cert.pem"
        --key-file "$T/etcd/pki/member-key.pem" --client-cert-auth
        --trusted-ca-file "$ETCD_TLS_DIR/ca-cert.pem")
    mkdir -p "$T/etcd/e$i"
    start_bg "$T/etcd/e$i.log" etcd --name "e$i" --data-dir "$T/etcd/e$i/data" \
        --listen-client-urls "$sch://${ETCD_CLIENT[$i]}" \
        --advertise-client-urls "$sch://${ETCD_CLIENT[$i]}" \
        --listen-peer-urls "http://${ETCD_PEER[$i]}" \
        --initial-advertise-peer-urls "http://${ETCD_PEER[$i]}" \
        --initial-cluster "$cluster" --initial-cluster-state new \
        --initial-cluster-token "repvol-$TEST_NAME-$$" \
        --heartbeat-interval 100 --election-timeout 1000 \
        --logger zap --log-outputs stderr --log-level warn ${tls[@]+"${tls[@]}"}
    ETCD_PID[$i]=$BG_PID
    log "etcd e$i pid $BG_PID on $sch://${ETCD_CLIENT[$i]}"
}

etcd_healthy() {
    _etcd_curl "${ETCD_CLIENT[$1]}" /health 2>/dev/null | grep -q '"health":"true"'
}

# The members' certificate: signed by ETCD_TLS_DIR's CA for 127.0.0.1,
# for servers and clients both (etcd's gateway dials its own gRPC port
# with it, and --client-cert-auth checks that client too).
_etcd_member_cert() {
    local d=$T/etcd/pki
    mkdir -p "$d"
    (umask 077; certtool --generate-privkey --key-type=ecdsa --outfile "$d/member-key.pem" 2>/dev/null)
    printf 'cn = etcd\nip_address = 127.0.0.1\ndns_name = localhost\ntls_www_server\ntls_www_client\nsigning_key\nencryption_key\nexpiration_days = 30\n' >"$d/member.tmpl"
    certtool --generate-certificate --load-ca-certificate "$ETCD_TLS_DIR/ca-cert.pem" \
        --load-ca-privkey "$ETCD_TLS_DIR/ca-key.pem" --load-privkey "$d/member-key.pem" \
        --template "$d/member.tmpl" --outfile "$d/member-cert.pem" 2>/dev/null ||
        fail "cannot make the etcd members' certificate"
}

start_etcd_cluster() {
    local n=${1:-3} i hosts=""
    require_etcd
    [[ -z $ETCD_TLS_DIR ]] || _etcd_member_cert
    ETCD_N=$n
    for ((i = 1; i <= n; i++)); do
        ETCD_CLIENT[$i]=127.0.0.1:$(free_port)
        ETCD_PEER[$i]=127.0.0.1:$(free_port)
        hosts+="${hosts:+,}${ETCD_CLIENT[$i]}"
    done
    ETCD_HOSTS=$hosts
    for ((i = 1; i <= n; i++)); do
        etcd_start_member "$i"
    done
    for ((i = 1; i <= n; i++)); do
        wait_for -t 30 etcd_healthy "$i"
    done
    log "etcd cluster up: $ETCD_HOSTS"
}

etcd_kill() {
    kill_pid "${ETCD_PID[$1]}" KILL
}

# The member whose id the cluster names as leader, as an index.
etcd_leader() {
    local i j st leader id
    for ((i = 1; i <= ETCD_N; i++)); do
        st=$(_etcd_curl "${ETCD_CLIENT[$i]}" /v3/maintenance/status '{}' 2>/dev/null) || continue
        leader=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("leader",""))' "$st") || continue
        [[ -n $leader ]] || continue
        for ((j = 1; j <= ETCD_N; j++)); do
            st=$(_etcd_curl "${ETCD_CLIENT[$j]}" /v3/maintenance/status '{}' 2>/dev/null) || continue
            id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["header"]["member_id"])' "$st") || continue
            [[ $id == "$leader" ]] && { echo "$j"; return 0; }
        done
    done
    return 1
}

etcdctl_() {
    local tls=() sch
    sch=$(_etcd_scheme)
    [[ -z $ETCD_TLS_DIR ]] || tls=(--cacert "$ETCD_TLS_DIR/ca-cert.pem"
        --cert "$ETCD_TLS_DIR/client-cert.pem" --key "$ETCD_TLS_DIR/client-key.pem")
    ETCDCTL_API=3 etcdctl --endpoints "$(sed "s|[^,]*|$sch://&|g" <<<"$ETCD_HOSTS")" \
        --command-timeout 5s ${tls[@]+"${tls[@]}"} "$@"
}
