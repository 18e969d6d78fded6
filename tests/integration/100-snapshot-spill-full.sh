#!/bin/bash
# A snapshot whose captured chunks must wait on disk, with no room for
# them, fails with the reason and leaves the volume as it was (issue 16
# item 3).  The attach runs with REPVOL_SNAPSHOT_MEM=0 (every captured
# chunk goes to the spill file) and TMPDIR on a 16 MiB tmpfs: less than
# the 16 MiB the spill file must leave free plus a chunk, so the first
# chunk is refused.  The volume still reads back as written and serves
# writes; the next attach, with TMPDIR on a 64 MiB tmpfs, snapshots it,
# and the restore is byte for byte the volume.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/integration/snaplib.sh"
snap_require
require_cmd mount umount
[[ $(id -u) == 0 ]] || skip "needs root to mount a tmpfs"

snap_servers
mount_small_tmpfs "$T/small" 16M
mount_small_tmpfs "$T/big" 64M
new_vol vol 8M
STORE=$T/store
mkdir -p "$STORE"
URL=$(file_url "$STORE")
head -c 8M /dev/urandom > "$T/img"
vol_write vol "$T/img"

TMPDIR=$T/small REPVOL_SNAPSHOT_MEM=0 start_attach vol "$T/vol.sock"
rc=0
repvol snapshot create vol --to "$URL" --name s1 > "$T/s1.out" 2> "$T/s1.err" || rc=$?
((rc != 0)) || fail "the snapshot succeeded with no room for its spill file"
grep -q "not enough free space for the snapshot's spill file in $T/small" "$T/s1.err" ||
    { cat "$T/s1.err" >&2; fail "the failed snapshot does not say why"; }
grep -q "s1" <<<"$(repvol snapshot list "$URL" 2>&1 || true)" &&
    fail "the failed snapshot s1 is listed"
# The volume goes on: its data as written, and writes still land.
nbdcopy "$(nbd_uri "$T/vol.sock")" "$T/back"
assert_files_identical "$T/img" "$T/back"
head -c 1M /dev/urandom > "$T/more"
dd if="$T/more" of="$T/img" conv=notrunc status=none
nbdcopy --flush "$T/img" "$(nbd_uri "$T/vol.sock")"
stop_attach vol

TMPDIR=$T/big REPVOL_SNAPSHOT_MEM=0 start_attach vol "$T/vol.sock"
snap_create vol "$URL" s2
stop_attach vol
snap_restore "$URL" s2 r2
vol_equals r2 "$T/img"
vol_equals vol "$T/img"
log "ok"
