# Helpers for the NBD STARTTLS tests (065-069).  Source it after lib.sh:
#
#     . "$(dirname "$0")/lib.sh"
#     . "$(dirname "$0")/nbdtlslib.sh"
#
# (Not a numbered test itself: tests/run-integration.sh runs only
# NNN-*.sh.)  It starts nothing by itself.

# Source lib.sh with REPVOL_TEST_TLS=1: the replica servers then serve
# TLS from $T/pki, which also holds the server certificate the NBD
# export presents (attach --tls-dir "$T/pki": the attach's --tls-dir is
# both its replica client credentials and its NBD server credentials).
#
# nbd_client_dir DIR [CN]: a client certificate for CN (default
# nbduser) from $T/pki's CA in DIR, with ca-cert.pem: what libnbd's
# tls-certificates= and qemu's tls-creds-x509 dir= read.
nbd_client_dir() {
    "$TOP/scripts/tls-certs.sh" client "$T/pki" "${2:-nbduser}" --out "$1" >/dev/null ||
        fail "cannot make a client certificate in $1"
}

# start_attach_tcp VOL PORT [EXTRA ARGS...]: run "repvol attach VOL
# --nbd tcp:127.0.0.1:PORT ARGS" in the background and wait until it
# has attached (its log says "serving") and listens.  Sets
# ATTACH_PID[VOL] (stop_attach stops it).
start_attach_tcp() {
    local vol=$1 port=$2 pid deadline logf
    shift 2
    logf=$T/attach-$vol.log
    start_bg "$logf" "$REPVOL" attach "$vol" --nbd "tcp:127.0.0.1:$port" "$@"
    pid=$BG_PID
    deadline=$(( $(date +%s%N) + WAIT_TIMEOUT * 1000000000 ))
    until grep -q "serving tcp:" "$logf" && port_listening "$port"; do
        if ! pid_alive "$pid"; then
            cat "$logf" >&2
            fail "repvol attach $vol exited before serving NBD on port $port"
        fi
        (( $(date +%s%N) < deadline )) ||
            fail "repvol attach $vol not serving on port $port within ${WAIT_TIMEOUT}s"
        sleep 0.02
    done
    ATTACH_PID[$vol]=$pid
    log "attach $vol pid $pid on tcp:127.0.0.1:$port"
}

# nbds_uri PORT DIR: the libnbd URI of a TLS export checked with DIR.
nbds_uri() { printf 'nbds://localhost:%s?tls-certificates=%s' "$1" "$2"; }
