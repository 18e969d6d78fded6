#!/bin/bash
# Online verify: on a live, attached volume, a 4 KiB stretch changed
# behind the engine's back in one replica's data file is found by
# "repvol verify" (checksums computed on the servers), which exits 1;
# "--repair" copies it back from the other replica; then verify passes,
# the replicas are identical and the data reads back as written.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
uri=$(nbd_uri "$T/nbd.sock")
head -c 16M /dev/urandom > "$T/seed"
nbdcopy --flush "$T/seed" "$uri"

repvol verify vol > "$T/v1" || { cat "$T/v1" >&2; fail "verify of identical replicas failed"; }
grep -q "^ok: replicas agree" "$T/v1" || fail "verify did not say the replicas agree"

# Damage replica b at 5 MiB + 8 KiB, behind the engine's back.
head -c 4096 /dev/urandom | dd of="${REPVOLD_DIR[b]}/vol.data" bs=4096 \
    seek=$(( (5 * 1024 * 1024 + 8192) / 4096 )) conv=notrunc status=none
expect_fail repvol verify vol
grep -q "^region 5242880+1048576 differs:" "$T/expect_fail.stdout" ||
    { cat "$T/expect_fail.stdout" >&2; fail "verify did not name the damaged region"; }
[[ $(grep -c "differs" "$T/expect_fail.stdout") == 1 ]] || fail "verify reported more than the damaged region"

repvol verify vol --repair > "$T/v2" || { cat "$T/v2" >&2; fail "verify --repair failed"; }
grep -q "repaired from ${REPVOLD_ADDR[a]}" "$T/v2" || { cat "$T/v2" >&2; fail "no repair reported"; }
repvol verify vol > "$T/v3" || { cat "$T/v3" >&2; fail "verify after repair still finds differences"; }

nbdcopy "$uri" "$T/back"
assert_files_identical "$T/seed" "$T/back"
stop_attach vol
assert_files_identical "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data"
expect_fail_match "not attached" repvol verify vol
log "ok"
