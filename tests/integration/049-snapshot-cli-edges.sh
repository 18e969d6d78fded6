#!/bin/bash
# The snapshot catalog verbs at their edges: "list --help" and "delete
# --help" print the usage and exit 0 (they crashed and read past argv);
# listing a file:// store that does not exist is an error naming it, and
# creates nothing; the first snapshot to a new store makes its directory
# owner-only (0700) with owner-only objects (0600), since chunks are
# volume data; the snapshot then lists and restores byte-identical; a
# child whose parent was deleted lists it as deleted and restores whole.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/integration/snaplib.sh"
snap_require

for v in list delete; do
    out=$(repvol snapshot "$v" --help) || fail "snapshot $v --help exited $?"
    grep -q "^Usage: repvol snapshot" <<<"$out" || fail "snapshot $v --help printed no usage"
done

expect_fail_match "file://$T/nostore: no such directory" repvol snapshot list "file://$T/nostore"
assert_eq 1 "$(grep -c . <<<"$EXPECT_STDERR")" "lines of the missing-store error"
[[ -s $T/expect_fail.stdout ]] && fail "a table header was printed for a store that cannot be listed"
[[ -e $T/nostore ]] && fail "listing a missing store created it"

snap_servers
new_vol vol 8M
head -c 8M /dev/urandom > "$T/img"
vol_write vol "$T/img"
STORE=$T/new/store
snap_create vol "$(file_url "$STORE")" s1
assert_eq 700 "$(stat -c %a "$STORE")" "mode of the store directory made by the first snapshot"
bad=$(find "$STORE" \( -type f ! -perm 0600 \) -o \( -type d ! -perm 0700 \))
[[ -z $bad ]] || fail "store entries not owner-only: $bad"
assert_eq s1 "$(snap_names "$(file_url "$STORE")")" "snapshots listed"
snap_restore "$(file_url "$STORE")" s1 copy
vol_equals copy "$T/img"

# A parent deleted after its child was taken: the child lists it as
# deleted (text and --json) and still restores whole.
start_attach vol "$T/vol.sock"
head -c 1M /dev/urandom > "$T/piece"
python3 "$TOP/tests/tools/nbdrange.py" write "$T/vol.sock" "$T/piece" 0:$((1 << 20)) ||
    fail "writing the second image failed"
stop_attach vol
dd if="$T/piece" of="$T/img" conv=notrunc status=none
snap_create vol "$(file_url "$STORE")" s2
assert_eq s1 "$(snap_done s2 parent)" "parent of the incremental snapshot"
repvol snapshot delete "$(file_url "$STORE")" s1 >/dev/null
repvol snapshot list "$(file_url "$STORE")" | tee "$T/list2" >&2
grep -q "^s2 .* s1 (deleted) " "$T/list2" || fail "the deleted parent is not shown as deleted"
repvol snapshot list "$(file_url "$STORE")" --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert [x["name"] for x in s] == ["s2"] and s[0]["parent"] == "s1" and s[0]["parent_deleted"] is True, s
' || fail "list --json does not say the parent was deleted"
snap_restore "$(file_url "$STORE")" s2 copy2
vol_equals copy2 "$T/img"
