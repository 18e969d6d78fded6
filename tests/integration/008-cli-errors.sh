#!/bin/bash
# Every mistake a user can make with the CLI gets a one-line error and a
# non-zero exit, and changes nothing.
. "$(dirname "$0")/lib.sh"

start_repvold a zone-a
start_repvold b zone-b
start_repvold c zone-a
A=${REPVOLD_ADDR[a]} B=${REPVOLD_ADDR[b]} C=${REPVOLD_ADDR[c]}
dead=127.0.0.1:$(free_port)

expect_fail_match 'size' repvol create v --size 10X --replica "$A" --replica "$B"
expect_fail_match 'size' repvol create v --size 0 --replica "$A" --replica "$B"
expect_fail_match 'size' repvol create v --size 1000 --replica "$A" --replica "$B"
expect_fail_match 'size' repvol create v --replica "$A" --replica "$B"
expect_fail_match 'replica' repvol create v --size 8M
expect_fail_match 'name' repvol create ../v --size 8M --replica "$A"
expect_fail_match 'duplicate|twice|same' repvol create v --size 8M --replica "$A" --replica "$A"
expect_fail_match "$dead" repvol create v --size 8M --replica "$A" --replica "$dead"
# The failed create left nothing behind on the server that answered.
[[ ! -e ${REPVOLD_DIR[a]}/v.data ]] || fail "failed create left a replica on a"
expect_fail_match 'zone' repvol create v --size 8M --replica "$A" --replica "$C"
[[ ! -e ${REPVOLD_DIR[a]}/v.data ]] || fail "zone refusal left a replica on a"
repvol list | grep -q '^v ' && fail "a failed create left v in the registry"

repvol create v --size 8M --replica "$A" --replica "$B"
expect_fail_match 'exists|taken|already' repvol create v --size 8M --replica "$A" --replica "$B"
expect_fail_match 'no such volume|unknown volume|not found' repvol status nosuch
expect_fail_match 'no such volume|unknown volume|not found' repvol attach nosuch --nbd "unix:$T/x.sock"
expect_fail_match 'no such volume|unknown volume|not found' repvol delete nosuch
expect_fail_match 'no such volume|unknown volume|not found' repvol detach nosuch
expect_fail_match 'not attached' repvol detach v
expect_fail_match 'nbd' repvol attach v --nbd "bogus:$T/x.sock"
expect_fail_match 'unknown|usage|verb|command' repvol frobnicate
expect_fail repvol

start_attach v "$T/nbd.sock"
expect_fail_match 'attached' repvol attach v --nbd "unix:$T/other.sock" --no-takeover
expect_fail_match 'attached' repvol delete v
stop_attach v

# Same zone is allowed when asked for.
repvol create w --size 8M --replica "$A" --replica "$C" --allow-same-zone
repvol delete w
repvol delete v
[[ -z $(ls "${REPVOLD_DIR[a]}") ]] || fail "leftovers on a: $(ls "${REPVOLD_DIR[a]}")"
log "ok"
