#!/bin/bash
# CREATE is bounded and a refused one changes nothing (docs/DESIGN.md
# 3.7): raw CREATEs over the wire of 2^60 bytes (the old crash) and of
# 8 TiB + 4 KiB get EFBIG, 2^60 + 4 KiB EINVAL, RESERVE creates past the
# free space or into the reserve margin ENOSPC; `repvol create --size 8P`
# and a too-big `--reserve` fail with one clear line.  Meanwhile and
# after, a write to another attached volume on the same server reads back
# with the same checksum; the server stays up, logs each refusal with its
# cause, and its data dir holds no file of a refused volume.  Restarted
# with a volume whose metadata is over the maximum, it refuses that one
# naming the cause and serves the others.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

start_repvold a zone-a --peer-log-interval 0   # count every refusal line
A=${REPVOLD_ADDR[a]}
repvol create other --size 8M --replica "$A"
start_attach other "$T/nbd.sock"
uri=$(nbd_uri "$T/nbd.sock")
head -c 8M /dev/urandom > "$T/first"
# A write to 'other' runs while the refused creates arrive.
nbdcopy --flush "$T/first" "$uri" &
copy_pid=$!

avail=$(df -B1 --output=avail "${REPVOLD_DIR[a]}" | tail -n 1)
PYTHONPATH="$TOP/tests/tools" python3 - 127.0.0.1 "${REPVOLD_PORT[a]}" "$avail" <<'PY'
import struct, sys
import rvproto
from rvproto import CREATE, EFBIG, EINVAL, ENOSPC, F_RESERVE, OK, call
host, port, avail = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
TiB, GiB, MiB = 1 << 40, 1 << 30, 1 << 20

def create(vol, size, flags=0):
    s = rvproto.connect(host, port, vol, admin=True)
    st, _ = call(s, CREATE, 1, 0, 24, payload=struct.pack("<QIIQ", size, 4096, flags, 1))
    s.close()
    return st

cases = [
    (b"big", 1 << 60, 0, EFBIG),                 # the old segfault
    (b"big", 8 * TiB + 4096, 0, EFBIG),          # one block over the maximum
    (b"big", (1 << 60) + 4096, 0, EINVAL),       # past the format's bound
    # RESERVE past the free space, and into the 1 GiB default margin
    (b"fat", min(8 * TiB, (avail + GiB) // 4096 * 4096), F_RESERVE, ENOSPC),
    (b"fat", (avail - 512 * MiB) // 4096 * 4096, F_RESERVE, ENOSPC),
]
for vol, size, flags, want in cases:
    st = create(vol, size, flags)
    assert st == want, "CREATE %s of %d bytes (flags %d): status %d, want %d" % (vol, size, flags, st, want)
# Bounded is not broken: an ordinary create still works (the volume the
# restart below refuses).
assert create(b"huge", 8 * MiB) == OK
print("%d refused CREATEs, one accepted" % len(cases))
PY
wait "$copy_pid" || fail "the write to 'other' failed during the refused creates"
nbdcopy "$uri" "$T/back"
assert_eq "$(sha256sum < "$T/first")" "$(sha256sum < "$T/back")" "checksum of 'other' read back"

# Through the CLI: one clear line each, nothing registered.
expect_fail_match "^repvol: error: replica $A \(server a\): create failed: volume size 8 PiB exceeds this server's maximum of 8 TiB$" \
    repvol create big --size 8P --replica "$A"
(( $(wc -l <<<"$EXPECT_STDERR") == 1 )) || fail "more than one line for the 8P create"
expect_fail_match "create failed: cannot reserve .*: the server's free space minus its --reserve-margin is less" \
    repvol create fat --size "$(( (avail + (1 << 30)) / 4096 * 4096 ))" --reserve --replica "$A"
expect_fail_match "no such volume|not found|unknown volume" repvol status big

pid_alive "${REPVOLD_PID[a]}" || fail "repvold a died"
for re in "CREATE big refused: volume size 1 EiB exceeds this server's maximum of 8 TiB" \
          "CREATE big refused: volume size 8 PiB exceeds this server's maximum of 8 TiB" \
          "CREATE fat refused: reserving .* would leave less than the reserve margin of 1 GiB free"; do
    grep -Eq "$re" "$T/repvold-a.log" || fail "no log line /$re/"
done
# A refused create leaves nothing behind, temp files included.
files=$(ls -A "${REPVOLD_DIR[a]}" | tr '\n' ' ')
assert_eq "huge.data huge.dirty huge.meta other.data other.dirty other.meta " "$files" "files in a's data dir"

# After the refusals too, I/O to 'other' is served.
head -c 8M /dev/urandom > "$T/second"
nbdcopy --flush "$T/second" "$uri"
nbdcopy "$uri" "$T/back"
assert_eq "$(sha256sum < "$T/second")" "$(sha256sum < "$T/back")" "checksum of 'other' after the refusals"
stop_attach other

# A volume over the maximum (made by hand: huge.meta says 16 TiB) is
# refused at start-up with its cause; 'other' still loads and serves.
stop_repvold a
PYTHONPATH="$TOP/tests/tools" python3 - "${REPVOLD_DIR[a]}/huge.meta" <<'PY'
import struct, sys
from rvproto import crc32c
path = sys.argv[1]
m = bytearray(open(path, "rb").read())
assert len(m) == 256
struct.pack_into("<Q", m, 96, 16 << 40)          # size
struct.pack_into("<I", m, 252, crc32c(bytes(m[:252])))
open(path, "wb").write(m)
PY
start_repvold a zone-a --peer-log-interval 0
grep -q "huge.meta: size over this server's maximum of 8 TiB; volume refused" "$T/repvold-a.log" ||
    fail "the refused volume is not named with its cause"
if grep -Eq "refused: *$|: ; volume refused" "$T/repvold-a.log"; then fail "a refusal without a reason"; fi
start_attach other "$T/nbd.sock"
nbdcopy "$uri" "$T/back"
assert_eq "$(sha256sum < "$T/second")" "$(sha256sum < "$T/back")" "checksum of 'other' after the restart"
stop_attach other
log "ok"
