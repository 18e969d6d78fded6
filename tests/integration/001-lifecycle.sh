#!/bin/bash
# Volume lifecycle through the CLI: create on two servers, list, status
# (text and JSON), delete; the replica files appear and disappear.
. "$(dirname "$0")/lib.sh"

start_repvold a zone-a
start_repvold b zone-b

repvol create vol1 --size 64M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
[[ -f ${REPVOLD_DIR[a]}/vol1.data && -f ${REPVOLD_DIR[b]}/vol1.data ]] ||
    fail "replica data files were not created"
[[ -f ${REPVOLD_DIR[a]}/vol1.meta ]] || fail "replica metadata missing"

repvol list | tee "$T/list" >&2
grep -q '^vol1 ' "$T/list" || fail "list does not show vol1"

repvol status vol1 | tee "$T/status" >&2
grep -q 'zone-a' "$T/status" || fail "status does not show zone-a"
grep -q "${REPVOLD_ADDR[b]}" "$T/status" || fail "status does not show replica b"

repvol status vol1 --json > "$T/status.json"
python3 - "$T/status.json" "${REPVOLD_ADDR[a]}" "${REPVOLD_ADDR[b]}" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
if isinstance(v, list): v = v[0]
assert v["name"] == "vol1", v
assert v["size"] == 64 << 20, v
assert v["epoch"] >= 1, v
addrs = sorted(r["addr"] for r in v["replicas"])
assert addrs == sorted(sys.argv[2:4]), addrs
assert all(r["state"] == "in-sync" for r in v["replicas"]), v["replicas"]
assert all(r["zone"] in ("zone-a", "zone-b") for r in v["replicas"]), v["replicas"]
assert not v["attachment"]["attached"], v["attachment"]
PY

# A sparse replica: creating 64M allocates (almost) nothing.
alloc=$(du -k "${REPVOLD_DIR[a]}/vol1.data" | cut -f1)
((alloc < 1024)) || fail "replica is not sparse: ${alloc}K allocated"

repvol delete vol1
[[ ! -e ${REPVOLD_DIR[a]}/vol1.data && ! -e ${REPVOLD_DIR[b]}/vol1.data ]] ||
    fail "replica data files remain after delete"
repvol list | grep -q '^vol1 ' && fail "vol1 still listed after delete"
expect_fail_match 'no such volume|unknown volume|not found' repvol status vol1
log "ok"
