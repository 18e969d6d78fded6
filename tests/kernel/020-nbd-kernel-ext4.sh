#!/bin/bash
# ext4 on /dev/nbd0 served by the kernel NBD frontend (repvol attach
# --nbd-device /dev/nbd0, then --nbd-device auto): files written and synced,
# unmounted, detached; attached again, the same files read back with their
# checksums and e2fsck finds nothing.
. "$(dirname "$0")/lib.sh"
need_driver nbd
need_frontend nbd-kernel
require_cmd mkfs.ext4
. "$(dirname "$0")/ext4-roundtrip.sh"
ext4_roundtrip nbd-kernel --nbd-device /dev/nbd0
