#!/bin/bash
# repvol benchmark ("make bench").
#
# Runs the same fio jobs (tests/perf/*.fio) against, in one go:
#   a   the raw store file, fio's io_uring engine, buffered (direct=0)
#   ad  the same file, io_uring with O_DIRECT (direct=1)
#   b   nbdkit's file plugin with its defaults, on a unix socket (fio nbd engine)
#   c   repvol with one replica            (repvold --cache writeback)
#   d   repvol with two replicas           (two repvold, distinct zones)
#   dt  the same with X.509 TLS 1.3 on both replication links
#   e   qemu-nbd serving a quorum (vote-threshold=2) of a local file and an
#       NBD child served by a second qemu-nbd: the synchronous two-copy
#       mirror users can build today
# and prints IOPS, p50/p99 latency and the ratio of each row to (b) and of
# (d) to (e), then checks the issue's targets for (d).
#
# Every process of every row (servers, attach engine, fio) runs under the
# same "taskset -c $BENCH_CPUS" (default CPU 0): on a 2-vCPU VM a wake-up
# across vCPUs costs ~50 us, so mixing placements would compare placements,
# not servers.  Rows run one after another; nothing of one row runs during
# another.
#
# Environment:
#   BENCH_RUNTIME  seconds per job (default 10)    BENCH_RAMP  ramp (default 2)
#   BENCH_SIZE     file/volume size (default 1G)   BENCH_CPUS  cpu list (default 0)
#   BENCH_ROWS     rows to run (default "a ad b c d dt e")
#   BENCH_JOBS     job names (default: all five)
#   BENCH_DIR      where the big files go (default build/bench; a real disk,
#                  not tmpfs)
#   BENCH_LAT      "lat" (default: submission + completion, what the client
#                  sees) or "clat" (completion only) for the latency columns
set -euo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
PERF=$TOP/tests/perf
export BENCH_RUNTIME=${BENCH_RUNTIME:-10}
export BENCH_RAMP=${BENCH_RAMP:-2}
BENCH_SIZE=${BENCH_SIZE:-1G}
BENCH_CPUS=${BENCH_CPUS:-0}
BENCH_ROWS=${BENCH_ROWS:-a ad b c d dt e}
BENCH_JOBS=${BENCH_JOBS:-4k-randwrite-qd1 4k-randwrite-qd32 4k-randread-qd1 4k-randread-qd32 1m-seqwrite-qd8}
BENCH_DIR=${BENCH_DIR:-$TOP/build/bench}
BENCH_LAT=${BENCH_LAT:-lat}

LAUNCH=(taskset -c "$BENCH_CPUS")
WAIT_TIMEOUT=${WAIT_TIMEOUT:-30}
# shellcheck source=tests/integration/lib.sh
. "$TOP/tests/integration/lib.sh"

mkdir -p "$BENCH_DIR"
D=$(mktemp -d "$BENCH_DIR/run.XXXXXX")     # data files (real disk)
CLEANUP_PATHS+=("$D")
REPVOLD_DATA_ROOT=$D
RESULTS=$T/results.tsv                     # row job iops MiB/s p50 p99 (us)
: >"$RESULTS"
SIZE_BYTES=$(numfmt --from=iec "$BENCH_SIZE")
FIO_BOUND=$((BENCH_RUNTIME + BENCH_RAMP + 60))

say() { printf '==> %s\n' "$*"; }

declare -A LABEL=(
    [a]="raw file, fio io_uring, buffered (direct=0)"
    [ad]="raw file, fio io_uring, O_DIRECT (direct=1)"
    [b]="nbdkit file plugin (defaults), unix socket"
    [c]="repvol, 1 replica (repvold --cache writeback)"
    [d]="repvol, 2 replicas (repvold --cache writeback)"
    [dt]="repvol, 2 replicas, TLS 1.3 X.509 on the replication links"
    [e]="qemu-nbd quorum: file + nbd child (qemu-nbd)"
)

