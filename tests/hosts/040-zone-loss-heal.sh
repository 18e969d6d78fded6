#!/bin/bash
# Fault (d): zone az-b is lost under fio verify: host s2 dies (its
# repvold and etcd member e2 are SIGKILLed).  I/O goes on degraded with
# no error at the client; etcd keeps quorum on e1 and e3; past
# --heal-after the attach replaces s2's replica by a spare in a zone the
# volume lacks (s3, az-c) and copies the volume to it online.  After a
# clean detach the two replicas are byte-identical and hold what was
# written; the registry's events tell the story.
. "$(dirname "$0")/lib.sh"
require_cmd fio nbdcopy nbdinfo

lab_up
repvol create v4 --size 128M --replica s1 --replica s2
attach_on h1 v4 --timeout 2 --heal-after 3s
head -c 32M /dev/urandom > "$T/src"
on h1 nbdcopy --flush "$T/src" "$URI"
fio_on h1 zone "$URI" 64M 32M --io_size=96M

kill_host s2
has_servers() { [[ $(servers_of v4) == "$1" ]]; }
wait_for -t 40 has_servers "s1 s3"
wait_for -t 60 in_sync v4
fio_ok zone
# etcd has quorum: two members healthy, and the registry takes writes.
etcd_member_healthy s1 || fail "etcd e1 unhealthy"
etcd_member_healthy s3 || fail "etcd e3 unhealthy"
repvol create probe --size 8M --replica s1 --replica s3 >/dev/null
repvol delete probe >/dev/null

on h1 nbdcopy "$URI" "$T/back"
cmp -n $((32 << 20)) "$T/src" "$T/back" || fail "data written before the loss changed"
detach_on h1 v4
replicas_identical v4
cmp -n $((32 << 20)) "$T/src" "${REPVOLD_DIR[s3]}/v4.data" || fail "the healed replica lacks the data"
for t in degraded heal-started replica-replaced resync-done; do
    grep -q " $t " <<<"$(repvol events --volume v4)" || fail "no $t event"
done
repvol events --volume v4 >&2
log "ok"
