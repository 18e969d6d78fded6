#!/bin/bash
# Fault (b): h1 is cut off from everything (its cable pulled) while it
# writes.  Once its attach lease has expired, the volume attaches on h2,
# which fences h1 by epoch and reads back everything h1 had acknowledged.
# When h1's link returns, its attach learns it is fenced and exits 3
# without writing again: h2's data stays exactly what h2 made it, and
# after a clean detach on h2 the replicas are byte-identical.
. "$(dirname "$0")/lib.sh"
require_cmd fio nbdcopy nbdinfo

lab_up
repvol create v2 --size 128M
attach_on h1 v2 --timeout 2 --lease-ttl 3 --heal-after 0
h1_pid=$BG_PID
h1_uri=$URI
head -c 64M /dev/urandom > "$T/a"
on h1 nbdcopy --flush "$T/a" "$h1_uri"
# h1 goes on writing (no verify: it will be cut off and then fenced).
start_bg "$T/fio-h1.log" ip netns exec rvh-h1 fio --name=h1 --ioengine=nbd \
    --uri="$h1_uri" --rw=randwrite --bs=4k --iodepth=8 --offset=64M --size=64M \
    --time_based --runtime=120 --output="$T/fio-h1.out"
h1_fio=$BG_PID
cut_host h1

lease_expired() { [[ $(vol_field v2 'v["attachment"]["lease_left"]') -le 0 ]]; }
wait_for -t 20 lease_expired
attach_on h2 v2 --timeout 2 --heal-after 0
grep -q "whose lease expired" "$T/attach-h2-v2.log" || fail "h2 did not say it took over an expired lease"
on h2 nbdcopy "$URI" "$T/on-h2"
cmp -n $((64 << 20)) "$T/a" "$T/on-h2" || fail "h2 does not read what h1 acknowledged"
# h2 overwrites the first 64 MiB.
head -c 64M /dev/urandom > "$T/b"
on h2 nbdcopy --flush "$T/b" "$URI"
on h2 nbdcopy "$URI" "$T/h2-before"
sum_before=$(sha256sum < "$T/h2-before")

restore_host h1
rc=0
wait_exit "$h1_pid" 30 || rc=$?
((rc == 3)) || fail "h1's attach exited $rc after its link returned (fenced: 3)"
grep -qi "fenced" "$T/attach-h1-v2.log" || fail "h1's attach does not say it was fenced"
kill_pid "$h1_fio" KILL

on h2 nbdcopy "$URI" "$T/h2-after"
assert_eq "$sum_before" "$(sha256sum < "$T/h2-after")" "h2's data after h1 came back"
cmp -n $((64 << 20)) "$T/b" "$T/h2-after" || fail "h2's write is not there"
detach_on h2 v2
replicas_identical v2
grep -q fenced <<<"$(repvol events --volume v2)" || fail "no fenced event"
log "ok"
