#!/bin/bash
# list and status tell a live attach from one whose process is gone:
# after kill -9 of the attach, "list" shows it as gone, "status" says
# GONE, and both --json forms say attachment_state "gone" (before:
# "running"); the next attach takes the volume over and it is running
# again.  list --json carries name, size, block size, replicas and the
# epoch the text table shows.
. "$(dirname "$0")/lib.sh"

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"

state() {   # state FIELD: from list --json and status --json, which must agree
    local l s
    l=$(repvol list --json | python3 -c 'import json,sys; print([v for v in json.load(sys.stdin) if v["name"] == "vol"][0][sys.argv[1]])' "$1")
    s=$(repvol status vol --json | python3 -c 'import json,sys; v=json.load(sys.stdin); v=v[0] if isinstance(v, list) else v; print(v[sys.argv[1]])' "$1")
    [[ $l == "$s" ]] || fail "list --json says $1 '$l', status --json '$s'"
    echo "$l"
}

assert_eq none "$(state attachment_state)" "state before any attach"
start_attach vol "$T/nbd.sock"
assert_eq running "$(state attachment_state)" "state while attached"
repvol list --json | python3 -c '
import json, sys
v = [v for v in json.load(sys.stdin) if v["name"] == "vol"][0]
assert v["size"] == 16 << 20 and v["block_size"] == 4096 and v["replicas"] == 2, v
assert v["attached"] is True and v["pid"] > 0 and v["epoch"] >= 1, v
' || fail "list --json fields"
epoch=$(repvol list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["epoch"])')
[[ $(repvol list --bytes | awk '$1 == "vol" {print $5}') == "$epoch" ]] || fail "the EPOCH column does not show $epoch"

kill_pid "${ATTACH_PID[vol]}" KILL
assert_eq gone "$(state attachment_state)" "state after kill -9 of the attach"
grep -q "^vol .*(gone: the process exited" <<<"$(repvol list)" || fail "list does not show the attach as gone"
repvol status vol | grep -q "^attachment: .*GONE: the process exited" || fail "status does not show the attach as gone"

start_attach vol "$T/nbd2.sock"
assert_eq running "$(state attachment_state)" "state after the takeover"
stop_attach vol
assert_eq none "$(state attachment_state)" "state after detach"
