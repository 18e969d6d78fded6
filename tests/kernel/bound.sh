# shellcheck shell=bash
# test_bound TEST: how long the kernel test TEST may run, in seconds:
# KTEST_TIMEOUT (default 300), or more when the test says so in a line of
# its own, "# ktest-timeout: SECONDS" (tests/kernel/040 does: 20 crash
# points under emulation).  Used by run.sh (the VM's bound) and guest.sh
# (each test's).
test_bound() {
    local b
    b=$(sed -n 's/^# ktest-timeout: \([0-9]*\)$/\1/p' "$1" 2>/dev/null)
    ((${b:-0} > ${KTEST_TIMEOUT:-300})) || b=${KTEST_TIMEOUT:-300}
    echo "$b"
}
