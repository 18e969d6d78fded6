#!/bin/bash
# ext4 on /dev/ublkb0 (repvol attach --ublk): files written and synced,
# unmounted, detached (the device goes away); attached again, the same
# files read back with their checksums and e2fsck finds nothing.
. "$(dirname "$0")/lib.sh"
need_driver ublk
need_frontend ublk
require_cmd mkfs.ext4
. "$(dirname "$0")/ext4-roundtrip.sh"
ext4_roundtrip ublk --ublk
