#!/bin/bash
# ext4 on /dev/repvolN (repvol attach --kmod, repvol.ko): files written and
# synced, unmounted, detached (the device goes away); attached again, the
# same files read back with their checksums and e2fsck finds nothing.
. "$(dirname "$0")/lib.sh"
need_kmod
need_frontend kmod
require_cmd mkfs.ext4
. "$(dirname "$0")/ext4-roundtrip.sh"
ext4_roundtrip kmod --kmod
