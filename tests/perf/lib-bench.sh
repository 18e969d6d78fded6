# Helpers and rows of tests/perf/bench.sh (sourced by it, after
# tests/integration/lib.sh).  Each row_X starts its servers with start_bg
# (under "${LAUNCH[@]}": taskset when $PLACEMENT is pinned, nothing when
# unpinned), names them in CPU_PROCS for the CPU accounting, runs
# fio_row, and stops them.
# shellcheck shell=bash disable=SC2034

say() { printf '==> %s\n' "$*"; }

declare -A LABEL=(
    [a]="raw file, fio io_uring, buffered (direct=0)"
    [ad]="raw file, fio io_uring, O_DIRECT (direct=1)"
    [b]="nbdkit file plugin (defaults), unix socket"
    [c]="repvol, 1 replica (repvold --cache writeback)"
    [d]="repvol, 2 replicas (repvold --cache writeback)"
    [dt]="repvol, 2 replicas, TLS 1.3 X.509 on the replication links"
    [e]="qemu-nbd quorum: file + nbd child (qemu-nbd)"
    [xb]="nbdkit file plugin on TCP behind the delay relay (the relay's floor)"
    [xd]="repvol, 2 replicas, the second's link through the delay relay"
    [xe]="qemu-nbd quorum, its nbd child on TCP through the delay relay"
)

# The jobs a row runs: the cross-zone rows run $BENCH_XJOBS.
row_jobs() {
    case $1 in
        x*) echo "$BENCH_XJOBS" ;;
        *) echo "$BENCH_JOBS" ;;
    esac
}

CPU_PROCS=()    # NAME=PID of the row's servers, for tests/perf/cpuwin.py

# fio_row ROW TARGET-OPTIONS...: run every job of ROW against one target
# under tests/perf/cpuwin.py (the CPU of fio and of every CPU_PROCS
# process over the job's window), append the parsed results to $RESULTS
# and the CPU to $CPU_TSV.  A failed job is recorded as nan and the bench
# goes on.
fio_row() {
    local row=$1 job out tag; shift
    for job in $(row_jobs "$row"); do
        tag=$PLACEMENT-$row-$job
        out=$T/$tag.json
        # Every job starts with no dirty pages: otherwise the writeback of
        # the rows before it competes with the row being measured, and
        # later rows pay for earlier ones.
        sync
        printf '    %-8s %-3s %-18s ' "$PLACEMENT" "$row" "$job"
        if timeout -k 5 "$FIO_BOUND" ${LAUNCH[@]+"${LAUNCH[@]}"} \
               python3 "$PERF/cpuwin.py" "$T/$tag.cpu" "$BENCH_RAMP" "$BENCH_RUNTIME" ${CPU_PROCS[@]+"${CPU_PROCS[@]}"} -- \
               fio --output-format=json --output="$out" "$@" "$PERF/$job.fio" \
               >"$T/$tag.log" 2>&1; then
            python3 - "$PLACEMENT" "$row" "$job" "$out" "$BENCH_LAT" >>"$RESULTS" <<'EOF'
import json, sys
placement, row, job, path, latkind = sys.argv[1:]
j = json.load(open(path))["jobs"][0]
if j.get("error"):
    print(placement, row, job, "nan", "nan", "nan", "nan", "nan", sep="\t"); sys.exit()
d = j["write"] if j["write"]["io_bytes"] else j["read"]
pct = d[latkind + "_ns"]["percentile"]
print(placement, row, job, "%.0f" % d["iops"], "%.1f" % (d["bw_bytes"] / 2**20),
      "%.1f" % (pct["50.000000"] / 1000), "%.1f" % (pct["99.000000"] / 1000),
      d["total_ios"], sep="\t")
EOF
            sed "s/^/$PLACEMENT\t$row\t$job\t/" "$T/$tag.cpu" >>"$CPU_TSV"
            tail -n1 "$RESULTS" | awk -F'\t' '{printf "%10s IOPS  p50 %8s us  p99 %8s us", $4, $6, $7}'
            awk -F'\t' -v n="$(tail -n1 "$RESULTS" | cut -f8)" \
                '{ s += $2 } END { if (n > 0) printf "  cpu %6.1f us/io\n", s / n; else print "" }' "$T/$tag.cpu"
        else
            echo "FAILED (see below)"
            tail -n 5 "$T/$tag.log" | sed 's/^/        /'
            printf '%s\t%s\t%s\tnan\tnan\tnan\tnan\tnan\n' "$PLACEMENT" "$row" "$job" >>"$RESULTS"
        fi
    done
}

# stop_pids PID...: stop the given processes (newest first), bounded.
stop_pids() {
    local i pids=("$@")
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill_pid "${pids[i]}"; done
}

