#!/bin/bash
# A flood of bad input makes a bounded number of log lines, with a count
# of what was suppressed, and loses count of nothing:
#   - repvold: 1000 connections that send a request with a bad magic after
#     HELLO, 1000 with a bad HELLO magic, and 500 WRITEs with a bad crc on
#     one connection to another volume (2500 lines unlimited) give one line for 127.0.0.1
#     and then "127.0.0.1: N more lines suppressed" lines whose N add up to
#     the other 2499;
#   - the attach's NBD export: 200 connections with bad client flags, 200
#     with a bad option magic and 100 that, once in transmission, read past
#     the end: the same for "local", 500 in all.
# Both servers stay up, the volume's data is intact, and new work succeeds.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy python3

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 4M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
repvol create crc --size 4M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
head -c 4M /dev/urandom >"$T/src"
nbdcopy --flush "$T/src" "$(nbd_uri "$T/nbd.sock")"

PYTHONPATH="$TOP/tests/tools" python3 - "${REPVOLD_PORT[a]}" "$T/nbd.sock" <<'PY'
import socket, struct, sys
import nbdproto, rvproto
from rvproto import closed, connect, crc32c, req, reply
port, sock = int(sys.argv[1]), sys.argv[2]
H = "127.0.0.1"

for i in range(1000):
    s = connect(H, port, "flood", epoch=1)
    s.sendall(struct.pack("<I", 0xdeadbeef) + b"\0" * 28)
    assert closed(s)
    s.close()
for i in range(1000):
    s = rvproto.hello(H, port, "vol", magic=0x1122334455667788)
    assert closed(s)
    s.close()
s = connect(H, port, "crc", epoch=1)
payload = b"\x5a" * 4096
for i in range(500):
    s.sendall(req(rvproto.WRITE, i, 0, 4096, crc=crc32c(payload) ^ 1) + payload)
    st, rid, ln, crc = reply(s)
    assert (st, rid) == (rvproto.ECRC, i), (st, rid)
s.close()
print("2500 bad frames sent to repvold")

for i in range(200):                       # bad client flags
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    rvproto.recv_exact(s, 18)
    s.sendall(struct.pack(">I", 0xffffffff))
    assert closed(s)
    s.close()
for i in range(200):                       # bad option magic
    s = nbdproto.greeting(sock, timeout=10)
    s.sendall(nbdproto.option(nbdproto.OPT_GO, magic=0x1234))
    assert closed(s)
    s.close()
for i in range(100):                       # transmission: read past the end
    s = nbdproto.greeting(sock, timeout=10)
    nbdproto.go(s)
    s.sendall(nbdproto.request(nbdproto.CMD_READ, 1, 4 << 20, 4096))
    magic, err, handle = nbdproto.reply(s)
    assert magic == nbdproto.REP_MAGIC and err != 0 and handle == 1, (err, handle)
    s.close()
print("500 bad NBD inputs sent to the attach")
PY

# LOG KEY: the number of lines about KEY that made it, and the total they
# account for (each line itself plus the N of "KEY: N more lines
# suppressed").
log_account() {
    python3 - "$1" "$2" <<'PY'
import re, sys
path, key = sys.argv[1], sys.argv[2]
lines = total = 0
for line in open(path, errors="replace"):
    m = re.search(re.escape(key) + r": (\d+) more lines? suppressed", line)
    if m:
        lines += 1
        total += int(m.group(1))
    elif re.search(r"closing connection|checksum mismatch|replying with an error", line) \
            and (" " + key + ":" in line or "(" + key in line or "nbd client" in line):
        lines += 1
        total += 1
print(lines, total)
PY
}
accounted() {  # accounted LOG KEY N: every one of N is in the log
    local out
    out=$(log_account "$1" "$2")
    [[ ${out#* } == "$3" ]]
}

log "waiting for the suppressed counts to be said (intervals of 10 s)"
wait_for -t 40 accounted "$T/repvold-a.log" 127.0.0.1 2500
wait_for -t 40 accounted "$T/attach-vol.log" local 500
read -r na ta <<<"$(log_account "$T/repvold-a.log" 127.0.0.1)"
read -r nn tn <<<"$(log_account "$T/attach-vol.log" local)"
log "repvold a: $na lines for $ta bad frames; attach: $nn lines for $tn bad inputs"
((na <= 6)) || fail "repvold a logged $na lines about 127.0.0.1 for 2500 bad frames"
((nn <= 6)) || fail "the attach logged $nn lines about its NBD clients for 500 bad inputs"
grep -q "127.0.0.1: [0-9]* more lines suppressed in the last 10 s; the last: " \
    "$T/repvold-a.log" || fail "no suppressed count in repvold a's log"
grep -q "local: [0-9]* more lines suppressed in the last 10 s; the last: " \
    "$T/attach-vol.log" || fail "no suppressed count in the attach's log"

pid_alive "${REPVOLD_PID[a]}" || fail "repvold a died"
pid_alive "${ATTACH_PID[vol]}" || fail "the attach died"
nbdcopy "$(nbd_uri "$T/nbd.sock")" "$T/back"
assert_files_identical "$T/src" "$T/back"
repvol create after --size 4M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
stop_attach vol
assert_files_identical "$T/src" "${REPVOLD_DIR[a]}/vol.data"
log "ok"
