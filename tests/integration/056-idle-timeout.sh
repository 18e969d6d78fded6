#!/bin/bash
# The idle timeout (--idle-timeout 2 here): a connection that says nothing,
# after HELLO (data or admin) or without one, is closed by the server, and
# not before the timeout; one that PINGs (as the attach engine does) stays
# open well past it and is closed only once it stops; WELCOME advertises
# PING and the timeout.  A server with --idle-timeout 0 keeps a silent
# connection.  Bad values of the new options are refused with one line.
. "$(dirname "$0")/lib.sh"
require_cmd python3

for bad in "--idle-timeout abc" "--idle-timeout 86401" "--max-connections -1" \
           "--max-connections-per-peer x"; do
    # shellcheck disable=SC2086
    expect_fail_match "^repvold: --(idle-timeout|max-connections|max-connections-per-peer) must be" \
        "$REPVOLD" --data-dir "$T" --listen 127.0.0.1:1 $bad
done

start_repvold a zone-a --idle-timeout 2
start_repvold z zone-b --idle-timeout 0
repvol create vol --size 4M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[z]}"

PYTHONPATH="$TOP/tests/tools" python3 - "${REPVOLD_PORT[a]}" "${REPVOLD_PORT[z]}" <<'PY'
import socket, sys, time
import rvproto
from rvproto import closed, connect, PING, OK, FEAT_PING
port, port0 = int(sys.argv[1]), int(sys.argv[2])
H = "127.0.0.1"

def hold_until_closed(socks, bound=15):
    """Seconds until the server has closed every socket (each read at
    most `bound` s: a socket still open then fails the test)."""
    t0 = time.time()
    for s in socks:
        s.settimeout(max(0.1, bound - (time.time() - t0)))
        assert closed(s) and time.time() - t0 < bound, "still open after %d s" % bound
    return time.time() - t0

w = rvproto.read_welcome(rvproto.hello(H, port, "vol", flags=rvproto.HELLO_ADMIN))
assert w["features"] & FEAT_PING and w["idle_timeout_ms"] == 2000, w
w0 = rvproto.read_welcome(rvproto.hello(H, port0, "vol", flags=rvproto.HELLO_ADMIN))
assert w0["features"] & FEAT_PING and w0["idle_timeout_ms"] == 0, w0

# Silent after a data HELLO, after an admin HELLO, and before any HELLO.
t0 = time.time()
silent = [connect(H, port, "other", epoch=5), connect(H, port, "vol", admin=True),
          socket.create_connection((H, port))]
took = hold_until_closed(silent)
assert time.time() - t0 >= 1.5, "closed before the idle timeout: %.1f s" % (time.time() - t0)
print("silent connections closed after %.1f s" % took)

# PING every 0.5 s for 5 s (2.5 timeouts): kept, answered every time.
s = connect(H, port, "vol", admin=True)
for i in range(10):
    s.sendall(rvproto.req(PING, 100 + i, 0, 0))
    st, rid, ln, crc = rvproto.reply(s)
    assert (st, rid, ln) == (OK, 100 + i, 0), (st, rid, ln)
    time.sleep(0.5)
# ...and still usable for real work: STAT answers.
st, data = rvproto.call(s, rvproto.STAT, 200)
assert st == OK and len(data) == rvproto.STAT_SIZE, st
# Once it stops pinging, it goes like the others.
took = hold_until_closed([s])
assert took >= 1.5, "closed %.1f s after the last request" % took
print("pinging connection kept for 5 s, closed %.1f s after it stopped" % took)

# --idle-timeout 0: a silent connection outlives what would have been a
# timeout here several times over (the server answers a PING after it).
s = connect(H, port0, "vol", admin=True)
s.settimeout(5)
try:
    s.recv(1)
    raise AssertionError("the --idle-timeout 0 server said something or closed")
except socket.timeout:
    pass
st, _ = rvproto.call(s, PING, 1)
assert st == OK
print("no idle timeout with --idle-timeout 0")
PY

n=$(grep -c "closing connection: idle for 2000 ms" "$T/repvold-a.log" || true)
((n >= 1)) || fail "repvold a did not say why it closed the idle connections"
grep -q "idle timeout 2 s" "$T/repvold-a.log" || fail "repvold a did not log its idle timeout"
grep -q "idle timeout 0 s" "$T/repvold-z.log" || fail "repvold z did not log its idle timeout"
pid_alive "${REPVOLD_PID[a]}" || fail "repvold a died"
log "ok"
