#!/bin/bash
# Where the kernel offers no ublk (this test's usual machine: no
# /dev/ublk-control) nor repvol.ko, attach --ublk, --kmod and --device
# auto fail at once with
# one line naming what is missing, and leave the volume free to attach
# another way.  The ublk and repvol.ko data paths themselves are tested
# under real kernels by tests/kernel/01*.sh and 05*.sh (make check-kernel).
. "$(dirname "$0")/lib.sh"

[[ ! -e /dev/ublk-control ]] || skip "ublk_drv is loaded here; see tests/kernel/01*.sh"

start_repvold a zone-a
start_repvold b zone-b
repvol create v --size 8M --replica "${REPVOLD_ADDR[a]}" \
    --replica "${REPVOLD_ADDR[b]}" >/dev/null

expect_fail_match 'no /dev/ublk-control \(load ublk_drv: modprobe ublk_drv' \
    repvol attach v --ublk
[[ $(grep -c . <<<"$EXPECT_STDERR") -le 4 ]] || fail "more than a few lines: $EXPECT_STDERR"
expect_fail_match 'ublk: no /dev/ublk-control' repvol attach v --device auto
expect_fail_match 'queues' repvol attach v --ublk --queues 0
expect_fail_match 'depth' repvol attach v --ublk --depth 5000

# The same for repvol.ko (never loaded on the host): one line naming the
# module and how to load it; its own, tighter bounds on --queues/--depth.
if [[ ! -e /dev/repvol-control ]]; then
    expect_fail_match 'repvol.ko is not loaded .*modprobe repvol / insmod kmod/repvol.ko' \
        repvol attach v --kmod
    [[ $(grep -c . <<<"$EXPECT_STDERR") -le 4 ]] || fail "more than a few lines: $EXPECT_STDERR"
    expect_fail_match 'kmod: repvol.ko is not loaded' repvol attach v --device auto
fi
expect_fail_match 'queues must be 1 to 32 with --kmod' repvol attach v --kmod --queues 33
expect_fail_match 'depth must be 1 to 1024 with --kmod' repvol attach v --kmod --depth 1025

# Nothing was left claimed: the volume attaches over NBD and detaches.
repvol status v --json | python3 -c '
import json, sys
sys.exit(1 if json.load(sys.stdin)["attachment"]["attached"] else 0)' ||
    fail "a failed ublk attach left the volume attached"
start_attach v "$T/v.sock"
stop_attach v
