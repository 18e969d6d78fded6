#!/bin/bash
# repvold --metrics (docs/DESIGN.md 2.8): two servers serve /metrics,
# which promtool check metrics passes.  A known load through an attach
# (16 writes of 64 KiB, 8 reads, 3 flushes) shows on each server as
# exactly 16 writes and 1 MiB written to the volume, the reads summed
# over both servers as 8, at least 3 flushes, each latency histogram's
# count equal to its op count; one data connection on the volume and
# its epoch.  Refusals are counted by reason: a stale-epoch HELLO, a
# bad HELLO, SET_EPOCH on the attached volume, a READ on a connection a
# newer HELLO fenced (whose epoch the gauge then shows).  Bad HTTP (garbage,
# huge headers, wrong path, wrong method) gets a clean error or a close,
# a connection past the 8 allowed waits, and the server keeps serving; a port in use or a bad address stops
# repvold at startup with a clear message.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/metricslib.sh"

ma=127.0.0.1:$(free_port)
mb=127.0.0.1:$(free_port)
start_repvold a zone-a --metrics "$ma"
start_repvold b zone-b --metrics "$mb"
repvol create vol --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"

scrape "$ma" "$T/a0"
scrape "$mb" "$T/b0"
python3 "$TOP/tests/tools/nbdio.py" "$T/nbd.sock" --writes 16 --reads 8 \
    --flushes 3 --size 65536 || fail "the NBD I/O failed"
scrape "$ma" "$T/a1"
scrape "$mb" "$T/b1"

# delta S NAME LABELS...: what server S's counter grew by.
delta() {
    local s=$1
    shift
    echo $(( $(prom "$T/${s}1" "$@") - $(prom "$T/${s}0" "$@") ))
}
reads=0
for s in a b; do
    assert_eq 16 "$(delta $s repvold_volume_ops_total volume=vol op=write)" "$s: writes"
    assert_eq $((16 * 65536)) "$(delta $s repvold_volume_bytes_total volume=vol op=write)" "$s: bytes written"
    assert_eq 0 "$(delta $s repvold_volume_errors_total volume=vol op=write)" "$s: write errors"
    flushes=$(delta $s repvold_volume_ops_total volume=vol op=flush)
    ((flushes >= 3)) || fail "$s: $flushes flushes, expected at least 3"
    reads=$((reads + $(delta $s repvold_volume_ops_total volume=vol op=read)))
    for op in read write flush; do
        assert_eq "$(prom "$T/${s}1" repvold_volume_ops_total volume=vol op=$op)" \
            "$(prom "$T/${s}1" repvold_volume_latency_seconds_count volume=vol op=$op)" \
            "$s: $op latency histogram count"
        assert_eq "$(prom "$T/${s}1" repvold_volume_latency_seconds_count volume=vol op=$op)" \
            "$(prom "$T/${s}1" repvold_volume_latency_seconds_bucket volume=vol op=$op le=+Inf)" \
            "$s: $op +Inf bucket"
    done
    assert_eq 1 "$(prom "$T/${s}1" repvold_volume_connections volume=vol)" "$s: data connections"
    epoch=$(prom "$T/${s}1" repvold_volume_epoch volume=vol)
    ((epoch >= 2)) || fail "$s: volume epoch $epoch (attached: at least 2)"
    open=$(prom "$T/${s}1" repvold_connections_open)
    ((open >= 1)) || fail "$s: $open connections open"
    acc=$(prom "$T/${s}1" repvold_connections_accepted_total)
    ((acc >= 1)) || fail "$s: $acc connections accepted"
done
assert_eq 8 "$reads" "reads over both servers"
log "each server: 16 writes, 1 MiB, >= 3 flushes; 8 reads in all"

# Refusals, by reason, at server a.
PYTHONPATH="$TOP/tests/tools" python3 - 127.0.0.1 "${REPVOLD_PORT[a]}" <<'PY' || fail "refusals"
import socket, struct, sys
import rvproto
from rvproto import EBUSY, EPERM, SET_EPOCH, call, closed
host, port = sys.argv[1], int(sys.argv[2])
s = rvproto.hello(host, port, b"vol", epoch=1)          # below the stored epoch
assert rvproto.read_welcome(s)["status"] == EPERM
assert closed(s)
s = socket.create_connection((host, port), timeout=10)  # not a HELLO
s.sendall(b"\xff" * 88)
assert closed(s)
a = rvproto.connect(host, port, b"vol", admin=True)
st, _ = call(a, SET_EPOCH, 1, 0, 8, payload=struct.pack("<Q", 1))
assert st == EBUSY, st
PY
scrape "$ma" "$T/a2"
for r in epoch bad_frame busy; do
    assert_eq 1 "$(( $(prom "$T/a2" repvold_refused_total reason=$r) - $(prom "$T/a1" repvold_refused_total reason=$r) ))" "refused $r"
