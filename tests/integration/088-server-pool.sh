#!/bin/bash
# The server pool, placement and names instead of addresses, on the
# directory registry and then on a 3-member etcd cluster: repvolds with
# --registry are listed up with their zones; create without --replica
# places 2 replicas in distinct zones, and says what is missing when it
# cannot (too few zones, not enough free space for --reserve); --replica
# takes server names; a killed server shows down within its TTL + 1 s
# and up again when restarted; a server restarted at a NEW address keeps
# serving its attached volume (fio verify across the move), the attach
# reconnects there through the pool, and after a clean detach the
# replicas are byte-identical; a snapshot restore without --replica is
# placed in two zones too and reads back what was written.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/etcdlib.sh"
require_cmd fio nbdcopy python3

TTL=2


# replica_field VOL I FIELD: the registry's view of replica I.
replica_field() {
    repvol status "$1" --json | python3 -c '
import json, sys
v = json.load(sys.stdin); v = v[0] if isinstance(v, list) else v
print(v["replicas"][int(sys.argv[1])][sys.argv[2]])' "$2" "$3"
}

pool_story() {   # pool_story TAG: REPVOL_REGISTRY is set
    local tag=$1 a=$1a b=$1b c=$1c
    local reg=(--registry "$REPVOL_REGISTRY" --lease-ttl $TTL)
    log "---- pool on $REPVOL_REGISTRY"
    start_repvold "$a" az-a "${reg[@]}"
    start_repvold "$b" az-b "${reg[@]}"
    start_repvold "$c" az-a "${reg[@]}"
    for s in "$a" "$b" "$c"; do wait_for server_is "$s" up; done
    repvol server list >&2
    repvol server list | grep -Eq "^$b +az-b +${REPVOLD_ADDR[$b]} +up " ||
        fail "server list does not show $b up in az-b at ${REPVOLD_ADDR[$b]}"

    # Placement: two zones, the replicas land in both.
    repvol create "${tag}v" --size 32M
    z0=$(replica_field "${tag}v" 0 zone) z1=$(replica_field "${tag}v" 1 zone)
    [[ $z0 != "$z1" ]] || fail "placement put both replicas in zone $z0"
    expect_fail_match 'need 3 zones with a server up, found 2' \
        repvol create "${tag}x" --size 8M --replicas 3
    expect_fail_match 'need 2 zones with 1 EiB free, found 0' \
        repvol create "${tag}x" --size 1024P --reserve
    repvol list | grep -q "^${tag}x " && fail "a failed placement left a volume"
    # Same zones allowed: three servers.
    repvol create "${tag}s" --size 8M --replicas 3 --allow-same-zone
    # Names instead of addresses.
    repvol create "${tag}n" --size 8M --replica "$a" --replica "$b"
    assert_eq "${REPVOLD_ADDR[$a]}" "$(replica_field "${tag}n" 0 addr)" "replica 0 of ${tag}n"
    assert_eq "$b" "$(replica_field "${tag}n" 1 server)" "replica 1 of ${tag}n"
    expect_fail_match "no server of that name" repvol create "${tag}y" --size 8M \
        --replica "$a" --replica nosuchserver

    # A killed server shows down within TTL + 1 s (and etcd's lease
    # checks, every 500 ms), and up again when it returns.
    stop_repvold "$c" KILL
    wait_for -t $((TTL + 2)) server_is "$c" down
    expect_fail_match "server $c is down" repvol create "${tag}y" --size 8M \
        --replica "$a" --replica "$c" --allow-same-zone
    start_repvold "$c" az-a "${reg[@]}"
    wait_for server_is "$c" up

    # The elastic-address case: the server of replica 0 comes back on a
    # new port while the volume is attached and under fio verify.
    local vol=${tag}v mover
    mover=$(replica_field "$vol" 0 server)
    local old_addr=${REPVOLD_ADDR[$mover]}
    start_attach "$vol" "$T/$tag.sock"
    local uri
    uri=$(nbd_uri "$T/$tag.sock")
    fio --name=move --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k \
        --iodepth=8 --size=32M --io_size=24M --verify=crc32c --verify_fatal=1 \
        --output="$T/fio-$tag.out" &
    local fio_pid=$!
    stop_repvold "$mover" KILL
    unset "REPVOLD_PORT[$mover]"
    start_repvold "$mover" "$(replica_field "$vol" 0 zone)" "${reg[@]}"
    [[ ${REPVOLD_ADDR[$mover]} != "$old_addr" ]] || fail "the server did not move"
    wait "$fio_pid" || { cat "$T/fio-$tag.out" >&2; fail "fio failed across the move"; }
    grep -q 'err= 0' "$T/fio-$tag.out" || fail "fio reported errors"
    wait_for all_in_sync "$vol"
    assert_eq "${REPVOLD_ADDR[$mover]}" "$(replica_field "$vol" 0 addr)" \
        "the registry's address of $mover after the move"
    grep -q "replica server $mover moved from $old_addr to ${REPVOLD_ADDR[$mover]}" \
        "$T/attach-$vol.log" || fail "the attach did not say the server moved"
    # Written after the move too, then read back.
    head -c 32M /dev/urandom > "$T/$tag.src"
    nbdcopy --flush "$T/$tag.src" "$uri"
    nbdcopy "$uri" "$T/$tag.back"
    assert_files_identical "$T/$tag.src" "$T/$tag.back"
    stop_attach "$vol"
    local other
    other=$(replica_field "$vol" 1 server)
    assert_files_identical "${REPVOLD_DIR[$mover]}/$vol.data" "${REPVOLD_DIR[$other]}/$vol.data"
    # A detached volume finds it at the new address too.
    repvol status "$vol" >&2
    # A restore without --replica is placed like a create.
    repvol snapshot create "$vol" --to "file://$T/$tag-snaps" --name s1 >/dev/null
    repvol snapshot restore "file://$T/$tag-snaps" s1 "${tag}r" >/dev/null
    z0=$(replica_field "${tag}r" 0 zone) z1=$(replica_field "${tag}r" 1 zone)
    [[ $z0 != "$z1" ]] || fail "the restore's placement put both replicas in zone $z0"
    start_attach "${tag}r" "$T/$tag-r.sock"
    nbdcopy "$(nbd_uri "$T/$tag-r.sock")" "$T/$tag.restored"
    assert_files_identical "$T/$tag.src" "$T/$tag.restored"
    stop_attach "${tag}r"
    repvol delete "${tag}r"
    for v in "$vol" "${tag}s" "${tag}n"; do repvol delete "$v"; done
    for s in "$a" "$b" "$c"; do stop_repvold "$s"; wait_for server_is "$s" down; done
}

pool_story d

start_etcd_cluster 3
export REPVOL_REGISTRY=etcd://$ETCD_HOSTS/it-$$
pool_story e
log "ok"
