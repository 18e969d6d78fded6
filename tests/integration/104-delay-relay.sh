#!/bin/bash
# The bench's delay relay (build/tests/delayrelay, tests/perf/delayrelay.c)
# in front of a replica: two repvolds, the second reached through the
# relay with 2 ms each way; data written with nbdcopy reads back the
# same, and after detach both replicas' data files are byte-identical.
# A 1-byte echo through the relay takes the round trip it should; a
# sender flooding a receiver that never reads raises the relay's peak RSS
# by little more than its --queue-bytes and is pushed back.  The relay
# refuses bad arguments with a clear message and exits non-zero, and
# stops cleanly (status 0) on SIGTERM.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

RELAY=$BUILD/tests/delayrelay
[[ -x $RELAY ]] || fail "$RELAY not built (make all)"

expect_fail_match '--target ADDR:PORT is required' "$RELAY" --listen 127.0.0.1:1
expect_fail_match 'bad --listen address' "$RELAY" --listen nope --target 127.0.0.1:1
expect_fail_match 'bad --delay-us' "$RELAY" --listen 127.0.0.1:1 --target 127.0.0.1:2 --delay-us -5
expect_fail_match 'bad --delay-us' "$RELAY" --listen 127.0.0.1:1 --target 127.0.0.1:2 --delay-us 2ms
expect_fail_match 'bad --queue-bytes' "$RELAY" --listen 127.0.0.1:1 --target 127.0.0.1:2 --queue-bytes 10
expect_fail_match 'bad --max-conns' "$RELAY" --listen 127.0.0.1:1 --target 127.0.0.1:2 --max-conns 0
expect_fail_match 'unexpected argument' "$RELAY" --listen 127.0.0.1:1 --target 127.0.0.1:2 extra
expect_fail_match 'unknown option' "$RELAY" --listen 127.0.0.1:1 --target 127.0.0.1:2 --bogus

start_repvold a zone-a
start_repvold b zone-b
rport=$(free_port)
start_bg "$T/relay.log" "$RELAY" --listen "127.0.0.1:$rport" --target "${REPVOLD_ADDR[b]}" \
    --delay-us 2000 --queue-bytes 1M
relay=$BG_PID
wait_for port_listening "$rport"

repvol create vol --size 32M --replica "${REPVOLD_ADDR[a]}" --replica "127.0.0.1:$rport"
start_attach vol "$T/vol.sock"
head -c 24M /dev/urandom >"$T/data.bin"
nbdcopy "$T/data.bin" "$(nbd_uri "$T/vol.sock")"
# Read back (the attach may serve reads from either replica).
nbdcopy "$(nbd_uri "$T/vol.sock")" "$T/back.bin"
head -c 24M "$T/back.bin" >"$T/back24.bin"
assert_files_identical "$T/data.bin" "$T/back24.bin"
stop_attach vol
assert_files_identical "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data"
cmp -n $((24 << 20)) "$T/data.bin" "${REPVOLD_DIR[b]}/vol.data" ||
    fail "the replica behind the relay does not hold the data"

# The delay is there: a 1-byte echo through a relay of 2 ms each way
# takes at least 4 ms (an echo server of our own behind a second relay).
eport=$(free_port) xport=$(free_port)
start_bg "$T/echo.log" python3 -c '
import socket, sys
l = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    c, _ = l.accept()
    while (b := c.recv(4096)):
        c.sendall(b)
    c.close()' "$eport"
wait_for port_listening "$eport"
start_bg "$T/relay-echo.log" "$RELAY" --listen "127.0.0.1:$xport" --target "127.0.0.1:$eport" --delay-us 2000
wait_for port_listening "$xport"
ms=$(python3 - "$xport" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
best = 1e9
for i in range(5):
    t = time.monotonic()
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    best = min(best, (time.monotonic() - t) * 1000)
print("%.2f" % best)
EOF
)
log "echo round trip through the relay: $ms ms (best of 5)"
awk -v m="$ms" 'BEGIN { exit !(m >= 4 && m < 50) }' || fail "round trip through the relay $ms ms, not 4 ms or a little more"

# Bounded memory: a sender that floods a receiver which never reads.
# With --queue-bytes 1M the relay holds at most 1 MiB (then stops
# reading, and TCP pushes back on the sender), so its peak RSS grows by
# little more than that, and the sender is held back.
sport=$(free_port) fport=$(free_port)
start_bg "$T/sink.log" python3 -c '
import socket, sys, time
l = socket.create_server(("127.0.0.1", int(sys.argv[1])))
c, _ = l.accept()
time.sleep(3600)' "$sport"
wait_for port_listening "$sport"
start_bg "$T/relay-flood.log" "$RELAY" --listen "127.0.0.1:$fport" --target "127.0.0.1:$sport" --queue-bytes 1M
flood=$BG_PID
wait_for port_listening "$fport"
hwm0=$(awk '/^VmHWM/ {print $2}' "/proc/$flood/status")
sent=$(python3 - "$fport" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setblocking(False)
buf, sent, end = b"y" * 65536, 0, time.monotonic() + 3
while time.monotonic() < end:
    try:
        sent += s.send(buf)
    except BlockingIOError:
        time.sleep(0.01)
print(sent)
EOF
)
hwm1=$(awk '/^VmHWM/ {print $2}' "/proc/$flood/status")
log "flood: $sent bytes accepted from the sender in 3 s; relay peak RSS $hwm0 kB -> $hwm1 kB (queue bound 1024 kB)"
# Not under ASan: its quarantine keeps the freed chunk buffers, so RSS
# follows the bytes relayed, not the queue (the push-back below is
# checked in every build).
if built_with_asan; then
    log "ASan build: the relay's RSS is not judged"
else
    ((hwm1 - hwm0 <= 2048)) || fail "the relay's peak RSS grew by $((hwm1 - hwm0)) kB with a 1 MiB queue bound"
fi
((sent < 64 << 20)) || fail "the relay did not push back on the sender: $sent bytes taken"

kill -TERM "$relay"
rc=0
wait_exit "$relay" || rc=$?
assert_eq 0 "$rc" "the relay's exit status on SIGTERM"
grep -q 'signal 15' "$T/relay.log" || fail "the relay did not log its shutdown"
log "ok"
