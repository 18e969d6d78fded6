#!/bin/bash
# The soak (make soak; test 098 runs a 3-minute form): two attached
# volumes under an acknowledged-write workload (tests/tools/ackload.c,
# every acknowledgement logged as it arrives) and fio verify, while a
# chaos loop injects one fault every SOAK_CHAOS_MIN..SOAK_CHAOS_MAX
# seconds (default 5..30) at random, for SOAK_SECONDS (default 3600):
#
#   - kill -9 the attach of v1 and attach again (its workload reconnects);
#   - kill -9 the second server, or SIGSTOP either one past the attach's
#     --timeout (2 s here: the attach must notice and degrade), then
#     restart or SIGCONT it and wait for the catch-up;
#   - with SOAK_REGISTRY=etcd (the registry a 3-member etcd cluster of
#     the soak's own): kill -9 one member, then start it again;
#   - with SOAK_HOSTS=1 (as root: the host harness, tests/hosts/lib.sh;
#     servers s1 and s2, etcd on s1-s3, the attaches on h1): the same,
#     etcd member kills included, and the link between h1 and one server
#     cut both ways past the attach's --timeout, then restored.
#
# Who is a victim is chosen so that some processes live through the whole
# soak and their growth can be judged: the first server and v2's attach are
# stopped (SIGSTOP) or degraded but never killed.  v2's client must
# therefore never see an error (DESIGN.md rule 2: a degrade is invisible
# to the client): its workload's failures and any fio failure are
# violations.  v1's workload writes through the attach that is killed;
# writes in flight then fail and are not counted as acknowledged.
#
# Every SOAK_SAMPLE_SECONDS (default 60) the RSS and open descriptors of
# every long-lived process (the servers, the attaches, the workloads,
# etcd members) are sampled.  At the end: faults healed, a clean detach
# of both volumes, replicas byte-identical, every volume read back through
# a fresh attach (every block holds its newest acknowledged write or a
# newer one), the samples table, and for every process sampled at least 4
# times its trend: the samples after warm-up (the first) in three equal
# spans, each span's largest RSS; RSS grows when it rose from the first
# span to the second and again from the second to the third, each time
# by more than 5 % and 8 MiB together (a leak keeps growing; a server's
# heap reaching a new high-water mark once, when a client puts more in
# flight than before, is one step, not a trend), or descriptors beyond 8
# more than the first span's; either fails (etcd's are shown, not
# judged: its memory grows with its history, by design).  The last line
# is "soak: N acknowledged writes checked, M lost".
#
SOAK_HOSTS=${SOAK_HOSTS:-0}
if ((SOAK_HOSTS)); then
    # shellcheck source=../hosts/lib.sh
    . "$(dirname "${BASH_SOURCE[0]}")/../hosts/lib.sh"
else
    if [[ ${SOAK_REGISTRY:-dir} == etcd ]]; then export REPVOL_TEST_REGISTRY=etcd; fi
    . "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
fi
require_cmd fio nbdinfo
SECONDS_TOTAL=${SOAK_SECONDS:-3600}
# SOAK_ASAN_SECONDS: how long against an ASan build, which is slower.
! built_with_asan || SECONDS_TOTAL=${SOAK_ASAN_SECONDS:-$SECONDS_TOTAL}
SAMPLE_EVERY=${SOAK_SAMPLE_SECONDS:-60}
CHAOS_MIN=${SOAK_CHAOS_MIN:-5}
CHAOS_MAX=${SOAK_CHAOS_MAX:-30}
AL=$BUILD/tests/ackload
[[ -x $AL ]] || fail "$AL not built"

VOLS=(v1 v2)
ACK_BLOCKS=8192            # ackload's blocks: the first 32 MiB of each volume
declare -A SOCK=() URI=() WRITER=()
problems=()
problem() { problems+=("$*"); log "PROBLEM: $*"; }