# fio_row ROW TARGET-OPTIONS...: run every job against one target, append
# the parsed results to $RESULTS.  A failed job is recorded as n/a and the
# bench goes on.
fio_row() {
    local row=$1 job out; shift
    for job in $BENCH_JOBS; do
        out=$T/$row-$job.json
        # Every job starts with no dirty pages: otherwise the writeback of
        # the rows before it competes with the row being measured, and
        # later rows pay for earlier ones.
        sync
        printf '    %-3s %-18s ' "$row" "$job"
        if timeout -k 5 "$FIO_BOUND" "${LAUNCH[@]}" fio --output-format=json \
               --output="$out" "$@" "$PERF/$job.fio" >"$T/$row-$job.log" 2>&1; then
            python3 - "$row" "$job" "$out" "$BENCH_LAT" >>"$RESULTS" <<'EOF'
import json, sys
row, job, path, latkind = sys.argv[1:]
j = json.load(open(path))["jobs"][0]
if j.get("error"):
    print(row, job, "nan", "nan", "nan", "nan", sep="\t"); sys.exit()
d = j["write"] if j["write"]["io_bytes"] else j["read"]
pct = d[latkind + "_ns"]["percentile"]
print(row, job, "%.0f" % d["iops"], "%.1f" % (d["bw_bytes"] / 2**20),
      "%.1f" % (pct["50.000000"] / 1000), "%.1f" % (pct["99.000000"] / 1000), sep="\t")
EOF
            tail -n1 "$RESULTS" | awk -F'\t' '{printf "%10s IOPS  p50 %8s us  p99 %8s us\n", $3, $5, $6}'
        else
            echo "FAILED (see below)"
            tail -n 5 "$T/$row-$job.log" | sed 's/^/        /'
            printf '%s\t%s\tnan\tnan\tnan\tnan\n' "$row" "$job" >>"$RESULTS"
        fi
    done
}

# stop_pids PID...: stop the given processes (newest first), bounded.
stop_pids() {
    local i pids=("$@")
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill_pid "${pids[i]}"; done
}

# show_placement PID...: print each process's allowed CPUs (all threads it
# starts later inherit them), and fail if one is not on $BENCH_CPUS.
show_placement() {
    local pid cpus want
    want=$(taskset -c "$BENCH_CPUS" grep -Po '(?<=^Cpus_allowed_list:\t).*' /proc/self/status)
    for pid in "$@"; do
        cpus=$(grep -Po '(?<=^Cpus_allowed_list:\t).*' "/proc/$pid/status")
        printf '    placement: pid %-7s %-10s cpus %s\n' "$pid" "$(cat "/proc/$pid/comm")" "$cpus"
        [[ $cpus == "$want" ]] || fail "pid $pid runs on cpus $cpus, not $want"
    done
}

wait_nbd() { wait_for timeout 5 nbdinfo --size "$(nbd_uri "$1")"; }

seed_copy() { cp --sparse=never "$D/seed.img" "$1"; sync "$1"; }

# --- rows ---------------------------------------------------------------

row_a() {
    seed_copy "$D/a.img"
    fio_row a --ioengine=io_uring --filename="$D/a.img" --size="$SIZE_BYTES" --direct=0
}

row_ad() {
    [[ -f $D/a.img ]] || seed_copy "$D/a.img"
    fio_row ad --ioengine=io_uring --filename="$D/a.img" --size="$SIZE_BYTES" --direct=1
}

row_b() {
    local sock=$T/b.sock
    seed_copy "$D/b.img"
    start_bg "$T/nbdkit.log" nbdkit -f -U "$sock" file "$D/b.img"
    local pid=$BG_PID
    wait_nbd "$sock"
    show_placement "$pid"
    fio_row b --ioengine=nbd --uri="$(nbd_uri "$sock")"
    stop_pids "$pid"
}

# repvol_row ROW NREPLICAS [tls]
repvol_row() {
    local row=$1 n=$2 vol=bench-$1 sock=$T/$1.sock i reps=() pids=() extra=()
    if [[ ${3:-} == tls ]]; then
        if [[ ! -f $T/pki/client-cert.pem ]]; then
            { "$TOP/scripts/tls-certs.sh" ca "$T/pki" &&
              "$TOP/scripts/tls-certs.sh" server "$T/pki" &&
              "$TOP/scripts/tls-certs.sh" client "$T/pki" bench; } >/dev/null
        fi
        extra+=(--tls-dir "$T/pki")
        export REPVOL_TLS_DIR=$T/pki
    else
        unset REPVOL_TLS_DIR
    fi
    if [[ ! -x $REPVOL || ! -x $REPVOLD ]]; then
        echo "    $row  skipped: build/repvol or build/repvold not built"
        return 0
    fi
    if "$REPVOLD" --help 2>&1 | grep -q -- '--cache'; then
        extra+=(--cache writeback)
    else
        echo "    note: repvold has no --cache option; running it with its defaults"
    fi
    for ((i = 1; i <= n; i++)); do
        start_repvold "$row-r$i" "zone-$i" ${extra[@]+"${extra[@]}"}
        reps+=(--replica "$ADDR")
        pids+=("${REPVOLD_PID[$row-r$i]}")
    done
    local create=("$REPVOL" create "$vol" --size "$BENCH_SIZE" "${reps[@]}")
    # One replica in one zone: allow it where the CLI asks.
    if ! "${create[@]}" >"$T/create-$vol.log" 2>&1; then
        cat "$T/create-$vol.log"
        fail "repvol create $vol failed"
    fi
    start_attach "$vol" "$sock"
    show_placement "${pids[@]}" "${ATTACH_PID[$vol]}"
    say "row $row: seeding the volume with nbdcopy ($BENCH_SIZE)"
    nbdcopy "$D/seed.img" "$(nbd_uri "$sock")"
    fio_row "$row" --ioengine=nbd --uri="$(nbd_uri "$sock")"
    stop_attach "$vol"
    if ((n == 2)); then
        if cmp -s "$D/$row-r1/$vol.data" "$D/$row-r2/$vol.data"; then
            say "row $row: after detach both replicas' data files are identical (cmp)"
        else
            say "row $row: WARNING: replicas' data files differ after detach"
            REPLICA_MISMATCH=1
        fi
    fi
    "$REPVOL" delete "$vol" >/dev/null || echo "    note: repvol delete $vol failed"
    stop_pids "${pids[@]}"
    unset REPVOL_TLS_DIR
}

