#!/bin/bash
# Fault (e): h1 is cut from etcd only (its TCP to port 2379 on s1-s3
# dropped) for longer than its attach lease, while fio verify writes:
# steady I/O goes on (the replicas are reachable and nothing needs the
# registry), the attach says it cannot refresh its lease, and once the
# registry answers again it refreshes it and keeps the volume.  After a
# clean detach the replicas are byte-identical.
. "$(dirname "$0")/lib.sh"
require_cmd fio nbdcopy nbdinfo

lab_up
repvol create v5 --size 128M --replica s1 --replica s2
attach_on h1 v5 --timeout 2 --lease-ttl 3 --heal-after 0
fio_on h1 etcdcut "$URI" 0 32M --io_size=128M
for s in s1 s2 s3; do cut_port h1 "$s" 2379; done
warned() { grep -q "cannot refresh the attach lease" "$T/attach-h1-v5.log"; }
wait_for -t 20 warned
fio_ok etcdcut
restore_links
refreshed() { grep -q "attach lease refreshed" "$T/attach-h1-v5.log"; }
wait_for -t 20 refreshed
pid_alive "${ATTACH_PID[h1-v5]}" || fail "the attach stopped"
assert_eq h1 "$(vol_field v5 'v["attachment"]["host"]')" "the attachment's host"
in_sync v5 || fail "a replica fell out of sync over an etcd cut"
detach_on h1 v5
replicas_identical v5
log "ok"
