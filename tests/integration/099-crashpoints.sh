#!/bin/bash
# run-integration: timeout 600
# The crash-point campaign (tests/soak/crashpoints.sh) at the size make
# check runs: 100 points (CRASH_POINTS), each a kill -9 of the attach or
# of one replica server at a random moment of an acknowledged-write
# workload with flushes; every acknowledged write must read back and the
# replicas must agree.  Against the ASan build (check-asan), which is
# several times slower, 30 points (CRASH_ASAN_POINTS): the 100 are the
# plain pass's.  "make crashpoints" runs the same script.
CRASH_POINTS=${CRASH_POINTS:-100}
CRASH_ASAN_POINTS=${CRASH_ASAN_POINTS:-30}
. "$(dirname "$0")/../soak/crashpoints.sh"
