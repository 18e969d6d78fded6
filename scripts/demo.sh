#!/bin/bash
# repvol demo ("make demo"): two replica servers on loopback in two zones, one
# volume replicated to both, attached as an NBD export on a unix socket,
# written and read back with real NBD clients (nbdcopy, fio), snapshotted
# twice (full, then incremental) to a real S3 server (Ceph's RADOS Gateway on
# loopback, scripts/s3-server.sh) while attached, detached, the two replicas
# shown byte-identical, and the first snapshot restored lazily to a new
# volume that serves the old data at once.
#
# Everything lives in a temp dir (registry included) and every process is
# stopped by pid at the end.  KEEP_TMP=1 keeps the temp dir to look at.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/integration/lib.sh
. "$TOP/tests/integration/lib.sh"

VOL=demo
SIZE=${DEMO_SIZE:-256M}
DATA=64M          # random data copied in with nbdcopy at offset 0
SOCK=$T/$VOL.sock

say() { printf '\n==> %s\n' "$*"; }
# run CMD...: show the command (repvol's path shortened), then run it.
run() {
    local shown=("$@")
    [[ ${shown[0]} == "$REPVOL" ]] && shown[0]=repvol
    printf '    $ %s\n' "${shown[*]}"
    "$@" 2>&1 | sed 's/^/    /' || fail "failed: ${shown[*]}"
}

for b in "$REPVOL" "$REPVOLD"; do
    [[ -x $b ]] || fail "$b is not built; run 'make' first"
done

say "Temp dir $T; registry REPVOL_REGISTRY=$REPVOL_REGISTRY"

say "Starting two replica servers on loopback, in zones zone-a and zone-b"
start_repvold alpha zone-a
start_repvold beta zone-b
echo "    alpha: pid ${REPVOLD_PID[alpha]}, ${REPVOLD_ADDR[alpha]}, data dir ${REPVOLD_DIR[alpha]}"
echo "    beta:  pid ${REPVOLD_PID[beta]}, ${REPVOLD_ADDR[beta]}, data dir ${REPVOLD_DIR[beta]}"

say "Creating volume '$VOL' ($SIZE) with one replica on each server"
run "$REPVOL" create "$VOL" --size "$SIZE" \
    --replica "${REPVOLD_ADDR[alpha]}" --replica "${REPVOLD_ADDR[beta]}"
run "$REPVOL" list

say "Attaching '$VOL' as an NBD export on unix:$SOCK"
echo "    \$ repvol attach $VOL --nbd unix:$SOCK &"
start_attach "$VOL" "$SOCK"
URI=$(nbd_uri "$SOCK")
run nbdinfo "$URI"

say "Writing $DATA of random data to offset 0 with nbdcopy"
head -c "$(numfmt --from=iec "$DATA")" /dev/urandom >"$T/random.bin"
run nbdcopy "$T/random.bin" "$URI"

say "Writing and verifying 64M more with fio's nbd engine (verify=crc32c)"
FIO=(fio --name=demo-verify --ioengine=nbd --uri="$URI" --rw=randwrite
     --bs=4k --iodepth=16 --offset="$DATA" --size=64M
     --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0)
printf '    $ %s\n' "${FIO[*]}"
if ! "${FIO[@]}" >"$T/fio.log" 2>&1; then
    sed 's/^/    /' "$T/fio.log"
    fail "fio verify run failed"
fi
grep -E '^ +(write|read): IOPS=' "$T/fio.log" | sed 's/^ */    /' || true
echo "    fio wrote 64M at offset $DATA and read every block back with a good crc32c"

say "Reading the random data back with nbdcopy and comparing checksums"
run nbdcopy "$URI" "$T/readback.img"
want=$(sha256sum <"$T/random.bin" | cut -d' ' -f1)
got=$(head -c "$(numfmt --from=iec "$DATA")" "$T/readback.img" | sha256sum | cut -d' ' -f1)
echo "    written:   $want"
echo "    read back: $got"
assert_eq "$want" "$got" "sha256 of the data read back through NBD"
echo "    identical"

