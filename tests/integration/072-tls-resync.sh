#!/bin/bash
# 005 (a replica killed under fio verify, restarted, caught up by
# difference while serving, replicas byte-identical) with every link
# TLS: the reconnect thread's handshake, the engine's resync traffic and
# fio's writes all go through GnuTLS records.
export REPVOL_TEST_TLS=1
. "$(dirname "$0")/005-replica-loss-resync.sh"
grep -q "TLS 1.3 only" "$T/repvold-b.log" || fail "the servers did not serve TLS"
