"""nbdproto - the NBD client handshake and simple requests, as the tests
speak them (tests/integration/006, tests/tools/ackwriter.py).

Fixed newstyle negotiation with NO_ZEROES, NBD_OPT_GO, simple replies;
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
OPT_GO, OPT_STRUCTURED_REPLY = 7, 8
REP_ACK, REP_INFO = 1, 3                        # option reply types
REP_ERR = 0x80000000                            # error types have this bit
INFO_EXPORT = 0
CMD_READ, CMD_WRITE = 0, 1


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


def go(s, name=b""):
    """NBD_OPT_GO for export name; reads option replies up to the ACK.
    Returns the export size from NBD_INFO_EXPORT, or None if none came."""
    data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    s.sendall(option(OPT_GO, data))
    size = None
    while True:
        _magic, _opt, rtype, ln = struct.unpack(">QIII", recv_exact(s, 20))
        payload = recv_exact(s, ln)
        if rtype == REP_INFO and struct.unpack(">H", payload[:2])[0] == INFO_EXPORT:
            size = struct.unpack(">Q", payload[2:10])[0]
        if rtype == REP_ACK:
            return size
        assert rtype < REP_ERR, "GO refused: %x" % rtype


def request(cmd, handle, off, ln, flags=0, magic=REQ_MAGIC):
    """A 28-byte request header (a WRITE's data follows it)."""
    return struct.pack(">IHHQQI", magic, flags, cmd, handle, off, ln)


def reply(s):
    """Read a simple reply header: (magic, error, handle), unchecked."""
    return struct.unpack(">IIQ", recv_exact(s, 16))
