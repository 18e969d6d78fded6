#!/bin/bash
# run-integration: alone (it stops and restarts the shared S3 gateway)
# 030: the s3:// object store against a real S3 server (radosgw), driven
# by build/tests/objtool: small, empty and 40 MiB (multipart) objects
# round-trip byte for byte; the multipart ETag proves 5 MiB parts; a
# listing of 1100 keys (more than one page); delete; HEAD/GET of a
# missing key is ENOENT; wrong secret, wrong key, missing bucket and
# missing credentials fail at open with the server's answer; credentials
# from a profile file work; the gateway stopped mid-upload gives an error
# after bounded retries and leaves no object; a request retrying while the
# gateway is down succeeds once it is back.
. "$(dirname "$0")/lib.sh"
require_s3
require_cmd python3 md5sum

OBJTOOL=$BUILD/tests/objtool
[[ -x $OBJTOOL ]] || fail "$OBJTOOL not built"
BUCKET=${S3_URL#s3://}
BUCKET=${BUCKET%%/*}
PFX=${S3_URL#"s3://$BUCKET/"}
obj() { "$OBJTOOL" "$S3_URL" "$@"; }
s3srv() { "$TOP/scripts/s3-server.sh" "$@"; }
sha() { sha256sum <"$1" | cut -d' ' -f1; }
# q STRING: STRING percent-encoded for a query (SigV4 wants '/' as %2F).
q() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe="-_.~"))' "$1"; }
# etag KEY: the ETag the server gives for KEY (quotes removed).
etag() {
    s3_curl HEAD "/$BUCKET/$PFX/$1" -I | tr -d '\r' |
        sed -n 's/^[Ee][Tt][Aa][Gg]: *"\(.*\)"$/\1/p'
}

log "store $S3_URL at $AWS_ENDPOINT_URL"

# --- small and empty objects
head -c 1000 /dev/urandom >small
obj put snapshots/small.json small
obj get snapshots/small.json small.out
assert_files_identical small small.out
assert_eq 1000 "$(obj head snapshots/small.json)" "HEAD size of small"
# A single PUT: the ETag is the plain MD5.
assert_eq "$(md5sum <small | cut -d' ' -f1)" "$(etag snapshots/small.json)" "ETag of small"
: >empty
obj put empty empty
obj get empty empty.out
assert_eq 0 "$(stat -c %s empty.out)" "size of the empty object read back"
assert_eq 0 "$(obj head empty)" "HEAD size of empty"

# --- 40 MiB with 5 MiB parts: a multipart upload of 8 parts
head -c 40M /dev/urandom >big
REPVOL_S3_PART_SIZE=5M obj put chunks/ab/big big
obj get chunks/ab/big big.out
assert_eq "$(sha big)" "$(sha big.out)" "sha256 of the 40 MiB object read back"
assert_eq $((40 << 20)) "$(obj head chunks/ab/big)" "HEAD size of big"
# S3's multipart ETag is md5(md5(part 1) .. md5(part N))-N: it pins both
# the part count and where every part boundary was.
want=$(python3 - big <<'EOF'
import hashlib, sys
d = open(sys.argv[1], "rb").read()
ps = 5 << 20
parts = [d[i:i + ps] for i in range(0, len(d), ps)]
print(hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
      + "-%d" % len(parts))
EOF
)
assert_eq "$want" "$(etag chunks/ab/big)" "multipart ETag of big"
# Nothing left half-done.
s3_curl GET "/$BUCKET?prefix=$(q "$PFX/")&uploads=" >uploads.xml
assert_eq 200 "$(cat "$T/s3_curl.code")" "status of list-uploads"
! grep -q '<UploadId>' uploads.xml || fail "multipart uploads left behind: $(cat uploads.xml)"

# --- 1100 keys: a listing over more than one page (S3 gives at most 1000)
obj putmany 1100 64
obj getmany 1100 64                     # all at once, every byte checked
obj list many/ >many.lst
assert_eq 1100 "$(wc -l <many.lst)" "keys listed under many/"
assert_eq "many/000000 64" "$(head -n1 many.lst | cut -d' ' -f1,2)" "first entry"
assert_eq "many/001099 64" "$(tail -n1 many.lst | cut -d' ' -f1,2)" "last entry"
[[ $(cut -d' ' -f1 many.lst | sort -u | wc -l) == 1100 ]] || fail "duplicate keys in the listing"
# Relative to the store's prefix, whole store.
obj list >all.lst
assert_eq 1103 "$(wc -l <all.lst)" "keys in the store"
grep -q "^chunks/ab/big $((40 << 20)) " all.lst || fail "chunks/ab/big missing from: $(grep -v many/ all.lst)"
# A sane modification time (within a day of now).
mtime=$(grep '^snapshots/small.json ' all.lst | cut -d' ' -f3)
(( mtime > $(date +%s) - 86400 && mtime < $(date +%s) + 86400 )) || fail "mtime $mtime"

# --- delete; missing keys
obj delete snapshots/small.json
expect_fail_match 'HEAD snapshots/small.json: HTTP 404.*\[ENOENT\]' obj head snapshots/small.json
expect_fail_match 'GET nosuch/key: HTTP 404 NoSuchKey.*\[ENOENT\]' obj get nosuch/key x.out
obj delete snapshots/small.json          # already gone: not an error
! grep -q '^snapshots/small.json ' <(obj list) || fail "deleted key still listed"

# --- refused at open, in the server's words
AWS_SECRET_ACCESS_KEY=wrong-secret expect_fail_match \
    'HTTP 403 SignatureDoesNotMatch.*credentials from environment' obj list
AWS_ACCESS_KEY_ID=NOSUCHKEY expect_fail_match 'HTTP 403 InvalidAccessKeyId' obj list
expect_fail_match 'HTTP 404 NoSuchBucket' "$OBJTOOL" "s3://no-such-bucket-$$/x" list
expect_fail_match "no AWS credentials.*$T/none \(not found\)" \
    env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY \
    AWS_SHARED_CREDENTIALS_FILE="$T/none" AWS_CONFIG_FILE="$T/none2" "$OBJTOOL" "$S3_URL" list
REPVOL_S3_PART_SIZE=1M expect_fail_match 'REPVOL_S3_PART_SIZE=1M: expected a size from 5 MiB' obj list

# --- credentials and endpoint from a profile in the shared files
cat >credentials <<EOF
[other]
aws_access_key_id = WRONG
aws_secret_access_key = WRONG
[repvol]
aws_access_key_id = $AWS_ACCESS_KEY_ID
aws_secret_access_key = $AWS_SECRET_ACCESS_KEY
EOF
cat >config <<EOF
[profile repvol]
region = $AWS_REGION
endpoint_url = $AWS_ENDPOINT_URL
EOF
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_ENDPOINT_URL -u AWS_REGION \
    AWS_PROFILE=repvol AWS_SHARED_CREDENTIALS_FILE="$T/credentials" AWS_CONFIG_FILE="$T/config" \
    "$OBJTOOL" "$S3_URL" get chunks/ab/big big.out2
assert_eq "$(sha big)" "$(sha big.out2)" "read back with profile credentials"

if [[ -z ${S3_STATE-} ]]; then
    log "NOTE: no S3 state dir (external server): gateway stop/restart cases not run"
    exit 0
fi

# --- the gateway stopped mid-upload: an error after bounded retries, and
# no object.  Parts go two at a time so the upload takes a while; if it
# still ends before the gateway is stopped, try again twice as large.
size=96
stopped=0
for try in 1 2 3; do
    head -c "${size}M" /dev/urandom >mid
    REPVOL_S3_PART_SIZE=5M REPVOL_S3_MAX_REQUESTS=2 REPVOL_S3_MAX_ATTEMPTS=3 \
        REPVOL_S3_RETRY_DELAY_MS=100 start_bg "$T/mid.log" "$OBJTOOL" "$S3_URL" put midway/obj mid
    pid=$BG_PID
    deadline=$(( $(date +%s) + 60 ))
    # Under way = the server lists the upload as in progress.
    midq=$(q "$PFX/midway/")
    until s3_curl GET "/$BUCKET?prefix=$midq&uploads=" | grep -q '<UploadId>'; do
        pid_alive "$pid" || break
        (( $(date +%s) < deadline )) || fail "upload of midway/obj never seen in progress"
        sleep 0.02
    done
    if pid_alive "$pid"; then
        s3srv stop-gateway "$S3_STATE"
        stopped=1
        break
    fi
    wait_exit "$pid" || fail "put of midway/obj failed with the gateway up: $(cat "$T/mid.log")"
    log "the $size MiB upload ended before the gateway stopped; again, larger"
    obj delete midway/obj
    size=$((size * 2))
done
if ((stopped)); then
    rc=0
    wait_exit "$pid" 120 || rc=$?
    ((rc != 124)) || fail "put still running 120 s after the gateway stopped (retries not bounded)"
    ((rc == 1)) || fail "put exited $rc with the gateway stopped: $(cat "$T/mid.log")"
    cat "$T/mid.log" >&2
    grep -Eq 'objtool: PUT midway/obj( \(part [0-9]+ of [0-9]+\)| \([a-z ]+ multipart upload\))?: .*\(after 3 attempts\)' "$T/mid.log" ||
        fail "unexpected error: $(cat "$T/mid.log")"
    s3srv start-gateway "$S3_STATE"
    # The abort could not reach the stopped gateway: abort by hand what
    # the error named, so the bucket is left clean.
    for id in $(s3_curl GET "/$BUCKET?prefix=$midq&uploads=" | grep -o '<UploadId>[^<]*' | sed 's/<UploadId>//'); do
        s3_curl DELETE "/$BUCKET/$PFX/midway/obj?uploadId=$(q "$id")" >/dev/null
        assert_eq 204 "$(cat "$T/s3_curl.code")" "status of aborting upload $id"
    done
    # Nothing half-written became visible.
    expect_fail_match '\[ENOENT\]' obj head midway/obj
    # And the same upload now goes through.
    REPVOL_S3_PART_SIZE=5M obj put midway/obj mid
    obj get midway/obj mid.out
    assert_eq "$(sha mid)" "$(sha mid.out)" "sha256 of midway/obj after the gateway restart"
else
    log "NOTE: every upload ended before the gateway could be stopped; mid-upload case not checked"
fi

# --- a request retrying while the gateway is down succeeds once it is
# back.  The store opens first (objtool then blocks on the FIFO), the
# gateway stops, the data is fed, and the gateway comes back only after
# the log shows a failed attempt: no race either way.
mkfifo fifo
head -c 12M /dev/urandom >retry
REPVOL_DEBUG=1 REPVOL_S3_PART_SIZE=5M REPVOL_S3_MAX_ATTEMPTS=40 REPVOL_S3_RETRY_DELAY_MS=100 \
    start_bg "$T/retry.log" "$OBJTOOL" "$S3_URL" put retry/obj fifo
pid=$BG_PID
wait_for -t 60 grep -q 'objtool: debug: .*bucket .* at ' "$T/retry.log"
s3srv stop-gateway "$S3_STATE"
cat retry >fifo
wait_for -t 60 grep -q 'attempt 1 failed.*retrying in' "$T/retry.log"
s3srv start-gateway "$S3_STATE"
rc=0
wait_exit "$pid" 120 || rc=$?
cat "$T/retry.log" >&2
((rc == 0)) || fail "put retrying across the gateway restart exited $rc"
obj get retry/obj retry.out
assert_eq "$(sha retry)" "$(sha retry.out)" "sha256 of retry/obj"

# --- clean up the prefix (the bucket is shared by every test)
obj list | cut -d' ' -f1 | xargs "$OBJTOOL" "$S3_URL" delete
assert_eq 0 "$(obj list | wc -l)" "keys left"
s3_curl GET "/$BUCKET?prefix=$(q "$PFX/")&uploads=" >uploads.xml
! grep -q '<UploadId>' uploads.xml || fail "multipart uploads left behind: $(cat uploads.xml)"
log "ok"
