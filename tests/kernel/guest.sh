#!/bin/bash
# guest.sh OUTDIR [TEST...] - runs inside the VM (tests/kernel/run.sh boots
# it through scripts/kernel-vm.sh): every tests/kernel/[0-9]*.sh (or the
# TESTs given) in order, one at a time, each bounded by KTEST_TIMEOUT
# (default 300 s) or the longer bound its "# ktest-timeout: S" line asks
# for (tests/kernel/bound.sh).  Exit status 0 = PASS, 77 = SKIP, else
# FAIL.  Each test's output goes to OUTDIR/NAME.log; "RESULT NAME SECONDS
# [REASON]" lines go to OUTDIR/results and to stdout.  Exits 1 if any test
# failed.
set -uo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$1
shift
KTEST_TIMEOUT=${KTEST_TIMEOUT:-300}
if (($#)); then
    tests=("$@")
else
    tests=("$TOP"/tests/kernel/[0-9][0-9][0-9]-*.sh)
fi
mkdir -p "$OUT"
# shellcheck source=bound.sh
. "$TOP/tests/kernel/bound.sh"
: >"$OUT/results"
echo "guest: Debian ${REPVOL_VM_KERNEL:-?} kernel $(uname -r), ${REPVOL_VM_ACCEL:-?}," \
     "$(nproc) vCPUs, $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) MiB," \
     "devices: $(for d in /dev/ublk-control /dev/nbd0; do [[ -e $d ]] && printf '%s ' "$d"; done)"
failed=0
for t in "${tests[@]}"; do
    # a path, a file name or a number prefix ("012")
    if [[ ! -f $t ]]; then
        m=("$TOP"/tests/kernel/"$(basename "$t" .sh)"*.sh)
        t=${m[0]}
    fi
    t=$(realpath -- "$t")
    name=$(basename "$t" .sh)
    start=$(date +%s%N)
    rc=0
    bound=$(test_bound "$t")
    timeout -k 10 "$bound" bash "$t" >"$OUT/$name.log" 2>&1 </dev/null || rc=$?
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    secs=$(printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)))
    case $rc in
    0)  line="PASS $name $secs" ;;
    77) line="SKIP $name $secs $(grep -m1 '^SKIP' "$OUT/$name.log" | sed 's/^SKIP: [^:]*: //')" ;;
    *)  failed=1
        why="exit $rc"
        ((rc == 124 || rc == 137)) && why="timed out after ${bound}s"
        line="FAIL $name $secs $why" ;;
    esac
    echo "$line" >>"$OUT/results"
    echo "$line"
    if [[ $line == FAIL* ]]; then
        tail -n 40 "$OUT/$name.log" | sed 's/^/    | /'
        dmesg | tail -n 15 | sed 's/^/    dmesg| /'
    fi
    sync
done
exit "$failed"
