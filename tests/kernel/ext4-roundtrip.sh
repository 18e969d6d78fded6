# shellcheck shell=bash
# Sourced by 010 and 020 (not a test itself: no number).
# ext4_roundtrip FRONTEND ATTACH-ARGS...: the ext4 write / detach /
# re-attach / compare cycle on the block device FRONTEND serves.
ext4_roundtrip() {
    local fe=$1 dev1
    shift
    two_replicas vol1 128M
    start_dev_attach vol1 "$@"
    dev1=$DEV
    assert_frontend vol1 "$fe $DEV"
    mkfs_ext4 "$DEV"
    mount_dev "$DEV" "$T/mnt"
    write_files "$T/mnt" 4 4
    umount_dev "$T/mnt"
    stop_dev_attach vol1
    replicas_identical vol1

    # Again; the kernel NBD frontend picks its device itself this time.
    if [[ $fe == nbd-kernel ]]; then set -- --nbd-device auto; fi
    start_dev_attach vol1 "$@"
    log "re-attached: $DEV (first attach served $dev1)"
    assert_frontend vol1 "$fe $DEV"
    fsck_clean "$DEV"
    mount_dev "$DEV" "$T/mnt"
    check_files "$T/mnt"
    umount_dev "$T/mnt"
    stop_dev_attach vol1
    no_kernel_io_errors
}
