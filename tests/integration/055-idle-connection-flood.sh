#!/bin/bash
# 500 idle connections to each replica server (from 127.0.0.2, half of them
# after HELLO, half without a word) do not lock out a new create, attach
# and status from another address: the server keeps its per-address limit
# (256 by default) and refuses the rest at once, and the real work
# succeeds, with the data read back intact, while the flood is held.  Then
# a server at its total limit (--max-connections 64, held by pinging
# connections): a create is refused with a clear error while the limit is
# full, and once the flood stops pinging the idle timeout frees the places
# and the same create, an attach and its data work.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy python3

flood() {  # flood NAME PORT [connflood ARGS...]: in the background
    local name=$1 port=$2
    shift 2
    mkdir -p "$T/$name"
    start_bg "$T/$name.log" python3 "$TOP/tests/tools/connflood.py" \
        127.0.0.1 "$port" "$T/$name" --from 127.0.0.2 "$@"
    FLOOD_PID[$name]=$BG_PID
}
declare -A FLOOD_PID=()

# wait_flood NAME FILE [SECS]: until flood NAME has written STATE_DIR/FILE.
wait_flood() { wait_written "$T/$1/$2" "${FLOOD_PID[$1]}" "${3:-$WAIT_TIMEOUT}"; }

# Timeouts long enough that only the limit decides what the flood keeps
# while the work runs (the idle timeout is the second part's).
start_repvold a zone-a --idle-timeout 600 --stall-timeout 600
start_repvold b zone-b --idle-timeout 600 --stall-timeout 600

log "flooding both servers with 500 connections each from 127.0.0.2"
flood fa "${REPVOLD_PORT[a]}" --count 500 --hello 2 --expect-open 256
flood fb "${REPVOLD_PORT[b]}" --count 500 --hello 2 --expect-open 256
wait_flood fa opened 60
wait_flood fb opened 60
log "a: $(cat "$T/fa/opened"); b: $(cat "$T/fb/opened")"
assert_eq "open=256 closed=244 welcomed=128" "$(cat "$T/fa/opened")" "flood on a"
assert_eq "open=256 closed=244 welcomed=128" "$(cat "$T/fb/opened")" "flood on b"

# The real work, from 127.0.0.1, while the flood holds its 256 places.
repvol create vol --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
uri=$(nbd_uri "$T/nbd.sock")
head -c 16M /dev/urandom >"$T/src"
nbdcopy --flush "$T/src" "$uri"
nbdcopy "$uri" "$T/back"
assert_files_identical "$T/src" "$T/back"
repvol status vol >"$T/status.txt"
grep -q "in-sync" "$T/status.txt" || { cat "$T/status.txt" >&2; fail "status does not show the replicas in sync"; }

# ...and the flood was held all along: nothing it had was closed.
touch "$T/fa/check" "$T/fb/check"
wait_flood fa checked
wait_flood fb checked
assert_eq "open=256" "$(cat "$T/fa/checked")" "flood on a after the work"
assert_eq "open=256" "$(cat "$T/fb/checked")" "flood on b after the work"

# 488 refusals, but only a line or two about them.
n=$(grep -c "refused a connection from 127.0.0.2" "$T/repvold-a.log" || true)
((n >= 1 && n <= 2)) || fail "$n refusal lines in repvold a's log (want 1 or 2)"

stop_attach vol
assert_files_identical "$T/src" "${REPVOLD_DIR[a]}/vol.data"
assert_files_identical "$T/src" "${REPVOLD_DIR[b]}/vol.data"
kill_pid "${FLOOD_PID[fa]}"
kill_pid "${FLOOD_PID[fb]}"

log "a server at its total limit: refused while full, served once idle ones time out"
start_repvold c --max-connections 64 --idle-timeout 3
flood fc "${REPVOLD_PORT[c]}" --count 500 --hello 1 --expect-open 64 \
    --ping-until "$T/fc/stop" --wait-closed 30
wait_flood fc opened 60
assert_eq "open=64 closed=436 welcomed=64" "$(cat "$T/fc/opened")" "flood on c"
expect_fail_match "connection limit" \
    repvol create small --size 4M --replica "${REPVOLD_ADDR[c]}"
touch "$T/fc/stop"
wait_flood fc closed 30
log "the server closed the flood's idle connections: $(cat "$T/fc/closed")"
wait_for -t 10 repvol create small --size 4M --replica "${REPVOLD_ADDR[c]}"
start_attach small "$T/small.sock"
head -c 4M /dev/urandom >"$T/small.src"
nbdcopy --flush "$T/small.src" "$(nbd_uri "$T/small.sock")"
nbdcopy "$(nbd_uri "$T/small.sock")" "$T/small.back"
assert_files_identical "$T/small.src" "$T/small.back"
stop_attach small
assert_files_identical "$T/small.src" "${REPVOLD_DIR[c]}/small.data"
for s in a b c; do
    pid_alive "${REPVOLD_PID[$s]}" || fail "repvold $s died"
done
log "ok"
