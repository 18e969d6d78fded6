#!/bin/bash
# run-integration: alone (it stops and restarts the shared S3 gateway)
# Snapshots to S3 (a real RADOS Gateway on loopback; skipped when
# tests/run-integration.sh could not start one), each under a fresh
# prefix:
#  - round trip: a full and an incremental snapshot, the object layout
#    (chunks/HH/HASH, snapshots/NAME.json), list with the parent, full
#    restores byte-identical;
#  - a wrong secret key, or an unknown key id: create (of a detached and
#    of an attached volume) and list fail with the server's error code
#    (SignatureDoesNotMatch / InvalidAccessKeyId), and nothing is listed;
#  - the gateway stopped while a 256 MiB snapshot uploads (progress shows
#    chunks_done > 0; REPVOL_S3_MAX_ATTEMPTS=2): create fails cleanly
#    within a bound, list does not show it; gateway restarted, the same
#    name is created again and restores identical;
#  - a chunk object re-PUT with other bytes (a valid zstd frame): restore
#    fails naming chunks/HH/HASH, and the target's replicas do not hold
#    the forged bytes.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/integration/snaplib.sh"
snap_require
require_s3
snap_require_s3
require_cmd zstd
S3_SERVER=${S3_SERVER:-$TOP/scripts/s3-server.sh}
log "S3: $S3_URL at $AWS_ENDPOINT_URL"

snap_servers
new_vol vol 32M
head -c 32M /dev/urandom > "$T/img1"
vol_write vol "$T/img1"

# --- round trip ------------------------------------------------------------
snap_create vol "$S3_URL" s1
assert_eq "" "$(snap_done s1 parent)" "parent of s1"
assert_eq 32 "$(s3_chunks)" "chunk objects after s1"
bad=$(s3_keys "$S3_PREFIX/chunks/" | sed "s|^$S3_PREFIX/||" | grep -Ev '^chunks/([0-9a-f]{2})/\1[0-9a-f]{62}$' | head -n 3 || true)
[[ -z $bad ]] || fail "chunk objects not at chunks/HH/HASH: $bad"
mkdir -p "$T/man/snapshots"
s3_req GET "$S3_PREFIX/snapshots/s1.json" > "$T/man/snapshots/s1.json" || fail "no snapshots/s1.json in S3"
assert_eq 32 "$(python3 "$SNAPJSON" manifest "$T/man" s1 entries)" "manifest entries of s1"

ranges=($((2 * MiB)):4096 $((17 * MiB + 65536)):8192 $((31 * MiB)):4096)
head -c 32M /dev/urandom > "$T/rand"
cp "$T/img1" "$T/img2"
patch_ranges "$T/rand" "$T/img2" "${ranges[@]}"
start_attach vol "$T/vol.sock"
python3 "$NBDRANGE" write "$T/vol.sock" "$T/img2" "${ranges[@]}" || fail "writes for s2 failed"
snap_create vol "$S3_URL" s2
stop_attach vol
assert_eq s1 "$(snap_done s2 parent)" "parent of s2"
up2=$(snap_done s2 bytes_uploaded)
((up2 <= 3 * MiB + 256 * 1024)) || fail "s2 uploaded $up2 bytes for 3 changed chunks"
assert_eq 35 "$(s3_chunks)" "chunk objects after s2"
snap_list_json "$S3_URL" "$T/list.json"
assert_eq "s1
s2" "$(python3 "$SNAPJSON" list "$T/list.json")" "snapshot list"
assert_eq s1 "$(python3 "$SNAPJSON" list "$T/list.json" s2 parent)" "s2's parent in the list"
snap_restore "$S3_URL" s1 r1
snap_restore "$S3_URL" s2 r2
vol_equals r1 "$T/img1"
vol_equals r2 "$T/img2"

# --- bad credentials -----------------------------------------------------------
AWS_SECRET_ACCESS_KEY=wrong-$AWS_SECRET_ACCESS_KEY expect_fail_match 'SignatureDoesNotMatch|InvalidAccessKeyId' \
    repvol snapshot create vol --to "$S3_URL" --name badkey
AWS_ACCESS_KEY_ID=NOSUCHKEY$RANDOM expect_fail_match 'InvalidAccessKeyId|SignatureDoesNotMatch' \
    repvol snapshot create vol --to "$S3_URL" --name badid
# Of an attached volume too: the store settings are the caller's.
start_attach vol "$T/vol.sock"
AWS_SECRET_ACCESS_KEY=wrong-$AWS_SECRET_ACCESS_KEY expect_fail_match 'SignatureDoesNotMatch|InvalidAccessKeyId' \
    repvol snapshot create vol --to "$S3_URL" --name badlive
