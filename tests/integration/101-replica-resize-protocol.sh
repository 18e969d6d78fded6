#!/bin/bash
# RESIZE on the wire (docs/DESIGN.md 3.10), raw protocol against one
# repvold: WELCOME advertises FEAT_RESIZE; a data RESIZE before CREATE
# closes the connection like any data request; on a data connection a
# grow to 16 MiB is answered OK, STAT says 16 MiB, a write past the old
# end reads back and the grown range reads zero; a data shrink, and a
# size not a multiple of the block size, get EINVAL; an admin RESIZE
# while the data connection is open gets EBUSY; a data connection a
# newer HELLO fenced gets EPERM; once the data connections are closed an
# admin shrink succeeds.  The server logs each resize in one line and
# each refusal; after a restart the size, the file sizes and the data
# written past the old end are still there.  With TLS and --admins, an
# identity outside them gets EACCES for an admin RESIZE but may grow the
# volume on its data connection.
. "$(dirname "$0")/lib.sh"

start_repvold a zone-a --peer-log-interval 0   # count every refusal line
A=${REPVOLD_ADDR[a]}
MiB=$(( 1 << 20 ))

PYTHONPATH="$TOP/tests/tools" python3 - 127.0.0.1 "${REPVOLD_PORT[a]}" <<'PY'
import struct, sys, time
import rvproto
from rvproto import (CREATE, EBUSY, EINVAL, EPERM, FEAT_RESIZE, OK, READ,
                     RESIZE, STAT, WRITE, call, closed)
host, port = sys.argv[1], int(sys.argv[2])
MiB = 1 << 20

def stat_size(s, id):
    st, data = call(s, STAT, id)
    assert st == OK, "STAT: status %d" % st
    exists, bs, size = struct.unpack_from("<IIQ", data)
    assert exists == 1
    return size

# A data RESIZE before the volume exists is a bad frame: closed.
s = rvproto.hello(host, port, b"rv", epoch=5)
w = rvproto.read_welcome(s)
assert w["status"] == OK and w["features"] & FEAT_RESIZE, w
s.sendall(rvproto.req(RESIZE, 1, 16 * MiB, 0))
assert closed(s), "RESIZE before CREATE left the connection open"

d = rvproto.connect(host, port, b"rv", epoch=5)
st, _ = call(d, CREATE, 1, 0, 24, payload=struct.pack("<QIIQ", 8 * MiB, 4096, 0, 5))
assert st == OK, "CREATE: status %d" % st
assert stat_size(d, 2) == 8 * MiB

# Grow on the data connection; the new range is there and zero.
st, _ = call(d, RESIZE, 3, 16 * MiB)
assert st == OK, "data RESIZE 8 -> 16 MiB: status %d" % st
assert stat_size(d, 4) == 16 * MiB
block = bytes(range(256)) * 16
st, _ = call(d, WRITE, 5, 12 * MiB, 4096, payload=block)
assert st == OK, "WRITE past the old end: status %d" % st
st, data = call(d, READ, 6, 12 * MiB, 4096)
assert st == OK and data == block, "read back past the old end"
st, data = call(d, READ, 7, 10 * MiB, 4096)
assert st == OK and data == bytes(4096), "the grown range is not zero"
# The same size again: nothing to do, OK.
st, _ = call(d, RESIZE, 8, 16 * MiB)
assert st == OK, "data RESIZE to the same size: status %d" % st

# A data connection only grows; sizes must be multiples of the block.
st, _ = call(d, RESIZE, 9, 4 * MiB)
assert st == EINVAL, "data shrink: status %d" % st
st, _ = call(d, RESIZE, 10, 16 * MiB + 512)
assert st == EINVAL, "size not a multiple of the block size: status %d" % st
assert stat_size(d, 11) == 16 * MiB

# The admin may not resize under an open data connection.
a = rvproto.connect(host, port, b"rv", admin=True)
st, _ = call(a, RESIZE, 1, 4 * MiB)
assert st == EBUSY, "admin RESIZE while attached: status %d" % st

# A newer HELLO fences d: its RESIZE is EPERM.
n = rvproto.connect(host, port, b"rv", epoch=6)
st, _ = call(d, RESIZE, 12, 32 * MiB)
assert st == EPERM, "fenced RESIZE: status %d" % st
assert stat_size(a, 2) == 16 * MiB
d.close()
n.close()

# Without data connections the admin shrinks it (the server notices the
# closes on its own loop: wait for it, bounded).
deadline = time.time() + 10
while True:
    st, _ = call(a, RESIZE, 3, 14 * MiB)
    if st != EBUSY or time.time() > deadline:
        break
    time.sleep(0.05)
