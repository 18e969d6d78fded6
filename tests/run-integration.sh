#!/bin/bash
# Run repvol's numbered integration tests in order.
#
#   tests/run-integration.sh [TEST...]
#
# With no arguments runs every tests/integration/[0-9][0-9][0-9]-*.sh.
# Each test runs in its own bash with a bound (TEST_TIMEOUT, default 300 s;
# on timeout the whole test's process group gets SIGTERM, then SIGKILL 10 s
# later).  Exit status 0 = PASS, 77 = SKIP, anything else = FAIL.  Output of
# each test goes to tests/out/NAME.log (VERBOSE=1 also streams it); a failing
# test's log tail is printed.  TEST_JOBS=N (default 1) runs up to N tests
# at once, each line printed as its test ends; a test whose first 30
# lines hold "# run-integration: alone" runs with no other beside it, and
# one with "# run-integration: timeout S" gets S seconds if that is more.  The last line is "N passed, N failed" (plus
# ", N skipped" when any were), and the exit status is non-zero when any test
# failed or when no test was found.
#
# When a selected test calls require_s3 (tests/integration/lib.sh), an S3
# server (Ceph's RADOS Gateway, scripts/s3-server.sh) is started once
# before the first test, in a temp state dir, and its env
# (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, REPVOL_TEST_S3_URL, ...) is
# exported to every test; it is stopped by pid when the run ends, also on
# failure or interrupt.  If it cannot start, the reason is printed and
# those tests skip with it.  REPVOL_TEST_S3=0 never starts one; a
# REPVOL_TEST_S3_URL already in the environment (with its AWS_*
# variables) is used as it is.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
OUT=${TEST_OUT:-$TOP/tests/out}
TEST_TIMEOUT=${TEST_TIMEOUT:-300}
TEST_JOBS=${TEST_JOBS:-1}
[[ $TEST_JOBS =~ ^[1-9][0-9]?$ ]] || { echo "run-integration: TEST_JOBS must be 1 to 99, not '$TEST_JOBS'" >&2; exit 2; }
mkdir -p "$OUT"

