#!/bin/bash
# fio with verify=crc32c on the raw /dev/ublkb0 (libaio, O_DIRECT, QD16);
# after detach and re-attach a verify-only pass reads every block back.
. "$(dirname "$0")/lib.sh"
need_driver ublk
need_frontend ublk
require_cmd fio
. "$(dirname "$0")/fio-verify.sh"
fio_verify_roundtrip ublk --ublk
