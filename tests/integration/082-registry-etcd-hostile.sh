#!/bin/bash
# Whatever an etcd endpoint answers is checked before it is believed: a
# fake gateway (tests/tools/fakeetcd.py) answers with broken JSON, wrong
# types, bad base64, the wrong key, HTTP errors, an endless or truncated
# body; every "repvol status" and "repvol list" fails with the reason
# and the endpoint, never crashes (run under valgrind when it is there).
. "$(dirname "$0")/lib.sh"
require_cmd python3

start_bg "$T/fakeetcd.log" python3 "$TOP/tests/tools/fakeetcd.py" "$T/fake.port"
wait_for test -s "$T/fake.port"
URL=etcd://127.0.0.1:$(cat "$T/fake.port")/hostile
VG=()
# Not over an ASan build (check-asan): the sanitizer checks it there.
# (Not "ldd | grep -q": grep's early exit SIGPIPEs ldd, and pipefail
# then takes the ASan build for a plain one.)
command -v valgrind >/dev/null && ! grep -q libasan <<<"$(ldd "$REPVOL")" && VG=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite)

check() {   # check MODE REGEX
    local mode=$1 re=$2 verb
    echo "$mode" > "$T/fakeetcd.mode"
    for verb in "status vol" list; do
        # shellcheck disable=SC2086
        expect_fail_match "$re" "${VG[@]}" "$REPVOL" --registry "$URL" $verb
        if grep -q '==[0-9][0-9]*==' <<<"$EXPECT_STDERR"; then
            fail "valgrind: $EXPECT_STDERR"
        fi
    done
}

check notjson            'etcd 127\.0\.0\.1:[0-9]+: bad answer: not a JSON object'
check notobject          'bad answer: not a JSON object'
check kvs-not-array      '"kvs" is not an array'
check kv-not-object      'a kvs entry is not an object'
check key-not-b64        'a key is not base64'
check value-not-b64      'a value is not base64'
check value-bad-padding  'a value is not base64'
check revision-not-int   'an integer field is not an integer'
check http400            'etcd 127\.0\.0\.1:[0-9]+: HTTP 400: bad request here'
check http503            'etcd 127\.0\.0\.1:[0-9]+: HTTP 503: etcdserver: request timed out'
check huge               'answer larger than'
check truncated          'etcd 127\.0\.0\.1:[0-9]+: '
# A single-key range must answer that key, once; the record is checked.
echo two-kvs > "$T/fakeetcd.mode"
expect_fail_match 'a range of one key answered another' "${VG[@]}" "$REPVOL" --registry "$URL" status vol
echo other-key > "$T/fakeetcd.mode"
expect_fail_match 'a range of one key answered another' "${VG[@]}" "$REPVOL" --registry "$URL" status vol
echo record-not-json > "$T/fakeetcd.mode"
expect_fail_match 'corrupt value of /hostile/volumes/vol' "${VG[@]}" "$REPVOL" --registry "$URL" status vol

# Malformed locations are refused before anything is contacted.
expect_fail_match 'bad port' repvol --registry etcd://127.0.0.1:0 list
expect_fail_match 'empty endpoint' repvol --registry 'etcd://127.0.0.1:1,,127.0.0.1:2' list
expect_fail_match 'bad prefix' repvol --registry 'etcd://127.0.0.1:1/a b' list
expect_fail_match 'no endpoint' repvol --registry 'etcd:///x' list
expect_fail_match 'unknown registry scheme' repvol --registry 'zk://h:1' list
log "ok"