# --- the two places it runs ---------------------------------------------
# On loopback: servers a and b, attaches on this host.  In the host
# harness: servers s1 and s2 (s3 and s4 idle), etcd on s1-s3, the attaches
# on h1, whose replica links cross the bridge where links are cut.  The
# workloads and fio reach an attach through its unix socket, which is a
# path, from any namespace.  Each function below is one operation in both.
# --heal-after 0: no replica is moved to a spare while a server is down.
ATTACH_OPTS=(--timeout 2 --resync-rate 256M --heal-after 0)
if ((SOAK_HOSTS)); then
    SA=s1 SB=s2 ETCD_MEMBERS=(1 2 3)
    lab_up
    srv_pid()      { echo "${SERVER_PID[$1]}"; }
    srv_start()    { start_server "$1"; }
    attach_vol()   { attach_on h1 "$1" "${ATTACH_OPTS[@]}"; }
    att_pid()      { echo "${ATTACH_PID[h1-$1]}"; }
    att_log()      { echo "$T/attach-h1-$1.log"; }
    detach_vol()   { detach_on h1 "$1"; }
    sock_of()      { echo "$T/h1-$1.sock"; }
    member_pid()   { echo "${ETCD_PID[s$1]}"; }
    member_start() { start_etcd_member "$1"; }
    member_ok()    { etcd_member_healthy "s$1"; }
    replica_of()   { echo "$1"; }
else
    SA=a SB=b ETCD_MEMBERS=()
    for ((i = 1; i <= ${ETCD_N:-0}; i++)); do ETCD_MEMBERS+=("$i"); done
    start_repvold a zone-a
    start_repvold b zone-b
    srv_pid()      { echo "${REPVOLD_PID[$1]}"; }
    srv_start()    { start_repvold "$1" "zone-$1"; }
    attach_vol()   { start_attach "$1" "$(sock_of "$1")" "${ATTACH_OPTS[@]}"; }
    att_pid()      { echo "${ATTACH_PID[$1]}"; }
    att_log()      { echo "$T/attach-$1.log"; }
    detach_vol()   { stop_attach "$1"; }
    sock_of()      { echo "$T/$1.sock"; }
    member_pid()   { echo "${ETCD_PID[$1]}"; }
    member_start() { etcd_start_member "$1"; }
    member_ok()    { etcd_healthy "$1"; }
    replica_of()   { echo "${REPVOLD_ADDR[$1]}"; }
fi

for v in "${VOLS[@]}"; do
    repvol create "$v" --size 64M --replica "$(replica_of "$SA")" --replica "$(replica_of "$SB")"
    SOCK[$v]=$(sock_of "$v")
    URI[$v]=$(nbd_uri "${SOCK[$v]}")
done
start_writer() {
    start_bg "$T/writer-$1.log" "$AL" write "${URI[$1]}" "$T/acks-$1.log" --tag "$1" \
        --blocks "$ACK_BLOCKS" --qd 8 --flush-every 32 --rate 400 --reconnect 120
    WRITER[$1]=$BG_PID
}
for v in "${VOLS[@]}"; do attach_vol "$v"; start_writer "$v"; done

# fio verify on v2, beyond ackload's blocks, one short run after another.
fio_runs=0 fio_pid=
start_fio() {
    fio_runs=$((fio_runs + 1))
    # Its report goes to a file: only errors reach the log the EXIT trap shows.
    start_bg "$T/fio-$fio_runs.err" fio --name=soak --ioengine=nbd --uri="${URI[v2]}" \
        --rw=randwrite --bs=4k --iodepth=8 --offset=32M --size=8M --rate_iops=300 \
        --verify=crc32c --do_verify=1 --verify_fatal=1 --output="$T/fio-$fio_runs.out"
    fio_pid=$BG_PID
}
# fio_why: what the last fio run said about its failure.
fio_why() { grep -h -m3 -iE 'verify|error|bad' "$T/fio-$fio_runs.out" "$T/fio-$fio_runs.err" | tr '\n' ' '; }
poll_fio() {
    pid_alive "$fio_pid" && return 0
    local rc=0
    wait_exit "$fio_pid" 1 || rc=$?
    ((rc == 0)) || problem "fio run $fio_runs on v2 failed (exit $rc): $(fio_why)"
    start_fio
}
start_fio

# --- sampling -------------------------------------------------------------
SAMPLES=$T/samples
: >"$SAMPLES"
t_start=$(date +%s)
next_sample=$t_start
sample() {
    local now label pid rss fds i v p
    now=$(( $(date +%s) - t_start ))
    local -a procs=("repvold-$SA $(srv_pid "$SA")" "repvold-$SB $(srv_pid "$SB")")
    for v in "${VOLS[@]}"; do
        procs+=("attach-$v $(att_pid "$v")" "ackload-$v ${WRITER[$v]}")
    done
    for i in ${ETCD_MEMBERS[@]+"${ETCD_MEMBERS[@]}"}; do procs+=("etcd-e$i $(member_pid "$i")"); done
    for p in "${procs[@]}"; do
        read -r label pid <<<"$p"
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
        [[ -n $rss ]] || continue
        fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
        echo "$now $label $pid $rss $fds" >>"$SAMPLES"
    done
}
# tick: one second of the soak; samples when one is due, restarts fio.
tick() {
    if (( $(date +%s) >= next_sample )); then
        sample
        next_sample=$((next_sample + SAMPLE_EVERY))
    fi
    poll_fio
    sleep 1
}
hold() { local i; for ((i = 0; i < $1; i++)); do tick; done; }
rand() { echo $(($1 + RANDOM % ($2 - $1 + 1))); }

