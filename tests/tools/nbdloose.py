#!/usr/bin/env python3
"""nbdloose - drive an NBD export as clients that do not negotiate
block sizes do (tests/integration/084): NBD_OPT_EXPORT_NAME and
NBD_OPT_GO without NBD_INFO_BLOCK_SIZE, 1 KiB and 512-byte writes and
reads at odd offsets, overlapping writes pipelined on one connection,
writes to disjoint bytes of the same blocks from two connections at
once (a read-modify-write that let another write in between would
undo it), unaligned WRITE_ZEROES, a 36 MiB unaligned write and a 40 MiB
read, and what must still be refused (past the end).  Every result is
checked against a local model of the volume, which starts as the file
SEED (what the volume holds) and is written to MODEL at the end.

    nbdloose.py SOCKET SEED MODEL
"""
import random
import sys

from nbdproto import (CMD_READ, CMD_WRITE, CMD_WRITE_ZEROES, INFO_BLOCK_SIZE,
                      Client, export_name, go, greeting)

EINVAL, ENOSPC = 22, 28
path, seed_file, model_file = sys.argv[1:4]
model = bytearray(open(seed_file, "rb").read())
size = len(model)
rnd = random.Random(81)


def fail(msg):
    print("nbdloose: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check_read(c, off, ln, what):
    err, data = c.read(off, ln)
    if err:
        fail("%s: read %d+%d: error %d" % (what, off, ln, err))
    if data != bytes(model[off:off + ln]):
        bad = next(i for i in range(ln) if data[i] != model[off + i])
        fail("%s: read %d+%d differs from the model at byte %d" %
             (what, off, ln, off + bad))


def write(c, off, data, what):
    err = c.write(off, data)
    if err:
        fail("%s: write %d+%d: error %d" % (what, off, len(data), err))
    model[off:off + len(data)] = data


def connect_export_name():
    s = greeting(path, timeout=60)
    got = export_name(s)
    if got != size:
        fail("EXPORT_NAME: size %s, expected %d" % (got, size))
    return Client(s)


def connect_go(infos=()):
    s = greeting(path, timeout=60)
    sizes = {}
    got = go(s, infos=infos, sizes=sizes)
    if got != size:
        fail("GO: size %s, expected %d" % (got, size))
    return Client(s), sizes


# 1. EXPORT_NAME: 1 KiB and 512-byte writes at odd offsets, read back
# unaligned (and across block boundaries).
a = connect_export_name()
for off, ln in [(1000, 1024), (8192 - 512, 1024), (12345, 512),
                (4096 * 7 + 3, 512), (65536 - 1, 1024), (4096 * 20, 512),
                (4096 * 21 + 4095, 1), (4096 * 30 + 100, 9000)]:
    write(a, off, rnd.randbytes(ln), "export-name")
for off, ln in [(1000, 1024), (7000, 3000), (12345, 512), (0, 70000),
                (4096 * 7 + 1, 600), (4096 * 21 + 4000, 200),
                (4096 * 30, 16384)]:
    check_read(a, off, ln, "export-name")

# 2. GO without block sizes: the same kind of requests.
b, _ = connect_go()
for k in range(64):
    off = rnd.randrange(0, 4 << 20)
    ln = rnd.choice([512, 1024, 1, 3000, 5000])
    write(b, off, rnd.randbytes(ln), "go without sizes")
    check_read(b, max(0, off - 700), ln + 1400, "go without sizes")

# 3. Overlapping unaligned writes pipelined on one connection: they
# arrive in this order, so they must take effect in this order.
base = 8 << 20
hs = []
for k in range(200):
    off = base + rnd.randrange(0, 40000)
    ln = rnd.choice([512, 1024, 700, 4096, 6000])
    data = rnd.randbytes(ln)
    hs.append(a.submit(CMD_WRITE, off, ln, data))
    model[off:off + ln] = data
for h in hs:
    err, _ = a.wait(h)
    if err:
        fail("pipelined overlapping write: error %d" % err)
check_read(a, base - 100, 50000, "pipelined overlapping writes")

# 4. Two connections at once, disjoint bytes of the same blocks: each
# block gets bytes [0, 1000) from a, [2000, 3000) from b, and the two
# read-modify-writes of a block must not undo each other.
base = 12 << 20
ha, hb = [], []
for rounds in range(4):
    for blk in range(64):
        off = base + blk * 4096
        da, db = rnd.randbytes(1000), rnd.randbytes(1000)
        ha.append(a.submit(CMD_WRITE, off, 1000, da))
        hb.append(b.submit(CMD_WRITE, off + 2000, 1000, db))
        model[off:off + 1000] = da
        model[off + 2000:off + 3000] = db
for h in ha:
    if a.wait(h)[0]:
        fail("concurrent same-block write on a failed")
for h in hb:
    if b.wait(h)[0]:
        fail("concurrent same-block write on b failed")
check_read(b, base, 64 * 4096, "disjoint bytes of shared blocks")

# 5. Unaligned WRITE_ZEROES.
for off, ln in [(20 << 20) + 123, 10000], [(20 << 20) + 40000, 100]:
    err, _ = a.wait(a.submit(CMD_WRITE_ZEROES, off, ln))
    if err:
        fail("write-zeroes %d+%d: error %d" % (off, ln, err))
    model[off:off + ln] = bytes(ln)
check_read(a, (20 << 20), 50000, "write-zeroes")

# 6. Large payloads: a 36 MiB unaligned write, a 40 MiB unaligned read.
big = rnd.randbytes(36 << 20)
write(b, 777, big, "36 MiB write")
check_read(a, 1001, 40 << 20, "40 MiB read")

# 7. Still refused: past the end (EINVAL for reads, ENOSPC for writes).
err, _ = a.read(size - 512, 1024)
if err != EINVAL:
    fail("read past the end: error %d, expected EINVAL" % err)
err = a.write(size - 100, bytes(200))
if err != ENOSPC:
    fail("write past the end: error %d, expected ENOSPC" % err)
err, _ = a.wait(a.submit(CMD_WRITE_ZEROES, size - 10, 100))
if err != ENOSPC:
    fail("write-zeroes past the end: error %d, expected ENOSPC" % err)
check_read(a, size - 1000, 1000, "the end")    # unchanged

# 8. A client that asked for block sizes keeps to them: unaligned is
# EINVAL, aligned works.
c, sizes = connect_go(infos=(INFO_BLOCK_SIZE,))
if sizes.get("min") != 4096:
    fail("GO with NBD_INFO_BLOCK_SIZE: constraints %s" % sizes)
err, _ = c.read(1000, 1024)
if err != EINVAL:
    fail("unaligned read after agreeing on block sizes: error %d" % err)
check_read(c, 4096 * 3, 8192, "negotiated aligned read")

# 9. Close without NBD_CMD_DISC, between requests (the test checks the
# attach's log says nothing of a frame); b disconnects properly.
a.s.close()
c.s.close()
b.disconnect()
open(model_file, "wb").write(model)
print("nbdloose: ok")
