# Shared helpers for repvol's numbered integration tests.
#
# Source it first thing from a test:
#
#     #!/bin/bash
#     . "$(dirname "$0")/lib.sh"
#
# It gives the test:
#   - "set -euo pipefail";
#   - a private temp dir $T (under ${TMPDIR:-/tmp}), which is also the
#     working directory, removed on exit unless KEEP_TMP=1, and
#     REPVOL_REGISTRY=$T/registry exported;
#   - $REPVOL / $REPVOLD (the built binaries) and a `repvol` shell function;
#   - start_repvold, start_attach, stop_attach, start_bg, wait_for,
#     wait_written, wait_exit, kill_pid, mount_small_tmpfs;
#   - an EXIT trap that stops every process started through these helpers,
#     by pid (SIGTERM, then SIGKILL after a bounded wait), then unmounts
#     what mount_small_tmpfs mounted, and on failure prints the tail of
#     every process log;
#   - assertions: fail, skip, assert_eq, assert_files_identical,
#     expect_fail, expect_fail_match, require_cmd;
#   - require_s3 and s3_curl for tests against the S3 server that
#     tests/run-integration.sh starts.
#   - with REPVOL_TEST_REGISTRY=etcd, a 3-member etcd cluster of the
#     test's own as its registry (see the end of this file).
#
# Processes must be started from the test's main shell (not inside "$(...)")
# so that their pids land in the arrays the EXIT trap reads.
#
# Nothing here sleeps for a fixed time hoping something happened: every wait
# polls a condition and gives up after a bound (WAIT_TIMEOUT, default 10 s).

# The variables set here are for the tests that source this file.
# shellcheck disable=SC2034

set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
REPVOL=$BUILD/repvol
REPVOLD=$BUILD/repvold
TEST_NAME=$(basename "$0" .sh)
WAIT_TIMEOUT=${WAIT_TIMEOUT:-10}
# LAUNCH: a command prefix for every process start_bg starts, e.g.
# LAUNCH=(taskset -c 0) to pin them all; empty by default.
LAUNCH=(${LAUNCH[@]+"${LAUNCH[@]}"})

T=$(mktemp -d "${TMPDIR:-/tmp}/repvol-test-$TEST_NAME.XXXXXX")
export REPVOL_REGISTRY=$T/registry
mkdir -p "$REPVOL_REGISTRY"
# Work inside $T, so that whatever tools leave in the working directory
# (fio's verify state files, say) goes away with it.
cd "$T"
# Replica servers keep their data under $REPVOLD_DATA_ROOT/NAME (default $T).
REPVOLD_DATA_ROOT=${REPVOLD_DATA_ROOT:-$T}

PIDS=()                    # every pid we started, in start order
CLEANUP_PATHS=()           # more paths the EXIT trap removes (besides $T)
MOUNTS=()                  # tmpfs mounts the EXIT trap unmounts
EXIT_HOOKS=()              # functions the EXIT trap runs after the processes stop
declare -A PID_LOG=()      # pid -> its log file
declare -A REAPED=()       # pids already waited for: never signal them again
declare -A REPVOLD_PID=()  # replica server name -> pid
declare -A REPVOLD_PORT=() # replica server name -> TCP port
declare -A REPVOLD_ADDR=() # replica server name -> 127.0.0.1:port
declare -A REPVOLD_DIR=()  # replica server name -> data directory
declare -A ATTACH_PID=()   # volume -> pid of its "repvol attach"
declare -A ATTACH_SOCK=()  # volume -> NBD unix socket path

# REPVOL_TEST_TLS=1 runs a test over TLS: every repvold start_repvold
# starts serves TLS only (X.509 from $T/pki, made here), and every
# client presents the "admin" certificate through REPVOL_TLS_DIR (the
# repvol CLI and attach, and tests/tools/rvproto.py's raw connections).
REPVOLD_TLS_ARGS=()
if [[ ${REPVOL_TEST_TLS:-0} == 1 ]]; then
    { "$TOP/scripts/tls-certs.sh" ca "$T/pki" &&
      "$TOP/scripts/tls-certs.sh" server "$T/pki" &&
      "$TOP/scripts/tls-certs.sh" client "$T/pki" admin; } >/dev/null ||
        { echo "cannot make certificates in $T/pki" >&2; exit 1; }
    export REPVOL_TLS_DIR=$T/pki
    REPVOLD_TLS_ARGS=(--tls-dir "$T/pki")
