#!/bin/bash
# --max-connections-per-peer 5: five connections from 127.0.0.2 are kept,
# the sixth from it is closed at once (before any WELCOME), while
# 127.0.0.1 and 127.0.0.3 still connect and the CLI's create, status and an
# attach from 127.0.0.1 work, with the data read back; when one of
# 127.0.0.2's connections goes, it may open another.  The refusal is
# logged naming the address and the limit.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy python3

start_repvold a zone-a --max-connections-per-peer 5
start_repvold b zone-b
grep -q "5 per address" "$T/repvold-a.log" || fail "repvold a did not log its per-address limit"

mkdir -p "$T/hold"
cat >"$T/hold.py" <<'PY'
import os, socket, sys, time
from rvproto import closed, connect, hello, recv_exact, WELCOME_SIZE
port, state = int(sys.argv[1]), sys.argv[2]
H = "127.0.0.1"

def note(name, text):
    with open(os.path.join(state, name + ".tmp"), "w") as f:
        f.write(text + "\n")
    os.replace(os.path.join(state, name + ".tmp"), os.path.join(state, name))

def refused(source):
    """Is a new connection from source closed before any WELCOME?"""
    s = hello(H, port, "x", source=source, timeout=10)
    try:
        return recv_exact(s, WELCOME_SIZE) is None
    except (EOFError, ConnectionResetError):
        return True
    finally:
        s.close()

held = [connect(H, port, "x", source="127.0.0.2") for _ in range(5)]
assert refused("127.0.0.2"), "a sixth connection from 127.0.0.2 was served"
other = [connect(H, port, "x", source=a) for a in ("127.0.0.1", "127.0.0.3")]
note("limited", "ok")

# Hold the five until the test has done its work, then let one go.
deadline = time.time() + 120
while not os.path.exists(os.path.join(state, "release")):
    assert time.time() < deadline, "never told to release"
    time.sleep(0.05)
held.pop().close()
# The server notices the close on its next loop pass: poll, bounded.
deadline = time.time() + 10
while True:
    try:
        held.append(connect(H, port, "x", source="127.0.0.2", timeout=5))
        break
    except (AssertionError, EOFError, ConnectionResetError):
        assert time.time() < deadline, "127.0.0.2 was never let back in"
        time.sleep(0.05)
assert refused("127.0.0.2"), "127.0.0.2 got a sixth connection after all"
note("released", "ok")
for s in held + other:
    s.close()
PY
start_bg "$T/hold.log" env PYTHONPATH="$TOP/tests/tools" python3 "$T/hold.py" \
    "${REPVOLD_PORT[a]}" "$T/hold"
hold_pid=$BG_PID
wait_written "$T/hold/limited" "$hold_pid" 30

# The real work from 127.0.0.1 while 127.0.0.2 is at its limit.
repvol create vol --size 8M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
head -c 8M /dev/urandom >"$T/src"
nbdcopy --flush "$T/src" "$(nbd_uri "$T/nbd.sock")"
nbdcopy "$(nbd_uri "$T/nbd.sock")" "$T/back"
assert_files_identical "$T/src" "$T/back"
all_in_sync vol || fail "replicas not in sync"

touch "$T/hold/release"
wait_written "$T/hold/released" "$hold_pid" 30
wait_exit "$hold_pid" 10 || { cat "$T/hold.log" >&2; fail "the holding script failed"; }

grep -q "refused a connection from 127.0.0.2: 5 connections open from that address (the per-address limit)" \
    "$T/repvold-a.log" || fail "repvold a did not log the refusal naming 127.0.0.2 and the limit"
if grep -q "refused a connection from 127.0.0.[13]" "$T/repvold-a.log"; then
    fail "repvold a refused another address"
fi
stop_attach vol
assert_files_identical "$T/src" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/src" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
