# shellcheck shell=bash
# Helpers for repvol's kernel tests (tests/kernel/[0-9]*.sh), which run as
# root inside a qemu guest booted by scripts/kernel-vm.sh (tests/kernel/run.sh
# boots it; tests/kernel/guest.sh runs them).  Source it first thing:
#
#     #!/bin/bash
#     . "$(dirname "$0")/lib.sh"
#
# It sources tests/integration/lib.sh (start_repvold, start_attach for the
# NBD socket, wait_for, fail/skip, the EXIT trap, ...) and adds:
#   - need_driver ublk|nbd, need_frontend ublk|nbd-kernel|kmod: skip unless
#     the guest kernel has the driver / "repvol attach --help" lists the
#     option;
#   - need_kmod: repvol.ko loaded (insmod of the one the tier built for this
#     kernel); fails, not skips, when that build is missing;
#   - start_dev_attach VOL ARGS...: "repvol attach VOL ARGS" (--ublk or
#     --nbd-device DEV) in the background until it logs "serving /dev/X";
#     sets $DEV; skips the test when this build has no such frontend yet;
#   - stop_dev_attach VOL: "repvol detach", exit 0, the device released;
#   - nbd_client_connect SOCK DEV / nbd_client_disconnect DEV: the kernel's
#     nbd driver on repvol's NBD socket (through nbd-client);
#   - best_device VOL: attach VOL the best way this guest allows;
#   - mount_dev DEV DIR, umount_dev DIR, write_files DIR N MIB, check_files DIR,
#     fsck_clean DEV, no_kernel_io_errors, assert_frontend VOL WHAT,
#     run_fio NAME DEV OPTIONS...;
#   - cleanup of what these started: lazy unmounts and nbd-client disconnects
#     before the integration library's process cleanup.
#
# Waits are bounded polls (WAIT_TIMEOUT, 30 s here: the guest may be
# emulated, so everything is slower than on the host).

# shellcheck disable=SC2034
WAIT_TIMEOUT=${WAIT_TIMEOUT:-30}
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