fi

log()  { printf '[%s] %s\n' "$TEST_NAME" "$*" >&2; }

fail() {
    printf 'FAIL: %s: %s\n' "$TEST_NAME" "$*" >&2
    exit 1
}

# Exit code 77 tells tests/run-integration.sh the test was skipped.
skip() {
    printf 'SKIP: %s: %s\n' "$TEST_NAME" "$*" >&2
    exit 77
}

require_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip "needs $c"
    done
}

repvol() { "$REPVOL" "$@"; }

# built_with_asan: the binaries under test carry AddressSanitizer (make
# check-asan), which makes them several times slower.
built_with_asan() { grep -q libasan <<<"$(ldd "$REPVOL" 2>/dev/null)"; }

# require_s3: skip unless an S3 server is configured (run-integration.sh
# starts one and exports REPVOL_TEST_S3_URL, AWS_*).  Sets S3_URL to a
# prefix of its own for this test run, and S3_STATE to the server's state
# dir (for scripts/s3-server.sh stop-gateway/start-gateway) when known.
require_s3() {
    [[ -n ${REPVOL_TEST_S3_URL-} ]] ||
        skip "no S3 server: ${REPVOL_TEST_S3_ERROR:-REPVOL_TEST_S3_URL is not set (tests/run-integration.sh starts one)}"
    require_cmd curl
    S3_URL=$REPVOL_TEST_S3_URL/$TEST_NAME-$$
    S3_STATE=${REPVOL_TEST_S3_STATE-}
}

# s3_curl METHOD PATH [CURL ARGS...]: a SigV4-signed request to the S3
# endpoint (PATH is /BUCKET/KEY[?QUERY], query sorted and encoded); the
# body goes to stdout, the HTTP status to $T/s3_curl.code.
s3_curl() {
    local m=$1 p=$2
    shift 2
    curl -s -X "$m" --max-time 60 --aws-sigv4 "aws:amz:${AWS_REGION:-us-east-1}:s3" \
        --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
        -w '%{stderr}%{http_code}' "$@" "$AWS_ENDPOINT_URL$p" 2>"$T/s3_curl.code"
}

# ---------------------------------------------------------------------------
# processes

# pid_alive PID: true while PID runs (a zombie we have not reaped counts as
# dead, which "kill -0" alone would not say).
pid_alive() {
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ ${st%% *} != Z ]]
}

# wait_exit PID [TIMEOUT]: wait (bounded) for PID to exit; returns its exit
# status (if it is our child), 124 if it is still running at the bound.
wait_exit() {
    local pid=$1 bound=${2:-$WAIT_TIMEOUT} deadline rc=0
    deadline=$(( $(date +%s%N) + bound * 1000000000 ))
    while pid_alive "$pid"; do
        (( $(date +%s%N) < deadline )) || return 124
        sleep 0.02
    done
    wait "$pid" 2>/dev/null || rc=$?
    # Reaped: the number may now belong to another process (pid_max is
    # often 32768 and other tests run at the same time).
    REAPED[$pid]=1
    return "$rc"
}

# kill_pid PID [SIGNAL] [TIMEOUT]: send SIGNAL (default TERM); if the
# process is still there after TIMEOUT seconds (default WAIT_TIMEOUT),
# SIGKILL it.  Always reaps it.  Returns 0.
kill_pid() {
    local pid=$1 sig=${2:-TERM} bound=${3:-$WAIT_TIMEOUT}
    # Already reaped: that number is no longer ours to signal.
    [[ -z ${REAPED[$pid]-} ]] || return 0
    kill -s "$sig" "$pid" 2>/dev/null || true
    # A process a test stopped (SIGSTOP) must run to act on the signal.
    kill -s CONT "$pid" 2>/dev/null || true
    if ! wait_exit "$pid" "$bound" && pid_alive "$pid"; then
        log "pid $pid ignored SIG$sig for ${bound}s; sending SIGKILL"
        kill -s KILL "$pid" 2>/dev/null || true
        wait_exit "$pid" 5 || true
    fi
    return 0
}