row_c() { repvol_row c 1; }
row_d() { repvol_row d 2; }
row_dt() { repvol_row dt 2 tls; }

row_e() {
    local back=$T/e-back.sock front=$T/e-front.sock pids=()
    seed_copy "$D/e0.img"
    seed_copy "$D/e1.img"
    start_bg "$T/qemu-nbd-back.log" qemu-nbd -t -e 4 -f raw -k "$back" "$D/e1.img"
    pids+=("$BG_PID")
    wait_nbd "$back"
    local opts="driver=quorum,vote-threshold=2"
    opts+=",children.0.driver=raw,children.0.file.driver=file,children.0.file.filename=$D/e0.img"
    opts+=",children.1.driver=raw,children.1.file.driver=nbd"
    opts+=",children.1.file.server.type=unix,children.1.file.server.path=$back"
    echo "    qemu-nbd -t -e 4 -k $front --image-opts '$opts'"
    start_bg "$T/qemu-nbd-front.log" qemu-nbd -t -e 4 -k "$front" --image-opts "$opts"
    pids+=("$BG_PID")
    wait_nbd "$front"
    show_placement "${pids[@]}"
    fio_row e --ioengine=nbd --uri="$(nbd_uri "$front")"
    stop_pids "${pids[@]}"
    if cmp -s "$D/e0.img" "$D/e1.img" && ! cmp -s "$D/e0.img" "$D/seed.img"; then
        say "row e: both quorum copies were written and are identical (cmp)"
    else
        say "row e: WARNING: quorum copies differ, or were not written"
    fi
}

# --- run ----------------------------------------------------------------

CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
MEM=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
FS=$(df -PT "$D" | awk 'NR == 2 {print $2}')
HEADER=$(cat <<EOF
repvol bench, $(date -u '+%Y-%m-%d %H:%M UTC')
machine: $(uname -srm), $(nproc) vCPU $CPU_MODEL, $MEM RAM; files on $FS
tools: $(fio --version), nbdkit $(nbdkit --version | awk '{print $2}'), qemu-nbd $(qemu-nbd --version | awk 'NR == 1 {print $2}')
placement: every process of every row (servers, repvol attach, qemu-nbd,
  nbdkit, fio) pinned with "taskset -c $BENCH_CPUS"; rows run one at a time
jobs: ${BENCH_RUNTIME}s time-based after ${BENCH_RAMP}s ramp, $BENCH_SIZE file/volume
  pre-filled with random data; "sync" before every job; no flush/FUA
  during the runs; every server buffered (page cache) with its default
  or writeback cache
latency: fio ${BENCH_LAT} percentiles$([[ $BENCH_LAT == lat ]] && echo " (submission + completion)")
EOF
)
echo "$HEADER" | sed 's/^/# /'

say "seeding $BENCH_SIZE of random data"
head -c "$SIZE_BYTES" /dev/urandom >"$D/seed.img"

REPLICA_MISMATCH=0
for row in $BENCH_ROWS; do
    [[ -n ${LABEL[$row]-} ]] || fail "unknown row '$row'"
    say "row $row: ${LABEL[$row]}"
    "row_$row"
done

