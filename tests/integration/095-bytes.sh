#!/bin/bash
# Sizes for people by default, raw with --bytes, raw in JSON always:
# list's SIZE ("24 MiB" / 25165824), status's size line, server list's
# CAPACITY and FREE (what --json says, in IEC units or as the integer),
# snapshot list's SIZE and DATA, create's line; --json is the same with
# and without --bytes.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

start_repvold a zone-a --registry "$REPVOL_REGISTRY"
start_repvold b zone-b --registry "$REPVOL_REGISTRY"
wait_for server_is a up
wait_for server_is b up
grep -q "^created volume vol: 24 MiB," <<<"$(repvol create vol --size 24M --replica a --replica b)" ||
    fail "create does not say 24 MiB"
grep -q "^created volume vol2: 1572864," <<<"$(repvol create vol2 --size 1536K --replica a --replica b --bytes)" ||
    fail "create --bytes does not say 1572864"

row() { awk -v v="$2" '$1 == v' <<<"$1"; }
[[ $(row "$(repvol list)" vol) =~ ^vol\ +24\ MiB\ +4096\ +2\ +1\ +healthy\ +no$ ]] ||
    { repvol list >&2; fail "list's row of vol (default)"; }
[[ $(row "$(repvol list)" vol2) =~ ^vol2\ +1.5\ MiB\  ]] || { repvol list >&2; fail "list's row of vol2 (default)"; }
[[ $(row "$(repvol list --bytes)" vol) =~ ^vol\ +25165824\ +4096\ +2\ +1\ +healthy\ +no$ ]] ||
    { repvol list --bytes >&2; fail "list --bytes's row of vol"; }
assert_eq "$(repvol list --json)" "$(repvol list --json --bytes)" "list --json with and without --bytes"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d[0]["size"] == 24 << 20, d' "$(repvol list --json)" ||
    fail "list --json does not carry the size in bytes"

grep -qx "size: *24 MiB (25165824 bytes)" <<<"$(repvol status vol)" || fail "status's size line (default)"
grep -qx "size: *25165824" <<<"$(repvol status vol --bytes)" || fail "status --bytes's size line"
grep -q "^snapshots: *chunk 1 MiB;" <<<"$(repvol status vol)" || fail "status's chunk size (default)"
grep -q "^snapshots: *chunk 1048576;" <<<"$(repvol status vol --bytes)" || fail "status --bytes's chunk size"

# server list: the pool's figures, as --json has them.
read -r cap free <<<"$(repvol server list --json | python3 -c '
import json, sys
s = [s for s in json.load(sys.stdin) if s["name"] == "a"][0]
print(s["capacity"], s["free"])')"
[[ $(row "$(repvol server list --bytes)" a) =~ \ $cap\ +[0-9]+\ +[0-9]+$ ]] ||
    { repvol server list --bytes >&2; fail "server list --bytes: a's CAPACITY is not $cap"; }
human=$(python3 -c '
import sys
v, u = float(sys.argv[1]), 0
units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
while v >= 1024 and u + 1 < len(units):
    v, u = v / 1024, u + 1
print(("%.0f %s" if u == 0 or v == int(v) else "%.1f %s") % (v, units[u]))' "$cap")
grep -q " $human " <<<"$(row "$(repvol server list)" a)" ||
    { repvol server list >&2; fail "server list: a's CAPACITY is not '$human'"; }

# snapshot list: the snapshot of 8 MiB written.
start_attach vol "$T/nbd.sock"
head -c 8M /dev/urandom > "$T/data"
nbdcopy --flush "$T/data" "$(nbd_uri "$T/nbd.sock")"
repvol snapshot create vol --to "file://$T/snaps" --name s1 >/dev/null
stop_attach vol
[[ $(row "$(repvol snapshot list "file://$T/snaps")" s1) =~ \ 24\ MiB\ +-\ +8\ MiB\  ]] ||
    { repvol snapshot list "file://$T/snaps" >&2; fail "snapshot list's SIZE and DATA (default)"; }
[[ $(row "$(repvol snapshot list "file://$T/snaps" --bytes)" s1) =~ \ 25165824\ +-\ +8388608\  ]] ||
    { repvol snapshot list "file://$T/snaps" --bytes >&2; fail "snapshot list --bytes's SIZE and DATA"; }
assert_eq "$(repvol snapshot list "file://$T/snaps" --json)" "$(repvol snapshot list "file://$T/snaps" --json --bytes)" \
    "snapshot list --json with and without --bytes"
