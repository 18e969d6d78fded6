#!/bin/bash
# Self-healing and drain, on the directory registry and then on a
# 3-member etcd cluster, with three zones and a spare:
#  - an attached volume under fio verify loses a server (SIGKILL): past
#    --heal-after the attach replaces it by the spare (placement: the
#    zone the volume lacks), copies the volume to it online, fio sees no
#    error; the new replica stays thin; when the lost server comes back
#    its stale copy is deleted; after a clean detach the replicas are
#    byte-identical and hold what was written;
#  - repvol server drain --wait moves an attached volume's replica off a
#    server under fio verify, and a detached volume's too; the drained
#    server holds nothing, server list shows draining(0);
#  - repvol heal replaces a detached volume's replica whose server died,
#    and says a healthy volume is healthy;
#  - repvol settings heal-after is the registry-wide default.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/etcdlib.sh"
require_cmd fio nbdcopy python3

TTL=2

# down_for NAME SECS: the pool has not heard of NAME for SECS past its TTL.
down_for() {
    local hb ttl
    hb=$(server_field "$1" heartbeat) ttl=$(server_field "$1" lease_ttl)
    server_is "$1" down && (( $(date +%s) >= hb + ttl + $2 ))
}
servers_of() {   # servers_of VOL: its replicas' servers, sorted, one line
    repvol status "$1" --json | python3 -c '
import json, sys
v = json.load(sys.stdin)
print(" ".join(sorted(r["server"] for r in v["replicas"])))'
}
has_servers() { [[ $(servers_of "$1") == "$2" ]]; }
retired_count() {
    repvol status "$1" --json | python3 -c '
import json, sys
print(len(json.load(sys.stdin).get("retired", [])))'
}
no_retired() { [[ $(retired_count "$1") == 0 ]]; }
event_seen() {   # event_seen VOL TYPE
    grep -q "\"type\": *\"$2\"" <<<"$(repvol events --volume "$1" --json)"
}

# fio_verify TAG URI OFFSET: a bounded verify run of 24 MiB at OFFSET,
# in the background (FIO_PID).
fio_verify() {
    fio --name="$1" --ioengine=nbd --uri="$2" --rw=randwrite --bs=4k \
        --iodepth=8 --offset="$3" --size=24M --io_size=48M --verify=crc32c \
        --verify_fatal=1 --output="$T/fio-$1.out" &
    FIO_PID=$!
}
fio_ok() {
    wait "$FIO_PID" || { cat "$T/fio-$1.out" >&2; fail "fio $1 failed"; }
    grep -q 'err= 0' "$T/fio-$1.out" || fail "fio $1 reported errors"
}

