#!/bin/bash
# The survivors' dirty map, server side (issue 3 items 2 and 7): over raw
# protocol sockets, MARK_DIRTY a range and WRITE with RV_F_DIRTY
# elsewhere; DIRTY_GET shows exactly those regions and STAT counts them;
# after a SIGKILL of repvold and a restart on the same data dir they are
# still there (durable before the reply); DIRTY_CLEAR empties the map,
# and it stays empty across another SIGKILL and restart.  An admin
# connection gets EPERM for all three commands.
. "$(dirname "$0")/lib.sh"

start_repvold a zone-a
start_repvold b zone-b
# 10 MiB + 4 KiB: 2561 regions of 4 KiB (the region size of a volume
# this small, docs/DESIGN.md 3.4).
repvol create vol --size 10244K --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"

dirty_py() {
PYTHONPATH="$TOP/tests/tools" python3 - 127.0.0.1 "${REPVOLD_PORT[a]}" "$@" <<'PY'
import struct, sys
import rvproto
from rvproto import (READ, WRITE, STAT, F_DIRTY, call, req, welcome,
                     MARK_DIRTY as MARK, DIRTY_GET as GET, DIRTY_CLEAR as CLEAR)
host, port, step = sys.argv[1], int(sys.argv[2]), sys.argv[3]
SIZE = 10244 * 1024
R = rvproto.dirty_region(SIZE)
NREG = (SIZE + R - 1) // R
assert (R, NREG) == (4096, 2561)

def conn(admin=False, epoch=100):     # ahead of create's 1, within the bound
    return rvproto.connect(host, port, b"vol", admin, epoch, timeout=20)

def dirty_map(s):
    st, data = call(s, GET, 100)
    assert st == 0, st
    region, zero, n = struct.unpack_from("<IIQ", data)
    assert (region, zero, n) == (R, 0, NREG), (region, zero, n)
    bm = data[16:]
    assert len(bm) == (NREG + 7) // 8, len(bm)
    return {r for r in range(NREG) if bm[r // 8] >> (r % 8) & 1}, bm

def stat_dirty(s):
    st, data = call(s, STAT, 101)
    assert st == 0 and len(data) == 48
    return struct.unpack_from("<Q", data, 40)[0]

# What the test marks: MARK_DIRTY [1 MiB - 4 KiB, 1 MiB + 128 KiB) covers
# regions 255..287; a dirty WRITE of 8 KiB at 5 MiB + 60 KiB is regions
# 1295..1296; a dirty WRITE of the volume's last 4 KiB is region 2560.
expect = set(range(255, 288)) | {1295, 1296, 2560}

if step == "mark":
    s = conn()
    assert dirty_map(s)[0] == set(), "a new volume's map is not empty"
    assert stat_dirty(s) == 0
    assert call(s, MARK, 1, (1 << 20) - 4096, 4096 + 128 * 1024)[0] == 0
    data = b"\x5a" * 8192
    assert call(s, WRITE, 2, (5 << 20) + 60 * 1024, 8192, F_DIRTY, data)[0] == 0
    assert call(s, WRITE, 3, SIZE - 4096, 4096, F_DIRTY, data[:4096])[0] == 0
    # a plain write dirties nothing
    assert call(s, WRITE, 4, 8 << 20, 4096, 0, data[:4096])[0] == 0
    st, back = call(s, READ, 5, (5 << 20) + 60 * 1024, 8192)
    assert st == 0 and back == data, "dirty write did not write"
    got, bm = dirty_map(s)
    assert got == expect, sorted(got)
    assert stat_dirty(s) == len(expect)
    # marking again: same map
    assert call(s, MARK, 6, 255 * R, 33 * R)[0] == 0
    assert dirty_map(s)[0] == expect
    # admin connection: EPERM for all three, map unchanged
    a = conn(admin=True, epoch=0)
    assert call(a, MARK, 1, 0, 4096)[0] == 1
    assert call(a, GET, 2)[0] == 1
    assert call(a, CLEAR, 3)[0] == 1
    st, data = call(a, STAT, 4)
    assert st == 0 and struct.unpack_from("<Q", data, 40)[0] == len(expect)
    # a fenced (older-epoch) data connection: WELCOME EPERM
    f = rvproto.hello(host, port, b"vol", epoch=1, timeout=20)
    assert welcome(f) == 1
    # out of range MARK_DIRTY: connection closed
    b = conn()
    b.sendall(req(MARK, 9, SIZE, 4096))
    assert b.recv(1) == b"", "MARK_DIRTY past the end accepted"
    print("marked", sorted(got))
elif step == "check-marked":
    s = conn()
    got, _ = dirty_map(s)
    assert got == expect, "after restart: %s" % sorted(got)
    assert stat_dirty(s) == len(expect)
    print("survived restart", sorted(got))
elif step == "clear":
    s = conn()
    assert call(s, CLEAR, 1)[0] == 0
    assert dirty_map(s)[0] == set()
    assert stat_dirty(s) == 0
    print("cleared")
elif step == "check-empty":
    s = conn()
    assert dirty_map(s)[0] == set(), "clear did not survive the restart"
    assert stat_dirty(s) == 0
    print("still empty")
PY
}

dirty_py mark
[[ -f ${REPVOLD_DIR[a]}/vol.dirty ]] || fail "no vol.dirty in the data dir"
od -An -c -N 8 "${REPVOLD_DIR[a]}/vol.dirty" | grep -q 'R   V   O   L   D   I   R   T' ||
    fail "vol.dirty has no RVOLDIRT magic"

stop_repvold a KILL
start_repvold a zone-a
dirty_py check-marked

dirty_py clear
stop_repvold a KILL
start_repvold a zone-a
dirty_py check-empty

# The map on the other replica was never touched.
[[ $(stat -c %s "${REPVOLD_DIR[b]}/vol.dirty") == $((4096 + 321)) ]] ||
    fail "vol.dirty on b has the wrong size"
repvol delete vol
[[ ! -e ${REPVOLD_DIR[a]}/vol.dirty ]] || fail "delete left vol.dirty behind"
log "ok"