if (($#)); then
    tests=("$@")
else
    shopt -s nullglob
    tests=("$TOP"/tests/integration/[0-9][0-9][0-9]-*.sh)
    shopt -u nullglob
fi

passed=0 failed=0 skipped=0 failures=()
if ((${#tests[@]} == 0)); then
    echo "run-integration: no tests found under tests/integration/" >&2
    echo "0 passed, 0 failed"
    exit 1
fi

declare -A running=() started=()  # test pool: pid -> name, name -> start ns

# The S3 server, only when some selected test needs it.
S3_STATE=
stop_s3() {
    local p c
    # Tests still running (an interrupt, a failure of this script): their
    # timeout leads a process group of its own.
    for p in "${!running[@]}"; do
        for c in $(pgrep -P "$p" 2>/dev/null); do kill -TERM -- "-$c" 2>/dev/null || true; done
    done
    if [[ -n $S3_STATE ]]; then
        "$TOP/scripts/s3-server.sh" stop "$S3_STATE/rgw" || true
        rm -rf "$S3_STATE"
        S3_STATE=
    fi
}
trap stop_s3 EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [[ -z ${REPVOL_TEST_S3_URL-} && ${REPVOL_TEST_S3:-1} != 0 ]] &&
    grep -lq '^[[:space:]]*require_s3' "${tests[@]}" 2>/dev/null; then
    S3_STATE=$(mktemp -d "${TMPDIR:-/tmp}/repvol-s3.XXXXXX")
    echo "run-integration: starting an S3 server (radosgw) in $S3_STATE"
    s3start=$(date +%s)
    if timeout -k 10 300 "$TOP/scripts/s3-server.sh" start "$S3_STATE/rgw" \
        >"$OUT/s3-server.log" 2>&1; then
        # shellcheck source=/dev/null
        . "$S3_STATE/rgw/env"
        echo "run-integration: S3 server up in $(( $(date +%s) - s3start ))s at $AWS_ENDPOINT_URL"
    else
        export REPVOL_TEST_S3_ERROR="the S3 server did not start (see ${OUT#"$TOP"/}/s3-server.log)"
        echo "run-integration: $REPVOL_TEST_S3_ERROR; tests that need S3 will SKIP:" >&2
        tail -n 25 "$OUT/s3-server.log" | sed 's/^/    | /' >&2
        "$TOP/scripts/s3-server.sh" stop "$S3_STATE/rgw" >/dev/null 2>&1 || true
    fi
fi

# One test: run it bounded, its output in its log; its exit status is
# written to $logf.rc (the pool below reads it once the test is reaped).
run_one() {
    local t=$1 logf=$2 rc=0 bound=$TEST_TIMEOUT own
    # A long test (the soak) may ask for more: "# run-integration: timeout S".
    own=$(head -n 30 "$t" | sed -n 's/^# run-integration: timeout \([0-9][0-9]*\)$/\1/p' | head -n 1)
    [[ -n $own ]] && ((own > bound)) && bound=$own
    if [[ ${VERBOSE:-0} == 1 ]]; then
        timeout -k 10 "$bound" bash "$t" 2>&1 | tee "$logf" || rc=${PIPESTATUS[0]}
    else
        timeout -k 10 "$bound" bash "$t" >"$logf" 2>&1 </dev/null || rc=$?
    fi
    echo "$rc" > "$logf.rc"
}

# report NAME: the line for a finished test, and the counts.
report() {
    local name=$1 logf=$OUT/$1.log rc secs why
    rc=$(cat "$logf.rc" 2>/dev/null || echo 1)
    rm -f "$logf.rc"
    secs=$(( ($(date +%s%N) - ${started[$name]}) / 1000000 ))
    secs=$(printf '%d.%03d' $((secs / 1000)) $((secs % 1000)))
    case $rc in
    0)  passed=$((passed + 1)); printf 'PASS %-40s %8ss\n' "$name" "$secs" ;;
    77) skipped=$((skipped + 1))
        printf 'SKIP %-40s %8ss  %s\n' "$name" "$secs" \
            "$(grep -m1 '^SKIP' "$logf" | sed 's/^SKIP: [^:]*: //' || true)" ;;
    *)  failed=$((failed + 1)); failures+=("$name")
        why="exit $rc"
        ((rc == 124 || rc == 137)) && why="timed out"
        printf 'FAIL %-40s %8ss  (%s; log: %s)\n' "$name" "$secs" "$why" "${logf#"$TOP"/}"
        [[ ${VERBOSE:-0} == 1 ]] || tail -n 30 "$logf" | sed 's/^/    | /' ;;
    esac
}

# The pool: up to TEST_JOBS tests at once (most of a test's time is
# waiting on servers, timers and polls, not CPU: a serial pass used about
# a sixth of one core).  Every test has its own temp dir, free ports and
# S3 prefix; one that disturbs what others share (it stops the S3
# gateway, say) says "# run-integration: alone" in its first 30 lines and
# runs with nothing beside it.
reap_one() {
    local pid name
    wait -n -p pid "${!running[@]}" || true
    name=${running[$pid]}
    unset "running[$pid]"
    report "$name"
}
jobs_max=$TEST_JOBS
[[ ${VERBOSE:-0} == 1 ]] && jobs_max=1
for t in "${tests[@]}"; do
    t=$(realpath -- "$t")
    name=$(basename "$t" .sh)
    alone=0
    head -n 30 "$t" | grep -q '^# run-integration: alone' && alone=1
    if ((alone)); then
        while ((${#running[@]})); do reap_one; done
    else
        while ((${#running[@]} >= jobs_max)); do reap_one; done
    fi
    started[$name]=$(date +%s%N)
    run_one "$t" "$OUT/$name.log" &
    running[$!]=$name
    if ((alone)); then
        while ((${#running[@]})); do reap_one; done
    fi
done
while ((${#running[@]})); do reap_one; done

((failed == 0)) || echo "failed: ${failures[*]}"
summary="$passed passed, $failed failed"
((skipped == 0)) || summary+=", $skipped skipped"
echo "$summary"
((failed == 0))
