#!/bin/bash
# CHECKSUM, server side (issue 3 item 6, what "repvol verify" builds on):
# known data written through an attach (nbdcopy, leaving never-written
# holes), then over raw protocol on ADMIN connections (no epoch) to both
# replica servers: CHECKSUM of aligned ranges (the 32 MiB maximum, a
# block, a range that is wholly a hole, one straddling data and hole, the
# last block; several pipelined) equals the crc32c, computed here in
# python, of the same bytes of the file written, and is the same on both
# replicas; the reply is 4 bytes, little-endian, with the header crc of
# those bytes.  Out-of-range, misaligned, empty, oversized, flagged or
# crc-carrying CHECKSUMs close the connection; a fenced data connection
# gets EPERM.  Afterwards a block changed behind the servers' back in one
# replica's data file shows up as a checksum difference in exactly the
# range that holds it.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

start_repvold a zone-a
start_repvold b zone-b
# 34 MiB: one 32 MiB CHECKSUM (the protocol maximum) fits, and more.
repvol create vol --size 34M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
repvol create other --size 4M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
uri=$(nbd_uri "$T/nbd.sock")

# Random data, with zero ranges [8M, 12M) and [20M, 20M + 64K) that
# nbdcopy skips (--destination-is-zero): holes on the replicas.
head -c 34M /dev/urandom > "$T/src"
dd if=/dev/zero of="$T/src" bs=1M seek=8 count=4 conv=notrunc status=none
dd if=/dev/zero of="$T/src" bs=64K seek=320 count=1 conv=notrunc status=none
nbdcopy --destination-is-zero --flush "$T/src" "$uri"

# The hole really is one on the replicas (else this test would not cover
# the sparse path).
python3 - "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data" <<'PY'
import os, sys
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    try:
        nxt = os.lseek(fd, 8 << 20, os.SEEK_DATA)
    except OSError:
        nxt = os.fstat(fd).st_size
    assert nxt >= 12 << 20, "%s: data at %d inside the hole" % (path, nxt)
    os.close(fd)
PY