heal_story() {   # heal_story TAG: REPVOL_REGISTRY is set
    local tag=$1 a=$1a b=$1b c=$1c
    local reg=(--registry "$REPVOL_REGISTRY" --lease-ttl $TTL)
    log "---- heal and drain on $REPVOL_REGISTRY"
    start_repvold "$a" az-a "${reg[@]}"
    start_repvold "$b" az-b "${reg[@]}"
    start_repvold "$c" az-c "${reg[@]}"
    for s in "$a" "$b" "$c"; do wait_for server_is "$s" up; done

    # The registry-wide default, and a bad value refused.
    grep -q '^heal-after = 300s (default)' <<<"$(repvol settings)" ||
        fail "settings does not show the default heal-after"
    repvol settings heal-after 3s >/dev/null
    assert_eq "heal-after = 3s" "$(repvol settings heal-after)" "the setting"
    expect_fail_match "must be a duration" repvol settings heal-after soon
    expect_fail_match "no setting 'colour'" repvol settings colour red

    # 1. Heal an attached volume under load: b dies, c (az-c) replaces it.
    local vol=${tag}h uri
    repvol create "$vol" --size 128M --replica "$a" --replica "$b"
    start_attach "$vol" "$T/$tag.sock"      # heal-after from the setting
    uri=$(nbd_uri "$T/$tag.sock")
    fio_verify "$tag-heal" "$uri" 0
    stop_repvold "$b" KILL
    wait_for -t 30 has_servers "$vol" "$a $c"
    wait_for -t 30 all_in_sync "$vol"
    fio_ok "$tag-heal"
    for t in degraded heal-started replica-replaced resync-done; do
        event_seen "$vol" "$t" || fail "no $t event for $vol"
    done
    grep -q "replaces $b" <<<"$(repvol events --volume "$vol")" ||
        fail "the replica-replaced event does not name $b"
    # Thin: the spare holds what was written, not the whole volume.
    local kb
    kb=$(du -k "${REPVOLD_DIR[$c]}/$vol.data" | cut -f1)
    ((kb < 64 * 1024)) || fail "the healed replica is not thin: ${kb} KiB"
    # The lost server comes back: its stale copy goes.
    [[ -e ${REPVOLD_DIR[$b]}/$vol.data ]] || fail "no stale copy to delete?"
    assert_eq 1 "$(retired_count "$vol")" "retired copies of $vol"
    start_repvold "$b" az-b "${reg[@]}"
    wait_for -t 20 no_retired "$vol"
    [[ ! -e ${REPVOLD_DIR[$b]}/$vol.data ]] || fail "the stale copy on $b is still there"
    event_seen "$vol" stale-deleted || fail "no stale-deleted event"
    head -c 24M /dev/urandom > "$T/$tag.src"
    nbdcopy --flush "$T/$tag.src" "$uri"

    # 2. Drain a under fio (elsewhere on the volume): the replica moves
    # to b (the only spare).
    fio_verify "$tag-drain" "$uri" 64M
    repvol server drain "$a" --wait > "$T/$tag-drain.out" ||
        { cat "$T/$tag-drain.out" >&2; fail "drain $a failed"; }
    cat "$T/$tag-drain.out" >&2
    grep -q "drained: it holds no replica" "$T/$tag-drain.out" ||
        fail "drain did not finish"
    fio_ok "$tag-drain"
    wait_for all_in_sync "$vol"
    assert_eq "$b $c" "$(servers_of "$vol")" "servers of $vol after the drain"
    [[ $(server_field "$a" state) == draining ]] || fail "$a not shown draining"
    grep -Eq "^$a .* draining\(0\) " <<<"$(repvol server list)" ||
        fail "server list does not show draining(0) for $a"
    wait_for -t 20 no_retired "$vol"
    [[ ! -e ${REPVOLD_DIR[$a]}/$vol.data ]] || fail "the drained copy on $a is still there"
    # Placement skips a draining server.
    expect_fail_match "cannot place" repvol create "${tag}x" --size 8M --replicas 3
    # What was written before the drain is still there.
    nbdcopy "$uri" "$T/$tag.back"
    cmp -n $((24 << 20)) "$T/$tag.src" "$T/$tag.back" || fail "data changed across the drain"
    stop_attach "$vol"
    assert_files_identical "${REPVOLD_DIR[$b]}/$vol.data" "${REPVOLD_DIR[$c]}/$vol.data"

    # 3. A detached volume drains here: undrain a, drain c.
    repvol server undrain "$a" >/dev/null
    server_is "$a" up || fail "$a not up after undrain"
    repvol server drain "$c" --wait > "$T/$tag-drain2.out" ||
        { cat "$T/$tag-drain2.out" >&2; fail "drain $c failed"; }
    grep -q "moving $vol's replica" "$T/$tag-drain2.out" || fail "drain did not move $vol"
    assert_eq "$a $b" "$(servers_of "$vol")" "servers of $vol after drain of $c"
    all_in_sync "$vol" || fail "$vol not in sync after the detached drain"
    assert_files_identical "${REPVOLD_DIR[$a]}/$vol.data" "${REPVOLD_DIR[$b]}/$vol.data"
    [[ ! -e ${REPVOLD_DIR[$c]}/$vol.data ]] || fail "the drained copy on $c is still there"
    repvol server undrain "$c" >/dev/null

    # 4. repvol heal: a detached volume whose server died.
    grep -q "^$vol: healthy: 2 of 2" <<<"$(repvol heal "$vol")" || fail "heal: not healthy?"
    stop_repvold "$b" KILL
    wait_for -t 20 down_for "$b" 3
    repvol heal > "$T/$tag-heal.out" || { cat "$T/$tag-heal.out" >&2; fail "repvol heal failed"; }
    cat "$T/$tag-heal.out" >&2
    grep -q "replaces $b" "$T/$tag-heal.out" || fail "repvol heal did not replace $b"
    assert_eq "$a $c" "$(servers_of "$vol")" "servers of $vol after repvol heal"
    all_in_sync "$vol" || fail "$vol not in sync after repvol heal"
    assert_files_identical "${REPVOLD_DIR[$a]}/$vol.data" "${REPVOLD_DIR[$c]}/$vol.data"
    cmp -n $((24 << 20)) "$T/$tag.src" "${REPVOLD_DIR[$c]}/$vol.data" ||
        fail "the healed replica does not hold the data"
    start_repvold "$b" az-b "${reg[@]}"
    wait_for server_is "$b" up
    repvol heal "$vol" > "$T/$tag-heal2.out" 2>&1
    cat "$T/$tag-heal2.out" >&2
    grep -q "stale copy on $b .* deleted" "$T/$tag-heal2.out" ||
        fail "repvol heal did not delete the stale copy on $b"
    [[ ! -e ${REPVOLD_DIR[$b]}/$vol.data ]] || fail "the stale copy on $b is still there"

    repvol settings heal-after --unset >/dev/null
    repvol delete "$vol"
    for s in "$a" "$b" "$c"; do stop_repvold "$s"; done
}

heal_story d

start_etcd_cluster 3
export REPVOL_REGISTRY=etcd://$ETCD_HOSTS/it-$$
heal_story e
log "ok"
