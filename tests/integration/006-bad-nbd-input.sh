#!/bin/bash
# Malformed NBD input (wrong magic, out-of-range offset, oversized length,
# truncated frames) gets an error or a closed connection, never a crash,
# and other clients of the same attach keep being served correctly.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 8M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
uri=$(nbd_uri "$T/nbd.sock")
head -c 8M /dev/urandom > "$T/src"
nbdcopy --flush "$T/src" "$uri"

PYTHONPATH="$TOP/tests/tools" python3 - "$T/nbd.sock" <<'PY'
import socket, struct, sys
from nbdproto import (IHAVEOPT, OPT_GO, REQ_MAGIC, closed, greeting, go,
                      recv_exact)
path = sys.argv[1]

def connect():
    return greeting(path, timeout=10)

# 1. wrong option magic during the handshake: connection closed
s = connect(); s.sendall(struct.pack(">QII", 0x1234, OPT_GO, 0)); assert closed(s), "bad option magic kept open"

# 2. absurd option length: closed, no attempt to buffer 4 GiB
s = connect(); s.sendall(struct.pack(">QII", IHAVEOPT, OPT_GO, 0xffffffff)); assert closed(s), "huge option kept open"

# 3. wrong request magic after GO: closed
s = connect(); go(s, b"vol")
s.sendall(struct.pack(">IHHQQI", 0xdeadbeef, 0, 0, 1, 0, 4096)); assert closed(s), "bad request magic kept open"

# 4. read beyond the end: an EINVAL error reply, connection stays usable
s = connect(); go(s, b"vol")
s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, 0, 0, 7, 8 << 20, 4096))
magic, err, handle = struct.unpack(">IIQ", recv_exact(s, 16))
assert magic == 0x67446698 and handle == 7 and err == 22, (hex(magic), err, handle)
s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, 0, 0, 8, 0, 4096))
magic, err, handle = struct.unpack(">IIQ", recv_exact(s, 16))
assert err == 0 and handle == 8, (err, handle)
data = recv_exact(s, 4096)
assert data == open(sys.argv[1].replace("nbd.sock", "src"), "rb").read(4096), "read after error returned wrong data"

# 5. write with an oversized length (1 GiB): closed (or an error), never buffered
s = connect(); go(s, b"vol")
s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, 0, 1, 9, 0, 1 << 30))
try:
    hdr = s.recv(16)
    assert hdr == b"" or struct.unpack(">IIQ", hdr)[1] != 0, "oversized write accepted"
except ConnectionResetError:
    pass

# 6. truncated frame: half a request header, then close
s = connect(); go(s, b"vol"); s.sendall(struct.pack(">IHH", REQ_MAGIC, 1, 0)); s.close()

# 7. truncated write payload, then close
s = connect(); go(s, b"vol"); s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, 0, 1, 10, 0, 65536) + b"x" * 100); s.close()

# 8. garbage instead of client flags
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(path); recv_exact(s, 18)
s.sendall(b"\xff" * 64); assert closed(s), "garbage flags kept open"
print("malformed NBD input handled")
PY

# The attach is alive and serves correct data to a well-behaved client.
pid_alive "${ATTACH_PID[vol]}" || fail "attach died on malformed input"
nbdcopy "$uri" "$T/back"
assert_files_identical "$T/src" "$T/back"
stop_attach vol
assert_files_identical "$T/src" "${REPVOLD_DIR[a]}/vol.data"
log "ok"