# show_placement PID...: print each process's allowed CPUs (all threads it
# starts later inherit them); pinned, fail if one is not on $BENCH_CPUS.
show_placement() {
    local pid cpus want
    want=$(${LAUNCH[@]+"${LAUNCH[@]}"} grep -Po '(?<=^Cpus_allowed_list:\t).*' /proc/self/status)
    for pid in "$@"; do
        cpus=$(grep -Po '(?<=^Cpus_allowed_list:\t).*' "/proc/$pid/status")
        printf '    placement: pid %-7s %-10s cpus %s\n' "$pid" "$(cat "/proc/$pid/comm")" "$cpus"
        [[ $cpus == "$want" ]] || fail "pid $pid runs on cpus $cpus, not $want"
    done
}

wait_nbd() { wait_for timeout 5 nbdinfo --size "$1"; }

seed_copy() { cp --sparse=never "$D/seed.img" "$1"; sync "$1"; }

# start_relay TARGET-ADDR: a delay relay in front of TARGET-ADDR; sets
# RELAY_ADDR and RELAY_PID.  The relay stands for the network, not for
# a part of the system under test: pinned, it runs on $BENCH_RELAY_CPUS
# (default the CPUs not in $BENCH_CPUS), so its CPU time and its timer
# wake-ups do not queue behind the servers; unpinned, anywhere.
start_relay() {
    local port i saved=(${LAUNCH[@]+"${LAUNCH[@]}"})
    [[ -x $BUILD/tests/delayrelay ]] || fail "$BUILD/tests/delayrelay not built"
    LAUNCH=()
    [[ $PLACEMENT != pinned || -z $BENCH_RELAY_CPUS ]] || LAUNCH=(taskset -c "$BENCH_RELAY_CPUS")
    for i in 1 2 3; do
        port=$(free_port)
        start_bg "$T/relay-$port.log" "$BUILD/tests/delayrelay" --listen "127.0.0.1:$port" \
            --target "$1" --delay-us "$BENCH_XDELAY_US"
        RELAY_PID=$BG_PID
        wait_for -t 5 port_listening "$port" 2>/dev/null || true
        if pid_alive "$RELAY_PID" && port_listening "$port"; then
            RELAY_ADDR=127.0.0.1:$port
            LAUNCH=(${saved[@]+"${saved[@]}"})
            printf '    placement: pid %-7s %-10s cpus %s (the relay: the network)\n' "$RELAY_PID" \
                delayrelay "$(grep -Po '(?<=^Cpus_allowed_list:\t).*' "/proc/$RELAY_PID/status")"
            return 0
        fi
        kill_pid "$RELAY_PID"
    done
    fail "the delay relay would not start; see $T/relay-$port.log"
}

# --- rows ---------------------------------------------------------------

row_a() {
    seed_copy "$D/a.img"
    CPU_PROCS=()
    fio_row a --ioengine=io_uring --filename="$D/a.img" --size="$SIZE_BYTES" --direct=0
}

row_ad() {
    [[ -f $D/a.img ]] || seed_copy "$D/a.img"
    CPU_PROCS=()
    fio_row ad --ioengine=io_uring --filename="$D/a.img" --size="$SIZE_BYTES" --direct=1
}

row_b() {
    local sock=$T/$PLACEMENT-b.sock
    seed_copy "$D/b.img"
    start_bg "$T/nbdkit-$PLACEMENT.log" nbdkit -f -U "$sock" file "$D/b.img"
    local pid=$BG_PID
    wait_nbd "$(nbd_uri "$sock")"
    show_placement "$pid"
    CPU_PROCS=("nbdkit=$pid")
    fio_row b --ioengine=nbd --uri="$(nbd_uri "$sock")"
    stop_pids "$pid"
}

row_xb() {
    local port pids=()
    seed_copy "$D/b.img"
    port=$(free_port)
    start_bg "$T/nbdkit-x-$PLACEMENT.log" nbdkit -f -i 127.0.0.1 -p "$port" file "$D/b.img"
    pids+=("$BG_PID")
    wait_nbd "nbd://127.0.0.1:$port"
    show_placement "${pids[@]}"
    start_relay "127.0.0.1:$port"
    pids+=("$RELAY_PID")
    wait_nbd "nbd://$RELAY_ADDR"
    CPU_PROCS=("nbdkit=${pids[0]}" "delayrelay=$RELAY_PID")
    fio_row xb --ioengine=nbd --uri="nbd://$RELAY_ADDR"
    stop_pids "${pids[@]}"
}

