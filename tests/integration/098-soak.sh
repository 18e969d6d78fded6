#!/bin/bash
# run-integration: timeout 600
# The soak (tests/soak/soak.sh) in its 3-minute form: two attached volumes
# under the acknowledged-write workload and fio verify while attaches and
# servers are killed and stopped at random; 0 acknowledged writes lost,
# replicas identical, every long-lived process's RSS and descriptors flat
# (sampled every 20 s).  Against the ASan build (check-asan), 90 s
# (SOAK_ASAN_SECONDS): the 3 minutes are the plain pass's.  "make soak"
# runs the same script for an hour.
SOAK_SECONDS=${SOAK_SECONDS:-180}
SOAK_ASAN_SECONDS=${SOAK_ASAN_SECONDS:-90}
SOAK_SAMPLE_SECONDS=${SOAK_SAMPLE_SECONDS:-20}
. "$(dirname "$0")/../soak/soak.sh"
