#!/bin/bash
# repvol resize on a ublk device: the volume grows online and says that
# /dev/ublkbN keeps its size (these kernels cannot change a ublk
# device's size in place); the device does keep it, data written before
# reads back, and the next attach serves the new size, whose new space
# reads zero.
. "$(dirname "$0")/lib.sh"
need_driver ublk
need_frontend ublk
require_cmd blockdev cmp

two_replicas vol1 64M
start_dev_attach vol1 --ublk
head -c 64M /dev/urandom >"$T/seed"
dd if="$T/seed" of="$DEV" bs=1M oflag=direct status=none || fail "writing $DEV failed"
"$REPVOL" resize vol1 --size 96M >"$T/resize.out" || fail "online resize failed"
log "$(cat "$T/resize.out")"
grep -q "keeps showing 64 MiB until the volume is attached again" "$T/resize.out" ||
    fail "resize did not say the ublk device keeps its size: $(cat "$T/resize.out")"
[[ $(blockdev --getsize64 "$DEV") == $((64 << 20)) ]] || fail "$DEV changed size"
stop_dev_attach vol1
start_dev_attach vol1 --ublk
[[ $(blockdev --getsize64 "$DEV") == $((96 << 20)) ]] || fail "re-attached at $(blockdev --getsize64 "$DEV") bytes"
cmp -n $((64 << 20)) "$T/seed" "$DEV" || fail "data before the old end changed"
cmp -i $((64 << 20)):0 -n $((32 << 20)) "$DEV" /dev/zero || fail "the new space does not read zero"
stop_dev_attach vol1
replicas_identical vol1
no_kernel_io_errors
