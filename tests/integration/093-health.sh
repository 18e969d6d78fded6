#!/bin/bash
# Volume health through a volume's life (health.h): list, status and
# their --json say the same at every step.  healthy after create and
# while attached; kill -9 of a replica server: "degraded 1/2" within a
# bound; written to while degraded, then the server restarted: the
# catch-up (slowed by --resync-rate) shows "resyncing P% eta S" with a
# percent and an eta; the server killed again mid-copy: degraded again;
# restarted: healthy.  A detached volume whose server the pool shows
# down is degraded too, and healthy once it is back.  An
# attach killed with -9: the attachment is "gone", with its last
# heartbeat; one of another host (--host) whose lease ran out, "stale".
# A replica pushed ahead of the registry's epoch: the next attach is
# fenced, health "fenced"; after 'repvol epoch --reset' and an attach it
# is healthy again.  A lazy restore: "restoring 0%" before it is
# attached, healthy once every chunk is in.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fencelib.sh"
require_cmd nbdcopy

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 64M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"

# health_of list|status VOL: "STATE|TEXT|IN_SYNC|REPLICAS|PERCENT|ETA"
# from that verb's --json.
health_of() {
    if [[ $1 == status ]]; then repvol status "$2" --json; else repvol list --json; fi | python3 -c '
import json, sys
d = json.load(sys.stdin)
v = [v for v in d if v["name"] == sys.argv[1]][0] if isinstance(d, list) else d
v = v["health"]
print("|".join(str(v[k]) for k in ("state", "text", "in_sync", "replicas", "percent", "eta_seconds")))' "$2"
}
# health VOL: the same, where list and status must agree (called where
# nothing changes between the two; polls use health_of list).
health() {
    local l s
    l=$(health_of list "$1")
    s=$(repvol status "$1" --json | python3 -c '
import json, sys
v = json.load(sys.stdin)["health"]
print("|".join(str(v[k]) for k in ("state", "text", "in_sync", "replicas", "percent", "eta_seconds")))')
    [[ $l == "$s" ]] || fail "list --json says health '$l', status --json '$s'"
    echo "$l"
}
is_health() { [[ $(health_of list "$1") == "$2"* ]]; }
text_shows() {   # text_shows VOL TEXT: the HEALTH column and status's line
    local t=$2
    grep -q "^$1 .* $t " <<<"$(repvol list)" || { repvol list >&2; fail "list's HEALTH column does not show '$t'"; }
    grep -qx "health: *$t" <<<"$(repvol status "$1")" || { repvol status "$1" >&2; fail "status does not show health '$t'"; }
}

assert_eq "healthy|healthy|2|2|None|None" "$(health vol)" "health after create"
text_shows vol healthy
start_attach vol "$T/nbd.sock" --resync-rate 4M
assert_eq "healthy|healthy|2|2|None|None" "$(health vol)" "health while attached"

# A replica server dies: the idle attach notices (test 028) and records it.
stop_repvold b KILL
wait_for is_health vol "degraded|degraded 1/2|1|2|None|None"
text_shows vol "degraded 1/2"

# 24 MiB written while degraded: at 4 MiB/s the catch-up takes seconds.
head -c 24M /dev/urandom > "$T/data"
nbdcopy --flush "$T/data" "$(nbd_uri "$T/nbd.sock")"
start_repvold b zone-b
seen=""
deadline=$(( $(date +%s) + 60 ))
while h=$(health_of list vol) && [[ $h != healthy* ]]; do
    if [[ $h == resyncing* && -z $seen ]]; then
        seen=$h
        IFS='|' read -r st text ins reps pct eta <<<"$h"
        [[ $pct =~ ^[0-9]+$ ]] && (( pct <= 100 )) || fail "resyncing without a percent: $h"
        [[ $eta =~ ^[0-9]+$ ]] || fail "resyncing without an eta: $h"
        [[ $text =~ ^resyncing\ [0-9]+%\ eta\ [0-9]+s$ ]] || fail "resyncing text '$text'"
        assert_eq "1 2" "$ins $reps" "in-sync replicas while resyncing"
        st=$(health_of status vol)
        [[ $st == resyncing* || $st == healthy* ]] || fail "list says '$h', status then '$st'"
        log "seen: $h"
        # The server dies again mid-copy: the catch-up's figures are
        # withdrawn, so the volume is degraded again, not resyncing still.
        stop_repvold b KILL
        wait_for is_health vol "degraded|degraded 1/2|1|2|None|None"
        start_repvold b zone-b
    fi
    (( $(date +%s) < deadline )) || fail "not healthy 60 s after the server came back (last: $h)"
    sleep 0.1
done
[[ -n $seen ]] || fail "the catch-up of 24 MiB at 4 MiB/s never showed as resyncing"
assert_eq "healthy|healthy|2|2|None|None" "$(health vol)" "health after the catch-up"

# The attach killed: the attachment is gone, since its last heartbeat.
kill_pid "${ATTACH_PID[vol]}" KILL
repvol list --json | python3 -c '
import json, sys, time
v = [v for v in json.load(sys.stdin) if v["name"] == "vol"][0]
assert v["attachment_state"] == "gone", v
assert 0 < time.time() - v["silent_since"] < 60, v
' || fail "list --json: the killed attach is not gone with a time"
grep -q "^vol .*(gone: the process exited; last heartbeat 20[0-9-]* [0-9:]* UTC)" <<<"$(repvol list)" ||
    { repvol list >&2; fail "list does not show the attach gone since its last heartbeat"; }
grep -q "^attachment: .*GONE: the process exited.*last heartbeat 20" <<<"$(repvol status vol)" ||
    fail "status does not show the attach gone since its last heartbeat"
# detach clears the stale attachment, and says it was not clean (exit 1).
rc=0; repvol detach vol --json > "$T/detach.json" 2>/dev/null || rc=$?
assert_eq 1 "$rc" "exit status of detach after the attach was killed"
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["detached"] is True and d["clean"] is False, d
assert "did not detach cleanly" in d["reason"], d' "$T/detach.json" || { cat "$T/detach.json" >&2; fail "detach --json of a gone attach"; }

# An attach "on another host" (--host) that dies: remote while its lease
# lasts, then stale, with the time its lease expired.
start_attach vol "$T/remote.sock" --host elsewhere --lease-ttl 3
assert_eq remote "$(repvol list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["attachment_state"])')" "an attach of another host"
kill_pid "${ATTACH_PID[vol]}" KILL
stale() { [[ $(repvol list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["attachment_state"])') == stale ]]; }
wait_for stale
grep -q "^vol .*elsewhere pid [0-9]* (stale: its lease expired 20[0-9-]* [0-9:]* UTC)" <<<"$(repvol list)" ||
    { repvol list >&2; fail "list does not show the attach stale since its lease expired"; }
start_attach vol "$T/nbd.sock"          # takes over: the lease expired
stop_attach vol

# A detached volume on a server of the pool: the pool's view counts.
start_repvold c zone-c --registry "$REPVOL_REGISTRY" --lease-ttl 2
start_repvold d zone-d --registry "$REPVOL_REGISTRY" --lease-ttl 2
wait_for server_is c up
wait_for server_is d up
repvol create pooled --size 8M --replica c --replica d
assert_eq "healthy|healthy|2|2|None|None" "$(health pooled)" "pooled volume after create"
stop_repvold d KILL
wait_for server_is d down
assert_eq "degraded|degraded 1/2|1|2|None|None" "$(health pooled)" "detached volume whose server is down"
start_repvold d zone-d --registry "$REPVOL_REGISTRY" --lease-ttl 2
wait_for server_is d up
assert_eq "healthy|healthy|2|2|None|None" "$(health pooled)" "detached volume once its server is back"

# Fenced: a replica ahead of the registry refuses the next attach.
E=$(repvol epoch vol --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["epoch"])')
push_epoch b vol $((E + 256))
start_bg "$T/refused.log" "$REPVOL" attach vol --nbd "unix:$T/refused.sock"
expect_fenced_exit "$BG_PID" "$T/refused.log" "fenced: replica ${REPVOLD_ADDR[b]}" "$T/refused.sock"
assert_eq "fenced|fenced|2|2|None|None" "$(health vol)" "health after a fenced attach"
text_shows vol fenced
wait_for repvol epoch vol --reset
start_attach vol "$T/nbd.sock"
wait_for is_health vol "healthy|healthy|2|2"
stop_attach vol

# Restoring: a lazy restore is restoring until every chunk is in.
repvol snapshot create vol --to "file://$T/snaps" --name s1 >/dev/null
repvol snapshot restore "file://$T/snaps" s1 r1 --replica c --replica d --lazy >/dev/null
assert_eq "restoring|restoring 0%|2|2|0|None" "$(health r1)" "health of a lazy restore not attached yet"
text_shows r1 "restoring 0%"
start_attach r1 "$T/r1.sock"
wait_for -t 60 is_health r1 "healthy|healthy|2|2|None|None"
stop_attach r1
