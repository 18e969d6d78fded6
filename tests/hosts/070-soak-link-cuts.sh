#!/bin/bash
# The soak (tests/soak/soak.sh) in the host harness, short: the attaches
# on h1, replicas on s1 and s2, etcd on s1-s3; for SOAK_SECONDS (default
# 120) a fault every 3-8 s (each waits for the catch-up of the last), in
# rounds of every kind: the h1 - server link cut both ways, an etcd
# member killed, a server killed or stopped, v1's attach killed.  0
# acknowledged writes lost, replicas identical, v2's clients see no
# error, long-lived processes flat.  SOAK_HOSTS=1 make soak runs it long.
SOAK_HOSTS=1
SOAK_SECONDS=${SOAK_SECONDS:-120}
SOAK_SAMPLE_SECONDS=${SOAK_SAMPLE_SECONDS:-20}
SOAK_CHAOS_MIN=${SOAK_CHAOS_MIN:-3}
SOAK_CHAOS_MAX=${SOAK_CHAOS_MAX:-8}
. "$(dirname "$0")/../soak/soak.sh"
