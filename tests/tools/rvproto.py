"""rvproto - the repvol replication protocol, client side, as the tests speak it.

A small codec for tests that talk to a repvold over a raw TCP socket
(tests/integration/007, 018, 020, 055-059).  userspace/lib/replica/proto.h and
man/repvol-protocol.7 are normative; the constants here are copied from
them.  All integers are little-endian on the wire.

    client -> server   HELLO    (88 bytes)    hello()
    server -> client   WELCOME  (176 bytes)   welcome() / read_welcome()
    then, pipelined:
    client -> server   request header (32 bytes) [+ payload]   req()
    server -> client   reply header (24 bytes) [+ payload]     reply()

Nothing here hides a failure: a bad WELCOME or reply magic fails an
assert, and the helpers that take an id check it.  Use it from a test's
python3 heredoc with PYTHONPATH="$TOP/tests/tools".

With $REPVOL_TLS_DIR set (lib.sh's REPVOL_TEST_TLS=1), hello() speaks TLS
1.3 first, presenting client-cert.pem and verifying the server against
ca-cert.pem and the address dialled, as the repvol client does; a TLS
alert from the server counts as closed().  PSK is not offered: Python's
ssl module has no TLS 1.3 PSK before 3.13.
"""
import os
import socket
import ssl
import struct

# -- constants (proto.h) ----------------------------------------------------

VERSION = 1
HELLO_MAGIC = 0x4f4c4548564f4c52    # "RLOVHELO"
WELCOME_MAGIC = 0x4d4f434c45574c52  # "RLWELCOM"
REQ_MAGIC = 0x51525652              # "RVRQ"
REP_MAGIC = 0x50525652              # "RVRP"

NAME_MAX = 64                       # volume / server name field, with the NUL
MAX_PAYLOAD = 32 << 20
HELLO_SIZE, WELCOME_SIZE, REQ_SIZE, REP_SIZE = 88, 176, 32, 24

# commands
READ, WRITE, FLUSH, TRIM, WRITE_ZEROES = 1, 2, 3, 4, 5
CREATE, DELETE, STAT = 6, 7, 8
MARK_DIRTY, DIRTY_GET, DIRTY_CLEAR = 9, 10, 11
CHECKSUM = 12
SET_EPOCH = 13          # admin only: payload, the epoch (8 bytes LE)
PING = 14               # sent only to servers whose WELCOME has FEAT_PING
RESIZE = 15             # offset: the new size; length 0; F_RESERVE allowed;
                        # only to servers whose WELCOME has FEAT_RESIZE

# WELCOME feature flags
FEAT_PING = 1 << 0
FEAT_RESIZE = 1 << 1

# request flags
F_FUA = 1 << 0          # WRITE / WRITE_ZEROES / TRIM
F_NO_HOLE = 1 << 1      # WRITE_ZEROES
F_DIRTY = 1 << 2        # WRITE / TRIM / WRITE_ZEROES: also mark dirty
F_RESERVE = 1 << 0      # CREATE: fallocate the whole size; RESIZE: the grown range
# HELLO flags
HELLO_ADMIN = 1 << 0    # no data I/O: create/delete/stat/checksum

# reply status codes (protocol values)
OK, EPERM, ENOENT, EIO = 0, 1, 2, 5
EBUSY, EEXIST, EINVAL, ENOSPC = 16, 17, 22, 28
ERANGE = 34             # HELLO epoch more than EPOCH_JUMP_MAX ahead
ECRC, ENOTSUP = 74, 95
EFBIG = 27              # CREATE larger than the server's bounds

EPOCH_JUMP_MAX = 256    # how far one data HELLO may move an epoch forward

DIRTY_REGION = 64 * 1024    # dirty map granularity before issue 15


def dirty_region(size):
    """The dirty-map region size of a volume of size bytes (rv_dirty_region):
    the smallest power of two >= 4096 giving at most 2^27 regions."""
    r = 4096
    while (size + r - 1) // r > (1 << 27) and r < (1 << 30):
        r *= 2
    return r
DIRTY_HDR_SIZE = 16         # DIRTY_GET reply: region, reserved, regions
STAT_SIZE = 48              # STAT reply payload (struct rv_volinfo)
CHECKSUM_SIZE = 4           # CHECKSUM reply payload: the crc32c, LE

_HELLO = struct.Struct("<QIIQ64s")
_REQ = struct.Struct("<IHHQQII")
_REP = struct.Struct("<IIQII")

# -- crc32c (Castagnoli, reflected polynomial 0x82f63b78) --------------------

POLY = 0x82f63b78


def crc32c_bitwise(data):
    """crc32c one bit at a time: slow, obviously right; the reference."""
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ POLY if crc & 1 else crc >> 1
    return crc ^ 0xffffffff


def _table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ POLY if c & 1 else c >> 1
        t.append(c)
    return t


