# shellcheck shell=bash
# Sourced by 011 and 021 (not a test itself: no number).
# fio_verify_roundtrip FRONTEND ATTACH-ARGS...: fio writes and verifies
# 16 MiB of crc32c-stamped blocks; detached and attached again, a
# verify-only pass of the same job finds every block intact, and the two
# replicas are byte-identical.
fio_verify_roundtrip() {
    local fe=$1
    shift
    two_replicas vol1 128M
    start_dev_attach vol1 "$@"
    assert_frontend vol1 "$fe $DEV"
    run_fio verify "$DEV" "${FIO_VERIFY[@]}"
    stop_dev_attach vol1
    replicas_identical vol1
    start_dev_attach vol1 "$@"
    run_fio reverify "$DEV" "${FIO_VERIFY[@]}" --verify_only=1
    stop_dev_attach vol1
    no_kernel_io_errors
}
