#!/bin/bash
# Install the Debian packages repvol needs to build, test, bench and demo.
#
# Idempotent: asks dpkg which packages are missing and installs only those,
# running "apt-get update" only when there is something to install.  When
# everything is present it is a fast no-op.  Needs root (or sudo) only when
# something is missing.
set -euo pipefail

PACKAGES=(
    # build
    build-essential pkg-config
    liburing-dev libaio-dev libjson-c-dev libisal-dev
    libcurl4-openssl-dev libzstd-dev libssl-dev libblkid-dev
    # TLS on every link (GnuTLS), certificates for the tests (certtool, psktool)
    libgnutls28-dev gnutls-bin
    # the /metrics HTTP endpoint of repvold and the attach; promtool
    # (package prometheus) checks what it serves (tests 096, 097)
    libmicrohttpd-dev prometheus
    # libFuzzer harnesses (tests/fuzz/, "make fuzz")
    clang libclang-rt-14-dev
    # snapshot tests and bench: a real S3 server (Ceph RADOS Gateway), curl
    radosgw ceph-mon ceph-osd curl
    # the etcd registry backend's tests: a real 3-member etcd cluster
    etcd-server etcd-client
    # unit tests (run under valgrind)
    libcmocka-dev valgrind
    # NBD clients and servers used by tests, bench and demo
    fio libnbd-bin nbdkit qemu-utils
    # the soak's acknowledged-write workload (tests/tools/ackload.c)
    libnbd-dev
    # process, network and file tools used by the scripts; nftables cuts
    # links between the host harness's namespaces (tests/hosts/)
    coreutils util-linux procps psmisc iproute2 e2fsprogs python3 nftables
    # "man -l man/*.8"; systemd-analyze verify of the units (test 091)
    man-db systemd
    # kernel test tier (scripts/kernel-vm.sh, tests/kernel/): qemu, apt and
    # dpkg-deb to fetch and unpack Debian kernels and busybox-static (which
    # is unpacked, never installed: installing it removes busybox), kmod for
    # depmod/modprobe on the unpacked modules, cpio/gzip/xz for the
    # initramfs; nbd-client connects /dev/nbdN to an NBD socket in the guest
    qemu-system-x86 apt dpkg kmod cpio gzip xz-utils debian-archive-keyring nbd-client
    # repvol.ko (make kmod, scripts/kernel-vm.sh kmod): gcc-12 and make come
    # with build-essential above; sparse for "make kmod C=1"
    sparse
)

# One dpkg-query for all: "ii " = installed and configured; a package that
# is absent, half-installed or removed is missing.
declare -A have=()
while read -r pkg status; do
    [[ $status == ii ]] && have[${pkg%%:*}]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null || true)
missing=()
for p in "${PACKAGES[@]}"; do
    [[ -n ${have[$p]-} ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#PACKAGES[@]} packages present"
    exit 0
fi

echo "install-deps: installing: ${missing[*]}"
SUDO=
if ((EUID != 0)); then
    command -v sudo >/dev/null ||
        { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: installed: ${missing[*]}"