done
for r in epoch busy; do
    assert_eq 1 "$(( $(prom "$T/a2" repvold_volume_refused_total volume=vol reason=$r) - $(prom "$T/a1" repvold_volume_refused_total volume=vol reason=$r) ))" "vol refused $r"
done

# Bad HTTP: each gets an error or a clean close, and /metrics still works.
assert_eq 404 "$(http_code "$ma/other")" "wrong path"
assert_eq 404 "$(http_code "$ma/")" "no path"
assert_eq 405 "$(http_code "$ma/metrics" -X POST -d x=1)" "POST"
assert_eq 405 "$(http_code "$ma/metrics" -X DELETE)" "DELETE"
assert_eq 200 "$(http_code "$ma/metrics" -I)" "HEAD"
big=$(head -c 100000 /dev/zero | tr '\0' a)
assert_eq 431 "$(http_code "$ma/metrics" -H "X-Big: $big")" "huge header"
line=$(raw_http "$ma" 'garbage\r\n\r\n')
[[ -z $line || $line == "HTTP/1.1 400"* ]] || fail "garbage answered '$line'"
line=$(raw_http "$ma" 'GET /metrics HTTP/1.1\r\nHost: x\r\nBad header line\r\n\r\n')
[[ -z $line || $line == "HTTP/1.1 400"* ]] || fail "bad header answered '$line'"
# A connection stuck in binary garbage does not hold up the others; 8
# that say nothing take every slot, and a 9th waits unanswered; once
# they go, scrapes work again.
PYTHONPATH="$TOP/tests/tools" python3 - "$ma" <<'PY' || fail "connection limit"
import socket, subprocess, sys
host, port = sys.argv[1].rsplit(":", 1)
def get(bound):
    return subprocess.run(["curl", "-s", "--max-time", str(bound), "-o",
                           "/dev/null", "-w", "%{http_code}",
                           "http://%s/metrics" % sys.argv[1]],
                          capture_output=True, text=True).stdout
stuck = socket.create_connection((host, int(port)), timeout=5)
stuck.sendall(b"\x00\x01\x02\xff\r\n\r\n")
assert get(5) == "200", "a stuck connection held up a scrape"
idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(7)]
assert get(1) == "000", "a 9th connection was answered"
for s in idle + [stuck]:
    s.close()
PY
wait_for curl -sf --max-time 2 -o /dev/null "http://$ma/metrics"
scrape "$ma" "$T/a3"
pid_alive "${REPVOLD_PID[a]}" || fail "repvold a died"

# The data connection gauge follows the detach.
stop_attach vol
wait_for prom_is "$ma" 0 repvold_volume_connections volume=vol
wait_for prom_is "$mb" 0 repvold_volume_connections volume=vol

# A fenced connection: data HELLO at the volume's epoch, then one at the
# next (a newer attachment); the first one's READ is refused.
epoch=$(prom "$T/a3" repvold_volume_epoch volume=vol)
PYTHONPATH="$TOP/tests/tools" python3 - 127.0.0.1 "${REPVOLD_PORT[a]}" "$epoch" <<'PY' || fail "fencing"
import sys
import rvproto
from rvproto import EPERM, READ, call
host, port, epoch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
old = rvproto.connect(host, port, b"vol", epoch=epoch)
new = rvproto.connect(host, port, b"vol", epoch=epoch + 1)
st, _ = call(old, READ, 1, 0, 4096)
assert st == EPERM, st
PY
scrape "$ma" "$T/a4"
assert_eq 1 "$(( $(prom "$T/a4" repvold_volume_refused_total volume=vol reason=fenced) - $(prom "$T/a3" repvold_volume_refused_total volume=vol reason=fenced) ))" "fenced READ"
assert_eq $((epoch + 1)) "$(prom "$T/a4" repvold_volume_epoch volume=vol)" "epoch after the newer HELLO"

# Startup errors.
expect_fail_match "cannot listen on $ma: Address already in use" \
    "$REPVOLD" --data-dir "$T/c" --listen "127.0.0.1:$(free_port)" --name c --metrics "$ma"
expect_fail_match "bad --metrics address 'nowhere'" \
    "$REPVOLD" --data-dir "$T/c" --listen "127.0.0.1:$(free_port)" --name c --metrics nowhere
log "ok"
