#!/bin/bash
# The STARTTLS rules on the wire, option by option (nbdkit's
# --tls=require): before TLS every option but STARTTLS and ABORT gets
# NBD_REP_ERR_TLS_REQD, STARTTLS with data NBD_REP_ERR_INVALID, ABORT an
# ACK, EXPORT_NAME a hang-up, and plaintext sent after STARTTLS (an
# injection attempt) a hang-up; inside TLS, STARTTLS again is
# NBD_REP_ERR_INVALID and the options work.  The export then still
# serves nbdinfo.
export REPVOL_TEST_TLS=1
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nbdtlslib.sh"
require_cmd nbdinfo

nbd_client_dir "$T/nbdc"
start_repvold a zone-a
repvol create vol --size 16M --replica "${REPVOLD_ADDR[a]}"
port=$(free_port)
start_attach_tcp vol "$port" --tls-dir "$T/pki"

PYTHONPATH="$TOP/tests/tools" python3 - "$port" "$T/nbdc" <<'PY' || fail "the STARTTLS rules were not kept"
import socket, ssl, struct, sys
from rvproto import recv_exact

port, pki = int(sys.argv[1]), sys.argv[2]
IHAVEOPT = b"IHAVEOPT"
REPLY_MAGIC = 0x3e889045565a9
ACK, SERVER = 1, 2
ERR_INVALID, ERR_TLS_REQD = 0x80000003, 0x80000005
EXPORT_NAME, ABORT, LIST, STARTTLS, INFO, GO, STRUCTURED = 1, 2, 3, 5, 6, 7, 8

def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    g = recv_exact(s, 18)
    assert g[:16] == b"NBDMAGIC" + IHAVEOPT, g
    s.sendall(struct.pack(">I", 3))      # FIXED_NEWSTYLE | NO_ZEROES
    return s

def option(s, opt, data=b""):
    s.sendall(IHAVEOPT + struct.pack(">II", opt, len(data)) + data)

def reply(s):
    magic, opt, typ, n = struct.unpack(">QIII", recv_exact(s, 20))
    assert magic == REPLY_MAGIC, hex(magic)
    return opt, typ, recv_exact(s, n)

def expect(s, opt, typ):
    o, t, d = reply(s)
    assert (o, t) == (opt, typ), "option %d: got reply 0x%x to %d (%r), wanted 0x%x" % (opt, t, o, d, typ)
    return d

def closed(s):
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True

info = struct.pack(">I", 0) + struct.pack(">H", 0)
s = connect()
for opt, data in ((LIST, b""), (STRUCTURED, b""), (INFO, info), (GO, info), (99, b"x")):
    option(s, opt, data)
    expect(s, opt, ERR_TLS_REQD)
option(s, STARTTLS, b"junk")
expect(s, STARTTLS, ERR_INVALID)
option(s, ABORT)
expect(s, ABORT, ACK)
assert closed(s), "still open after ABORT"
print("before TLS: TLS_REQD, INVALID for STARTTLS with data, ABORT acked")

s = connect()
option(s, EXPORT_NAME, b"vol")
assert closed(s), "EXPORT_NAME before TLS was not hung up"
print("EXPORT_NAME before TLS: hung up")

# Plaintext right behind STARTTLS, in the same segment.
s = connect()
s.sendall(IHAVEOPT + struct.pack(">II", STARTTLS, 0) + IHAVEOPT + struct.pack(">II", LIST, 0))
expect(s, STARTTLS, ACK)
assert closed(s), "plaintext after STARTTLS was accepted"
print("plaintext after STARTTLS: hung up")

s = connect()
option(s, STARTTLS)
expect(s, STARTTLS, ACK)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_verify_locations(pki + "/ca-cert.pem")
ctx.load_cert_chain(pki + "/client-cert.pem", pki + "/client-key.pem")
t = ctx.wrap_socket(s, server_hostname="localhost")
option(t, STARTTLS)
expect(t, STARTTLS, ERR_INVALID)
option(t, LIST)
d = expect(t, LIST, SERVER)
assert d[4:] == b"vol", d
expect(t, LIST, ACK)
option(t, ABORT)
expect(t, ABORT, ACK)
print("inside TLS: STARTTLS again INVALID, LIST answered, ABORT acked")
PY
wait_for grep -q "data arrived before the TLS handshake\|does not use TLS" "$T/attach-vol.log"
size=$(nbdinfo --size "$(nbds_uri "$port" "$T/nbdc")") || fail "nbdinfo after the protocol checks failed"
assert_eq $((16 << 20)) "$size" "export size"
stop_attach vol
log "ok"
