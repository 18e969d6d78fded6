#!/bin/bash
# Point in time: pitwriter keeps 8 numbered 4 KiB writes in flight over
# the NBD socket while "snapshot create --json" runs against the attached
# volume, and goes on writing after the command announces its point,
# until the command has finished uploading.  The
# restored snapshot must hold, for every block, a write no older than the
# last one acknowledged before the command started and no newer than the
# last one submitted before the point was announced (pitwriter check; its
# selftest first, so the checker cannot pass vacuously).  Runs ROUNDS
# times (default 2, at most 4), each round on its own 8 MiB of the volume;
# from the second on the snapshot is incremental, and the regions of the
# earlier rounds (not written during it) must restore as they were.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/integration/snaplib.sh"
snap_require
ROUNDS=${ROUNDS:-2}
((ROUNDS >= 1 && ROUNDS <= 4)) || fail "ROUNDS must be 1 to 4"

python3 "$PITWRITER" selftest || fail "pitwriter selftest failed"

snap_servers
# 32 MiB volume in 64 KiB chunks; round r writes blocks 2048(r-1) to
# 2048r-1 (8 MiB, 128 chunks), so that most blocks are written several
# times, and the chunks the snapshot has not read yet when the point is
# taken are many more than an upload keeps in flight (so writes during
# the upload must wait for, or copy, the point's data).
new_vol vol 32M --chunk-size 64K
STORE=$T/store
mkdir -p "$STORE"
URL=$(file_url "$STORE")
start_attach vol "$T/vol.sock"

for ((r = 1; r <= ROUNDS; r++)); do
    python3 "$PITWRITER" write "$T/vol.sock" "$T/pw-$r.json" \
        --qd 8 --blocks 2048 --first-block $((2048 * (r - 1))) --trigger-after 3000 --after-point 3000 --until-done --cmd-timeout 120 \
        -- "$REPVOL" snapshot create vol --to "$URL" --name "p$r" --json > "$T/pw-$r.out" 2>&1 ||
        { cat "$T/pw-$r.out" >&2; fail "round $r: pitwriter write (or the snapshot command) failed"; }
    cat "$T/pw-$r.out" >&2
    # The command's own output, as snap_create would check it.
    python3 - "$T/pw-$r.json" "$T/snap-p$r.jsonl" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
open(sys.argv[2], "w").write("".join(l + "\n" for l in d["cmd_stdout"]))
EOF
    python3 "$SNAPJSON" events "$T/snap-p$r.jsonl" "p$r" >/dev/null || fail "round $r: bad --json output"

    # The test proves something only if writes went on around the point:
    # some acknowledged before t0, some submitted after the point.
    read -r before after during errors < <(python3 - "$T/pw-$r.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
t0, tp, te = d["t0"], d["t_point_seen"], d["t_cmd_eof"]
w = d["writes"]
print(sum(1 for x in w if x[3] is not None and x[3] < t0 and x[4] == 0),
      sum(1 for x in w if x[2] >= tp),
      sum(1 for x in w if x[2] >= tp and te is not None and x[2] < te),
      sum(1 for x in w if x[4]))
EOF
)
    log "round $r: $before writes acked before t0, $after submitted after the point ($during while the upload ran), $errors errors"
    assert_eq 0 "$errors" "round $r: writes that failed"
    ((before >= 1000)) || fail "round $r: only $before writes acknowledged before the snapshot started"
    ((after >= 3000)) || fail "round $r: only $after writes submitted after the point"
    # ... and during the upload, so that the snapshot had to keep the
    # point's data while the volume changed under it.
    ((during > 0)) || fail "round $r: no write was submitted while the upload ran"

    snap_restore "$URL" "p$r" "rp$r"
    vol_read "rp$r" "$T/rp$r.img"
    python3 "$PITWRITER" check "$T/pw-$r.json" "$T/rp$r.img" > "$T/check-$r.out" ||
        { cat "$T/check-$r.out" >&2; fail "round $r: the snapshot is not one point in time"; }
    cat "$T/check-$r.out" >&2
    # Non-vacuous: the snapshot holds older data for blocks overwritten
    # after the point (so it is not simply the final state), and the live
    # volume does hold those newer writes.
    over=$(python3 -c 'import json,sys; l=open(sys.argv[1]).readline(); print(json.loads(l[l.index("{"):l.index("};")+1])["overwritten_after_point"])' "$T/check-$r.out")
    ((over > 0)) || fail "round $r: no block of the snapshot was overwritten after the point"
    nbdcopy "$(nbd_uri "$T/vol.sock")" "$T/live-$r.img"
    python3 - "$T/pw-$r.json" <<'EOF' > "$T/pw-$r-final.json"
import json, sys
d = json.load(open(sys.argv[1]))
d["t0"] = d["t_point_seen"] = 1e300      # everything was acked and submitted by now
print(json.dumps(d))
EOF
    python3 "$PITWRITER" check "$T/pw-$r-final.json" "$T/live-$r.img" --quiet > /dev/null ||
        fail "round $r: the live volume lacks acknowledged writes"
    cmp -s "$T/live-$r.img" "$T/rp$r.img" && fail "round $r: snapshot equals the final state"
    # The earlier rounds' regions were not written since: as they were.
    if ((r > 1)); then
        n=$(( (r - 1) * 8 * MiB ))
        cmp -n "$n" "$T/live-$((r - 1)).img" "$T/rp$r.img" ||
            fail "round $r: the regions of earlier rounds differ from what the volume held"
    fi
    # Nothing beyond the rounds' regions was written.
    cmp -s <(tail -c +$((r * 8 * MiB + 1)) "$T/rp$r.img") <(head -c $(((4 - r) * 8 * MiB)) /dev/zero) ||
        fail "round $r: data beyond the written regions"
done
assert_eq "" "$(snap_done p1 parent)" "parent of p1"
((ROUNDS < 2)) || assert_eq p1 "$(snap_done p2 parent)" "parent of p2"
stop_attach vol
log "ok"
