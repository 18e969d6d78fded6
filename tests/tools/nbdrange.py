#!/usr/bin/env python3
"""nbdrange - write or read byte ranges of an NBD export (unix socket), for
tests that change a few scattered blocks or read one region.

    nbdrange.py write SOCK SRCFILE OFF:LEN [OFF:LEN...]
    nbdrange.py write SOCK SRCFILE @LISTFILE      (one OFF:LEN per line)
    nbdrange.py read SOCK OUTFILE OFF LEN

write: for each range, writes SRCFILE's bytes at [OFF, OFF+LEN) to the
export at the same offset (up to 16 requests in flight), then flushes.
Exits 1 on any NBD error.

read: reads [OFF, OFF+LEN) of the export (in requests of at most 1 MiB)
into OUTFILE.  Exits 3 (and says which request and which error) when the
server answers a read with an error: tests use that to show that a read
fails with an I/O error rather than returning wrong bytes.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdproto  # noqa: E402

CMD_FLUSH = 3
MAXREQ = 1 << 20


def connect(sock):
    s = nbdproto.greeting(sock, timeout=120)
    return s, nbdproto.go(s)


def ranges(args):
    out = []
    for a in args:
        if a.startswith("@"):
            with open(a[1:]) as f:
                out += [ln.strip() for ln in f if ln.strip()]
        else:
            out.append(a)
    return [tuple(int(x, 0) for x in r.split(":")) for r in out]


def write(sock, src, rl):
    s, size = connect(sock)
    err = 0
    inflight = 0
    handle = 0
    with open(src, "rb") as f:
        for off, ln in rl:
            assert off + ln <= size, "range %d:%d beyond the export (%d)" % (off, ln, size)
            pos = off
            while pos < off + ln:
                n = min(MAXREQ, off + ln - pos)
                f.seek(pos)
                data = f.read(n)
                assert len(data) == n, "source too short at %d" % pos
                handle += 1
                s.sendall(nbdproto.request(nbdproto.CMD_WRITE, handle, pos, n) + data)
                inflight += 1
                pos += n
                while inflight >= 16:
                    _m, e, h = nbdproto.reply(s)
                    inflight -= 1
                    if e:
                        print("write request %d: NBD error %d" % (h, e), file=sys.stderr)
                        err = 1
    while inflight:
        _m, e, h = nbdproto.reply(s)
        inflight -= 1
        if e:
            print("write request %d: NBD error %d" % (h, e), file=sys.stderr)
            err = 1
    handle += 1
    s.sendall(nbdproto.request(CMD_FLUSH, handle, 0, 0))
    _m, e, _h = nbdproto.reply(s)
    if e:
        print("flush: NBD error %d" % e, file=sys.stderr)
        err = 1
    s.close()
    return err


def read(sock, out, off, ln):
    s, size = connect(sock)
    assert off + ln <= size, "range beyond the export"
    with open(out, "wb") as f:
        pos = off
        handle = 0
        while pos < off + ln:
            n = min(MAXREQ, off + ln - pos)
            handle += 1
            s.sendall(nbdproto.request(nbdproto.CMD_READ, handle, pos, n))
            magic, e, h = nbdproto.reply(s)
            assert magic == nbdproto.REP_MAGIC and h == handle
            if e:
                print("read of %d bytes at offset %d: NBD error %d (%s)"
                      % (n, pos, e, os.strerror(e) if e < 200 else "?"), file=sys.stderr)
                return 3
            f.write(nbdproto.recv_exact(s, n))
            pos += n
    s.close()
    return 0


def main(argv):
    if len(argv) >= 5 and argv[1] == "write":
        return write(argv[2], argv[3], ranges(argv[4:]))
    if len(argv) == 6 and argv[1] == "read":
        return read(argv[2], argv[3], int(argv[4], 0), int(argv[5], 0))
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
