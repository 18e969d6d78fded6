"""nbdproto - the NBD client handshake and simple requests, as the tests
speak them (tests/integration/006, tests/tools/ackwriter.py).

Fixed newstyle negotiation with NO_ZEROES, NBD_OPT_GO (asking for
NBD_INFO_BLOCK_SIZE or not) or NBD_OPT_EXPORT_NAME, simple replies, and
a small pipelining client (Client) for reads and writes of any size;
see the NBD protocol document (doc/proto.md in the NBD project).  All
integers are big-endian.  recv_exact and closed come from rvproto.
"""
import socket
import struct

from rvproto import closed, recv_exact  # noqa: F401  (re-exported)

NBDMAGIC = 0x4e42444d41474943       # "NBDMAGIC"
IHAVEOPT = 0x49484156454F5054       # "IHAVEOPT"
REPLY_MAGIC_OPT = 0x0003e889045565a9
REQ_MAGIC = 0x25609513
REP_MAGIC = 0x67446698              # simple reply

FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES = 1, 2      # handshake flags
OPT_EXPORT_NAME, OPT_GO, OPT_STRUCTURED_REPLY = 1, 7, 8
REP_ACK, REP_INFO = 1, 3                        # option reply types
REP_ERR = 0x80000000                            # error types have this bit
INFO_EXPORT, INFO_BLOCK_SIZE = 0, 3
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3
CMD_TRIM, CMD_WRITE_ZEROES = 4, 6
CMD_FLAG_FUA = 1


def greeting(path, timeout=None):
    """Connect to the NBD unix socket path, read and check the server's
    greeting, send client flags FIXED_NEWSTYLE | NO_ZEROES.  Returns the
    socket, in option haggling."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(path)
    magic, opt, _flags = struct.unpack(">QQH", recv_exact(s, 18))
    assert magic == NBDMAGIC and opt == IHAVEOPT, "bad greeting"
    s.sendall(struct.pack(">I", FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES))
    return s


def option(opt, data=b"", magic=IHAVEOPT, length=None):
    """An option frame (length defaults to len(data))."""
    return struct.pack(">QII", magic, opt,
                       len(data) if length is None else length) + data


def go(s, name=b"", infos=(), sizes=None):
    """NBD_OPT_GO for export name, asking for the NBD_INFO_x in infos;
    reads option replies up to the ACK.  Returns the export size from
    NBD_INFO_EXPORT, or None if none came.  sizes, a dict, gets min,
    pref and max from NBD_INFO_BLOCK_SIZE if the server sent it."""
    data = (struct.pack(">I", len(name)) + name +
            struct.pack(">H", len(infos)) +
            b"".join(struct.pack(">H", i) for i in infos))
    s.sendall(option(OPT_GO, data))
    size = None
    while True:
        _magic, _opt, rtype, ln = struct.unpack(">QIII", recv_exact(s, 20))
        payload = recv_exact(s, ln)
        itype = struct.unpack(">H", payload[:2])[0] if rtype == REP_INFO else None
        if itype == INFO_EXPORT:
            size = struct.unpack(">Q", payload[2:10])[0]
        if itype == INFO_BLOCK_SIZE and sizes is not None:
            sizes["min"], sizes["pref"], sizes["max"] = struct.unpack(
                ">III", payload[2:14])
        if rtype == REP_ACK:
            return size
        assert rtype < REP_ERR, "GO refused: %x" % rtype


def export_name(s, name=b""):
    """NBD_OPT_EXPORT_NAME (the old way: no block sizes, no error reply).
    Returns the export size."""
    s.sendall(option(OPT_EXPORT_NAME, name))
    size, _tflags = struct.unpack(">QH", recv_exact(s, 10))
    return size


def recv_big(s, n):
    """Exactly n bytes, for large payloads (recv_exact copies as it goes)."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = s.recv_into(view[got:], n - got)
        if not k:
            raise EOFError("closed after %d of %d bytes" % (got, n))
        got += k
    return bytes(buf)


class Client:
    """Requests on a connection in transmission, pipelined: submit()
    sends one and returns its handle, wait() reads replies until that
    handle's has come and returns (error, data).  Simple replies only."""

    def __init__(self, s):
        self.s = s
        self.next = 1
        self.pending = {}           # handle -> bytes a READ expects
        self.done = {}              # handle -> (error, data)

    def submit(self, cmd, off, ln, data=b"", flags=0):
        h = self.next
        self.next += 1
        self.pending[h] = ln if cmd == CMD_READ else 0
        self.s.sendall(request(cmd, h, off, ln, flags) + data)
        return h

    def wait(self, h):
        while h not in self.done:
            magic, err, handle = reply(self.s)
            assert magic == REP_MAGIC, "bad reply magic %x" % magic
            want = self.pending.pop(handle)
            data = recv_big(self.s, want) if want and not err else b""
            self.done[handle] = (err, data)
        return self.done.pop(h)

    def read(self, off, ln):
        err, data = self.wait(self.submit(CMD_READ, off, ln))
        return err, data

    def write(self, off, data, flags=0):
        return self.wait(self.submit(CMD_WRITE, off, len(data), data, flags))[0]

    def disconnect(self):
        self.s.sendall(request(CMD_DISC, 0, 0, 0))
        self.s.close()


def request(cmd, handle, off, ln, flags=0, magic=REQ_MAGIC):
    """A 28-byte request header (a WRITE's data follows it)."""
    return struct.pack(">IHHQQI", magic, flags, cmd, handle, off, ln)


def reply(s):
    """Read a simple reply header: (magic, error, handle), unchecked."""
    return struct.unpack(">IIQ", recv_exact(s, 16))