# wait_for [-t SECS] CMD...: run CMD until it succeeds, at most SECS
# seconds (default WAIT_TIMEOUT); fails the test if it never does.
wait_for() {
    local bound=$WAIT_TIMEOUT deadline
    if [[ ${1-} == -t ]]; then bound=$2; shift 2; fi
    deadline=$(( $(date +%s%N) + bound * 1000000000 ))
    until "$@" >/dev/null 2>&1; do
        (( $(date +%s%N) < deadline )) || fail "timed out after ${bound}s waiting for: $*"
        sleep 0.02
    done
}

# wait_written FILE PID [SECS]: until FILE exists and is not empty, as the
# background process PID (from start_bg) writes it; fails, showing PID's
# log, if PID exits without writing it or SECS (default WAIT_TIMEOUT) pass.
wait_written() {
    local file=$1 pid=$2 bound=${3:-$WAIT_TIMEOUT} deadline
    deadline=$(( $(date +%s%N) + bound * 1000000000 ))
    until [[ -s $file ]]; do
        if ! pid_alive "$pid" && [[ ! -s $file ]]; then
            tail -n 20 "${PID_LOG[$pid]}" >&2
            fail "pid $pid exited without writing $file"
        fi
        (( $(date +%s%N) < deadline )) || fail "no $file within ${bound}s"
        sleep 0.02
    done
}

# free_port: print a TCP port on 127.0.0.1 that is free right now.
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

