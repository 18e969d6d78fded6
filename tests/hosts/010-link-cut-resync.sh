#!/bin/bash
# Fault (a): h1 is cut from s2 (both directions) while fio verify writes:
# the writes go on degraded (fio sees no error, s2 is recorded out of
# sync), and once the link is back the catch-up copies only what
# changed (at most twice the span written meanwhile, far less than the
# volume).  Everything written reads back; after a clean detach the two
# replicas are byte-identical.
. "$(dirname "$0")/lib.sh"
require_cmd fio nbdcopy nbdinfo

lab_up
repvol create v1 --size 256M --replica s1 --replica s2
attach_on h1 v1 --timeout 2 --heal-after 0
head -c 128M /dev/urandom > "$T/src"
on h1 nbdcopy --flush "$T/src" "$URI"

fio_on h1 cut "$URI" 128M 32M --io_size=96M
cut_link h1 s2
degraded() { [[ $(vol_field v1 '[r["state"] for r in v["replicas"] if r["server"] == "s2"][0]') == out-of-sync ]]; }
wait_for -t 20 degraded
fio_ok cut
restore_links
wait_for -t 60 in_sync v1
copied=$(grep -Po 'caught up \(\K[0-9]+' "$T/attach-h1-v1.log" | tail -1)
log "catch-up copied $copied bytes after a 32 MiB span was rewritten"
[[ -n $copied ]] || fail "the attach did not report a catch-up"
((copied <= 64 << 20)) || fail "catch-up copied $copied bytes, more than twice the 32 MiB written"

on h1 nbdcopy "$URI" "$T/back"
cmp -n $((128 << 20)) "$T/src" "$T/back" || fail "data written before the cut changed"
detach_on h1 v1
replicas_identical v1
grep -q degraded <<<"$(repvol events --volume v1)" || fail "no degraded event"
log "ok"
