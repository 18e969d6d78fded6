#!/bin/bash
# repvol's kernel block device benchmark ("make bench-kernel", also run by
# "make bench" where qemu is installed).
#
# On the host: fetches the Debian kernels (scripts/kernel-vm.sh fetch;
# cached), builds repvol.ko for each (scripts/kernel-vm.sh kmod) and boots
# Debian 13 (trixie: ublk_drv, nbd, repvol.ko) and Debian 12 (bookworm:
# nbd, repvol.ko; no ublk), running this same script inside each.  In the
# guest: two repvold (distinct zones) and one 256 MiB volume, then fio 4k
# randwrite QD32 and 4k randread QD32 (libaio, O_DIRECT, over a 64 MiB
# region written sequentially first) through
#   ublk        /dev/ublkb0     repvol attach --ublk
#   kmod        /dev/repvolN    repvol attach --kmod (repvol.ko)
#   nbd-kernel  /dev/nbdN       repvol attach --nbd-device auto
#   nbd-client  /dev/nbd0       repvol attach --nbd unix:S + nbd-client -unix S
#   nbd-socket  fio nbd engine  repvol attach --nbd unix:S (no kernel driver)
# A row whose frontend this build (or kernel) lacks is printed as skipped.
# Under TCG the numbers measure qemu's emulation more than repvol: they are
# labelled "emulated (qemu TCG)" and only the ratios between rows of one
# boot mean much.  Each boot ends with the ratios of issue 14's goal:
# kmod / nbd-kernel IOPS at 4k randwrite QD32 (goal >= 1) and kmod / ublk
# (goal: close to 1), higher is better for both.
#
# Environment: BENCH_RUNTIME seconds per job (default 10), BENCH_RAMP
# (default 2), BENCH_KROWS rows (default "ublk kmod nbd-kernel nbd-client
# nbd-socket"), BENCH_KERNELS (default "trixie bookworm"), BUILD
# (binaries, default build/).
set -euo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)

if [[ -z ${REPVOL_VM_KERNEL:-} ]]; then
    # Host side: fetch, boot trixie, run this script inside.
    rc=0
    out=$("$TOP/scripts/kernel-vm.sh" fetch 2>&1) || rc=$?
    if ((rc == 77)); then
        echo "bench-kernel: SKIPPED: $(grep -m1 '^SKIP: ' <<<"$out" | sed 's/^SKIP: //')"
        exit 0
    elif ((rc != 0)); then
        echo "$out" >&2
        exit 1
    fi
    # The guest's environment is fresh: pass the knobs on the command line.
    export BUILD=${BUILD:-$TOP/build}
    brc=0
    for k in ${BENCH_KERNELS:-trixie bookworm}; do
        kv=$("$TOP/scripts/kernel-vm.sh" version "$k")
        "$TOP/scripts/kernel-vm.sh" kmod "$k" "$BUILD/kmod/$kv" >/dev/null 2>&1 ||
            echo "bench-kernel: repvol.ko did not build for $kv: no kmod row (scripts/kernel-vm.sh kmod $k DIR says why)"
        REPVOL_VM_PASSENV=BUILD "$TOP/scripts/kernel-vm.sh" run "$k" "$0" \
            "${BENCH_RUNTIME:-10}" "${BENCH_RAMP:-2}" \
            "${BENCH_KROWS:-ublk kmod nbd-kernel nbd-client nbd-socket}" || brc=1
    done
    exit "$brc"
fi

RUNTIME=$1 RAMP=$2 ROWS=$3
WAIT_TIMEOUT=60
TEST_NAME=bench-kernel
# shellcheck source=tests/kernel/lib.sh
. "$TOP/tests/kernel/lib.sh"
require_cmd fio

if [[ $REPVOL_VM_ACCEL == tcg ]]; then
    MODE="emulated (qemu TCG, $(nproc) vCPUs): correctness-grade numbers, compare rows only"
else
    MODE="qemu with KVM, $(nproc) vCPUs"
fi
RES=$T/results
: >"$RES"

two_replicas vol1 256M

# fio_job ROW JOB TARGET-OPTIONS...: one measured job, a result line to $RES
fio_job() {
    local row=$1 job=$2 rw
    shift 2
    case $job in
    4k-randwrite-qd32) rw=randwrite ;;
    4k-randread-qd32) rw=randread ;;
    esac
    if ! timeout -k 5 $((RUNTIME + RAMP + 120)) fio --name="$job" "$@" --rw="$rw" --bs=4k \
        --iodepth=32 --size=64M --time_based --runtime="$RUNTIME" --ramp_time="$RAMP" \
        --output-format=json --output="$T/$row-$job.json" >/dev/null 2>"$T/$row-$job.err"; then
        printf '%s\t%s\tfailed\t-\t-\n' "$row" "$job" >>"$RES"
        log "fio $row $job failed: $(tail -n 3 "$T/$row-$job.err" "$T/$row-$job.json" 2>/dev/null)"
        return 0
    fi
    python3 - "$row" "$job" "$T/$row-$job.json" >>"$RES" <<'EOF'