# repvol_row ROW NREPLICAS [tls|relay]
repvol_row() {
    local row=$1 n=$2 vol=bench-$1-$PLACEMENT sock=$T/$PLACEMENT-$1.sock i reps=() pids=() extra=()
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
    CPU_PROCS=() RELAY_PROC=()
    for ((i = 1; i <= n; i++)); do
        start_repvold "$PLACEMENT-$row-r$i" "zone-$i" ${extra[@]+"${extra[@]}"}
        pids+=("${REPVOLD_PID[$PLACEMENT-$row-r$i]}")
        CPU_PROCS+=("repvold-r$i=${REPVOLD_PID[$PLACEMENT-$row-r$i]}")
        # relay: the attach reaches the last replica through the delay
        # relay.  The volume records the relay's address; the attach
        # checks the server's name in its welcome, which the relay
        # passes through unchanged (no server pool here, so no address
        # is looked up by name).
        if [[ ${3:-} == relay && $i == "$n" ]]; then
            start_relay "$ADDR"
            pids+=("$RELAY_PID")
            RELAY_PROC=("delayrelay=$RELAY_PID")
            reps+=(--replica "$RELAY_ADDR")
        else
            reps+=(--replica "$ADDR")
        fi
    done
    local create=("$REPVOL" create "$vol" --size "$BENCH_SIZE" "${reps[@]}")
    if ! "${create[@]}" >"$T/create-$vol.log" 2>&1; then
        cat "$T/create-$vol.log"
        fail "repvol create $vol failed"
    fi
    start_attach "$vol" "$sock"
    show_placement "${ATTACH_PID[$vol]}" ${CPU_PROCS[@]+"${CPU_PROCS[@]##*=}"}
    CPU_PROCS=("attach=${ATTACH_PID[$vol]}" "${CPU_PROCS[@]}" ${RELAY_PROC[@]+"${RELAY_PROC[@]}"})
    say "row $row: seeding the volume with nbdcopy ($BENCH_SIZE)"
    nbdcopy "$D/seed.img" "$(nbd_uri "$sock")"
    fio_row "$row" --ioengine=nbd --uri="$(nbd_uri "$sock")"
    stop_attach "$vol"
    if ((n == 2)); then
        local r1=${REPVOLD_DIR[$PLACEMENT-$row-r1]} r2=${REPVOLD_DIR[$PLACEMENT-$row-r2]}
        if cmp -s "$r1/$vol.data" "$r2/$vol.data"; then
            say "row $row: after detach both replicas' data files are identical (cmp)"
        else
            say "row $row: WARNING: replicas' data files differ after detach"
            REPLICA_MISMATCH=1
        fi
    fi
    "$REPVOL" delete "$vol" >/dev/null || echo "    note: repvol delete $vol failed"
    stop_pids "${pids[@]}"
    rm -rf "${REPVOLD_DIR[$PLACEMENT-$row-r1]}" "${REPVOLD_DIR[$PLACEMENT-$row-r2]-}"
    unset REPVOL_TLS_DIR
}

row_c() { repvol_row c 1; }
row_d() { repvol_row d 2; }
row_dt() { repvol_row dt 2 tls; }
row_xd() { repvol_row xd 2 relay; }

# quorum_row ROW [relay]: qemu-nbd's quorum of a local file and an NBD
# child served by a second qemu-nbd (on a unix socket, or on TCP through
# the delay relay).
quorum_row() {
    local row=$1 back=$T/$PLACEMENT-$1-back.sock front=$T/$PLACEMENT-$1-front.sock pids=() port child
    seed_copy "$D/e0.img"
    seed_copy "$D/e1.img"
    if [[ ${2:-} == relay ]]; then
        port=$(free_port)
        start_bg "$T/qemu-nbd-back-$PLACEMENT-$row.log" qemu-nbd -t -e 4 -f raw -b 127.0.0.1 -p "$port" "$D/e1.img"
        pids+=("$BG_PID")
        wait_nbd "nbd://127.0.0.1:$port"
        start_relay "127.0.0.1:$port"
        pids+=("$RELAY_PID")
        child="children.1.file.server.type=inet,children.1.file.server.host=127.0.0.1"
        child+=",children.1.file.server.port=${RELAY_ADDR##*:}"
    else
        start_bg "$T/qemu-nbd-back-$PLACEMENT-$row.log" qemu-nbd -t -e 4 -f raw -k "$back" "$D/e1.img"
        pids+=("$BG_PID")
        wait_nbd "$(nbd_uri "$back")"
        child="children.1.file.server.type=unix,children.1.file.server.path=$back"
    fi
    local opts="driver=quorum,vote-threshold=2"
    opts+=",children.0.driver=raw,children.0.file.driver=file,children.0.file.filename=$D/e0.img"
    opts+=",children.1.driver=raw,children.1.file.driver=nbd,$child"
    echo "    qemu-nbd -t -e 4 -k $front --image-opts '$opts'"
    start_bg "$T/qemu-nbd-front-$PLACEMENT-$row.log" qemu-nbd -t -e 4 -k "$front" --image-opts "$opts"
    pids+=("$BG_PID")
    wait_nbd "$(nbd_uri "$front")"
    show_placement "${pids[0]}" "${pids[-1]}"
    CPU_PROCS=("qemu-nbd-front=${pids[-1]}" "qemu-nbd-back=${pids[0]}")
    [[ ${2:-} != relay ]] || CPU_PROCS+=("delayrelay=$RELAY_PID")
    fio_row "$row" --ioengine=nbd --uri="$(nbd_uri "$front")"
    stop_pids "${pids[@]}"
    if cmp -s "$D/e0.img" "$D/e1.img" && ! cmp -s "$D/e0.img" "$D/seed.img"; then
        say "row $row: both quorum copies were written and are identical (cmp)"
    else
        say "row $row: WARNING: quorum copies differ, or were not written"
    fi
}

row_e() { quorum_row e; }
row_xe() { quorum_row xe relay; }
