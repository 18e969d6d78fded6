#!/bin/bash
# The operator's repair of a wrong epoch (docs/DESIGN.md rule 8): with the
# volume detached, one replica's epoch is pushed by the largest jump a
# HELLO may make (256); "repvol epoch" shows it ahead of the registry
# (exit 1); an attach is then refused by that replica, exits 3 as fenced
# and status says so, naming the replica; "repvol epoch --reset" sets
# every replica back to the registry's epoch; the next attach serves the
# data written before, byte for byte, and new data reads back.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fencelib.sh"
require_cmd nbdcopy

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 8M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
head -c 8M /dev/urandom > "$T/data"
nbdcopy --flush "$T/data" "$(nbd_uri "$T/nbd.sock")"
stop_attach vol

epochs() { repvol epoch vol --json > "$T/epochs.json"; }
field() { python3 -c "import json; d = json.load(open('$T/epochs.json')); print($1)"; }
epochs || fail "repvol epoch: a replica is ahead before anything was done"
E=$(field 'd["epoch"]')
assert_eq "$E $E" "$(field '" ".join(str(r["epoch"]) for r in d["replicas"])')" "replica epochs after a clean detach"

# The largest jump one HELLO may make: accepted, persisted.
B=$((E + 256))
push_epoch b vol "$B"
rc=0; epochs || rc=$?
assert_eq 1 "$rc" "repvol epoch with a replica ahead"
assert_eq "False True" "$(field '" ".join(str(r["ahead"]) for r in d["replicas"])')" "which replica is ahead"
repvol epoch vol > "$T/epoch.txt" || true     # exit 1, as above
cat "$T/epoch.txt" >&2
grep -q "${REPVOLD_ADDR[b]} .* $B .*AHEAD of the registry by 256" "$T/epoch.txt" || fail "repvol epoch does not show b ahead"
grep -q "repvol epoch vol --reset" "$T/epoch.txt" || fail "repvol epoch does not name the repair"

# An attach now: b refuses its epoch (E + 1 < B); it stops, fenced.
start_bg "$T/refused.log" "$REPVOL" attach vol --nbd "unix:$T/refused.sock"
refused=$BG_PID
expect_fenced_exit "$refused" "$T/refused.log" \
    "fenced: replica ${REPVOLD_ADDR[b]}: refused epoch $((E + 1)): the replica holds a newer one, $B" \
    "$T/refused.sock"
expect_status_fenced vol "host .*, pid $refused, epoch $((E + 1)): replica ${REPVOLD_ADDR[b]}: refused epoch"

# The repair.  The servers may not have seen the refused attach's
# connections close yet (they refuse SET_EPOCH while one is open).
wait_for repvol epoch vol --reset
E=$((E + 1))             # the refused attach's claim opened an epoch
epochs || fail "repvol epoch: a replica is still ahead after --reset"
assert_eq "$E $E" "$(field '" ".join(str(r["epoch"]) for r in d["replicas"])')" "replica epochs after --reset"
grep -q "volume vol epoch $B -> $E (SET_EPOCH on an admin connection)" "$T/repvold-b.log" ||
    fail "server b did not log the reset"

# Usable again: the data written before, then new data.
start_attach vol "$T/nbd.sock"
uri=$(nbd_uri "$T/nbd.sock")
nbdcopy "$uri" "$T/back"
assert_files_identical "$T/data" "$T/back"
head -c 4M /dev/urandom > "$T/new"
nbdcopy --flush "$T/new" "$uri"
nbdcopy "$uri" "$T/back"
cp "$T/data" "$T/expect"
dd if="$T/new" of="$T/expect" conv=notrunc status=none
assert_files_identical "$T/expect" "$T/back"
all_in_sync vol || { repvol status vol >&2; fail "a replica is out of sync"; }
stop_attach vol
assert_files_identical "$T/expect" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/expect" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
