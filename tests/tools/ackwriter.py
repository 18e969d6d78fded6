#!/usr/bin/env python3
"""ackwriter - write numbered blocks through NBD and remember which writes
were acknowledged, for tests that kill things in the middle.

    ackwriter.py write SOCK LOG [--qd N] [--seconds S] [--blocks N]
    ackwriter.py check IMAGE LOG

write: speaks NBD (fixed newstyle, simple replies) on unix socket SOCK,
keeps N random 4 KiB block writes in flight, each block filled with
(sequence number, block number), until the connection dies or S seconds
pass; then writes LOG: every write issued and every write acknowledged.

check: reads IMAGE (the volume's bytes, e.g. from nbdcopy) and checks
that every block holds its last acknowledged write or a later issued
one: an acknowledged write may be overwritten only by a newer write,
never lost.  Exits 1 and says which block if not.
"""
import json
import os
import random
import socket
import struct
import sys
import time

BS = 4096
NBDMAGIC, IHAVEOPT = 0x4E42444D41474943, 0x49484156454F5054
REQ, REP = 0x25609513, 0x67446698
OPT_GO = 7


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b


def block_data(seq, blk):
    return struct.pack("<QQ", seq, blk) * (BS // 16)


def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    magic, opt, _ = struct.unpack(">QQH", recv_exact(s, 18))
    assert magic == NBDMAGIC and opt == IHAVEOPT
    s.sendall(struct.pack(">I", 1 | 2))
    data = struct.pack(">I", 0) + struct.pack(">H", 0)
    s.sendall(struct.pack(">QII", IHAVEOPT, OPT_GO, len(data)) + data)
    size = None
    while True:
        _, _, rtype, ln = struct.unpack(">QIII", recv_exact(s, 20))
        payload = recv_exact(s, ln)
        if rtype == 3 and struct.unpack(">H", payload[:2])[0] == 0:  # INFO_EXPORT
            size = struct.unpack(">Q", payload[2:10])[0]
        if rtype == 1:
            return s, size
        assert rtype < 0x80000000, "GO refused"


def write(path, log, qd, seconds, nblocks):
    s, size = connect(path)
    nblocks = min(nblocks or size // BS, size // BS)
    issued, acked, inflight = [], [], {}
    seq = 0
    deadline = time.time() + seconds
    try:
        while time.time() < deadline:
            while len(inflight) < qd:
                seq += 1
                blk = random.randrange(nblocks)
                s.sendall(struct.pack(">IHHQQI", REQ, 0, 1, seq, blk * BS, BS)
                          + block_data(seq, blk))
                inflight[seq] = blk
                issued.append((seq, blk))
            magic, err, handle = struct.unpack(">IIQ", recv_exact(s, 16))
            assert magic == REP
            blk = inflight.pop(handle)
            if err == 0:
                acked.append((handle, blk))
    except (EOFError, ConnectionError, OSError):
        pass
    with open(log, "w") as f:
        json.dump({"issued": issued, "acked": acked}, f)
    print("issued %d writes, %d acknowledged" % (len(issued), len(acked)))


def check(image, log):
    d = json.load(open(log))
    issued = {tuple(x) for x in d["issued"]}
    last_ack = {}
    for seq, blk in d["acked"]:
        last_ack[blk] = max(seq, last_ack.get(blk, 0))
    with open(image, "rb") as f:
        for blk, seq in sorted(last_ack.items()):
            f.seek(blk * BS)
            data = f.read(BS)
            got_seq, got_blk = struct.unpack("<QQ", data[:16])
            if data != block_data(got_seq, got_blk) or got_blk != blk \
                    or (got_seq, blk) not in issued or got_seq < seq:
                print("block %d: acknowledged write %d lost (holds seq %d of block %d)"
                      % (blk, seq, got_seq, got_blk))
                sys.exit(1)
    print("all %d acknowledged writes present (%d blocks)" % (len(d["acked"]), len(last_ack)))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        args = sys.argv[4:]
        opt = {"--qd": 16, "--seconds": 30, "--blocks": 0}
        for i in range(0, len(args), 2):
            opt[args[i]] = int(args[i + 1])
        write(sys.argv[2], sys.argv[3], opt["--qd"], opt["--seconds"], opt["--blocks"])
    elif sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
