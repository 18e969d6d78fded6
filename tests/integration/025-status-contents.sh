#!/bin/bash
# "repvol status" says what is on the volume (libblkid over the ends of
# the volume, read from an in-sync replica): an ext4 written through the
# NBD export shows with its label and uuid, in text and --json, while
# attached (without moving the epoch, so the attach keeps writing) and
# after detach; an empty volume shows no signature; with no replica
# answering the contents are unknown.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy nbdinfo mkfs.ext4

uuid=3f0c1b4e-8d2a-4e61-9a57-2b6c0d1e7f90

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 64M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
repvol create empty --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"

json_field() {   # json_field VOL EXPR: python expression over the status document v
    repvol status "$1" --json | python3 -c "import json,sys; v=json.load(sys.stdin); print($2)"
}

# An empty volume.
repvol status empty > "$T/empty.txt"
grep -qx 'contents:    no filesystem signature' "$T/empty.txt" ||
    fail "empty volume: $(grep contents "$T/empty.txt")"
assert_eq "None no filesystem signature" \
    "$(json_field empty 'v["contents"], v["contents_reason"]' | tr -d "(),'")" \
    "empty volume in --json"

# An ext4 image made here, copied in through the NBD export.
truncate -s 64M "$T/img"
mkfs.ext4 -q -F -L mylabel -U "$uuid" "$T/img"
start_attach vol "$T/nbd.sock"
nbdcopy --flush "$T/img" "$(nbd_uri "$T/nbd.sock")"

# While attached: admin connections may not read the volume's data (a
# raw admin READ and CHECKSUM get EBUSY at both servers), so the attach
# probes it and answers status through its control socket; the epoch
# does not move and the attach goes on writing.
for srv in a b; do
    PYTHONPATH="$TOP/tests/tools" python3 - 127.0.0.1 "${REPVOLD_PORT[$srv]}" <<'PY' ||
import sys, rvproto
from rvproto import READ, CHECKSUM, EBUSY, call
s = rvproto.connect(sys.argv[1], int(sys.argv[2]), b"vol", admin=True)
for i, cmd in enumerate((READ, CHECKSUM)):
    st, data = call(s, cmd, i + 1, 0, 4096)
    assert st == EBUSY and not data, "admin command %d on an attached volume: status %d" % (cmd, st)
PY
        fail "an admin connection read an attached volume on $srv"
done
epoch=$(json_field vol 'v["epoch"]')
repvol status vol > "$T/attached.txt"
grep -qx "contents:    ext4 label \"mylabel\" uuid $uuid" "$T/attached.txt" ||
    fail "attached: $(grep contents "$T/attached.txt")"
assert_eq "$epoch" "$(json_field vol 'v["epoch"]')" "epoch after status"
head -c 1M /dev/urandom > "$T/chunk"
nbdcopy --flush "$T/chunk" "$(nbd_uri "$T/nbd.sock")"   # still writes: not fenced
nbdcopy --flush "$T/img" "$(nbd_uri "$T/nbd.sock")"
stop_attach vol

repvol status vol > "$T/detached.txt"
grep -qx "contents:    ext4 label \"mylabel\" uuid $uuid" "$T/detached.txt" ||
    fail "detached: $(grep contents "$T/detached.txt")"
assert_eq "ext4 mylabel $uuid" \
    "$(json_field vol '" ".join([v["contents"]["type"], v["contents"]["label"], v["contents"]["uuid"]])')" \
    "contents in --json"
# Every volume at once (the list form) carries it too.
assert_eq "ext4 None" \
    "$(repvol status --json | python3 -c 'import json,sys; d={v["name"]: v for v in json.load(sys.stdin)["volumes"]}; print(d["vol"]["contents"]["type"], d["empty"]["contents"])')" \
    "status --json of every volume"

# One server down: the other answers.  Both down: unknown, and why.
stop_repvold a
repvol status vol --timeout 2 > "$T/one.txt" 2>&1
grep -q "contents:    ext4 label" "$T/one.txt" || fail "one replica: $(grep contents "$T/one.txt")"
stop_repvold b
repvol status vol --timeout 2 > "$T/none.txt" 2>&1
grep -q '^contents:    unknown (no in-sync replica answered' "$T/none.txt" ||
    fail "no replica: $(grep contents "$T/none.txt")"
json_field vol 'v["contents"] is None and v["contents_reason"]' | grep -q "no in-sync replica answered" ||
    fail "no replica in --json"
log "ok"
