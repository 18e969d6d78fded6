#!/bin/bash
# fio with verify=crc32c on the raw /dev/repvolN (repvol.ko; libaio,
# O_DIRECT, QD16); after detach and re-attach a verify-only pass reads
# every block back, and the replicas are identical.
. "$(dirname "$0")/lib.sh"
need_kmod
need_frontend kmod
require_cmd fio
. "$(dirname "$0")/fio-verify.sh"
fio_verify_roundtrip kmod --kmod