say "Starting an S3 server (Ceph RADOS Gateway on loopback) for snapshots"
S3_STATE=$T/s3
CLEANUP_S3=1
trap_s3() { [[ -z ${CLEANUP_S3-} ]] || "$TOP/scripts/s3-server.sh" stop "$S3_STATE" >/dev/null 2>&1 || true; }
EXIT_HOOKS+=(trap_s3)
if "$TOP/scripts/s3-server.sh" start "$S3_STATE" >"$T/s3.log" 2>&1; then
    # shellcheck disable=SC1091
    . "$S3_STATE/env"
    STORE=$REPVOL_TEST_S3_URL
    echo "    radosgw at $AWS_ENDPOINT_URL; store $STORE"
else
    tail -5 "$T/s3.log" | sed 's/^/    | /'
    STORE=file://$T/store
    echo "    the S3 server did not start (above); using $STORE instead"
fi

say "Snapshot 1 of the live volume, then 1 MiB rewritten, then snapshot 2"
run "$REPVOL" snapshot create "$VOL" --to "$STORE" --name demo-1
head -c 1M /dev/urandom >"$T/patch.bin"
run nbdcopy "$T/patch.bin" "$URI"
dd if="$T/patch.bin" of="$T/readback.img" conv=notrunc status=none  # what the volume now holds
run "$REPVOL" snapshot create "$VOL" --to "$STORE" --name demo-2
run "$REPVOL" snapshot list "$STORE"
echo "    snapshot 2 is incremental: it read and uploaded only the chunk rewritten"

say "Status while attached"
run "$REPVOL" status "$VOL"

say "Detaching (drains in-flight I/O, flushes, attach exits 0)"
run "$REPVOL" detach "$VOL"
rc=0; wait_exit "${ATTACH_PID[$VOL]}" || rc=$?
assert_eq 0 "$rc" "exit status of repvol attach after detach"
echo "    repvol attach (pid ${ATTACH_PID[$VOL]}) exited with status 0"

say "Both replicas' data files are byte-identical"
A=${REPVOLD_DIR[alpha]}/$VOL.data
B=${REPVOLD_DIR[beta]}/$VOL.data
run sha256sum "$A" "$B" "$T/readback.img"
run cmp "$A" "$B"
assert_files_identical "$A" "$B"
assert_files_identical "$A" "$T/readback.img"
echo "    identical to each other and to everything written through NBD"

say "Status after detach"
run "$REPVOL" status "$VOL"

say "Restoring snapshot 1 lazily to a new volume, attaching it at once"
run "$REPVOL" snapshot restore "$STORE" demo-1 restored --lazy \
    --replica "${REPVOLD_ADDR[alpha]}" --replica "${REPVOLD_ADDR[beta]}"
start_attach restored "$T/restored.sock"
run nbdcopy "$(nbd_uri "$T/restored.sock")" "$T/restored.img"
want=$(sha256sum <"$T/random.bin" | cut -d' ' -f1)
got=$(head -c "$(numfmt --from=iec "$DATA")" "$T/restored.img" | sha256sum | cut -d' ' -f1)
echo "    snapshot 1:  $want"
echo "    restored:    $got"
assert_eq "$want" "$got" "sha256 of the restored volume's first $DATA"
echo "    the restored volume served the data of snapshot 1 while it was still being fetched"
run "$REPVOL" detach restored
wait_exit "${ATTACH_PID[restored]}" || fail "attach of the restored volume failed"
run "$REPVOL" status restored
run "$REPVOL" delete restored
run "$REPVOL" snapshot delete "$STORE" demo-1
run "$REPVOL" snapshot delete "$STORE" demo-2

say "Deleting the volume and stopping the replica servers"
run "$REPVOL" delete "$VOL"
stop_repvold alpha
stop_repvold beta
echo "    stopped pids ${REPVOLD_PID[alpha]} ${REPVOLD_PID[beta]}"

"$TOP/scripts/s3-server.sh" stop "$S3_STATE" >/dev/null 2>&1 || true
CLEANUP_S3=

say "Demo complete: every write reached both replicas, and they are identical;
    snapshots went to S3 incrementally and restored to a new volume"
