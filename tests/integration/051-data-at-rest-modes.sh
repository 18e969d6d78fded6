#!/bin/bash
# Data at rest is the owner's only (docs/DESIGN.md 3.9): a data dir that
# does not exist is created 0700 by repvold (no warning then); one open
# to others gets one warning at start naming the fix ("chmod 700 DIR");
# every replica file (VOL.data, VOL.dirty, VOL.meta) is 0600, also after
# an attach rewrote the metadata (new epoch) and the dirty map, and after
# a create over the world-readable leftovers of an interrupted one; the
# registry's files are 0600.  The data written reads back unchanged.
. "$(dirname "$0")/lib.sh"
require_cmd nbdcopy

mode() { stat -c %a "$1"; }

# a: its data dir does not exist yet.
dira=$T/fresh
port=$(free_port)
start_bg "$T/repvold-a.log" "$REPVOLD" --data-dir "$dira" --name a --zone zone-a \
    --listen "127.0.0.1:$port" ${REPVOLD_TLS_ARGS[@]+"${REPVOLD_TLS_ARGS[@]}"}
wait_for port_listening "$port"
A=127.0.0.1:$port
assert_eq 700 "$(mode "$dira")" "mode of the data dir repvold created"
if grep -q "open to other users" "$T/repvold-a.log"; then fail "warned about a 0700 data dir"; fi

# b: a data dir open to others.
mkdir -p "$T/b"
chmod 755 "$T/b"
start_repvold b zone-b
n=$(grep -c "data directory $T/b is open to other users (mode 0755): .*fix it with \"chmod 700 $T/b\"" "$T/repvold-b.log" || true)
assert_eq 1 "$n" "warnings about b's open data dir"

# Leftovers of an interrupted create on b: world-readable, no .meta.
head -c 4096 /dev/zero > "$T/b/vol.data"
chmod 644 "$T/b/vol.data"

repvol create vol --size 8M --replica "$A" --replica "${REPVOLD_ADDR[b]}"
check_modes() {
    local d f
    for d in "$dira" "$T/b"; do
        for f in vol.data vol.dirty vol.meta; do
            [[ -e $d/$f ]] || fail "$d/$f missing"
            assert_eq 600 "$(mode "$d/$f")" "mode of $d/$f ($1)"
        done
    done
    for f in "$REPVOL_REGISTRY"/*; do
        [[ -f $f ]] || continue
        assert_eq 600 "$(mode "$f")" "mode of registry file $f ($1)"
    done
    ls "$REPVOL_REGISTRY"/*.json >/dev/null || fail "no registry file to check"
}
check_modes "after create"

start_attach vol "$T/nbd.sock"
uri=$(nbd_uri "$T/nbd.sock")
head -c 8M /dev/urandom > "$T/src"
nbdcopy --flush "$T/src" "$uri"
stop_attach vol
check_modes "after attach, write, detach"
assert_files_identical "$T/src" "$dira/vol.data"
assert_files_identical "$T/src" "$T/b/vol.data"
log "ok"