TABLE = _table()


def crc32c(data):
    """crc32c, table driven (megabytes in seconds).
    crc32c(b"123456789") == 0xe3069283."""
    crc, t = 0xffffffff, TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xff] ^ (crc >> 8)
    return crc ^ 0xffffffff


# -- sockets ---------------------------------------------------------------


def recv_exact(s, n):
    """Exactly n bytes from socket s; EOFError if it closes first."""
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return b


def closed(s):
    """Has the peer closed s (EOF, reset, or nothing within s's timeout)?
    Reads one byte: use it when nothing more is expected."""
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, socket.timeout, ssl.SSLError):
        return True


def split_addr(addr):
    """"127.0.0.1:PORT" -> ("127.0.0.1", PORT)."""
    host, port = addr.rsplit(":", 1)
    return host, int(port)


# -- handshake -------------------------------------------------------------


def tls_wrap(s, host):
    """s itself without $REPVOL_TLS_DIR; else s after a TLS 1.3 handshake
    with the certificates there (see the module's docstring)."""
    d = os.environ.get("REPVOL_TLS_DIR")
    if not d:
        return s
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(os.path.join(d, "ca-cert.pem"))
    ctx.load_cert_chain(os.path.join(d, "client-cert.pem"),
                        os.path.join(d, "client-key.pem"))
    return ctx.wrap_socket(s, server_hostname=host)


def hello_frame(vol, epoch=0, flags=0, version=VERSION, magic=HELLO_MAGIC):
    """The 88 bytes of a HELLO for volume vol (bytes or str, NUL padded to
    64 bytes; not checked, so tests can send bad ones)."""
    if isinstance(vol, str):
        vol = vol.encode()
    return _HELLO.pack(magic, version, flags, epoch, vol)


def hello(host, port, vol, epoch=0, flags=0, version=VERSION,
          magic=HELLO_MAGIC, timeout=10, source=None):
    """Connect to host:port (from address source, if given) and send a
    HELLO (hello_frame).  Returns the socket; the WELCOME is not read."""
    s = socket.create_connection((host, port), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    s = tls_wrap(s, host)
    s.sendall(hello_frame(vol, epoch, flags, version, magic))
    return s


def parse_welcome(w):
    """The fields of a WELCOME's bytes (asserting its magic)."""
    magic, version, status = struct.unpack_from("<QII", w)
    assert magic == WELCOME_MAGIC, hex(magic)
    block_size, exists, size, epoch, features, idle_ms = \
        struct.unpack_from("<IIQQII", w, 144)
    return {"version": version, "status": status,
            "server": w[16:80].rstrip(b"\0"), "zone": w[80:144].rstrip(b"\0"),
            "block_size": block_size, "exists": exists,
            "size": size, "epoch": epoch,
            "features": features, "idle_timeout_ms": idle_ms}


def read_welcome(s):
    """Read a WELCOME from s (asserting its magic); returns its fields."""
    return parse_welcome(recv_exact(s, WELCOME_SIZE))


def welcome(s):
    """Read a WELCOME from s (asserting its magic); returns its status."""
    return read_welcome(s)["status"]


def connect(host, port, vol, admin=False, epoch=0, timeout=10, source=None):
    """HELLO + WELCOME that must say OK: a ready data (or admin) socket."""
    s = hello(host, port, vol, epoch=epoch,
              flags=HELLO_ADMIN if admin else 0, timeout=timeout,
              source=source)
    status = welcome(s)
    assert status == OK, status
    return s


# -- requests and replies --------------------------------------------------


def req(cmd, id, off, ln, flags=0, crc=0):
    """A 32-byte request header (the payload, if any, follows it)."""
    return _REQ.pack(REQ_MAGIC, cmd, flags, id, off, ln, crc)


def reply(s):
    """Read a 24-byte reply header (asserting its magic), not its payload.
    Returns (status, id, length, crc)."""
    magic, status, id, ln, crc = _REP.unpack(recv_exact(s, REP_SIZE))
    assert magic == REP_MAGIC, hex(magic)
    return status, id, ln, crc


def reply_data(s):
    """Read a reply header and its payload: (status, id, data, crc)."""
    status, id, ln, crc = reply(s)
    data = recv_exact(s, ln) if ln else b""
    return status, id, data, crc


def call(s, cmd, id, off=0, ln=0, flags=0, payload=b""):
    """One request (with payload and its crc32c), one reply, which must
    carry the same id and, with a payload, its right crc32c.
    Returns (status, data)."""
    s.sendall(req(cmd, id, off, ln, flags, crc32c(payload) if payload else 0)
              + payload)
    status, rid, data, rcrc = reply_data(s)
    assert rid == id, (rid, id)
    if data:
        assert crc32c(data) == rcrc, "reply checksum"
    return status, data
