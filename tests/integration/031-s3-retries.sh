#!/bin/bash
# 031: the s3 store's retry policy and its distrust of what a server
# sends, against tests/tools/fakes3.py (a fake S3 that injects faults and
# counts requests): 503 and 429 are retried and then succeed; 500 is
# tried exactly REPVOL_S3_MAX_ATTEMPTS times; 400 and 404 are not
# retried; errors carry the S3 code and message; listings that are cut
# off, loop on one continuation token, promise a token and give none,
# carry odd XML entities or a bad Size give an error or the right keys,
# never a crash (the ASAN run of this test checks the bounds); a wakeup
# from another thread ends a poll without a timeout.
. "$(dirname "$0")/lib.sh"
require_cmd python3 curl

OBJTOOL=$BUILD/tests/objtool
[[ -x $OBJTOOL ]] || fail "$OBJTOOL not built"
start_bg "$T/fakes3.log" python3 "$TOP/tests/tools/fakes3.py" "$T/port"
wait_for test -s "$T/port"
PORT=$(<"$T/port")
unset AWS_SESSION_TOKEN AWS_ENDPOINT_URL_S3 AWS_PROFILE AWS_DEFAULT_REGION
export AWS_ACCESS_KEY_ID=fakekey AWS_SECRET_ACCESS_KEY=fakesecret AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
export AWS_SHARED_CREDENTIALS_FILE=$T/none AWS_CONFIG_FILE=$T/none
export REPVOL_S3_RETRY_DELAY_MS=10
U=s3://fake-bucket/t
obj() { "$OBJTOOL" "$U" "$@"; }
# count KEY: requests the fake saw for KEY.
count() { curl -sf "http://127.0.0.1:$PORT/__count/fake-bucket/t/$1"; }

echo "some data" >f

# 503 SlowDown twice, then fine: the third attempt stores it.
obj put flaky503/a f
assert_eq 3 "$(count flaky503/a)" "requests for flaky503/a"
obj get flaky503/a f.out           # its count goes on past the faults
assert_files_identical f f.out
# With two attempts allowed, the second 503 is the answer.
REPVOL_S3_MAX_ATTEMPTS=2 expect_fail_match \
    '^objtool: PUT flaky503/b: HTTP 503 SlowDown: injected \(after 2 attempts\) \[EIO\]$' \
    obj put flaky503/b f
assert_eq 2 "$(count flaky503/b)" "requests for flaky503/b"

# 429 once, then fine.
obj put throttle429/a f
assert_eq 2 "$(count throttle429/a)" "requests for throttle429/a"

# 500 every time: exactly REPVOL_S3_MAX_ATTEMPTS requests, then the error.
REPVOL_S3_MAX_ATTEMPTS=4 expect_fail_match \
    '^objtool: GET always500/x: HTTP 500 InternalError: We encountered an internal error \(after 4 attempts\) \[EIO\]$' \
    obj get always500/x x.out
assert_eq 4 "$(count always500/x)" "requests for always500/x"

# 400 is not retried; the message's entities are decoded.
expect_fail_match '^objtool: PUT bad400/x: HTTP 400 InvalidArgument: Bad & wrong <arg> \[EIO\]$' \
    obj put bad400/x f
assert_eq 1 "$(count bad400/x)" "requests for bad400/x"

# Nor is 404.
expect_fail_match '^objtool: GET nosuch/x: HTTP 404 NoSuchKey: injected \[ENOENT\]$' obj get nosuch/x x.out
assert_eq 1 "$(count nosuch/x)" "requests for nosuch/x"

# The fake checks x-amz-content-sha256 against the body: plain http
# sends the real digest, and a 1 MiB body round-trips.
head -c 1M /dev/urandom >m
obj put plain/m m
obj get plain/m m.out
assert_files_identical m m.out
REPVOL_S3_SIGN_PAYLOAD=0 obj put plain/m2 m

# objstore_wakeup from another thread ends a poll that has no timeout.
start_bg "$T/wakeup.log" "$OBJTOOL" "$U" wakeup
rc=0
wait_exit "$BG_PID" 30 || rc=$?
((rc == 0)) || fail "objtool wakeup: exit $rc (124: poll never woke): $(cat "$T/wakeup.log")"
assert_eq woken "$(cat "$T/wakeup.log")" "objtool wakeup"

# --- listings from a server not to be trusted
expect_fail_match 'LIST s3://fake-bucket/evil-notoken/: page 1 is truncated but gives no new continuation token' \
    "$OBJTOOL" s3://fake-bucket/evil-notoken list
expect_fail_match 'LIST s3://fake-bucket/evil-loop/: page 2 is truncated but gives no new continuation token' \
    "$OBJTOOL" s3://fake-bucket/evil-loop list
expect_fail_match 'bad Size "12abc" for evil-badsize/x' "$OBJTOOL" s3://fake-bucket/evil-badsize list
# Cut off mid-entry: the whole entries before the cut, nothing invented.
mtime=$(date -u -d 2026-01-02T03:04:05Z +%s)
assert_eq "ok 1 $mtime" "$("$OBJTOOL" s3://fake-bucket/evil-garbage list)" "listing of a cut-off body"
# Entities: the five named ones and numeric ones decoded (UTF-8), anything
# malformed kept as written.
"$OBJTOOL" s3://fake-bucket/evil-entities list >ent.lst
cat ent.lst >&2
want=$(python3 - "$mtime" <<'PY'
import sys
m = sys.argv[1]
keys = ["amp&lt<gt>q\"a'", "num" + "AB\u20ac",
        "bad&bogus;&#xZZ;&#0;&#x110000;&#99999999999;&", "long" + "\U0010ffff" * 50]
print("\n".join(sorted("%s 1 %s" % (k, m) for k in keys)))
PY
)
assert_eq "$want" "$(LC_ALL=C sort ent.lst)" "decoded keys"
log "ok"
