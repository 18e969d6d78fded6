#!/bin/bash
# Fault (f): repvol server drain s1 --wait while the volume is attached
# on h1 under fio verify: the replica on s1 moves to a spare online (one
# copy at a time), fio sees no error, s1 ends holding nothing and is
# listed draining(0), placement skips it.  After a clean detach the
# replicas are byte-identical and hold what was written before.
. "$(dirname "$0")/lib.sh"
require_cmd fio nbdcopy nbdinfo

lab_up
repvol create v6 --size 128M --replica s1 --replica s2
attach_on h1 v6 --timeout 2 --heal-after 0
head -c 32M /dev/urandom > "$T/src"
on h1 nbdcopy --flush "$T/src" "$URI"
fio_on h1 drain "$URI" 64M 32M --io_size=96M
repvol server drain s1 --wait --timeout 120 > "$T/drain.out" ||
    { cat "$T/drain.out" >&2; fail "drain failed"; }
cat "$T/drain.out" >&2
fio_ok drain
wait_for -t 60 in_sync v6
servers=$(servers_of v6)
[[ $servers != *s1* ]] || fail "v6 still has a replica on s1: $servers"
grep -Eq '^s1 .* draining\(0\) ' <<<"$(repvol server list)" || fail "s1 not listed draining(0)"
gone() { [[ ! -e ${REPVOLD_DIR[s1]}/v6.data ]]; }
wait_for -t 20 gone
on h1 nbdcopy "$URI" "$T/back"
cmp -n $((32 << 20)) "$T/src" "$T/back" || fail "data changed across the drain"
detach_on h1 v6
replicas_identical v6
repvol server undrain s1 >/dev/null
log "ok"
