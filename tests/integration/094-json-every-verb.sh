#!/bin/bash
# Every verb that prints takes --json (one schema per verb, the man
# pages): create, list, status, settings, verify (and --repair),
# replica replace, heal, detach, epoch --reset, server drain and
# undrain, delete, each parsed with python3's json and its key fields
# asserted against what was done.  A verb that fails prints no JSON:
# the error goes to stderr with the exit status.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

for s in a b c; do
    start_repvold $s zone-$s --registry "$REPVOL_REGISTRY"
done
for s in a b c; do wait_for server_is $s up; done    # create names them
J="$T/out.json"
# py EXPR...: each a python assertion on d, the JSON document in $J.
py() {
    python3 - "$J" "$@" <<'PY' || { cat "$J" >&2; fail "assertion failed on the JSON above"; }
import json, sys
d = json.load(open(sys.argv[1]))
for e in sys.argv[2:]:
    assert eval(e), e
PY
}
# pylines EXPR...: the same on L, the list of JSON lines in $J.
pylines() {
    python3 - "$J" "$@" <<'PY' || { cat "$J" >&2; fail "assertion failed on the JSON lines above"; }
import json, sys
L = [json.loads(l) for l in open(sys.argv[1])]
for e in sys.argv[2:]:
    assert eval(e), e
PY
}

repvol create vol --size 16M --replica a --replica b --json > "$J"
py 'd["name"] == "vol"' 'd["size"] == 16 << 20' 'd["block_size"] == 4096' \
   '[r["server"] for r in d["replicas"]] == ["a", "b"]' \
   'all(r["state"] == "in-sync" for r in d["replicas"])' 'd["epoch"] == 1'

repvol list --json > "$J"
py 'd[0]["name"] == "vol"' 'd[0]["health"]["state"] == "healthy"' \
   'd[0]["attachment_state"] == "none"' 'd[0]["silent_since"] is None'
repvol status vol --json > "$J"
py 'd["health"] == {"state": "healthy", "text": "healthy", "in_sync": 2, "replicas": 2, "percent": None, "eta_seconds": None}'

repvol settings --json > "$J"
py 'd["heal-after"] == {"value": None, "seconds": 300, "default": True}'
repvol settings heal-after 90s --json > "$J"
py 'd["heal-after"] == {"value": "90s", "seconds": 90, "default": False}'
repvol settings heal-after --json > "$J"
py 'd["heal-after"]["value"] == "90s"'
repvol settings heal-after --unset --json > "$J"
py 'd["heal-after"]["default"] is True'

start_attach vol "$T/nbd.sock"
head -c 16M /dev/urandom > "$T/data"
nbdcopy --flush "$T/data" "$(nbd_uri "$T/nbd.sock")"
repvol verify vol --json > "$J"
py 'd["volume"] == "vol"' 'd["agree"] is True' 'd["regions_differing"] == 0' \
   'd["regions"] == []' 'd["repair"] is False'

# One damaged region on b: found, then repaired, then gone.
head -c 4096 /dev/urandom | dd of="${REPVOLD_DIR[b]}/vol.data" bs=4096 \
    seek=$(( (5 * 1024 * 1024 + 8192) / 4096 )) conv=notrunc status=none
rc=0; repvol verify vol --json > "$J" 2> "$T/verify.err" || rc=$?
assert_eq 1 "$rc" "exit status of verify --json with a damaged region"
py 'd["agree"] is False' 'd["regions_differing"] == 1' \
   'd["regions"][0]["offset"] == 5 << 20' 'd["regions"][0]["length"] == 1 << 20' \
   'len(d["regions"][0]["replicas"]) == 2' \
   'sum(r["differs"] for r in d["regions"][0]["replicas"]) == 1' \
   'all(len(r["crc32c"]) == 8 for r in d["regions"][0]["replicas"])' \
   'd["regions"][0]["repaired_from"] is None'
grep -q "differ" "$T/verify.err" || fail "verify --json did not say on stderr why it failed"
repvol verify vol --repair --json > "$J"
py 'd["agree"] is True' 'd["repair"] is True' 'd["regions_repaired"] == 1' \
   'd["regions"][0]["repaired_from"] is not None'
repvol verify vol --json > "$J"
py 'd["regions_differing"] == 0'

# Replace b by c while attached: a stream of lines.
repvol replica replace vol b c --json > "$J"
pylines 'L[0]["event"] == "replacing"' 'L[0]["old"] == "'"${REPVOLD_ADDR[b]}"'"' \
    'L[0]["new"] == "'"${REPVOLD_ADDR[c]}"'"' 'L[-1]["event"] == "done"' \
    'L[-1]["in_sync"] is True and L[-1]["old_deleted"] is True and L[-1]["attached"] is True' \
    'all(e["event"] in ("replacing", "progress", "done") for e in L)' \
    'all(e["bytes_total"] > 0 for e in L if e["event"] == "progress")'

repvol heal --json > "$J"
py 'd["volumes"][0]["volume"] == "vol"' 'd["volumes"][0]["action"] == "attached"' \
   'd["volumes"][0]["health"]["state"] == "healthy"'

pid=${ATTACH_PID[vol]}
repvol detach vol --json > "$J"
wait_exit "$pid" || fail "the attach did not exit 0 after detach"
unset "ATTACH_PID[vol]"
py 'd == {"volume": "vol", "detached": True, "clean": True, "reason": None}'
# Not attached: an error on stderr, nothing on stdout.
rc=0; repvol detach vol --json > "$J" 2> "$T/err" || rc=$?
assert_eq "1 0" "$rc $(stat -c %s "$J")" "detach --json of a detached volume: exit status and stdout bytes"
grep -q "is not attached" "$T/err" || fail "detach --json: no error on stderr"

repvol heal vol --json > "$J"
py 'd["volumes"][0]["action"] == "none"' 'd["volumes"][0]["lines"] == []'

repvol epoch vol --reset --json > "$J"
py 'd["volume"] == "vol"' 'd["reset"] is True' 'len(d["replicas"]) == 2' \
   'all(r["to"] == d["epoch"] and r["error"] is None for r in d["replicas"])'

# Drain c (vol is detached: moved here, to b), then undrain it.
repvol server drain c --wait --json > "$J"
pylines 'L[0] == {"event": "draining", "server": "c", "replicas_left": 1}' \
    'any(e["event"] == "moved" and e["volume"] == "vol" and e["ok"] for e in L)' \
    'L[-1] == {"event": "drained", "server": "c", "replicas_left": 0}'
repvol status vol --json > "$J"
py '[r["server"] for r in d["replicas"]] == ["a", "b"]'
repvol server undrain c --json > "$J"
py 'd == {"server": "c", "draining": False, "replicas_on": 0}'
repvol server list --json > "$J"
py 'all(not s["draining"] for s in d)' 'all(s["capacity"] > 0 for s in d)'

repvol delete vol --json > "$J"
py 'd["volume"] == "vol"' 'd["deleted"] is True' \
   'sorted(d["replicas_deleted"]) == sorted(["'"${REPVOLD_ADDR[a]}"'", "'"${REPVOLD_ADDR[b]}"'"])' \
   'd["replicas_left"] == []'
repvol list --json > "$J"
py 'd == []'
rc=0; repvol delete vol --json > "$J" 2> "$T/err" || rc=$?
assert_eq "1 0" "$rc $(stat -c %s "$J")" "delete --json of an unknown volume: exit status and stdout bytes"
grep -q "unknown volume 'vol'" "$T/err" || fail "delete --json: no error on stderr"
