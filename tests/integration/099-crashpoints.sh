#!/bin/bash
# The crash-point campaign (tests/soak/crashpoints.sh) at the size make
# check runs: 100 points (CRASH_POINTS), each a kill -9 of the attach or
# of one replica server at a random moment of an acknowledged-write
# workload with flushes; every acknowledged write must read back and the
# replicas must agree.  "make crashpoints" runs the same script.
CRASH_POINTS=${CRASH_POINTS:-100}
. "$(dirname "$0")/../soak/crashpoints.sh"
