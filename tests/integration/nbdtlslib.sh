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
    local vol=$1 port=$2
    shift 2
    start_bg "$T/attach-$vol.log" "$REPVOL" attach "$vol" --nbd "tcp:127.0.0.1:$port" "$@"
    wait_for _attach_tcp_serving "$BG_PID" "$T/attach-$vol.log" "$port"
    ATTACH_PID[$vol]=$BG_PID
    log "attach $vol pid $BG_PID on tcp:127.0.0.1:$port"
}

# _attach_tcp_serving PID LOG PORT: the attach has said it serves and
# listens; fails the test at once if it exited (its log is kept).
_attach_tcp_serving() {
    pid_alive "$1" || fail "repvol attach exited before serving NBD on port $3; see $2"
    grep -q "serving tcp:" "$2" && port_listening "$3"
}

# nbds_uri PORT DIR: the libnbd URI of a TLS export checked with DIR.
nbds_uri() { printf 'nbds://localhost:%s?tls-certificates=%s' "$1" "$2"; }
