# Helpers for the snapshot tests (040-049).  Source it after lib.sh:
#
#     . "$(dirname "$0")/lib.sh"
#     . "$(dirname "$0")/snaplib.sh"
#
# (Not a numbered test itself: tests/run-integration.sh runs only
# NNN-*.sh.)  It starts nothing by itself.  Every helper that fails calls
# fail; a misbehaving snapshot verb is a failure, never a skip.

# shellcheck disable=SC2034
TOOLS=$TOP/tests/tools
PITWRITER=$TOOLS/pitwriter.py
NBDRANGE=$TOOLS/nbdrange.py
SNAPJSON=$TOOLS/snapjson.py
MiB=$((1 << 20))

snap_require() {
    require_cmd nbdcopy nbdinfo python3 cmp sha256sum
}

# snap_servers: replica servers a (zone-a) and b (zone-b).
snap_servers() {
    start_repvold a zone-a
    start_repvold b zone-b
    REPLICAS=(--replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}")
}

# new_vol VOL SIZE [ARGS...]: repvol create on servers a and b.
new_vol() {
    local vol=$1 size=$2
    shift 2
    repvol create "$vol" --size "$size" "${REPLICAS[@]}" "$@" ||
        fail "repvol create $vol failed"
}

# file_url DIR: the file:// URL of an absolute directory.
file_url() { printf 'file://%s' "$1"; }

# snap_create VOL URL NAME [ARGS...]: "repvol snapshot create --json",
# which must exit 0 and print a well-formed event stream (point first,
# done last, both naming NAME).  Output in $T/snap-NAME.jsonl; the done
# line in $SNAP_DONE.
snap_create() {
    local vol=$1 url=$2 name=$3 rc=0
    shift 3
    local out=$T/snap-$name.jsonl err=$T/snap-$name.err
    repvol snapshot create "$vol" --to "$url" --name "$name" --json "$@" >"$out" 2>"$err" || rc=$?
    if ((rc != 0)); then
        tail -n 5 "$out" "$err" >&2
        fail "snapshot create $vol --name $name exited $rc: $(tail -n 1 "$err")"
    fi
    SNAP_DONE=$(python3 "$SNAPJSON" events "$out" "$name") ||
        fail "snapshot create $vol --name $name: bad --json output (above)"
    log "snapshot $name: $SNAP_DONE"
}

# snap_done NAME KEY: a field of snapshot NAME's done line.
snap_done() { python3 "$SNAPJSON" done "$T/snap-$1.jsonl" "$2"; }

# snap_restore URL NAME NEWVOL [ARGS...]: restore to a new volume on a and b;
# must exit 0.
snap_restore() {
    local url=$1 name=$2 vol=$3 rc=0
    shift 3
    repvol snapshot restore "$url" "$name" "$vol" "${REPLICAS[@]}" "$@" \
        >"$T/restore-$vol.out" 2>"$T/restore-$vol.err" || rc=$?
    if ((rc != 0)); then
        tail -n 5 "$T/restore-$vol.out" "$T/restore-$vol.err" >&2
        fail "snapshot restore $name to $vol exited $rc: $(tail -n 1 "$T/restore-$vol.err")"
    fi
}

# snap_list_json URL OUT: "snapshot list URL --json" into OUT (must exit 0).
snap_list_json() {
    repvol snapshot list "$1" --json >"$2" || fail "snapshot list $1 failed"
}

# snap_names URL: the snapshot names "snapshot list --json" shows, sorted,
# on one line.
snap_names() {
    snap_list_json "$1" "$T/list.json"
    python3 "$SNAPJSON" list "$T/list.json" | tr '\n' ' ' | sed 's/ $//'
}

# vol_read VOL OUT: attach VOL, copy the whole device into OUT, detach.
vol_read() {
    start_attach "$1" "$T/$1.sock"
    nbdcopy "$(nbd_uri "$T/$1.sock")" "$2" || fail "nbdcopy from $1 failed"
    stop_attach "$1"
}