# Under emulation (TCG) every program started costs 0.3-2 s (python3 the
# most), so the helpers the integration library polls with are replaced
# here by shell builtins doing the same thing:
#   sleep N          read with a timeout on a fifo nobody writes
#   date +%s%N       $EPOCHREALTIME
#   pid_alive        /proc/PID/stat read by the shell
#   free_port        a random high port (start_repvold retries a taken one)
#   port_listening   /proc/net/tcp{,6} has it in state LISTEN (0A)
mkfifo "$T/.sleep"
exec {SLEEP_FD}<>"$T/.sleep"
sleep() {
    if [[ $# == 1 && $1 =~ ^[0-9.]+$ ]]; then read -rt "$1" -u "$SLEEP_FD" _ || true
    else command sleep "$@"; fi
}
date() {
    if [[ $* == +%s%N ]]; then echo "${EPOCHREALTIME/./}000"
    else command date "$@"; fi
}
pid_alive() {
    local st
    { read -r st <"/proc/$1/stat"; } 2>/dev/null || return 1
    st=${st##*) }
    [[ ${st%% *} != Z ]]
}
free_port() { echo $((20000 + RANDOM % 40000)); }
port_listening() {
    local hex line f
    printf -v hex '%04X' "$1"
    for f in /proc/net/tcp /proc/net/tcp6; do
        [[ -r $f ]] || continue
        while read -r line; do
            [[ $line == *:$hex\ *\ 0A\ * ]] && return 0
        done <"$f"
    done
    return 1
}

# Log lines carry the guest's uptime: where the time goes under emulation.
log() {
    local up
    read -r up _ </proc/uptime
    printf '[%s %s] %s\n' "$TEST_NAME" "$up" "$*" >&2
}

[[ -n ${REPVOL_VM_KERNEL:-} ]] ||
    skip "a kernel test: runs only inside the VM (make check-kernel), never on the host"

# Each test its own run directory (control sockets, ublk recovery state):
# what a failed test leaves there cannot confuse the next one.
export REPVOL_RUN_DIR=$T/run
mkdir -p "$REPVOL_RUN_DIR"

KMOUNTS=()                   # mount points to unmount (lazily) on exit
CLIENT_PIDS=()               # fio and workloads: killed first on exit
NBD_CLIENT_DEVS=()           # devices nbd-client connected
declare -A ATTACH_DEV=()     # volume -> block device its attach serves
ATTACH_N=0
DMESG_MARK=$(dmesg | wc -l)  # kernel messages before this test

_kernel_cleanup() {
    local rc=$? m d p
    # Clients first: an attach asked to stop waits for the I/O they have
    # in flight.
    for p in ${CLIENT_PIDS[@]+"${CLIENT_PIDS[@]}"}; do
        pid_alive "$p" && kill -KILL "$p" 2>/dev/null
    done
    for p in ${CLIENT_PIDS[@]+"${CLIENT_PIDS[@]}"}; do
        wait_exit "$p" 5 >/dev/null 2>&1
    done
    for m in ${KMOUNTS[@]+"${KMOUNTS[@]}"}; do
        mountpoint -q "$m" && umount -l "$m"
    done
    for d in ${NBD_CLIENT_DEVS[@]+"${NBD_CLIENT_DEVS[@]}"}; do
        timeout 10 nbd-client -d "$d" >/dev/null 2>&1
    done
    (exit "$rc")
    _lib_cleanup
}
trap _kernel_cleanup EXIT

need_driver() {
    case $1 in
    ublk) [[ -c /dev/ublk-control ]] ||
              skip "kernel $(uname -r) has no ublk driver (no /dev/ublk-control)" ;;
    nbd)  [[ -b /dev/nbd0 ]] || skip "kernel $(uname -r) has no nbd driver (no /dev/nbd0)" ;;
    *)    fail "need_driver: unknown driver $1" ;;
    esac
}

# KMOD_KO: repvol.ko as tests/kernel/run.sh built it for the booted kernel.
KMOD_KO=$BUILD/kmod/$(uname -r)/repvol.ko

# need_kmod: /dev/repvol-control is there, after insmod of $KMOD_KO if it
# was not.  The tier builds the module for every VM kernel, so a missing
# .ko is a broken build, not a kernel without the feature: the test fails.
need_kmod() {
    [[ -c /dev/repvol-control ]] && return 0
    [[ -f $KMOD_KO ]] ||
        fail "no repvol.ko for kernel $(uname -r): $KMOD_KO is missing (tests/kernel/run.sh builds it: make kmod against this kernel's headers)"
    insmod "$KMOD_KO" >"$T/insmod.log" 2>&1 ||
        fail "insmod $KMOD_KO failed: $(cat "$T/insmod.log"); dmesg: $(dmesg | tail -n 5)"
    wait_for test -c /dev/repvol-control
    log "insmod $KMOD_KO: /dev/repvol-control is there"
}

# attach_help_has OPT: "repvol attach --help" lists OPT.  The help is read
# whole first: it is over 4 KiB, so "| grep -q" could exit after the first
# write and, with pipefail, the SIGPIPE of the second made it look absent.
attach_help_has() {
    local help
    help=$("$REPVOL" attach --help 2>&1) || true
    [[ $help == *"$1"* ]]
}

# need_frontend ublk|nbd-kernel|kmod: the attach option must be there (the run
# itself checks that the frontend is built: start_dev_attach).
need_frontend() {
    local opt
    case $1 in
    ublk) opt=--ublk ;;
    nbd-kernel) opt=--nbd-device ;;
    kmod) opt=--kmod ;;
    *) fail "need_frontend: unknown frontend $1" ;;
    esac
    attach_help_has "$opt" ||
        skip "repvol attach has no $opt option in this build"
    if [[ -s $FRONTEND_MISSING/$1 ]]; then
        skip "$(cat "$FRONTEND_MISSING/$1") (found by an earlier test in this boot)"
    fi
}

