#!/bin/bash
# The soak (tests/soak/soak.sh) in the host harness, short: the attaches
# on h1, replicas on s1 and s2, etcd on s1-s3; for SOAK_SECONDS (default
# 90) a fault every 5-15 s: the h1 - server link cut both ways, an etcd
# member killed, a server killed or stopped, v1's attach killed.  0
# acknowledged writes lost, replicas identical, v2's clients see no
# error, long-lived processes flat.  SOAK_HOSTS=1 make soak runs it long.
SOAK_HOSTS=1
SOAK_SECONDS=${SOAK_SECONDS:-90}
SOAK_SAMPLE_SECONDS=${SOAK_SAMPLE_SECONDS:-20}
SOAK_CHAOS_MIN=${SOAK_CHAOS_MIN:-5}
SOAK_CHAOS_MAX=${SOAK_CHAOS_MAX:-15}
. "$(dirname "$0")/../soak/soak.sh"