stop_attach vol
AWS_SECRET_ACCESS_KEY=wrong-$AWS_SECRET_ACCESS_KEY expect_fail_match 'SignatureDoesNotMatch|InvalidAccessKeyId' \
    repvol snapshot list "$S3_URL"
assert_eq "s1 s2" "$(snap_names "$S3_URL")" "snapshots after the refused creates"

# --- corrupt chunk -------------------------------------------------------------
k=$(chunk_key_of "$T/man" s1 6)
s3_req GET "$S3_PREFIX/$k" > "$T/orig6" || fail "cannot GET $k"
head -c 1M /dev/urandom > "$T/forged"
zstd -q -c "$T/forged" > "$T/forged.zst"
s3_req PUT "$S3_PREFIX/$k" -T "$T/forged.zst" > /dev/null || fail "cannot re-PUT $k"
expect_fail_match "$k" repvol snapshot restore "$S3_URL" s1 bad1 "${REPLICAS[@]}"
for s in a b; do
    f=${REPVOLD_DIR[$s]}/bad1.data
    [[ -f $f ]] || continue
    cmp -s <(tail -c +$((6 * MiB + 1)) "$f" | head -c $MiB) "$T/forged" &&
        fail "replica $s of bad1 holds the forged chunk's bytes"
done
s3_req PUT "$S3_PREFIX/$k" -T "$T/orig6" > /dev/null || fail "cannot put $k back"
snap_restore "$S3_URL" s1 r1b
vol_equals r1b "$T/img1"

# --- the gateway goes away mid-upload ------------------------------------------
[[ -n ${REPVOL_TEST_S3_STATE-} && -x $S3_SERVER ]] ||
    skip "cannot stop the gateway (REPVOL_TEST_S3_STATE unset or no $S3_SERVER); the rest passed"
# On any exit from here, the gateway must be running again for later tests.
gateway_down=0
restart_gateway() {
    if ((gateway_down)); then
        "$S3_SERVER" start-gateway "$REPVOL_TEST_S3_STATE" || log "WARNING: could not restart the gateway"
        gateway_down=0
    fi
}
_s3_exit() {
    local rc=$?
    restart_gateway
    (exit "$rc")
    _lib_cleanup
}
trap _s3_exit EXIT

new_vol big 256M
head -c 256M /dev/urandom > "$T/big"
vol_write big "$T/big"
URL2=$S3_URL-big
out=$T/snap-m1-try1.jsonl
REPVOL_S3_MAX_ATTEMPTS=2 "$REPVOL" snapshot create big --to "$URL2" --name m1 --json > "$out" 2> "$T/m1.err" &
cpid=$!
PIDS+=("$cpid")
progress_started() {
    python3 - "$out" <<'EOF'
import json, sys
for l in open(sys.argv[1]):
    try:
        e = json.loads(l)
    except ValueError:
        continue
    if e.get("event") == "progress" and e.get("chunks_done", 0) > 0:
        sys.exit(0)
    if e.get("event") == "done":
        sys.exit(0)
sys.exit(1)
EOF
}
wait_for -t 120 progress_started
if grep -q '"done"' "$out"; then
    wait_exit "$cpid" 10 || true
    skip "the 256 MiB upload finished before the gateway could be stopped; the rest passed"
fi
gateway_down=1
"$S3_SERVER" stop-gateway "$REPVOL_TEST_S3_STATE" || fail "stop-gateway failed"
rc=0
wait_exit "$cpid" 300 || rc=$?
((rc != 124)) || fail "snapshot create still running 300 s after the gateway stopped"
if ((rc == 0)); then
    restart_gateway
    skip "the upload completed while the gateway was stopping; the rest passed"
fi
((rc < 128)) || fail "snapshot create died by a signal ($rc)"
log "create failed as expected (exit $rc): $(tail -n 1 "$T/m1.err")"
[[ -s $T/m1.err ]] || fail "the failed create printed no error"
! grep -q '"event":"done"' "$out" || fail "the failed create printed a done line"
restart_gateway
names=$(snap_names "$URL2")
[[ " $names " != *" m1 "* ]] || fail "the failed snapshot m1 is listed: $names"
snap_create big "$URL2" m1
assert_eq m1 "$(snap_names "$URL2")" "snapshots after the retry"
snap_restore "$URL2" m1 rbig
vol_equals rbig "$T/big"
log "ok"