# vol_write VOL SRC: attach VOL, nbdcopy SRC over the whole device (holes
# in SRC are skipped: the volume must be fresh), flush, detach.
vol_write() {
    start_attach "$1" "$T/$1.sock"
    nbdcopy --flush --destination-is-zero "$2" "$(nbd_uri "$T/$1.sock")" ||
        fail "nbdcopy into $1 failed"
    stop_attach "$1"
}

# vol_equals VOL IMAGE: VOL reads back byte-identical to IMAGE.
vol_equals() {
    vol_read "$1" "$T/$1.readback"
    assert_files_identical "$2" "$T/$1.readback"
    rm -f "$T/$1.readback"
}

# patch_ranges SRC DST RANGE...: copy SRC's bytes at each OFF:LEN into
# the local image DST (the expected image after nbdrange.py write).
patch_ranges() {
    python3 - "$@" <<'EOF'
import sys
src, dst, rl = sys.argv[1], sys.argv[2], sys.argv[3:]
if len(rl) == 1 and rl[0].startswith("@"):
    rl = [l.strip() for l in open(rl[0][1:]) if l.strip()]
with open(src, "rb") as s, open(dst, "r+b") as d:
    for r in rl:
        off, ln = (int(x, 0) for x in r.split(":"))
        s.seek(off); d.seek(off); d.write(s.read(ln))
EOF
}

# store_chunks DIR: how many chunk objects a file:// store holds.
store_chunks() {
    if [[ -d $1/chunks ]]; then find "$1/chunks" -type f | wc -l; else echo 0; fi
}

# store_check_layout DIR: every chunk object sits at chunks/HH/HASH (64
# hex digits, HH its first two); no inprogress marker is left.
store_check_layout() {
    local bad
    bad=$(cd "$1" && find chunks -type f 2>/dev/null |
        grep -Ev '^chunks/([0-9a-f]{2})/\1[0-9a-f]{62}$' | head -n 3 || true)
    [[ -z $bad ]] || fail "chunk objects not at chunks/HH/HASH: $bad"
    if [[ -d $1/inprogress ]] && [[ -n $(ls -A "$1/inprogress") ]]; then
        fail "inprogress markers left behind: $(ls -A "$1/inprogress")"
    fi
}

# manifest_hashes DIR NAME: the unique chunk hashes of a manifest.
manifest_hashes() { python3 "$SNAPJSON" manifest "$1" "$2" hashes; }

# json_status_restore VOL [KEY]: exit 1 when "repvol status VOL --json"
# has no "restore" key; else print it (or its KEY).
status_restore() {
    repvol status "$1" --json >"$T/status-$1.json" 2>/dev/null || return 2
    python3 "$SNAPJSON" restore "$T/status-$1.json" ${2+"$2"}
}

# chunk_image SIZE_MIB OUT: an image whose every 4 KiB block is different
# (its number, repeated) and that compresses well: fast to make and to
# upload, with no zero chunk, and a block in the wrong place shows.
chunk_image() {
    python3 - "$1" "$2" <<'EOF'
import struct, sys
n, out = int(sys.argv[1]), sys.argv[2]
with open(out, "wb") as f:
    for b in range(n * 256):
        f.write(struct.pack("<QQ", 0x5245505643484e4b, b + 1) * 256)
EOF
}

# chunk_key_of DIR NAME INDEX: the object key (chunks/HH/HASH) of chunk
# INDEX in snapshot NAME's manifest.
chunk_key_of() {
    python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
m = json.load(open("%s/snapshots/%s.json" % (sys.argv[1], sys.argv[2])))
for i, h in m["chunks"]:
    if i == int(sys.argv[3]):
        print("chunks/%s/%s" % (h[:2], h))
        break
else:
    sys.exit("chunk %s not in the manifest" % sys.argv[3])
EOF
}

# wait_hydrated VOL [SECS]: poll "repvol status VOL --json" until it has no
# "restore" key (default bound 120 s); fail at once if the restore state
# is "failed".
wait_hydrated() {
    local vol=$1 bound=${2:-120} deadline st
    deadline=$(( $(date +%s%N) + bound * 1000000000 ))
    while true; do
        if st=$(status_restore "$vol" state); then
            [[ $st != failed ]] ||
                fail "restore of $vol failed: $(status_restore "$vol" error || true)"
        elif (($? == 1)); then
            return 0
        fi
        (( $(date +%s%N) < deadline )) || fail "$vol not hydrated after ${bound}s: $(status_restore "$vol" || true)"
        sleep 0.05
    done
}

