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
# and the cross-zone rows, where one copy sits a network round trip
# away: build/tests/delayrelay (tests/perf/delayrelay.c) holds every byte
# BENCH_XDELAY_US each way (default 500 us: an RTT of 1 ms):
#   xb  nbdkit on TCP, fio's connection through the relay: what the relay
#       itself achieves against the nominal bound (RTT + b's p50)
#   xd  row d with the second replica's link through the relay
#   xe  row e with the NBD child on TCP through the relay
# The cross-zone rows run BENCH_XJOBS (default the two 4k random writes).
#
# Placement: every row runs first "pinned": every process (servers,
# attach engine, fio) under "taskset -c $BENCH_CPUS" (default CPU 0), so
# a wake-up never crosses vCPUs; the delay relay, which stands for the
# network, runs on the other CPUs (BENCH_RELAY_CPUS).  Then the rows in
# BENCH_UNPINNED_ROWS (default b d e, those of them in BENCH_ROWS) run
# again "unpinned", nothing pinned, so that what cross-CPU wake-ups cost
# on this 2-vCPU machine shows in a table of its own.  Rows run one after
# another; nothing of one row runs during another.
#
# CPU accounting: every fio job runs under tests/perf/cpuwin.py, which
# reads utime + stime (/proc/PID/stat) and the voluntary and involuntary
# context switches (/proc/PID/task/*/status) of every process of the row
# at the end of fio's ramp and after fio exits, and fio's own (with its
# job processes) from wait4()'s rusage; the tables give CPU us per I/O
# and context switches per I/O for each process (what each figure
# covers: the comment at the top of cpuwin.py).
#
# At the end tests/perf/snapshot-bench.sh (BENCH_SNAPSHOT=0 skips it) and
# tests/perf/resync-bench.sh (when it exists and is executable) run with
# BENCH_OUT_DIR exported and leave snapshot.json / resync.json there;
# then build/tests/bench_summary prints the tables, the ratios and the
# goals (MET / SHORT / not measured) and writes $BENCH_DIR/summary.json.
# The ratios (pinned rows), and which way is better:
#   randwrite_qd32_vs_nbdkit     d / b, 4k randwrite QD32 IOPS      higher, goal >= 0.8
#   randwrite_qd1_p50_vs_nbdkit  d / b, 4k randwrite QD1 p50        lower,  goal <= 1.5
#   randwrite_qd32_vs_quorum     d / e, 4k randwrite QD32 IOPS      higher, goal >= 3
#   seqwrite_1m_vs_nbdkit        d / b, 1M seqwrite QD8 MiB/s       higher, goal >= 0.6
#   randread_qd32_vs_nbdkit      d / b, 4k randread QD32 IOPS       higher, no goal set
#   randread_qd1_p50_vs_nbdkit   d / b, 4k randread QD1 p50         lower,  goal <= 1.5
#   tls_qd32_vs_plain            dt / d, 4k randwrite QD32 IOPS     higher, goal >= 0.85
#   tls_qd1_p50_vs_plain         dt / d, 4k randwrite QD1 p50       lower,  goal <= 1.15
#   crossaz_qd1_p50_vs_bound     xd QD1 p50 / (RTT + b QD1 p50)     lower,  goal <= 1.1
#   crossaz_qd32_vs_bound        xd QD32 IOPS / (32 / (RTT + b QD1 p50))
#                                                                   higher, goal >= 0.9
#   crossaz_qd32_vs_quorum       xd / xe, 4k randwrite QD32 IOPS    higher, goal >= 3
#   relay_qd1_p50_vs_bound       xb QD1 p50 / (RTT + b QD1 p50)     lower,  no goal: the
#                                relay's own cost, the floor any cross-zone row sits on
#   crossaz_qd1_p50_vs_relay_floor  xd / xb, 4k randwrite QD1 p50   lower,  no goal: repvol's
#                                cost over nbdkit behind the same relay
#   snapshot_upload_vs_curl      upload / parallel curl PUT MiB/s   higher, goal >= 0.9
#   snapshot_restore_vs_curl     restore / parallel curl GET MiB/s  higher, no goal set
#   resync_1pct_vs_full          1% dirty resync s / full resync s  lower,  goal <= 0.03
# The service time in the QD32 bound is b's 4k randwrite QD1 p50.
# summary.json's "ratios" are the pinned ones; "ratios_unpinned" those
# the unpinned rows allow.  A ratio that could not be measured is null.
#
# Environment:
#   BENCH_RUNTIME  seconds per job (default 6)     BENCH_RAMP  ramp (default 2)
#   BENCH_SIZE     file/volume size (default 1G)   BENCH_CPUS  cpu list (default 0)
#   BENCH_ROWS     rows to run pinned (default "a ad b c d dt e xb xd xe")
#   BENCH_UNPINNED_ROWS  rows to run again unpinned (default those of
#                  "b d e" in BENCH_ROWS; "" for none)
#   BENCH_JOBS     job names (default: all five)
#   BENCH_XJOBS    jobs of the cross-zone rows (default the 4k randwrites)
#   BENCH_XDELAY_US  the relay's one-way delay in us (default 500)
#   BENCH_RELAY_CPUS where the relay runs in the pinned rows (default the
#                  CPUs not in BENCH_CPUS: the relay is the network, not
#                  part of what is measured; its CPU is still accounted)
#   BENCH_DIR      where the big files go (default build/bench; a real disk,
#                  not tmpfs)
#   BENCH_OUT_DIR  where the TSV results, fio's JSON and the fragments go
#                  (default $BENCH_DIR/out-STAMP)
#   BENCH_LAT      "lat" (default: submission + completion, what the client
#                  sees) or "clat" (completion only) for the latency columns
set -euo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
PERF=$TOP/tests/perf
export BENCH_RUNTIME=${BENCH_RUNTIME:-6}
export BENCH_RAMP=${BENCH_RAMP:-2}
BENCH_SIZE=${BENCH_SIZE:-1G}
BENCH_CPUS=${BENCH_CPUS:-0}
BENCH_ROWS=${BENCH_ROWS:-a ad b c d dt e xb xd xe}
if [[ -z ${BENCH_UNPINNED_ROWS+set} ]]; then
    BENCH_UNPINNED_ROWS=
    for r in b d e; do
        [[ " $BENCH_ROWS " != *" $r "* ]] || BENCH_UNPINNED_ROWS+="${BENCH_UNPINNED_ROWS:+ }$r"
    done
