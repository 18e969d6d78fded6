#!/bin/bash
# Fenced in the middle of writing, by a replica (issue 11 items 4 and 6):
# while a writer keeps 8 writes in flight through the attach, replica b
# is handed a newer epoch (epoch + 1, as another attachment that this
# registry does not know would).  The attach's next request to b is
# refused, so it fails the writes in flight with EIO (the writer sees
# EIO replies, then the socket close), stops and exits 3; its NBD and
# control sockets are gone; the registry shows it fenced, naming b, and
# not attached.  The operator sees b ahead with "repvol epoch", resets
# it, attaches again: every acknowledged write is there (the attach
# reconciles the replicas, as after a crash), and the replicas end equal.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
one=${ATTACH_PID[vol]}
json() { repvol status vol --json | python3 -c "import json,sys; v = json.load(sys.stdin); print($1)"; }
epoch=$(json 'v["attachment"]["epoch"]')
ctl=$(json 'v["attachment"]["control"]')
[[ -S $ctl ]] || fail "no control socket at '$ctl'"

# The writer: numbered blocks (tests/tools/ackwriter.py's format), every
# reply's error kept; it stops when the attach closes the socket.
PYTHONPATH="$TOP/tests/tools" python3 - "$T/nbd.sock" "$T/acks.json" "$T/started" <<'PY' > "$T/writer.out" &
import json, random, sys, time
import nbdproto
from ackwriter import BS, block_data, connect
sock, log, started = sys.argv[1:]
s, size = connect(sock)
nblocks = size // BS
issued, acked, errors, inflight, seq = [], [], [], {}, 0
deadline = time.time() + 60
try:
    while time.time() < deadline:
        while len(inflight) < 8:
            seq += 1
            blk = random.randrange(nblocks)
            s.sendall(nbdproto.request(nbdproto.CMD_WRITE, seq, blk * BS, BS)
                      + block_data(seq, blk))
            inflight[seq] = blk
            issued.append((seq, blk))
        magic, err, handle = nbdproto.reply(s)
        assert magic == nbdproto.REP_MAGIC
        blk = inflight.pop(handle)
        if err == 0:
            acked.append((handle, blk))
            if len(acked) == 200:
                open(started, "w").close()
        else:
            errors.append(err)
except (EOFError, ConnectionError, OSError):
    pass
json.dump({"issued": issued, "acked": acked}, open(log, "w"))
print("issued %d, acknowledged %d, errors %s" % (len(issued), len(acked), sorted(set(errors))))
print("EIO replies %d other %d" % (errors.count(5), len(errors) - errors.count(5)))
PY
writer=$!
wait_for -t 30 test -e "$T/started"

# Another attachment, unknown to this registry, presents epoch + 1 at b.
PYTHONPATH="$TOP/tests/tools" python3 - 127.0.0.1 "${REPVOLD_PORT[b]}" "$((epoch + 1))" <<'PY'
import sys
import rvproto
rvproto.connect(sys.argv[1], int(sys.argv[2]), b"vol", epoch=int(sys.argv[3])).close()
PY

rc=0; wait_exit "$one" 30 || rc=$?
assert_eq 3 "$rc" "exit status of the fenced attach"
wait "$writer" || fail "the writer failed"
cat "$T/writer.out" >&2
grep -q "^EIO replies [1-9][0-9]* other 0$" "$T/writer.out" || fail "the writes in flight did not fail with EIO"
[[ ! -e $T/nbd.sock ]] || fail "the fenced attach left its NBD socket"
[[ ! -e $ctl ]] || fail "the fenced attach left its control socket"
grep -q "fenced: replica ${REPVOLD_ADDR[b]} refused epoch $epoch: it holds a newer one; failing I/O and stopping" "$T/attach-vol.log" ||
    fail "the attach does not say why it stopped"

repvol status vol > "$T/status"
cat "$T/status" >&2
grep -q "^attachment:  none" "$T/status" || fail "status shows it attached"
grep -q "^fenced: .*pid $one, epoch $epoch: replica ${REPVOLD_ADDR[b]} refused epoch $epoch: it holds a newer one; can no longer write (stopped)" "$T/status" ||
    fail "status does not show the attach fenced"
# It changed nothing in the registry on its way out but that.
all_in_sync vol || fail "the fenced attach recorded a replica out of sync"

# The operator's repair, then the volume is usable again.
rc=0; repvol epoch vol > "$T/epoch.txt" || rc=$?
assert_eq 1 "$rc" "repvol epoch with b ahead"
grep -q "${REPVOLD_ADDR[b]} .*AHEAD of the registry by 1" "$T/epoch.txt" || { cat "$T/epoch.txt" >&2; fail "repvol epoch does not show b ahead"; }
wait_for repvol epoch vol --reset
repvol epoch vol >/dev/null || fail "a replica is still ahead after --reset"
start_attach vol "$T/nbd.sock"
wait_for -t 60 grep -q "reconciled after an unclean detach" "$T/attach-vol.log"
nbdcopy "$(nbd_uri "$T/nbd.sock")" "$T/image"
python3 "$TOP/tests/tools/ackwriter.py" check "$T/image" "$T/acks.json" ||
    fail "acknowledged writes are missing after the fence"
stop_attach vol
assert_files_identical "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data"
assert_files_identical "$T/image" "${REPVOLD_DIR[a]}/vol.data"
log "ok"
