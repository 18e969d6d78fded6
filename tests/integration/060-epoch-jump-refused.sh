#!/bin/bash
# An epoch jump is refused while the real attach keeps serving
# (docs/DESIGN.md rule 8): raw data HELLOs to every replica of an
# attached volume with epoch + 257 (one past the bound), epoch + 1000
# and 2^64 - 1 each get WELCOME status ERANGE and a close, and one log
# line at the server; the replicas keep their epochs (repvol epoch says
# so), the attach is not fenced: new data written through it reads back
# with the same checksum, and both replicas hold it byte for byte.  The
# repair is refused while the volume is attached, by the CLI and by the
# servers (SET_EPOCH on an admin connection: EBUSY).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fencelib.sh"
require_cmd nbdcopy

start_repvold a zone-a --peer-log-interval 0   # count every refused HELLO
start_repvold b zone-b --peer-log-interval 0
repvol create vol --size 8M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
uri=$(nbd_uri "$T/nbd.sock")
head -c 8M /dev/urandom > "$T/first"
nbdcopy --flush "$T/first" "$uri"
epoch=$(attach_epoch vol)
log "attached at epoch $epoch"

for s in a b; do
    PYTHONPATH="$TOP/tests/tools" python3 - 127.0.0.1 "${REPVOLD_PORT[$s]}" "$epoch" <<'PY'
import struct, sys
import rvproto
from rvproto import ERANGE, EBUSY, EPOCH_JUMP_MAX, SET_EPOCH, call, closed
host, port, epoch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for e in (epoch + EPOCH_JUMP_MAX + 1, epoch + 1000, (1 << 64) - 1):
    s = rvproto.hello(host, port, b"vol", epoch=e)
    w = rvproto.read_welcome(s)
    assert w["status"] == ERANGE, "HELLO at epoch %d: status %d" % (e, w["status"])
    assert w["epoch"] == epoch, "the replica's epoch moved: %d" % w["epoch"]
    assert closed(s), "refused HELLO left open"
# The repair is refused while the attach has the volume open here.
a = rvproto.connect(host, port, b"vol", admin=True)
st, _ = call(a, SET_EPOCH, 1, 0, 8, payload=struct.pack("<Q", 1))
assert st == EBUSY, "SET_EPOCH on a live volume: status %d" % st
print("port %d: 3 jumps refused, SET_EPOCH refused" % port)
PY
    n=$(grep -c "HELLO epoch .* refused: more than 256 above volume vol epoch $epoch" "$T/repvold-$s.log" || true)
    assert_eq 3 "$n" "log lines about refused HELLOs on $s"
done

# Nothing moved: the attach still holds the volume at its epoch.
pid_alive "${ATTACH_PID[vol]}" || fail "the attach died"
repvol epoch vol --json > "$T/epochs.json" || { cat "$T/epochs.json" >&2; fail "repvol epoch reports a replica ahead"; }
python3 - "$epoch" "$T/epochs.json" <<'PY' || fail "replica epochs changed"
import json, sys
epoch, doc = int(sys.argv[1]), json.load(open(sys.argv[2]))
assert [r["epoch"] for r in doc["replicas"]] == [epoch, epoch], doc
assert not any(r["ahead"] for r in doc["replicas"]), doc
PY
expect_fail_match "attached on host .*detach it first" repvol epoch vol --reset

# The attach keeps serving: new data, read back, same checksum.
head -c 8M /dev/urandom > "$T/second"
nbdcopy --flush "$T/second" "$uri"
nbdcopy "$uri" "$T/back"
assert_eq "$(sha256sum < "$T/second")" "$(sha256sum < "$T/back")" "checksum read back"
all_in_sync vol || { repvol status vol >&2; fail "a replica fell out of sync"; }
stop_attach vol
assert_files_identical "$T/second" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/second" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
