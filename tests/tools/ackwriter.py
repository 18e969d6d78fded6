#!/usr/bin/env python3
"""ackwriter - write numbered blocks through NBD and remember which writes
were acknowledged, for tests that kill things in the middle.

    ackwriter.py write SOCK LOG [--qd N] [--seconds S] [--blocks N]
    ackwriter.py check IMAGE LOG

write: speaks NBD (fixed newstyle, simple replies) on unix socket SOCK,
keeps N random 4 KiB block writes in flight, each block filled with
(sequence number, block number), until the connection dies or S seconds
pass (once the server closes, it still reads the replies sent before);
then writes LOG: every write issued, every write acknowledged, and the
NBD error of every write that failed.

check: reads IMAGE (the volume's bytes, e.g. from nbdcopy) and checks
that every block holds its last acknowledged write or a later issued
one: an acknowledged write may be overwritten only by a newer write,
never lost.  Exits 1 and says which block if not.
"""
import json
import os
import random
import struct
import sys
import time

import nbdproto  # next to this file

BS = 4096


def block_data(seq, blk):
    return struct.pack("<QQ", seq, blk) * (BS // 16)


def connect(path):
    s = nbdproto.greeting(path)
    return s, nbdproto.go(s)


def write(path, log, qd, seconds, nblocks):
    s, size = connect(path)
    nblocks = min(nblocks or size // BS, size // BS)
    issued, acked, errors, inflight = [], [], [], {}
    seq = 0
    deadline = time.time() + seconds
    sending = True
    try:
        while time.time() < deadline and (sending or inflight):
            while sending and len(inflight) < qd:
                seq += 1
                blk = random.randrange(nblocks)
                try:
                    s.sendall(nbdproto.request(nbdproto.CMD_WRITE, seq, blk * BS, BS)
                              + block_data(seq, blk))
                except OSError:
                    sending = False
                    break
                inflight[seq] = blk
                issued.append((seq, blk))
            magic, err, handle = nbdproto.reply(s)
            assert magic == nbdproto.REP_MAGIC
            blk = inflight.pop(handle)
            if err == 0:
                acked.append((handle, blk))
            else:
                errors.append(err)
    except (EOFError, ConnectionError, OSError):
        pass
    with open(log, "w") as f:
        json.dump({"issued": issued, "acked": acked, "errors": errors}, f)
    print("issued %d writes, %d acknowledged, %d failed" % (len(issued), len(acked), len(errors)))


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
