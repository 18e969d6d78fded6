# Helpers for the epoch and fencing tests (060-064).  Source it after
# lib.sh:
#
#     . "$(dirname "$0")/lib.sh"
#     . "$(dirname "$0")/fencelib.sh"
#
# (Not a numbered test itself: tests/run-integration.sh runs only
# NNN-*.sh.)  It starts nothing by itself; every helper that finds
# something wrong calls fail.

# push_epoch SERVER VOL EPOCH: a data HELLO for VOL at EPOCH straight to
# replica server SERVER (a start_repvold name), which must welcome it:
# what another attachment, unknown to this registry, would present.
push_epoch() {
    if ! PYTHONPATH="$TOP/tests/tools" python3 - 127.0.0.1 "${REPVOLD_PORT[$1]}" "$2" "$3" <<'PY'
import sys
import rvproto
host, port, vol, epoch = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rvproto.connect(host, port, vol.encode(), epoch=epoch).close()
PY
    then
        fail "replica server $1 did not accept epoch $3 for $2"
    fi
}

# attach_epoch VOL: the epoch the attachment of VOL holds.
attach_epoch() {
    "$REPVOL" status "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["attachment"]["epoch"])'
}

# expect_fenced_exit PID LOG REGEX SOCK: the attach PID stops, fenced,
# with exit status 3 (bounded wait), its log LOG says why (extended
# REGEX), and its NBD socket SOCK is gone.
expect_fenced_exit() {
    local pid=$1 logf=$2 re=$3 sock=$4 rc=0
    wait_exit "$pid" 30 || rc=$?
    assert_eq 3 "$rc" "exit status of the fenced attach $pid"
    grep -Eq -- "$re" "$logf" || { cat "$logf" >&2; fail "the fenced attach does not say why: /$re/"; }
    [[ ! -e $sock ]] || fail "the fenced attach left its NBD socket $sock"
}

# expect_status_fenced VOL REGEX: "repvol status VOL" shows no
# attachment, and a fenced line matching the extended REGEX (after
# "fenced: ").
expect_status_fenced() {
    "$REPVOL" status "$1" > "$T/status"
    grep -q "^attachment:  none" "$T/status" || { cat "$T/status" >&2; fail "status shows $1 attached"; }
    grep -Eq "^fenced: +$2" "$T/status" || { cat "$T/status" >&2; fail "status does not show the attach fenced: /$2/"; }
}