assert st == OK, "admin shrink 16 -> 14 MiB: status %d" % st
assert stat_size(a, 4) == 14 * MiB
st, _ = call(a, RESIZE, 5, 14 * MiB + 2048)
assert st == EINVAL, "admin RESIZE to an unaligned size: status %d" % st
a.close()
print("grow, refusals and admin shrink as specified")
PY

grep -q "volume rv resized 8 MiB -> 16 MiB" "$T/repvold-a.log" || fail "no log line for the grow"
grep -q "volume rv resized 16 MiB -> 14 MiB (admin connection)" "$T/repvold-a.log" ||
    fail "no log line for the admin shrink"
grep -q "RESIZE rv 16 MiB -> 4 MiB refused: a data connection only grows" "$T/repvold-a.log" ||
    fail "the refused data shrink is not logged"
grep -Eq "RESIZE rv refused: in use by" "$T/repvold-a.log" || fail "the EBUSY refusal is not logged"
assert_eq $(( 14 * MiB )) "$(stat -c %s "${REPVOLD_DIR[a]}/rv.data")" "size of rv.data"
pid_alive "${REPVOLD_PID[a]}" || fail "repvold a died"

# Restart: the size persisted, and the bytes written past the old end.
stop_repvold a
start_repvold a zone-a --peer-log-interval 0
if grep -q "interrupted resize" "$T/repvold-a.log"; then fail "a clean resize looked interrupted at start-up"; fi
PYTHONPATH="$TOP/tests/tools" python3 - 127.0.0.1 "${REPVOLD_PORT[a]}" <<'PY'
import struct, sys
import rvproto
from rvproto import OK, READ, STAT, call
host, port = sys.argv[1], int(sys.argv[2])
MiB = 1 << 20
a = rvproto.connect(host, port, b"rv", admin=True)
st, data = call(a, STAT, 1)
assert st == OK
exists, bs, size = struct.unpack_from("<IIQ", data)
assert exists == 1 and size == 14 * MiB, (exists, size)
st, data = call(a, READ, 2, 12 * MiB, 4096)
assert st == OK and data == bytes(range(256)) * 16, "data past the old end lost"
print("after the restart: 14 MiB, data kept")
PY

# Authorization (docs/DESIGN.md 3.9), on a TLS server with --admins
# admin: an admin connection of another identity gets EACCES for
# RESIZE like CREATE, while that identity's data connection may grow
# the volume; admin's admin connection may shrink it.
if command -v certtool > /dev/null; then
    P=$T/pki
    "$TOP/scripts/tls-certs.sh" ca "$P" > /dev/null
    "$TOP/scripts/tls-certs.sh" server "$P" > /dev/null
    "$TOP/scripts/tls-certs.sh" client "$P" admin > /dev/null
    "$TOP/scripts/tls-certs.sh" client "$P" app --out "$T/app" > /dev/null
    REPVOLD_TLS_ARGS=()     # this server's own TLS, whatever the run's
    start_repvold b zone-b --tls-dir "$P" --admins admin --peer-log-interval 0
    REPVOL_TLS_DIR=$P PYTHONPATH="$TOP/tests/tools" python3 - 127.0.0.1 "${REPVOLD_PORT[b]}" "$T/app" <<'PY'
import os, struct, sys, time
import rvproto
from rvproto import CREATE, OK, RESIZE, STAT, call
host, port, app = sys.argv[1], int(sys.argv[2]), sys.argv[3]
MiB = 1 << 20
EACCES = 13
admin = os.environ["REPVOL_TLS_DIR"]

def connect(certs, **kw):
    os.environ["REPVOL_TLS_DIR"] = certs
    return rvproto.connect(host, port, b"tv", **kw)

a = connect(admin, admin=True)
st, _ = call(a, CREATE, 1, 0, 24, payload=struct.pack("<QIIQ", 8 * MiB, 4096, 0, 1))
assert st == OK, "CREATE as admin: status %d" % st
x = connect(app, admin=True)
st, _ = call(x, RESIZE, 1, 16 * MiB)
assert st == EACCES, "admin RESIZE by a non-admin identity: status %d" % st
x.close()
d = connect(app, epoch=2)
st, _ = call(d, RESIZE, 1, 16 * MiB)
assert st == OK, "data RESIZE by an attaching identity: status %d" % st
d.close()
for i in range(200):             # the server sees d's close on its loop
    st, _ = call(a, RESIZE, 2 + i, 12 * MiB)
    if st != rvproto.EBUSY:
        break
    time.sleep(0.05)
assert st == OK, "admin shrink as admin: status %d" % st
st, data = call(a, STAT, 1000)
assert st == OK and struct.unpack_from("<Q", data, 8)[0] == 12 * MiB
print("TLS: EACCES for app's admin RESIZE; app's data grow and admin's shrink OK")
PY
    grep -q "permission denied: app may not RESIZE volume tv" "$T/repvold-b.log" ||
        fail "the refused RESIZE is not logged with the identity"
fi
log "ok"