fi
BENCH_JOBS=${BENCH_JOBS:-4k-randwrite-qd1 4k-randwrite-qd32 4k-randread-qd1 4k-randread-qd32 1m-seqwrite-qd8}
BENCH_XJOBS=${BENCH_XJOBS:-4k-randwrite-qd1 4k-randwrite-qd32}
BENCH_XDELAY_US=${BENCH_XDELAY_US:-500}
if [[ -z ${BENCH_RELAY_CPUS+set} ]]; then
    # The CPUs not in BENCH_CPUS (none on a 1-CPU machine: then anywhere).
    BENCH_RELAY_CPUS=$(python3 -c 'import os, sys
pin = set()
for part in sys.argv[1].split(","):
    lo, _, hi = part.partition("-")
    pin.update(range(int(lo), int(hi or lo) + 1))
print(",".join(str(c) for c in sorted(os.sched_getaffinity(0) - pin)))' "$BENCH_CPUS")
fi
BENCH_DIR=${BENCH_DIR:-$TOP/build/bench}
BENCH_LAT=${BENCH_LAT:-lat}

PINNED_LAUNCH=(taskset -c "$BENCH_CPUS")
LAUNCH=("${PINNED_LAUNCH[@]}")
PLACEMENT=pinned
WAIT_TIMEOUT=${WAIT_TIMEOUT:-30}
# shellcheck source=tests/integration/lib.sh
. "$TOP/tests/integration/lib.sh"
# shellcheck source=tests/perf/lib-bench.sh
. "$PERF/lib-bench.sh"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$BENCH_DIR"
D=$(mktemp -d "$BENCH_DIR/run.XXXXXX")     # data files (real disk)
CLEANUP_PATHS+=("$D")
REPVOLD_DATA_ROOT=$D
export BENCH_OUT_DIR=${BENCH_OUT_DIR:-$BENCH_DIR/out-$STAMP}
mkdir -p "$BENCH_OUT_DIR"
RESULTS=$BENCH_OUT_DIR/results.tsv    # placement row job iops MiB/s p50 p99 (us) ios
CPU_TSV=$BENCH_OUT_DIR/cpu.tsv        # placement row job process cpu_us vcs ics
: >"$RESULTS"
: >"$CPU_TSV"
SIZE_BYTES=$(numfmt --from=iec "$BENCH_SIZE")
FIO_BOUND=$((BENCH_RUNTIME + BENCH_RAMP + 60))
[[ -x $BUILD/tests/bench_summary ]] || fail "$BUILD/tests/bench_summary not built (make all)"
for row in $BENCH_ROWS $BENCH_UNPINNED_ROWS; do
    [[ -n ${LABEL[$row]-} ]] || fail "unknown row '$row'"
done

CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
MEM=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
FS=$(df -PT "$D" | awk 'NR == 2 {print $2}')
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
PLACEMENT_TEXT="pinned cpu $BENCH_CPUS (taskset, every process); unpinned rows too: ${BENCH_UNPINNED_ROWS:-none}"
HEADER=$(cat <<EOF
repvol bench, $DATE
machine: $(uname -srm), $(nproc) vCPU $CPU_MODEL, $MEM RAM; files on $FS
tools: $(fio --version), nbdkit $(nbdkit --version | awk '{print $2}'), qemu-nbd $(qemu-nbd --version | awk 'NR == 1 {print $2}')
placement: pinned rows: every process of the row (servers, repvol attach,
  qemu-nbd, nbdkit, fio) under "taskset -c $BENCH_CPUS" (the delay relay: below);
  unpinned rows (${BENCH_UNPINNED_ROWS:-none}): nothing pinned; rows run one at a time
cross-zone rows (xb xd xe): the delay relay holds every byte ${BENCH_XDELAY_US} us
  each way (RTT $((2 * BENCH_XDELAY_US)) us), on cpus ${BENCH_RELAY_CPUS:-any} when pinned;
  their jobs: $BENCH_XJOBS
jobs: ${BENCH_RUNTIME}s time-based after ${BENCH_RAMP}s ramp, $BENCH_SIZE file/volume
  pre-filled with random data; "sync" before every job; no flush/FUA
  during the runs; every server buffered (page cache) with its default
  or writeback cache
latency: fio ${BENCH_LAT} percentiles$([[ $BENCH_LAT == lat ]] && echo " (submission + completion)")
CPU: user + system CPU us per I/O, and context switches per I/O
  (voluntary/involuntary), of each process over the job's window after
  the ramp (tests/perf/cpuwin.py)
EOF
)
echo "$HEADER" | sed 's/^/# /'

say "seeding $BENCH_SIZE of random data"
head -c "$SIZE_BYTES" /dev/urandom >"$D/seed.img"

REPLICA_MISMATCH=0
for PLACEMENT in pinned unpinned; do
    if [[ $PLACEMENT == pinned ]]; then
        LAUNCH=("${PINNED_LAUNCH[@]}") rows=$BENCH_ROWS
    else
        LAUNCH=() rows=$BENCH_UNPINNED_ROWS
    fi
    for row in $rows; do
        say "row $row ($PLACEMENT): ${LABEL[$row]}"
        "row_$row"
    done
done

# Snapshot upload and restore throughput against the S3 server, with its
# curl baseline (BENCH_SNAPSHOT=0 skips it); resync timing when that bench
# exists.  Each leaves its JSON fragment in $BENCH_OUT_DIR.
if [[ ${BENCH_SNAPSHOT:-1} != 0 ]]; then
    echo
    "$PERF/snapshot-bench.sh" || echo "snapshot bench failed (above)"
fi
if [[ -x $PERF/resync-bench.sh ]]; then
    echo
    "$PERF/resync-bench.sh" || echo "resync bench failed (above)"
else
    echo "note: no executable tests/perf/resync-bench.sh: resync not measured"
fi

SUMMARY=$BENCH_DIR/summary.json
TABLE=$("$BUILD/tests/bench_summary" --results "$RESULTS" --cpu "$CPU_TSV" \
    --out-dir "$BENCH_OUT_DIR" --json "$SUMMARY" --date "$DATE" \
    --placement "$PLACEMENT_TEXT" --rtt-us "$((2 * BENCH_XDELAY_US))" --jobs "$BENCH_JOBS")

echo
echo "$HEADER"
echo
echo "$TABLE"
((REPLICA_MISMATCH == 0)) || echo "WARNING: a two-replica row's replicas were not identical after detach"
{ echo "$HEADER"; echo; echo "$TABLE"; } >"$BENCH_DIR/bench-$STAMP.txt"
cp "$T"/*.json "$BENCH_OUT_DIR/" 2>/dev/null || true
cp "$SUMMARY" "$BENCH_OUT_DIR/summary.json"
say "table saved to ${BENCH_DIR#"$TOP"/}/bench-$STAMP.txt, the summary to ${SUMMARY#"$TOP"/}"
say "fio's JSON, the TSV results and the fragments are in ${BENCH_OUT_DIR#"$TOP"/}/"
