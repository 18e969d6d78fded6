#!/bin/bash
# Malformed replication-protocol input sent straight to a repvold (wrong
# magic, wrong version, bad names, unknown command, out-of-range offset,
# misaligned offset, oversized length, bad checksum,
# truncated frames) closes that connection or gets an error reply; the
# server keeps serving an attached volume, whose data stays correct.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

start_repvold a zone-a --stall-timeout 2 --peer-log-interval 0
start_repvold b zone-b
repvol create vol --size 8M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
repvol create other --size 4M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
uri=$(nbd_uri "$T/nbd.sock")
head -c 8M /dev/urandom > "$T/src"
nbdcopy --flush "$T/src" "$uri"

PYTHONPATH="$TOP/tests/tools" python3 - 127.0.0.1 "${REPVOLD_PORT[a]}" <<'PY'
import socket, struct, sys
import rvproto
from rvproto import closed, crc32c, recv_exact, reply, req, welcome
host, port = sys.argv[1], int(sys.argv[2])
assert crc32c(b"123456789") == 0xe3069283

def hello(vol=b"other", **kw):
    return rvproto.hello(host, port, vol, **kw)

# handshake errors: connection closed
s = hello(magic=0x1122334455667788); assert closed(s), "bad HELLO magic"
# another version: a WELCOME saying no (so the client can tell why), then closed
s = hello(version=99); assert welcome(s) != 0 and closed(s), "bad version accepted"
s = hello(vol=b"../etc/passwd"); assert closed(s), "bad volume name accepted"
s = hello(vol=b"x" * 64); assert closed(s), "unterminated name accepted"
s = hello(flags=0x80); assert closed(s), "unknown flags accepted"

# A data connection to 'other' (epoch 0 < its epoch is refused, so use its
# own: nobody is attached to it).
def data_conn():
    return rvproto.connect(host, port, b"other", epoch=1)

s = data_conn(); s.sendall(struct.pack("<I", 0xdeadbeef) + b"\0" * 28); assert closed(s), "bad request magic"
s = data_conn(); s.sendall(req(99, 1, 0, 0)); assert closed(s), "unknown command"
s = data_conn(); s.sendall(req(1, 1, 4 << 20, 4096)); assert closed(s), "read past the end"
s = data_conn(); s.sendall(req(1, 1, 100, 4096)); assert closed(s), "misaligned read"
s = data_conn(); s.sendall(req(2, 1, 0, 1 << 30)); assert closed(s), "oversized write"
s = data_conn(); s.sendall(req(1, 1, 0, 4096, flags=0x8000)); assert closed(s), "bad flags"
s = data_conn(); s.sendall(req(2, 1, 0, 4096) + b"x" * 10); s.close()   # truncated payload
s = data_conn(); s.sendall(req(2, 1, 0, 4096)[:10]); s.close()           # truncated header

# bad checksum: error reply, connection stays, nothing written
s = data_conn()
payload = b"\xab" * 4096
s.sendall(req(2, 5, 0, 4096, crc=crc32c(payload) ^ 1) + payload)
st, id, ln, crc = reply(s)
assert id == 5 and st == 74, (id, st)
s.sendall(req(1, 6, 0, 4096))
st, id, ln, crc = reply(s)
data = recv_exact(s, ln)
assert st == 0 and id == 6 and data == b"\0" * 4096, "bad-checksum write reached the disk"
assert crc32c(data) == crc
# a good write works on the same connection
s.sendall(req(2, 7, 0, 4096, crc=crc32c(payload)) + payload)
assert reply(s)[:2] == (0, 7)
# A request whose payload stops half way, and a connection that never
# says HELLO, are closed after the stall timeout (2 s here), not held.
import time
stalled = data_conn(); stalled.sendall(req(2, 8, 0, 65536, crc=0) + b"x" * 1000)
silent = socket.create_connection((host, port), timeout=10)
t0 = time.time()
assert closed(stalled), "stalled payload kept open"
assert closed(silent), "silent connection kept open"
assert 1.5 < time.time() - t0 < 8, "stall timeout not applied: %.1f s" % (time.time() - t0)
print("malformed protocol input handled")
PY

pid_alive "${REPVOLD_PID[a]}" || fail "repvold died on malformed input"
pid_alive "${ATTACH_PID[vol]}" || fail "attach lost its replica"
nbdcopy "$uri" "$T/back"
assert_files_identical "$T/src" "$T/back"
stop_attach vol
assert_files_identical "$T/src" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/src" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