port_listening() {
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

# start_bg LOG CMD...: start CMD in the background with output to LOG and record
# its pid; the pid is left in $BG_PID.
start_bg() {
    local logf=$1; shift
    ${LAUNCH[@]+"${LAUNCH[@]}"} "$@" >"$logf" 2>&1 &
    BG_PID=$!
    PIDS+=("$BG_PID")
    PID_LOG[$BG_PID]=$logf
}

# start_repvold NAME [ZONE] [EXTRA ARGS...]
# Starts a replica server on a free loopback port with data dir
# $REPVOLD_DATA_ROOT/NAME (default $T/NAME) and
# waits until it listens.  ZONE may be "" for no zone; an argument starting
# with "-" in ZONE's place is taken as the first extra argument.
# Sets REPVOLD_PID[NAME], REPVOLD_PORT[NAME], REPVOLD_ADDR[NAME],
# REPVOLD_DIR[NAME], and $PORT / $ADDR for the one just started.
start_repvold() {
    local name=$1 zone="" attempt port logf pid deadline
    shift
    if (($#)) && [[ $1 != -* ]]; then zone=$1; shift; fi
    local dir=$REPVOLD_DATA_ROOT/$name
    local args=(--data-dir "$dir" --name "$name")
    [[ -n $zone ]] && args+=(--zone "$zone")
    mkdir -p -m 0700 "$dir"
    [[ -x $REPVOLD ]] || fail "$REPVOLD not built"
    for attempt in 1 2 3; do
        # Starting a server again (after a kill) reuses its port: the
        # registry knows it by its address.
        port=${REPVOLD_PORT[$name]:-$(free_port)}
        logf=$T/repvold-$name.log
        start_bg "$logf" "$REPVOLD" "${args[@]}" --listen "127.0.0.1:$port" \
            ${REPVOLD_TLS_ARGS[@]+"${REPVOLD_TLS_ARGS[@]}"} "$@"
        pid=$BG_PID
        deadline=$(( $(date +%s%N) + WAIT_TIMEOUT * 1000000000 ))
        while pid_alive "$pid" && ! port_listening "$port"; do
            (( $(date +%s%N) < deadline )) ||
                fail "repvold $name did not listen on 127.0.0.1:$port within ${WAIT_TIMEOUT}s"
            sleep 0.02
        done
        if pid_alive "$pid"; then
            REPVOLD_PID[$name]=$pid
            REPVOLD_PORT[$name]=$port
            REPVOLD_ADDR[$name]=127.0.0.1:$port
            REPVOLD_DIR[$name]=$dir
            PORT=$port
            ADDR=127.0.0.1:$port
            log "repvold $name${zone:+ (zone $zone)} pid $pid on $ADDR"
            return 0
        fi
        # It exited before listening: most likely someone took the port
        # between free_port and bind.  Try another port, twice.
        wait "$pid" 2>/dev/null || true
        REAPED[$pid]=1
        log "repvold $name exited early (attempt $attempt):"; tail -n 5 "$logf" >&2
    done
    fail "repvold $name would not start; see $logf"
}

# stop_repvold NAME [SIGNAL]: stop a replica server (default SIGTERM; use
# KILL to simulate a crash) and wait for it.
stop_repvold() {
    kill_pid "${REPVOLD_PID[$1]}" "${2:-TERM}"
}

nbd_uri() { printf 'nbd+unix:///?socket=%s' "$1"; }

# start_attach VOL SOCK [EXTRA ARGS...]: run "repvol attach VOL --nbd
# unix:SOCK" in the background and wait until an NBD client can connect.
# Sets ATTACH_PID[VOL], ATTACH_SOCK[VOL].
start_attach() {
    local vol=$1 sock=$2 pid deadline logf
    shift 2
    logf=$T/attach-$vol.log
    start_bg "$logf" "$REPVOL" attach "$vol" --nbd "unix:$sock" "$@"
    pid=$BG_PID
    deadline=$(( $(date +%s%N) + WAIT_TIMEOUT * 1000000000 ))
    until [[ -S $sock ]] && timeout 5 nbdinfo --size "$(nbd_uri "$sock")" >/dev/null 2>&1; do
        if ! pid_alive "$pid"; then
            cat "$logf" >&2
            fail "repvol attach $vol exited before serving NBD"
        fi
        (( $(date +%s%N) < deadline )) ||
            fail "repvol attach $vol not serving on $sock within ${WAIT_TIMEOUT}s"
        sleep 0.02
    done
    ATTACH_PID[$vol]=$pid
    ATTACH_SOCK[$vol]=$sock
    log "attach $vol pid $pid on $sock"
}

# stop_attach VOL: "repvol detach VOL", then the attach process must exit 0
# within the bound.
stop_attach() {
    local vol=$1 pid=${ATTACH_PID[$1]} rc=0
    "$REPVOL" detach "$vol" || fail "repvol detach $vol failed"
    wait_exit "$pid" || rc=$?
    ((rc != 124)) || fail "repvol attach $vol still running ${WAIT_TIMEOUT}s after detach"
    ((rc == 0)) || fail "repvol attach $vol exited with status $rc after detach"
    unset "ATTACH_PID[$vol]"
}

# server_field NAME FIELD: FIELD of server NAME in "repvol server list
# --json" ("none" when the pool does not know it); server_is NAME STATE.
server_field() {
    "$REPVOL" server list --json 2>/dev/null | python3 -c '
import json, sys
s = [x for x in json.load(sys.stdin) if x["name"] == sys.argv[1]]
print(s[0][sys.argv[2]] if s else "none")' "$1" "$2"
}
server_is() { [[ $(server_field "$1" state) == "$2" ]]; }

# all_in_sync VOL: true when the registry lists every replica of VOL in
# sync (use with wait_for to wait for a catch-up).
all_in_sync() {
    "$REPVOL" status "$1" --json 2>/dev/null | python3 -c '
import json, sys
v = json.load(sys.stdin)
sys.exit(0 if all(r["state"] == "in-sync" for r in v["replicas"]) else 1)'
}

# mount_small_tmpfs DIR SIZE: mount a tmpfs of SIZE (e.g. 12M) on DIR
# (created if missing), for a data dir that fills up; skips the test
# when mounting is not allowed here.  The EXIT trap unmounts it once
# every process has been stopped.
mount_small_tmpfs() {
    local dir=$1 size=$2
    mkdir -p "$dir"
    if ! mount -t tmpfs -o "size=$size,mode=0700" tmpfs "$dir" 2>"$T/mount.err"; then
        skip "cannot mount a tmpfs on $dir: $(cat "$T/mount.err")"
    fi
    MOUNTS+=("$dir")
    log "tmpfs of $size on $dir"
}

# ---------------------------------------------------------------------------
# assertions

# assert_eq EXPECTED ACTUAL [WHAT]
assert_eq() {
    [[ $1 == "$2" ]] || fail "${3:-value}: expected '$1', got '$2'"
}

# assert_files_identical A B: byte-for-byte equal (cmp), or fail showing
# where they differ and both checksums.
assert_files_identical() {
    local out
    [[ -f $1 ]] || fail "missing file $1"
    [[ -f $2 ]] || fail "missing file $2"
    if ! out=$(cmp -- "$1" "$2" 2>&1); then
        sha256sum -- "$1" "$2" >&2
        fail "files differ: $out"
    fi
}

# expect_fail CMD...: CMD must exit non-zero (and not by a signal or a
# timeout); its stderr is printed and left in $EXPECT_STDERR.
expect_fail() {
    local rc=0 errf=$T/expect_fail.stderr
    "$@" >"$T/expect_fail.stdout" 2>"$errf" || rc=$?
    EXPECT_STDERR=$(cat "$errf")
    if ((rc == 0)); then
        cat "$T/expect_fail.stdout" "$errf" >&2
        fail "expected failure but it succeeded: $*"
    fi
    ((rc < 124)) || fail "expected a clean failure, got exit status $rc: $*"
    printf '  expected failure (exit %d): %s\n    %s\n' "$rc" "$*" "$EXPECT_STDERR" >&2
}

# expect_fail_match REGEX CMD...: as expect_fail, and stderr must match
# the extended REGEX.
expect_fail_match() {
    local re=$1; shift
    expect_fail "$@"
    grep -Eq -- "$re" <<<"$EXPECT_STDERR" ||
        fail "stderr of '$*' does not match /$re/: $EXPECT_STDERR"
}

# ---------------------------------------------------------------------------
# cleanup

_lib_cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    set +e
    # One at a time, newest first, so that clients (an attach draining its
    # writes) stop while the servers they talk to are still up.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        [[ -z ${REAPED[$pid]-} ]] || continue
        if pid_alive "$pid"; then
            kill_pid "$pid" TERM "$WAIT_TIMEOUT"
        else
            wait "$pid" 2>/dev/null
        fi
    done
    for i in ${EXIT_HOOKS[@]+"${EXIT_HOOKS[@]}"}; do
        "$i"
    done
    # Nothing runs from the mounts now.  A lazy unmount if a plain one is
    # refused, so a test never leaves one behind.
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" ||
            printf 'WARNING: %s: cannot unmount %s\n' "$TEST_NAME" "${MOUNTS[i]}" >&2
    done
    if ((rc != 0 && rc != 77)); then
        for pid in "${PIDS[@]}"; do
            [[ -s ${PID_LOG[$pid]-} ]] || continue
            printf -- '--- %s (last 20 lines)\n' "${PID_LOG[$pid]##*/}" >&2
            tail -n 20 "${PID_LOG[$pid]}" >&2
        done
    fi
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        log "kept $T ${CLEANUP_PATHS[*]}"
    else
        rm -rf "$T" ${CLEANUP_PATHS[@]+"${CLEANUP_PATHS[@]}"}
    fi
    exit "$rc"
}
trap _lib_cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# REPVOL_TEST_REGISTRY=etcd runs the test with its registry in a 3-member
# etcd cluster of its own (tests/integration/etcdlib.sh; https when
# REPVOL_TEST_TLS=1) instead of the directory $T/registry: every verb
# then goes through the etcd backend.  Tests that look at registry files
# themselves need the directory.
if [[ ${REPVOL_TEST_REGISTRY:-dir} == etcd && ${ETCD_N:-0} == 0 ]]; then
    # shellcheck source=etcdlib.sh
    . "$TOP/tests/integration/etcdlib.sh"
    [[ ${REPVOL_TEST_TLS:-0} != 1 ]] || ETCD_TLS_DIR=$T/pki
    start_etcd_cluster 3
    export REPVOL_REGISTRY=etcd://$ETCD_HOSTS/$TEST_NAME
    log "registry: $REPVOL_REGISTRY"
fi
