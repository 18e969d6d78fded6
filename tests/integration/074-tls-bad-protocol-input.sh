#!/bin/bash
# 007 (malformed HELLOs and requests, bad payload checksums, a stalled
# payload and a silent connection, each refused or closed, the server
# still serving) with TLS on the link: the bad frames arrive inside
# GnuTLS records (tests/tools/rvproto.py speaks TLS when REPVOL_TLS_DIR
# is set), and the connection that never starts its handshake is closed
# by the stall timeout like one that never says HELLO.
export REPVOL_TEST_TLS=1
. "$(dirname "$0")/007-bad-protocol-input.sh"
grep -q "TLS 1.3 only" "$T/repvold-a.log" || fail "the server did not serve TLS"
grep -q "TLS handshake stalled" "$T/repvold-a.log" ||
    fail "the connection that never started its handshake was not closed as a stalled handshake"
