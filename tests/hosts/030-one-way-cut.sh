#!/bin/bash
# Fault (c): one direction of a link dropped.  First h1 -> s2 only (s2
# never hears h1's writes), then s2 -> h1 only (s2 hears them, h1 never
# hears the answers): each time fio verify goes on without an error, s2
# is recorded out of sync, and once the link is back it is caught up.
# What was written reads back; after a clean detach the replicas are
# byte-identical.
. "$(dirname "$0")/lib.sh"
require_cmd fio nbdcopy nbdinfo

lab_up
repvol create v3 --size 128M --replica s1 --replica s2
attach_on h1 v3 --timeout 2 --heal-after 0
head -c 32M /dev/urandom > "$T/src"
on h1 nbdcopy --flush "$T/src" "$URI"
s2_state() { vol_field v3 '[r["state"] for r in v["replicas"] if r["server"] == "s2"][0]'; }
degraded() { [[ $(s2_state) == out-of-sync ]]; }

for dir in "h1 s2" "s2 h1"; do
    fio_on h1 "oneway-${dir// /-}" "$URI" 64M 32M --io_size=64M
    # shellcheck disable=SC2086
    cut_link $dir oneway
    wait_for -t 20 degraded
    fio_ok "oneway-${dir// /-}"
    restore_links
    wait_for -t 60 in_sync v3
done
on h1 nbdcopy "$URI" "$T/back"
cmp -n $((32 << 20)) "$T/src" "$T/back" || fail "data written before the cuts changed"
detach_on h1 v3
replicas_identical v3
log "ok"