checksum_py() {
PYTHONPATH="$TOP/tests/tools" python3 - "$T/src" "$@" <<'PY'
import struct, sys
import rvproto
from rvproto import (READ, CHECKSUM, EPERM, closed, crc32c, crc32c_bitwise,
                     req, reply_data)
src_path, step, addrs = sys.argv[1], sys.argv[2], sys.argv[3:]
SIZE = 34 << 20
MAXP = rvproto.MAX_PAYLOAD

# crc32c is table driven (megabytes in seconds); crc32c_bitwise, one bit
# at a time, is the reference.
assert crc32c_bitwise(b"123456789") == 0xe3069283
assert crc32c(b"123456789") == 0xe3069283
assert crc32c(bytes(range(256)) * 3) == crc32c_bitwise(bytes(range(256)) * 3)

def conn(addr, vol=b"vol", admin=True, epoch=0):
    host, port = rvproto.split_addr(addr)
    return rvproto.connect(host, port, vol, admin, epoch, timeout=30)

def checksum(s, off, ln, id=1):
    s.sendall(req(CHECKSUM, id, off, ln))
    st, rid, data, crc = reply_data(s)
    assert st == 0 and rid == id, (st, rid, id)
    assert len(data) == 4, "CHECKSUM reply of %d bytes" % len(data)
    assert crc == crc32c(data), "reply crc is not the crc32c of the payload"
    return struct.unpack("<I", data)[0]

src = open(src_path, "rb").read()
assert len(src) == SIZE

if step == "compare":
    ranges = [
        (0, MAXP),                      # the protocol maximum, 32 chunks
        (0, 4096),
        (1 << 20, 64 << 10),
        (8 << 20, 4 << 20),             # exactly the 4 MiB hole
        (9 << 20, 4096),                # inside it
        (7 << 20, 6 << 20),             # data, hole, data
        (20 << 20, 64 << 10),           # the small hole
        ((20 << 20) - 4096, 72 << 10),  # around it
        (SIZE - 4096, 4096),            # the last block
        (SIZE - MAXP, MAXP),            # to the very end
    ]
    want = [crc32c(src[o:o + n]) for o, n in ranges]
    # Sanity: a hole's crc is not that of nothing, nor of a shorter run.
    assert want[3] != want[4]
    got = {}
    for addr in addrs:
        s = conn(addr)
        got[addr] = [checksum(s, o, n, id=i + 10) for i, (o, n) in enumerate(ranges)]
        for i, (o, n) in enumerate(ranges):
            assert got[addr][i] == want[i], \
                "%s: CHECKSUM %d+%d = %08x, crc32c of the data written %08x" % (
                    addr, o, n, got[addr][i], want[i])
        # Pipelined: all at once, answered by id (in any order).
        for i, (o, n) in enumerate(ranges):
            s.sendall(req(CHECKSUM, 100 + i, o, n))
        seen = {}
        for _ in ranges:
            st, rid, data, crc = reply_data(s)
            assert st == 0 and crc == crc32c(data)
            seen[rid] = struct.unpack("<I", data)[0]
        assert seen == {100 + i: w for i, w in enumerate(want)}, seen
        # READ agrees on an admin connection too.
        s.sendall(req(READ, 200, 7 << 20, 64 << 10))
        st, rid, data, crc = reply_data(s)
        assert st == 0 and data == src[7 << 20:(7 << 20) + (64 << 10)]
        s.close()
    print("CHECKSUM matches on", ", ".join(addrs), "over", len(ranges), "ranges")

elif step == "busy":
    for addr in addrs:
        s = conn(addr)
        s.sendall(req(CHECKSUM, 1, 0, 4096))
        st, rid, data, crc = reply_data(s)
        assert st == 16 and not data, "CHECKSUM of an attached volume: %d" % st
        s.close()
    print("CHECKSUM of the attached volume refused (EBUSY) on", ", ".join(addrs))

elif step == "bad":
    addr = addrs[0]
    cases = [
        ("past the end", req(CHECKSUM, 1, SIZE, 4096)),
        ("straddling the end", req(CHECKSUM, 1, SIZE - 4096, 8192)),
        ("wrapping", req(CHECKSUM, 1, (1 << 64) - 4096, 8192)),
        ("misaligned", req(CHECKSUM, 1, 100, 4096)),
        ("zero length", req(CHECKSUM, 1, 0, 0)),
        ("over 32 MiB", req(CHECKSUM, 1, 0, MAXP + 4096)),
        ("with a flag", req(CHECKSUM, 1, 0, 4096, flags=1)),
        ("with a crc", req(CHECKSUM, 1, 0, 4096, crc=0x55)),
    ]
    for what, frame in cases:
        for admin in (True, False):
            s = conn(addr, vol=b"other", admin=admin, epoch=0 if admin else 100)
            s.sendall(frame)
            assert closed(s), "CHECKSUM %s accepted (admin %s)" % (what, admin)
    # A fenced data connection: EPERM, and it stays open.
    old = conn(addr, vol=b"other", admin=False, epoch=200)
    assert checksum(old, 0, 4096) == crc32c(bytes(4096))
    new = conn(addr, vol=b"other", admin=False, epoch=201)
    old.sendall(req(CHECKSUM, 2, 0, 4096))
    st, rid, data, crc = reply_data(old)
    assert (st, rid, data) == (EPERM, 2, b""), (st, rid, data)
    assert checksum(new, 0, 4 << 20, id=3) == crc32c(bytes(4 << 20))
    print("bad CHECKSUMs closed; fenced one refused")

elif step == "changed":
    # b's block at 5 MiB was changed behind the servers' back.
    a, b = conn(addrs[0]), conn(addrs[1])
    for i in range(8):
        o, n = i * (4 << 20), 4 << 20
        if o + n > SIZE:
            n = SIZE - o
        ca, cb = checksum(a, o, n, id=i), checksum(b, o, n, id=i)
        assert ca == crc32c(src[o:o + n])
        assert (ca != cb) == (i == 1), "range %d: a %08x b %08x" % (i, ca, cb)
    assert checksum(a, 5 << 20, 4096) != checksum(b, 5 << 20, 4096)
    assert checksum(a, (5 << 20) + 4096, 4096) == checksum(b, (5 << 20) + 4096, 4096)
    print("the changed block is found")
PY
}

# While attached, an admin connection may not checksum the volume.
checksum_py busy "${REPVOLD_ADDR[a]}" "${REPVOLD_ADDR[b]}"
checksum_py bad "${REPVOLD_ADDR[a]}"

pid_alive "${REPVOLD_PID[a]}" || fail "repvold a died"
pid_alive "${ATTACH_PID[vol]}" || fail "attach lost its replica"
nbdcopy "$uri" "$T/back"
assert_files_identical "$T/src" "$T/back"
stop_attach vol
checksum_py compare "${REPVOLD_ADDR[a]}" "${REPVOLD_ADDR[b]}"
assert_files_identical "$T/src" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/src" "${REPVOLD_DIR[b]}/vol.data"

# Change one block of b's copy behind the servers' back.
head -c 4096 /dev/urandom | dd of="${REPVOLD_DIR[b]}/vol.data" bs=4096 seek=1280 conv=notrunc status=none
checksum_py changed "${REPVOLD_ADDR[a]}" "${REPVOLD_ADDR[b]}"
log "ok"