# --- faults ---------------------------------------------------------------
all_vols_in_sync() { local v; for v in "${VOLS[@]}"; do all_in_sync "$v" || return 1; done; }
faults=()
# count_fault WHAT: the calling action is counted by its name.
count_fault() { faults+=("${FUNCNAME[1]}"); log "chaos $(( $(date +%s) - t_start ))s: $*"; }

kill_attach() {
    local pid
    pid=$(att_pid v1)
    count_fault "kill -9 attach v1 (pid $pid) and attach again"
    kill -KILL "$pid"
    wait_exit "$pid" || true
    attach_vol v1
}
kill_server() {
    local d pid
    d=$(rand 2 8)
    pid=$(srv_pid "$SB")
    count_fault "kill -9 repvold $SB (pid $pid), restart after ${d}s"
    kill -KILL "$pid"
    wait_exit "$pid" || true
    hold "$d"
    srv_start "$SB"
    wait_for -t 120 all_vols_in_sync
}
stop_server() {
    local s d pid
    s=$([[ $((RANDOM % 2)) == 0 ]] && echo "$SA" || echo "$SB")
    d=$(rand 3 8)
    pid=$(srv_pid "$s")
    count_fault "SIGSTOP repvold $s (pid $pid) for ${d}s"
    kill -STOP "$pid"
    hold "$d"
    kill -CONT "$pid"
    wait_for -t 120 all_vols_in_sync
}
kill_etcd() {
    local i d pid
    i=${ETCD_MEMBERS[RANDOM % ${#ETCD_MEMBERS[@]}]}
    d=$(rand 2 8)
    pid=$(member_pid "$i")
    count_fault "kill -9 etcd member e$i (pid $pid), restart after ${d}s"
    kill -KILL "$pid"
    wait_exit "$pid" || true
    hold "$d"
    member_start "$i"
    wait_for -t 60 member_ok "$i"
}
# cut_replica_link: h1 loses one server's link both ways, past the
# attach's --timeout; the link comes back and the replica is caught up.
cut_replica_link() {
    local s d
    s=$([[ $((RANDOM % 2)) == 0 ]] && echo "$SA" || echo "$SB")
    d=$(rand 3 8)
    count_fault "cut the link h1 - $s for ${d}s"
    cut_link h1 "$s"
    hold "$d"
    restore_links
    wait_for -t 120 all_vols_in_sync
}
actions=(kill_attach kill_server stop_server)
((${#ETCD_MEMBERS[@]} == 0)) || actions+=(kill_etcd)
((SOAK_HOSTS == 0)) || actions+=(cut_replica_link)

# next_action: the faults come in rounds, each round every action once in
# a random order, so that even the short forms inject every kind.
queue=()
next_action() {
    local i j t
    if ((${#queue[@]} == 0)); then
        queue=("${actions[@]}")
        for ((i = ${#queue[@]} - 1; i > 0; i--)); do
            j=$((RANDOM % (i + 1))) t=${queue[i]}
            queue[i]=${queue[j]} queue[j]=$t
        done
    fi
    t=${queue[0]}
    queue=("${queue[@]:1}")
    "$t"
}

# --- the soak -------------------------------------------------------------
log "soak: ${SECONDS_TOTAL}s, a fault every ${CHAOS_MIN}-${CHAOS_MAX}s (${actions[*]}), samples every ${SAMPLE_EVERY}s"
end=$((t_start + SECONDS_TOTAL))
while (( $(date +%s) < end )); do
    pause=$(rand "$CHAOS_MIN" "$CHAOS_MAX")
    (( $(date +%s) + pause < end )) || pause=$(( end - $(date +%s) ))
    hold "$pause"
    (( $(date +%s) < end )) || break
    wait_for -t 120 all_vols_in_sync
    next_action
done
sample

# --- the end --------------------------------------------------------------
wait_for -t 120 all_vols_in_sync
# The fio run under way ends by itself (8 MiB at 300 IOPS: about 15 s).
rc=0
wait_exit "$fio_pid" 120 || rc=$?
((rc == 0)) || problem "the last fio run on v2 failed (exit $rc): $(fio_why)"
for v in "${VOLS[@]}"; do
    kill_pid "${WRITER[$v]}" TERM 60
    log "$(tail -n 1 "$T/writer-$v.log")"
done
grep -q " 0 failed" "$T/writer-v2.log" ||
    problem "v2's client saw errors, though its attach was never killed: $(tail -n 1 "$T/writer-v2.log")"
if grep -q "did not detach cleanly" "$(att_log v1)"; then
    wait_for -t 120 grep -q "reconciled after an unclean detach" "$(att_log v1)"
fi
checked=0 lost=0
for v in "${VOLS[@]}"; do
    detach_vol "$v"
    cmp -s "${REPVOLD_DIR[$SA]}/$v.data" "${REPVOLD_DIR[$SB]}/$v.data" ||
        problem "$v: replicas differ after a clean detach: $(cmp "${REPVOLD_DIR[$SA]}/$v.data" "${REPVOLD_DIR[$SB]}/$v.data" 2>&1)"
    attach_vol "$v"
    rc=0
    out=$("$AL" check "${URI[$v]}" "$T/acks-$v.log" --tag "$v" --blocks "$ACK_BLOCKS" 2>&1) || rc=$?
    ((rc <= 1)) || fail "$v: ackload check failed: $out"
    grep LOST <<<"$out" >&2 || true
    read -r n m < <(sed -n 's/^checked \([0-9]*\) .*, \([0-9]*\) lost$/\1 \2/p' <<<"$out")
    checked=$((checked + n)) lost=$((lost + m))
    detach_vol "$v"
done

log "faults injected: ${#faults[@]} ($(printf '%s\n' ${faults[@]+"${faults[@]}"} | sort | uniq -c | awk '{printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1}')); fio runs: $fio_runs"
# The samples and each process's trend.  Under ASan, RSS is not judged:
# its quarantine (256 MiB) holds freed memory by design, so RSS climbs
# for minutes in a process that leaks nothing (LeakSanitizer judges
# leaks there); descriptors are judged in every build.
rss_judged=1
! built_with_asan || rss_judged=0
python3 - "$SAMPLES" "$rss_judged" >"$T/trend" <<'EOF' || problem "a process grew: $(grep GROWS "$T/trend" | tr '\n' ' ')"
import sys
from collections import OrderedDict
series = OrderedDict()
for line in open(sys.argv[1]):
    t, label, pid, rss, fds = line.split()
    series.setdefault((label, pid), []).append((int(t), int(rss), int(fds)))
print("samples (t s: RSS KiB/fds):")
for (label, pid), s in series.items():
    print("  %-12s pid %-7s %s" % (label, pid, " ".join("%d:%d/%d" % x for x in s)))
rss_judged = sys.argv[2] == "1"
bad = False
def rose(a, b):
    return b > a * 1.05 and b > a + 8192

for (label, pid), s in series.items():
    if len(s) < 4:
        continue
    after = s[1:]
    k = len(after)
    spans = [after[i * k // 3:(i + 1) * k // 3] for i in range(3)]
    m = [max(x[1] for x in span) for span in spans]
    fd0, fds = max(x[2] for x in spans[0]), max(x[2] for x in after)
    rss_grows = rose(m[0], m[1]) and rose(m[1], m[2])
    fds_grow = fds > fd0 + 8
    grows = rss_grows or fds_grow
    judged = not label.startswith("etcd") and (rss_judged or fds_grow)
    verdict = ("GROWS" if judged else "grows (not judged)") if grows else "flat"
    bad |= grows and judged
    print("trend %-12s pid %-7s RSS by span %s KiB (%+.1f%%), fds %d -> max %d over %d samples: %s"
          % (label, pid, " -> ".join(str(x) for x in m), 100.0 * (m[2] - m[0]) / m[0],
             fd0, fds, len(s), verdict))
sys.exit(1 if bad else 0)
EOF
cat "$T/trend" >&2
grep -q "^trend " "$T/trend" || problem "no process was sampled 4 times: the soak is shorter than 4 samples"

((${#problems[@]} == 0)) || printf 'soak: %d problem(s):\n%s\n' "${#problems[@]}" "$(printf '  %s\n' "${problems[@]}")" >&2
echo "soak: $checked acknowledged writes checked, $lost lost"
((lost == 0 && ${#problems[@]} == 0)) || exit 1