TABLE=$(python3 - "$RESULTS" "$BENCH_JOBS" <<'EOF'
import sys, math
path, jobs = sys.argv[1], sys.argv[2].split()
labels = {"a": "raw file, io_uring, buffered", "ad": "raw file, io_uring, O_DIRECT",
          "b": "nbdkit file plugin", "c": "repvol, 1 replica",
          "d": "repvol, 2 replicas", "dt": "repvol, 2 replicas, TLS",
          "e": "qemu-nbd quorum, 2 copies"}
res = {}
for line in open(path):
    row, job, iops, bw, p50, p99 = line.rstrip("\n").split("\t")
    res[(row, job)] = tuple(float(x) for x in (iops, bw, p50, p99))
rows = [r for r in ("a", "ad", "b", "c", "d", "dt", "e") if any((r, j) in res for j in jobs)]

def get(r, j, k):
    v = res.get((r, j))
    return v[k] if v else math.nan

def fmt(x, spec):
    return "n/a" if math.isnan(x) else format(x, spec)

def ratio(x, y):
    return math.nan if math.isnan(x) or math.isnan(y) or y == 0 else x / y

hdr = ("job", "row", "target", "IOPS", "MiB/s", "p50 us", "p99 us",
       "IOPS/b", "p50/b", "d/e IOPS")
out = []
print("%-17s %-3s %-29s %9s %8s %8s %8s %7s %6s %8s" % hdr)
for j in jobs:
    for r in rows:
        iops, bw, p50, p99 = (get(r, j, k) for k in range(4))
        de = fmt(ratio(iops, get("e", j, 0)), ".2f") if r == "d" else ""
        print("%-17s %-3s %-29s %9s %8s %8s %8s %7s %6s %8s" % (
            j, r, labels[r], fmt(iops, ".0f"), fmt(bw, ".1f"), fmt(p50, ".1f"),
            fmt(p99, ".1f"), fmt(ratio(iops, get("b", j, 0)), ".2f"),
            fmt(ratio(p50, get("b", j, 2)), ".2f"), de))
    print()

print("targets for (d), two replicas:")
def target(desc, value, ok_if, limit):
    if math.isnan(value):
        verdict = "N/A  (not measured)"
    else:
        met = value >= limit if ok_if == ">=" else value <= limit
        verdict = "%s  (%.2fx, target %s %.2fx)" % ("MET  " if met else "SHORT", value, ok_if, limit)
    print("  %-52s %s" % (desc, verdict))
target("4k randwrite QD32 IOPS vs (e) qemu quorum", ratio(get("d", "4k-randwrite-qd32", 0), get("e", "4k-randwrite-qd32", 0)), ">=", 3.0)
target("4k randwrite QD32 IOPS vs (b) nbdkit", ratio(get("d", "4k-randwrite-qd32", 0), get("b", "4k-randwrite-qd32", 0)), ">=", 0.7)
target("4k randwrite QD1 p50 vs (b) nbdkit", ratio(get("d", "4k-randwrite-qd1", 2), get("b", "4k-randwrite-qd1", 2)), "<=", 1.5)
target("4k randread  QD1 p50 vs (b) nbdkit", ratio(get("d", "4k-randread-qd1", 2), get("b", "4k-randread-qd1", 2)), "<=", 1.5)
print("targets for (dt), two replicas over TLS, against (d) in the same run:")
target("4k randwrite QD32 IOPS, TLS vs plaintext", ratio(get("dt", "4k-randwrite-qd32", 0), get("d", "4k-randwrite-qd32", 0)), ">=", 0.85)
target("4k randwrite QD1 p50, TLS vs plaintext", ratio(get("dt", "4k-randwrite-qd1", 2), get("d", "4k-randwrite-qd1", 2)), "<=", 1.15)
EOF
)

echo
echo "$HEADER"
echo
echo "$TABLE"
((REPLICA_MISMATCH == 0)) || echo "WARNING: row d's replicas were not identical after detach"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
{ echo "$HEADER"; echo; echo "$TABLE"; } >"$BENCH_DIR/bench-$STAMP.txt"
mkdir -p "$BENCH_DIR/fio-$STAMP"
cp "$T"/*.json "$BENCH_DIR/fio-$STAMP/" 2>/dev/null || true
say "table saved to ${BENCH_DIR#"$TOP"/}/bench-$STAMP.txt, fio's JSON in ${BENCH_DIR#"$TOP"/}/fio-$STAMP/"

# Snapshot upload and restore throughput against the S3 server, with its
# curl baseline (BENCH_SNAPSHOT=0 skips it).
if [[ ${BENCH_SNAPSHOT:-1} != 0 ]]; then
    echo
    "$PERF/snapshot-bench.sh" || echo "snapshot bench failed (above)"
fi