import json, sys
row, job, path = sys.argv[1:4]
j = json.load(open(path))["jobs"][0]
d = j["write"] if j["write"]["io_bytes"] else j["read"]
p = d["clat_ns"].get("percentile", {})
print(f'{row}\t{job}\t{d["iops"]:.0f}\t{p.get("50.000000", 0) / 1000:.0f}\t{p.get("99.000000", 0) / 1000:.0f}')
EOF
}

# bench_row ROW TARGET-OPTIONS...: fill the region, then both jobs
bench_row() {
    local row=$1
    shift
    log "row $row: $*"
    fio --name=fill "$@" --rw=write --bs=1M --iodepth=4 --size=64M \
        --output="$T/$row-fill.txt" >/dev/null 2>&1 || log "row $row: fill failed"
    fio_job "$row" 4k-randwrite-qd32 "$@"
    fio_job "$row" 4k-randread-qd32 "$@"
}

skip_row() { printf '%s\tskipped: %s\t-\t-\t-\n' "$1" "$2" >>"$RES"; log "row $1 skipped: $2"; }

DEVOPTS=(--ioengine=libaio --direct=1)
for row in $ROWS; do
    case $row in
    ublk|kmod|nbd-kernel)
        if [[ $row == ublk ]]; then
            [[ -c /dev/ublk-control ]] || { skip_row "$row" "kernel has no ublk"; continue; }
            args=(--ublk)
        elif [[ $row == kmod ]]; then
            ko=$BUILD/kmod/$(uname -r)/repvol.ko
            [[ -c /dev/repvol-control ]] || insmod "$ko" 2>/dev/null ||
                { skip_row "$row" "cannot load $ko"; continue; }
            args=(--kmod)
        else
            args=(--nbd-device auto)
        fi
        rc=0
        try_dev_attach vol1 "${args[@]}" || rc=$?
        if ((rc == 3)); then skip_row "$row" "$NO_FRONTEND"; continue; fi
        bench_row "$row" --filename="$DEV" "${DEVOPTS[@]}"
        stop_dev_attach vol1 ;;
    nbd-client)
        start_attach vol1 "$T/vol1.sock"
        nbd_client_connect "$T/vol1.sock" /dev/nbd0
        bench_row "$row" --filename=/dev/nbd0 "${DEVOPTS[@]}"
        nbd_client_disconnect /dev/nbd0
        stop_attach vol1 ;;
    nbd-socket)
        start_attach vol1 "$T/vol1.sock"
        bench_row "$row" --ioengine=nbd --uri="$(nbd_uri "$T/vol1.sock")"
        stop_attach vol1 ;;
    *) skip_row "$row" "unknown row" ;;
    esac
done

declare -A LABEL=(
    [ublk]="/dev/ublkb0, repvol attach --ublk"
    [kmod]="/dev/repvolN, repvol attach --kmod"
    [nbd-kernel]="/dev/nbdN, repvol attach --nbd-device"
    [nbd-client]="/dev/nbd0, nbd-client on the NBD socket"
    [nbd-socket]="NBD socket, fio nbd engine"
)
echo
echo "repvol kernel frontends, 2 replicas, Debian $REPVOL_VM_KERNEL $(uname -r)"
echo "$MODE; fio ${RUNTIME}s per job (+${RAMP}s ramp), 64 MiB region"
printf '%-11s %-40s %-18s %8s %9s %9s\n' row frontend job IOPS "p50(us)" "p99(us)"
while IFS=$'\t' read -r row job iops p50 p99; do
    if [[ $job == skipped:* ]]; then
        printf '%-11s %-40s %s\n' "$row" "${LABEL[$row]:-}" "$job"
    else
        printf '%-11s %-40s %-18s %8s %9s %9s\n' "$row" "${LABEL[$row]:-}" "$job" "$iops" "$p50" "$p99"
    fi
done <"$RES"

# The goal of issue 14: repvol.ko against kernel NBD and ublk, same boot.
iops() { awk -F'\t' -v r="$1" -v j="$2" '$1 == r && $2 == j && $3 ~ /^[0-9]+$/ {print $3}' "$RES"; }
ratio() {
    local a b
    a=$(iops "$1" 4k-randwrite-qd32) b=$(iops "$2" 4k-randwrite-qd32)
    if [[ -n $a && -n $b && $b != 0 ]]; then
        awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}'
    else
        echo "not measured"
    fi
}
echo
echo "4k randwrite QD32, higher is better:"
printf '  kmod / nbd-kernel  %-13s (goal >= 1.0)\n' "$(ratio kmod nbd-kernel)"
printf '  kmod / ublk        %-13s (goal: close to 1.0)\n' "$(ratio kmod ublk)"