# An attach that finds its frontend missing notes it here (the guest's /tmp
# is a fresh tmpfs every boot), so later tests skip at once instead of
# starting servers to find out again.
FRONTEND_MISSING=/tmp/repvol-kernel-frontend-missing
frontend_key() {
    case " $* " in
    *" --ublk "*) echo ublk ;;
    *" --nbd-device "*) echo nbd-kernel ;;
    *" --kmod "*) echo kmod ;;
    *) echo other ;;
    esac
}
frontend_missing() { [[ -s $FRONTEND_MISSING/$1 ]]; }

# try_dev_attach VOL ARGS...: start "repvol attach VOL ARGS" and wait
# until it logs "serving" with a /dev/ path and that device has a size.
# Sets $DEV, ATTACH_PID[VOL], ATTACH_DEV[VOL].  Returns 3 (after printing
# why to $NO_FRONTEND) when this build has no such frontend; fails the test
# on any other trouble.
try_dev_attach() {
    local vol=$1 pid logf deadline line l size lines=()
    shift
    ATTACH_N=$((ATTACH_N + 1))
    logf=$T/attach-$vol.$ATTACH_N.log
    start_bg "$logf" "$REPVOL" attach "$vol" "$@"
    pid=$BG_PID
    deadline=$(( $(date +%s%N) + WAIT_TIMEOUT * 1000000000 ))
    DEV=
    # Polled with shell builtins only (no grep, no blockdev): under
    # emulation every program started costs a second of CPU that the
    # attach being waited for needs.
    while :; do
        mapfile -t lines <"$logf"
        line=
        for l in ${lines[@]+"${lines[@]}"}; do
            [[ $l == *serving*/dev/* ]] && { line=$l; break; }
        done
        if [[ $line =~ (/dev/[A-Za-z0-9]+) ]]; then
            DEV=${BASH_REMATCH[1]}
            size=0
            { read -r size <"/sys/block/${DEV#/dev/}/size"; } 2>/dev/null || true
            [[ -b $DEV ]] && ((size > 0)) && break
        fi
        if ! pid_alive "$pid"; then
            wait "$pid" 2>/dev/null || true
            # The kernel frontends are written on other branches: until this
            # build has one, the tests that need it skip.
            if line=$(grep -m1 -i 'unknown frontend\|no kernel block device frontend' "$logf"); then
                NO_FRONTEND="this build of repvol cannot serve 'attach $*' yet: ${line##*: }"
                log "$NO_FRONTEND"
                mkdir -p "$FRONTEND_MISSING"
                echo "$NO_FRONTEND" >"$FRONTEND_MISSING/$(frontend_key "$@")"
                return 3
            fi
            cat "$logf" >&2
            fail "repvol attach $vol $* exited before serving a block device"
        fi
        (( $(date +%s%N) < deadline )) ||
            { cat "$logf" >&2; fail "repvol attach $vol $* not serving a block device within ${WAIT_TIMEOUT}s"; }
        sleep 0.05
    done
    ATTACH_PID[$vol]=$pid
    ATTACH_DEV[$vol]=$DEV
    log "attach $vol $* pid $pid serves $DEV ($(blockdev --getsize64 "$DEV") bytes)"
}

# start_dev_attach VOL ARGS...: try_dev_attach, and skip the test when
# this build has no such frontend.
start_dev_attach() {
    local rc=0
    try_dev_attach "$@" || rc=$?
    ((rc != 3)) || skip "$NO_FRONTEND"
    return "$rc"
}

# start_client LOG CMD...: start_bg for a program using a device (fio, a
# workload); the EXIT trap kills these before it stops any attach.
start_client() {
    start_bg "$@"
    CLIENT_PIDS+=("$BG_PID")
}

# dev_released DEV: the kernel no longer serves DEV (ublk deletes it, nbd
# drops its size to 0)
dev_released() {
    local s=/sys/block/${1#/dev/}/size
    [[ ! -e $s ]] || [[ $(cat "$s" 2>/dev/null || echo 0) == 0 ]]
}

# dev_has_size DEV: the kernel serves DEV with a non-zero size
dev_has_size() { ! dev_released "$1"; }

# stop_dev_attach VOL: detach (the attach exits 0) and the device goes away.
stop_dev_attach() {
    local vol=$1 dev=${ATTACH_DEV[$1]}
    stop_attach "$vol"
    wait_for dev_released "$dev"
    unset "ATTACH_DEV[$vol]"
}

# frontend_of VOL: .attachment.frontend from "repvol status VOL --json"
frontend_of() {
    "$REPVOL" status "$1" --json 2>/dev/null | python3 -c '
import json, sys
print((json.load(sys.stdin).get("attachment") or {}).get("frontend") or "")'
}

# assert_frontend VOL WHAT: the registry records WHAT ("ublk /dev/ublkb0")
# as the volume's frontend (it is written just after the "serving" line).
assert_frontend() {
    local got deadline=$(( $(date +%s%N) + WAIT_TIMEOUT * 1000000000 ))
    until got=$(frontend_of "$1") && [[ $got == "$2" ]]; do
        (( $(date +%s%N) < deadline )) || fail "status $1: frontend '$got', expected '$2'"
        sleep 0.1
    done
    log "status $1: frontend '$got'"
}

# nbd_client_connect SOCK DEV: the kernel's nbd driver on an NBD unix socket
nbd_client_connect() {
    local sock=$1 dev=$2
    timeout 30 nbd-client -unix "$sock" "$dev" -b 4096 >"$T/nbd-client.log" 2>&1 ||
        { cat "$T/nbd-client.log" >&2; fail "nbd-client -unix $sock $dev failed"; }
    NBD_CLIENT_DEVS+=("$dev")
    wait_for dev_has_size "$dev"
    log "nbd-client: $dev on $sock ($(blockdev --getsize64 "$dev") bytes)"
}

nbd_client_disconnect() {
    timeout 30 nbd-client -d "$1" >/dev/null 2>&1 || fail "nbd-client -d $1 failed"
    wait_for dev_released "$1"
}

# best_device VOL: serve VOL as a block device the best way this guest
# and build allow: ublk, else the kernel NBD frontend, else repvol's NBD
# socket through nbd-client.  Sets $DEV and $HOW (ublk|nbd-kernel|nbd-client).
best_device() {
    local vol=$1
    if [[ -c /dev/ublk-control ]] && attach_help_has --ublk &&
        ! frontend_missing ublk && try_dev_attach "$vol" --ublk; then
        HOW=ublk
    elif [[ -b /dev/nbd0 ]] && attach_help_has --nbd-device &&
        ! frontend_missing nbd-kernel && try_dev_attach "$vol" --nbd-device auto; then
        HOW=nbd-kernel
    else
        need_driver nbd
        HOW=nbd-client
        start_attach "$vol" "$T/$vol.sock"
        nbd_client_connect "$T/$vol.sock" /dev/nbd0
        DEV=/dev/nbd0
    fi
    log "best device for $vol: $DEV ($HOW)"
}

mount_dev() {
    mkdir -p "$2"
    mount "$1" "$2" || fail "mount $1 $2 failed"
    KMOUNTS+=("$2")
}

umount_dev() {
    umount "$1" || fail "umount $1 failed"
}

# write_files DIR N MIB: N files of MIB MiB of random data (plus a small
# tree), synced; their sha256sums go to $T/sums.
write_files() {
    local dir=$1 n=$2 mib=$3 i
    mkdir -p "$dir/tree/a/b"
    for ((i = 0; i < n; i++)); do
        head -c "${mib}M" /dev/urandom >"$dir/file$i.bin"
    done
    seq 1 10000 >"$dir/tree/a/b/numbers.txt"
    date >"$dir/tree/stamp"
    (cd "$dir" && find . -type f ! -path './lost+found/*' -print0 | sort -z |
        xargs -0 sha256sum) >"$T/sums"
    sync -f "$dir/file0.bin"
    sync
}

# check_files DIR: every file write_files wrote reads back with its checksum.
check_files() {
    (cd "$1" && sha256sum --quiet -c "$T/sums") || fail "checksums differ in $1"
    log "checksums of $(wc -l <"$T/sums") files match"
}

# fsck_clean DEV: e2fsck (read-only, forced) finds nothing wrong.
fsck_clean() {
    e2fsck -fn "$1" >"$T/fsck.log" 2>&1 || { cat "$T/fsck.log" >&2; fail "e2fsck -fn $1 found errors"; }
    log "e2fsck -fn $1: clean"
}

# no_kernel_io_errors: no I/O or ext4 error in the kernel log since the
# test started.
no_kernel_io_errors() {
    local errs
    errs=$(dmesg | tail -n +"$((DMESG_MARK + 1))" |
           grep -Ei 'I/O error|EXT4-fs error|EXT4-fs warning|Buffer I/O|blk_update_request|critical medium' || true)
    [[ -z $errs ]] || fail "kernel reported errors: $errs"
}

# run_fio NAME DEV OPTIONS...: fio on DEV with libaio and O_DIRECT; fails
# the test on a non-zero exit or any error fio reports.  Output in $T/NAME.fio.
run_fio() {
    local name=$1 dev=$2 rc=0
    shift 2
    fio --name="$name" --filename="$dev" --ioengine=libaio --direct=1 "$@" \
        --output="$T/$name.fio" >/dev/null 2>"$T/$name.fio.err" || rc=$?
    check_fio "$name" "$rc"
}

# check_fio NAME RC: fio's exit status RC and output $T/NAME.fio show no error
check_fio() {
    local name=$1 rc=$2
    if ((rc != 0)) || grep -q 'err= *[1-9]' "$T/$name.fio" ||
        grep -qi 'verify.*fail\|bad magic\|crc32c.*mismatch' "$T/$name.fio" "$T/$name.fio.err"; then
        cat "$T/$name.fio" "$T/$name.fio.err" >&2
        fail "fio $name: exit $rc or errors"
    fi
    log "fio $name: no error ($(grep -Eo '(READ|WRITE): bw=[^ ]+' "$T/$name.fio" | tr '\n' ' '))"
}

# mkfs_ext4 DEV [MKFS OPTIONS...]: a quick mkfs (no discard pass over the
# whole device, lazy inode table and journal init: the emulated guest is
# slow).
mkfs_ext4() {
    mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 "${@:2}" "$1" ||
        fail "mkfs.ext4 $1 failed"
    log "mkfs.ext4 $1 done"
}

# FIO_VERIFY: the verified random-write job the fio tests share (16 MiB,
# 4k blocks, QD16, crc32c in every block, read back and checked).
FIO_VERIFY=(--rw=randwrite --bs=4k --iodepth=16 --size=16M --verify=crc32c
            --do_verify=1 --verify_fatal=1 --verify_dump=1 --randrepeat=1)

# two_replicas VOL SIZE: two repvold in distinct zones and VOL on both.
two_replicas() {
    start_repvold alpha zone-a
    start_repvold beta zone-b
    repvol create "$1" --size "$2" --replica "${REPVOLD_ADDR[alpha]}" \
        --replica "${REPVOLD_ADDR[beta]}" >/dev/null
}

# replicas_identical VOL: both replica data files hold the same bytes
# (only meaningful once VOL is detached).
replicas_identical() {
    assert_files_identical "${REPVOLD_DIR[alpha]}/$1.data" "${REPVOLD_DIR[beta]}/$1.data"
    log "replica data files of $1 are identical"
}
