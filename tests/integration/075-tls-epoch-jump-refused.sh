#!/bin/bash
# 060 (a HELLO whose epoch jumps more than 256 ahead is refused and
# logged, the replica's epoch stays, the real attach keeps serving) with
# TLS on every link: an authenticated peer cannot fence the volume out
# of reach either.
export REPVOL_TEST_TLS=1
. "$(dirname "$0")/060-epoch-jump-refused.sh"
grep -q "TLS 1.3 only" "$T/repvold-a.log" || fail "the servers did not serve TLS"
