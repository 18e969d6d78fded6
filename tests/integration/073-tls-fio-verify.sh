#!/bin/bash
# 003 (four fio verify jobs at depth 32, re-attach, verify again,
# replicas byte-identical) with TLS on every replication link.
export REPVOL_TEST_TLS=1
. "$(dirname "$0")/003-fio-verify.sh"
grep -q "TLS 1.3 only" "$T/repvold-a.log" || fail "the servers did not serve TLS"
