#!/usr/bin/env python3
"""nbdio - a known number of NBD requests of a known size (tests 096,
097): the counters the metrics show can then be checked exactly.

    nbdio.py SOCK [--writes N] [--reads N] [--flushes N] [--size BYTES]
             [--offset BYTES] [--past-end N]

Connects with NBD_OPT_GO asking for block sizes (so the server passes
each request on whole), writes N distinct random blocks of --size bytes
from --offset on, reads them back (the first --reads of them) and checks
the data, sends the flushes, then --past-end reads beyond the end, each
of which must fail.  Prints what it did.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdproto  # noqa: E402
from nbdproto import CMD_FLUSH, INFO_BLOCK_SIZE, INFO_EXPORT  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("sock")
    p.add_argument("--writes", type=int, default=0)
    p.add_argument("--reads", type=int, default=0)
    p.add_argument("--flushes", type=int, default=0)
    p.add_argument("--size", type=int, default=65536)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--past-end", type=int, default=0)
    a = p.parse_args()
    assert a.reads <= a.writes, "reads read back what was written"
    s = nbdproto.greeting(a.sock, timeout=30)
    size = nbdproto.go(s, infos=(INFO_EXPORT, INFO_BLOCK_SIZE), sizes={})
    c = nbdproto.Client(s)
    blocks = []
    for i in range(a.writes):
        data = os.urandom(a.size)
        off = a.offset + i * a.size
        assert off + a.size <= size, "the writes do not fit the volume"
        err = c.write(off, data)
        assert err == 0, "write at %d: error %d" % (off, err)
        blocks.append((off, data))
    for off, data in blocks[:a.reads]:
        err, got = c.read(off, a.size)
        assert err == 0 and got == data, "read at %d: error %d or other data" % (off, err)
    for _ in range(a.flushes):
        err, _ = c.wait(c.submit(CMD_FLUSH, 0, 0))
        assert err == 0, "flush: error %d" % err
    for _ in range(a.past_end):
        err, _ = c.read(size, a.size)
        assert err != 0, "a read past the end succeeded"
    c.disconnect()
    print("%d writes, %d reads, %d flushes, %d refused of %d bytes" %
          (a.writes, a.reads, a.flushes, a.past_end, a.size))


if __name__ == "__main__":
    main()