# ---------------------------------------------------------------------------
# S3 (045): the environment comes from tests/run-integration.sh, which
# starts scripts/s3-server.sh when it can.

# snap_require_s3: skip unless an S3 server is configured and answers;
# sets S3_URL (a fresh prefix under $REPVOL_TEST_S3_URL for this test),
# S3_BUCKET and S3_PREFIX.
snap_require_s3() {
    if declare -F require_s3 >/dev/null; then
        require_s3
    fi
    [[ -n ${REPVOL_TEST_S3_URL-} ]] || skip "no S3 server (REPVOL_TEST_S3_URL unset)"
    [[ -n ${AWS_ENDPOINT_URL-} && -n ${AWS_ACCESS_KEY_ID-} && -n ${AWS_SECRET_ACCESS_KEY-} ]] ||
        skip "no S3 endpoint or credentials in the environment"
    require_cmd curl
    curl -s -o /dev/null --max-time 10 "$AWS_ENDPOINT_URL/" ||
        skip "the S3 endpoint $AWS_ENDPOINT_URL does not answer"
    local rest=${REPVOL_TEST_S3_URL#s3://}
    S3_BUCKET=${rest%%/*}
    S3_PREFIX=${rest#"$S3_BUCKET"}
    S3_PREFIX=${S3_PREFIX#/}
    S3_PREFIX=${S3_PREFIX%/}${S3_PREFIX:+/}$TEST_NAME-$$-$RANDOM
    S3_URL=s3://$S3_BUCKET/$S3_PREFIX
}

# s3_req METHOD KEY [CURL ARGS...]: a signed request for KEY (path style),
# the body on stdout; fails on an HTTP error.
s3_req() {
    local method=$1 key=$2
    shift 2
    curl -sS --fail-with-body --max-time 60 \
        --aws-sigv4 "aws:amz:${AWS_REGION:-us-east-1}:s3" \
        --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
        -X "$method" "$@" "${AWS_ENDPOINT_URL%/}/$S3_BUCKET/$key"
}

# s3_keys PREFIX: every key under PREFIX (relative to the bucket), sorted.
# (The query is built by hand, sorted and percent-encoded, because curl's
# --aws-sigv4 signs it as given.)
s3_keys() {
    local token="" out q
    while true; do
        q=$(python3 -c 'import sys, urllib.parse as u
p = [("list-type", "2"), ("prefix", sys.argv[1])] + ([("continuation-token", sys.argv[2])] if sys.argv[2] else [])
print("&".join("%s=%s" % (k, u.quote(v, safe="-_.~")) for k, v in sorted(p)))' "$1" "$token")
        out=$(curl -sS --fail-with-body --max-time 60 \
            --aws-sigv4 "aws:amz:${AWS_REGION:-us-east-1}:s3" \
            --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
            "${AWS_ENDPOINT_URL%/}/$S3_BUCKET?$q") ||
            fail "listing s3://$S3_BUCKET/$1 failed: $out"
        token=$(python3 -c '
import sys, xml.etree.ElementTree as ET
r = ET.fromstring(sys.stdin.read())
ns = r.tag[:r.tag.index("}") + 1] if r.tag.startswith("{") else ""
for c in r.iter(ns + "Contents"):
    print("K", c.find(ns + "Key").text)
t = r.find(ns + "NextContinuationToken")
tr = r.find(ns + "IsTruncated")
print("T", t.text if t is not None and tr is not None and tr.text == "true" else "")
' <<<"$out")
        grep '^K ' <<<"$token" | cut -c3- || true
        token=$(grep '^T ' <<<"$token" | cut -c3-)
        [[ -n $token ]] || break
    done | sort
}

# s3_chunks: how many chunk objects the test's prefix holds.
s3_chunks() { s3_keys "$S3_PREFIX/chunks/" | grep -c . || true; }
