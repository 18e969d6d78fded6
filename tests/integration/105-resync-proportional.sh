#!/bin/bash
# Catch-up by difference costs what changed (issue 15, item 4): on a
# 256 MiB volume seeded without a flush, b is killed (-9), 1% of the
# volume is rewritten with random 4 KiB writes and no flush at all, and
# b comes back.  The catch-up copies at most 8x the bytes written (the
# 4 KiB dirty regions, runs of them as one copy), not the volume: the
# engine's background flush made the seed stable on b long before the
# kill (DESIGN.md 2.11), so only the writes b missed count.  Then the two
# replicas are byte-identical.
. "$(dirname "$0")/lib.sh"
require_cmd fio nbdcopy

start_repvold a zone-a
start_repvold b zone-b
repvol create vol --size 256M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock" --timeout 3
uri=$(nbd_uri "$T/nbd.sock")
head -c 256M /dev/urandom > "$T/seed"
nbdcopy "$T/seed" "$uri"               # no flush: only the background one

# The attach flushes writes no client flush covers within a second
# (--flush-interval's default); b is lost well after that.
python3 -c 'import time; time.sleep(2.5)'
stop_repvold b KILL

written=$((256 * 1024 * 1024 / 100 / 4096 * 4096))
fio --name=dirty --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k \
    --iodepth=16 --size=256M --io_size=$written --randrepeat=0 \
    --output="$T/fio.out" || { cat "$T/fio.out" >&2; fail "fio failed"; }

start_repvold b zone-b
wait_for -t 120 all_in_sync vol
copied=$(grep -Po 'caught up \(\K[0-9]+' "$T/attach-vol.log" | tail -1)
[[ -n $copied ]] || fail "attach did not report the catch-up"
log "caught up $copied bytes for $written bytes written while b was away"
((copied >= written / 2)) || fail "copied $copied bytes: less than the writes b missed"
((copied <= 8 * written)) || fail "copied $copied bytes, more than 8x the $written written"

stop_attach vol
assert_files_identical "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
