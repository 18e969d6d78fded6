#!/bin/bash
# kernel-vm.sh - boot a stock Debian kernel under qemu and run a script in it,
# for the kernel test tier (tests/kernel/, "make check-kernel").
#
#   scripts/kernel-vm.sh fetch
#       Download the current Debian 13 (trixie) and Debian 12 (bookworm)
#       amd64 kernels and busybox-static into the cache, with apt, through a
#       private sources.list and state (the host's apt setup is not touched).
#       Versions are resolved at fetch time from the linux-image-amd64
#       metapackage.  Once the cache holds both, fetch downloads nothing
#       (REPVOL_VM_REFRESH=1 resolves and downloads again).  If the archive
#       cannot be reached: prints "SKIP: <reason>" and exits 77.
#   scripts/kernel-vm.sh run KERNEL SCRIPT [ARGS...]
#       KERNEL is trixie or bookworm.  Boots it (offline; fetch first) with
#       this host's root file system shared read-only over 9p, tmpfs on /tmp
#       /run /var/tmp /root, nbd (and ublk_drv on trixie) loaded, loopback up,
#       and runs "SCRIPT ARGS..." as root in a chroot of the shared root.
#       Output streams to stdout; exits with SCRIPT's exit status (124 when
#       the VM hit REPVOL_VM_TIMEOUT, 125 when the VM could not run it).
#   scripts/kernel-vm.sh kmod KERNEL OUTDIR
#       Build this tree's kmod/ (repvol.ko) for the cached KERNEL into
#       OUTDIR/repvol.ko, offline.  fetch also downloads that kernel's
#       linux-headers and linux-kbuild packages (and, for trixie, whose
#       6.12 headers need Debian 13's gcc-14, a trixie tool root with
#       gcc-14 and make; nothing is installed on the host).  bookworm's
#       6.1 headers are built against with the host's own gcc-12.
#   scripts/kernel-vm.sh shell KERNEL     an interactive guest shell
#   scripts/kernel-vm.sh version KERNEL   the cached kernel's version string
#   scripts/kernel-vm.sh accel            which accelerator run would use
#
# Environment:
#   REPVOL_VM_CACHE    cache directory (default /var/cache/repvol-vm)
#   REPVOL_VM_MIRROR   Debian mirror (default: the host's first apt URI,
#                      else http://deb.debian.org/debian)
#   REPVOL_VM_MEM      guest RAM (default 2G)      REPVOL_VM_SMP  vCPUs (default 2)
#   REPVOL_VM_TIMEOUT  seconds the VM may run (default 900)
#   REPVOL_VM_ACCEL    kvm or tcg to force one; default: KVM only if hardware
#                      KVM (kvm_intel/kvm_amd) is loaded and a probe boot of
#                      the kernel works under it, else multi-threaded TCG;
#                      "probe" runs the probe boot even without kvm_intel/amd
#   REPVOL_VM_PASSENV  names of variables to pass into the guest (its
#                      environment is otherwise fresh), e.g. "BUILD KEEP_TMP"
#   REPVOL_VM_SHARE    host directory shared writable into the guest at the
#                      same path (default: a fresh temp directory); the
#                      script sees it as $REPVOL_VM_SHARE
#   REPVOL_VM_TREE     host directory shared read-only at the same path,
#                      over the guest's tmpfs (default: this source tree,
#                      when it lies under /tmp, /run, /var/tmp or /root,
#                      which the guest would otherwise hide: a fresh clone
#                      in /tmp is tested as it is)
#
# Inside the guest the script also gets REPVOL_VM_KERNEL (trixie|bookworm),
# REPVOL_VM_KVER (uname -r) and REPVOL_VM_ACCEL (kvm|tcg).
#
# Host packages (scripts/install-deps.sh): qemu-system-x86, apt, dpkg, kmod,
# xz-utils, cpio, gzip.  In the guest, through the shared root, whatever the
# script runs (e2fsprogs, fio, nbd-client, ...).
set -euo pipefail
TREE_DEFAULT=$(cd "$(dirname "$0")/.." && pwd)

export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin   # depmod, modprobe
CACHE=${REPVOL_VM_CACHE:-/var/cache/repvol-vm}
MEM=${REPVOL_VM_MEM:-2G}
SMP=${REPVOL_VM_SMP:-2}
VM_TIMEOUT=${REPVOL_VM_TIMEOUT:-900}
KERNELS=(trixie bookworm)
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# What a trixie tool root needs to build a module against trixie's
# headers; apt adds their closure (libc and the rest).
TRIXIE_TOOLS="gcc-14 binutils make dash bash coreutils sed grep gawk findutils
              diffutils libelf1t64 libssl3t64 zlib1g pahole"

say() { printf 'kernel-vm: %s\n' "$*" >&2; }
die() { printf 'kernel-vm: error: %s\n' "$*" >&2; exit 1; }

# Modules each kernel must load at boot, before their dependencies are
# resolved (virtio and 9p for the shared root, ext4 for the tests, the block
# drivers).  Built-in ones (virtio_pci on trixie) are skipped.
modules_for() {
    case $1 in
    trixie)   echo "virtio_pci 9pnet_virtio 9p ext4 nbd ublk_drv" ;;
    bookworm) echo "virtio_pci 9pnet_virtio 9p ext4 nbd" ;;
    *) die "unknown kernel '$1' (trixie or bookworm)" ;;
    esac
}

mirror() {
    local uri=${REPVOL_VM_MIRROR:-}
    if [[ -z $uri ]]; then
        uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
        [[ -n $uri ]] || uri=$(awk '/^deb / && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
        [[ -n $uri ]] || uri=http://deb.debian.org/debian
    fi
    echo "$uri"
}

# apt_opts SUITE: apt options for a private apt universe under $CACHE/apt/SUITE
apt_opts() {
    local a=$CACHE/apt/$1
    APT=(-o "Dir::Etc::SourceList=$a/sources.list" -o Dir::Etc::SourceParts=/dev/null
         -o "Dir::State::Lists=$a/lists" -o "Dir::State::status=$a/status"
         -o "Dir::Cache=$a/cache" -o Debug::NoLocking=1
         -o APT::Install-Recommends=0 -o Acquire::Retries=1
         -o Acquire::http::Timeout=20 -o Acquire::Languages=none
         -o APT::Sandbox::User=root)
}

# apt_reason FILE: the line of apt's output that says why it failed
apt_reason() {
    { grep -E -m1 'Failed to fetch|Could not (connect|resolve)|Temporary failure|Unable to' "$1" ||
      grep -E -m1 '^(E|W|Err):' "$1" || echo "no reason given"; } | sed 's/^ *//'
}

skip_fetch() {
    echo "SKIP: cannot fetch Debian kernels: $*"
    exit 77
}

# fetch_suite SUITE: resolve and download SUITE's current kernel into
# $CACHE/dl/SUITE (and busybox-static from trixie).
fetch_suite() {
    local suite=$1 a=$CACHE/apt/$1 dl=$CACHE/dl/$1 err img tmp
    apt_opts "$suite"
    mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$dl"
    : >"$a/status"
    echo "deb [signed-by=$KEYRING] $(mirror) $suite main" >"$a/sources.list"
    say "$suite: apt-get update from $(mirror)"
    err=$CACHE/apt/$suite.err
    if ! apt-get "${APT[@]}" -q update >"$err" 2>&1 ||
        grep -Eq '^(E|W): (Failed to fetch|Some index files failed)' "$err"; then
        cat "$err" >&2
        skip_fetch "apt-get update of $suite from $(mirror) failed: $(apt_reason "$err")"
    fi
    # linux-image-amd64 depends on the current linux-image-VERSION-amd64.
    img=$(apt-cache "${APT[@]}" depends linux-image-amd64 2>/dev/null |
          awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ {print $2; exit}')
    [[ -n $img ]] || die "$suite: cannot resolve linux-image-amd64 to a kernel package"
    say "$suite: current kernel package $img"
    local pkgs=("$img")
    [[ $suite == trixie ]] && pkgs+=(busybox-static)
    tmp=$(mktemp -d "$CACHE/dl/.new-$suite.XXXXXX")
    if ! (cd "$tmp" && apt-get "${APT[@]}" -q download "${pkgs[@]}") >"$err" 2>&1; then
        cat "$err" >&2
        rm -rf "$tmp"
        if grep -q 'Failed to fetch\|Could not connect\|Temporary failure' "$err"; then
            skip_fetch "downloading ${pkgs[*]} from $(mirror) failed: $(apt_reason "$err")"
        fi
        die "$suite: apt-get download ${pkgs[*]} failed"
    fi
    # Replace the cached set only once the new one is complete.
    rm -rf "$dl" && mv "$tmp" "$dl"
    echo "$img" >"$dl/PACKAGE"
}

# lock_cache: one fetch or prepare at a time per cache (two test runs may
# share it); held until unlock_cache or the end of this script.
lock_cache() {
    [[ -n ${CACHE_LOCK_FD:-} ]] && return 0
    exec {CACHE_LOCK_FD}>"$CACHE/.lock"
    flock "$CACHE_LOCK_FD"
}
unlock_cache() {
    [[ -n ${CACHE_LOCK_FD:-} ]] || return 0
    exec {CACHE_LOCK_FD}>&-
    unset CACHE_LOCK_FD
}

fetched() { [[ -s $CACHE/dl/$1/PACKAGE ]] && compgen -G "$CACHE/dl/$1/linux-image-*.deb" >/dev/null; }

# fetch_kbuild SUITE: the headers (and kbuild) of SUITE's cached kernel
# into $CACHE/dl/SUITE-kbuild, and for trixie its tool root's packages.
# Returns 1 after saying why, without failing the kernels' fetch.
fetch_kbuild() {
    local suite=$1 dl=$CACHE/dl/$1-kbuild img hdr err tmp pkgs
    img=$(cat "$CACHE/dl/$suite/PACKAGE")
    if [[ ${REPVOL_VM_REFRESH:-0} != 1 && "$(cat "$dl/PACKAGE" 2>/dev/null)" == "$img" ]]; then
        say "$suite: kbuild for $img cached"
        return 0
    fi
    apt_opts "$suite"
    hdr=linux-headers-${img#linux-image-}
    err=$CACHE/apt/$suite-kbuild.err
    pkgs=$(apt-cache "${APT[@]}" depends "$hdr" 2>"$err" |
           awk '$1 == "Depends:" && $2 ~ /^linux-(headers|kbuild)-/ {print $2}')
    if [[ -z $pkgs ]]; then
        say "$suite: cannot resolve $hdr's dependencies ($(apt_reason "$err")): repvol.ko cannot be built for it"
        return 1
    fi
    pkgs="$hdr $pkgs"
    if [[ $suite == trixie ]]; then
        # Against an empty dpkg status the closure is a complete root.
        pkgs="$pkgs $(apt-get "${APT[@]}" -s install $TRIXIE_TOOLS 2>>"$err" | awk '/^Inst/ {print $2}')"
    fi
    tmp=$(mktemp -d "$CACHE/dl/.new-$suite-kbuild.XXXXXX")
    # shellcheck disable=SC2086  # a list of package names
    if ! (cd "$tmp" && apt-get "${APT[@]}" -q download $pkgs) >>"$err" 2>&1; then
        rm -rf "$tmp"
        say "$suite: downloading $hdr failed ($(apt_reason "$err")): repvol.ko cannot be built for it"
        return 1
    fi
    rm -rf "$dl" && mv "$tmp" "$dl"
    echo "$img" >"$dl/PACKAGE"
    say "$suite: kbuild for $img: $(ls "$dl" | grep -c '\.deb$') packages"
}

cmd_fetch() {
    command -v apt-get >/dev/null || skip_fetch "apt-get is not installed"
    [[ -r $KEYRING ]] || skip_fetch "no Debian archive keyring at $KEYRING (debian-archive-keyring)"
    mkdir -p "$CACHE/dl" || die "cannot create the cache $CACHE"
    lock_cache
    local k
    for k in "${KERNELS[@]}"; do
        if [[ ${REPVOL_VM_REFRESH:-0} != 1 ]] && fetched "$k" &&
            { [[ $k != trixie ]] || compgen -G "$CACHE/dl/trixie/busybox-static_*.deb" >/dev/null; }; then
            say "$k: cached ($(cat "$CACHE/dl/$k/PACKAGE")), nothing to download"
            continue
        fi
        fetch_suite "$k"
    done
    for k in "${KERNELS[@]}"; do
        say "$k: $(cd "$CACHE/dl/$k" && ls -- *.deb | tr '\n' ' ')"
        fetch_kbuild "$k" || true
    done
}

# prepare_kbuild KERNEL: unpack the kernel's headers (bookworm: for the
# host's gcc-12, the headers' absolute include made relative to the
# unpacked root; trixie: a chroot-able tool root with gcc-14).  Redone
# when the packages change.  Sets KBROOT (the root) and KBDIR (the
# kernel build directory, inside the chroot for trixie).
prepare_kbuild() {
    local k=$1 dl=$CACHE/dl/$1-kbuild stamp d
    [[ -s $dl/PACKAGE ]] || die "$k: no kbuild packages in the cache; run: $0 fetch"
    prepare "$k"
    lock_cache
    KBROOT=$CACHE/$k/kbuild
    stamp="$(cd "$dl" && ls -- *.deb | sha256sum | cut -c1-16)"
    if [[ "$(cat "$KBROOT/.STAMP" 2>/dev/null)" != "$stamp" ]]; then
        say "$k: unpacking the kernel headers$([[ $k == trixie ]] && echo " and the gcc-14 tool root")"
        rm -rf "$KBROOT" && mkdir -p "$KBROOT"
        if [[ $k == trixie ]]; then
            mkdir -p "$KBROOT"/usr/{bin,sbin,lib,lib64} "$KBROOT/dev" "$KBROOT/build"
            for d in bin sbin lib lib64; do ln -s "usr/$d" "$KBROOT/$d"; done   # merged /usr
        fi
        for d in "$dl"/*.deb; do dpkg-deb -x "$d" "$KBROOT"; done
        if [[ $k == trixie ]]; then
            ln -sf gawk "$KBROOT/usr/bin/awk"    # dpkg-deb -x sets up no alternatives
            mknod -m 666 "$KBROOT/dev/null" c 1 3
        else
            sed -i "s|^include /usr/src/|include $KBROOT/usr/src/|" \
                "$KBROOT/usr/src/linux-headers-$KVER/Makefile"
        fi
        echo "$stamp" >"$KBROOT/.STAMP"
    fi
    unlock_cache
    KBDIR=/usr/src/linux-headers-$KVER
    [[ $k == trixie ]] || KBDIR=$KBROOT$KBDIR
}

# kmod KERNEL OUTDIR: build a copy of kmod/ for KERNEL into OUTDIR.  For
# bookworm (host tools) sparse checks it too (C=1) when it is installed.
# A warning from the compiler or from sparse fails the build.
cmd_kmod() {
    local k=$1 out=$2 src log rc=0 check=()
    prepare_kbuild "$k"
    if [[ $k == trixie ]]; then
        src=$KBROOT/build/repvol
        rm -rf "$src"
    else
        src=$(mktemp -d /tmp/repvol-kmod.XXXXXX)
        command -v sparse >/dev/null && check=(C=1)
    fi
    mkdir -p "$src/kmod" "$out"
    cp "$TREE_DEFAULT/Kbuild" "$src/"
    cp "$TREE_DEFAULT"/kmod/Kbuild "$TREE_DEFAULT"/kmod/*.[ch] "$src/kmod/"
    say "$k: building repvol.ko against $KVER's headers${check:+ (and sparse)}"
    log=$src/build.log
    if [[ $k == trixie ]]; then
        chroot "$KBROOT" /usr/bin/env -i PATH=/usr/bin:/usr/sbin HOME=/root LANG=C \
            make -C "$KBDIR" M=/build/repvol modules >"$log" 2>&1 || rc=$?
    else
        make -C "$KBDIR" M="$src" ${check[@]+"${check[@]}"} modules >"$log" 2>&1 || rc=$?
    fi
    cat "$log"
    if ((rc != 0)) || grep -q 'warning:\|error:' "$log"; then
        rm -rf "$src"
        die "$k: repvol.ko did not build cleanly$( ((rc)) && echo " (make exit $rc)")"
    fi
    cp "$src/kmod/repvol.ko" "$out/repvol.ko"
    rm -rf "$src"
    say "$k: $out/repvol.ko ($(modinfo -F vermagic "$out/repvol.ko" | cut -d' ' -f1))"
}

# prepare KERNEL: unpack the kernel, build the initramfs; redone only when
# the downloaded package changed.  Sets KDIR, KVER, VMLINUZ, INITRD.
prepare() {
    local k=$1 dl=$CACHE/dl/$1 deb stamp mroot m b bb
    fetched "$k" || die "$k is not in the cache $CACHE; run: $0 fetch"
    lock_cache
    KDIR=$CACHE/$k
    deb=$(ls "$dl"/linux-image-*.deb | head -n 1)
    stamp="$(basename "$deb") $(modules_for "$k") init-$(write_init | sha256sum | cut -c1-12)"
    if [[ ! -s $KDIR/initramfs.cpio.gz || "$(cat "$KDIR/STAMP" 2>/dev/null)" != "$stamp" ]]; then
        say "$k: unpacking $(basename "$deb") and building the initramfs"
        rm -rf "$KDIR" && mkdir -p "$KDIR/root" "$KDIR/initramfs"/{bin,dev,proc,sys,newroot,lib/modules}
        dpkg-deb -x "$deb" "$KDIR/root"
        # trixie keeps modules in /usr/lib/modules, bookworm in /lib/modules
        for mroot in "$KDIR/root/usr" "$KDIR/root"; do
            [[ -d $mroot/lib/modules ]] && break
        done
        KVER=$(ls "$mroot/lib/modules" | head -n 1)
        depmod -b "$mroot" "$KVER"
        # The modules and their dependencies, in load order, uncompressed.
        for m in $(modules_for "$k"); do
            modprobe -C /dev/null -d "$mroot" -S "$KVER" --show-depends "$m" ||
                die "$k: module $m not found in $KVER"
        done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' | while read -r m; do
            b=$(basename "$m"); b=${b%.xz}; b=${b%.zst}
            case $m in
            *.xz)  xz -dc "$m" ;;
            *.zst) zstd -qdc "$m" ;;
            *)     cat "$m" ;;
            esac >"$KDIR/initramfs/lib/modules/$b"
            echo "$b" >>"$KDIR/initramfs/lib/modules/load.list"
        done
        bb=$(mktemp -d)
        dpkg-deb -x "$(ls "$CACHE"/dl/trixie/busybox-static_*.deb | head -n 1)" "$bb"
        # trixie's package has merged /usr: usr/bin/busybox
        cp "$(ls "$bb"/usr/bin/busybox "$bb"/bin/busybox 2>/dev/null | head -n 1)" "$KDIR/initramfs/bin/busybox"
        rm -rf "$bb"
        write_init >"$KDIR/initramfs/init"
        chmod 755 "$KDIR/initramfs/init"
        (cd "$KDIR/initramfs" && find . | cpio -o -H newc --quiet | gzip -1) >"$KDIR/initramfs.cpio.gz"
        cp "$KDIR/root/boot/vmlinuz-$KVER" "$KDIR/vmlinuz"
        echo "$KVER" >"$KDIR/KVER"
        rm -rf "$KDIR/root"      # 400+ MB of modules we do not need any more
        echo "$stamp" >"$KDIR/STAMP"
    fi
    unlock_cache
    KVER=$(cat "$KDIR/KVER")
    VMLINUZ=$KDIR/vmlinuz
    INITRD=$KDIR/initramfs.cpio.gz
}

# The guest's PID 1 (busybox sh): modules, the host root over 9p, tmpfs,
# the share, then "bash SHARE/.vm/cmd.sh" in a chroot; its exit status goes
# to SHARE/.vm/rc.
write_init() {
    cat <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
while read -r m; do
    insmod /lib/modules/$m || echo "repvol-vm: insmod $m failed"
done < /lib/modules/load.list
share=; mode=; tree=
for a in $(cat /proc/cmdline); do
    case $a in repvol.share=*) share=${a#*=};; repvol.mode=*) mode=${a#*=};;
               repvol.tree=*) tree=${a#*=};; esac
done
if [ "$mode" = probe ]; then echo "repvol-vm: probe ok"; poweroff -f; fi
R=/newroot
o=trans=virtio,version=9p2000.L,msize=512000
# the virtio device may still be probing: try for up to 10 s
i=0
until mount -t 9p -o $o,cache=loose,ro hostroot $R 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "repvol-vm: 9p mount of the host root failed"; poweroff -f; }
    sleep 0.1
done
mount -t proc proc $R/proc; mount -t sysfs sys $R/sys; mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts; mount -t tmpfs tmpfs $R/dev/shm
# devtmpfs has no /dev/fd: bash's <(...) needs it
ln -sf /proc/self/fd $R/dev/fd; ln -sf /proc/self/fd/0 $R/dev/stdin
ln -sf /proc/self/fd/1 $R/dev/stdout; ln -sf /proc/self/fd/2 $R/dev/stderr
for d in /tmp /run /var/tmp /root; do mount -t tmpfs -o mode=1777 tmpfs $R$d; done
chmod 700 $R/root
if [ -n "$tree" ]; then
    mkdir -p $R$tree
    mount -t 9p -o $o,cache=loose,ro tree $R$tree || { echo "repvol-vm: 9p mount of the tree failed"; poweroff -f; }
fi
mkdir -p $R$share
mount -t 9p -o $o,cache=none share $R$share || { echo "repvol-vm: 9p mount of the share failed"; poweroff -f; }
ip link set lo up
echo "repvol-vm: guest ready after $(cut -d' ' -f1 /proc/uptime)s"
if [ "$mode" = shell ]; then
    setsid cttyhack chroot $R /bin/bash -l
else
    chroot $R /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        /bin/bash $share/.vm/cmd.sh
    rc=$?
    echo $rc > $R$share/.vm/rc
    echo "repvol-vm: script exit status $rc after $(cut -d' ' -f1 /proc/uptime)s"
fi
sync
poweroff -f
EOF
}

# qemu_cmd ACCEL: the qemu command line (without -append) into QEMU
qemu_cmd() {
    local acc
    case $1 in
    kvm) acc=(-accel kvm -cpu host) ;;
    tcg) acc=(-accel "tcg,thread=multi" -cpu max) ;;
    esac
    QEMU=(qemu-system-x86_64 "${acc[@]}" -m "$MEM" -smp "$SMP" -nographic -no-reboot
          -nic none -kernel "$VMLINUZ" -initrd "$INITRD")
}

# accel: kvm only where hardware KVM (kvm_intel / kvm_amd) is loaded, /dev/kvm
# is usable and a probe boot of this kernel actually works under it (on PVM
# hosts /dev/kvm cannot run stock kernels); otherwise tcg.
ACCEL=
accel() {
    [[ -z $ACCEL ]] || return 0
    case ${REPVOL_VM_ACCEL:-} in
    kvm|tcg) ACCEL=$REPVOL_VM_ACCEL; return 0 ;;
    ""|probe) ;;
    *) die "REPVOL_VM_ACCEL must be kvm, tcg or probe" ;;
    esac
    ACCEL=tcg
    if [[ ${REPVOL_VM_ACCEL:-} != probe && ! -e /sys/module/kvm_intel && ! -e /sys/module/kvm_amd ]]; then
        say "no hardware KVM (kvm_intel/kvm_amd not loaded$([[ -e /sys/module/kvm_pvm ]] && echo "; /dev/kvm is PVM")): TCG"
        return 0
    fi
    [[ -r /dev/kvm && -w /dev/kvm ]] || { say "/dev/kvm not usable: TCG"; return 0; }
    local out
    qemu_cmd kvm
    out=$(timeout -k 5 60 "${QEMU[@]}" -append "console=ttyS0 quiet panic=-1 repvol.mode=probe" </dev/null 2>&1 || true)
    if grep -q 'repvol-vm: probe ok' <<<"$out"; then
        ACCEL=kvm
    else
        say "a probe boot under KVM failed ($(grep -m1 -i 'error\|fail' <<<"$out" || echo "no output")): TCG"
    fi
}

cmd_run() {
    local k=$1 script=$2 rc share own_share=0 a
    shift 2
    [[ -f $script && -x $script ]] || die "$script: not an executable file"
    script=$(realpath -- "$script")
    command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is not installed (scripts/install-deps.sh)"
    prepare "$k"
    accel
    share=${REPVOL_VM_SHARE:-}
    if [[ -z $share ]]; then share=$(mktemp -d /tmp/repvol-vm.XXXXXX); own_share=1; fi
    mkdir -p "$share/.vm"
    share=$(realpath -- "$share")
    rm -f "$share/.vm/rc"
    # The guest hides /tmp and friends under tmpfs: share a tree there.
    local tree=${REPVOL_VM_TREE:-$TREE_DEFAULT} treeargs=() treecmd=
    case $tree in
    /tmp/?*|/run/?*|/var/tmp/?*|/root/?*)
        tree=$(realpath -- "$tree")
        treeargs=(-virtfs "local,path=$tree,mount_tag=tree,security_model=passthrough,readonly=on,multidevs=remap,id=tree")
        treecmd=" repvol.tree=$tree" ;;
    *) tree= ;;
    esac
    # A script hidden that way, and not in the tree, goes in the share.
    case $script in
    "$tree"/*) ;;
    /tmp/*|/run/*|/var/tmp/*|/root/*)
        cp -- "$script" "$share/.vm/script"; chmod +x "$share/.vm/script"
        script=$share/.vm/script ;;
    esac
    {
        printf 'export REPVOL_VM_KERNEL=%q REPVOL_VM_KVER=%q REPVOL_VM_ACCEL=%q REPVOL_VM_SHARE=%q\n' \
            "$k" "$KVER" "$ACCEL" "$share"
        for a in ${REPVOL_VM_PASSENV:-}; do
            [[ -n ${!a+set} ]] && printf 'export %s=%q\n' "$a" "${!a}"
        done
        printf 'cd %q\n' "$share"
        printf 'exec %q' "$script"
        for a in "$@"; do printf ' %q' "$a"; done
        printf '\n'
    } >"$share/.vm/cmd.sh"
    say "booting Debian $k $KVER ($ACCEL, $MEM RAM, $SMP vCPUs, bound ${VM_TIMEOUT}s): $script $*"
    qemu_cmd "$ACCEL"
    rc=0
    timeout -k 10 "$VM_TIMEOUT" "${QEMU[@]}" \
        -virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap,id=hostroot \
        ${treeargs[@]+"${treeargs[@]}"} \
        -virtfs "local,path=$share,mount_tag=share,security_model=passthrough,id=share" \
        -append "console=ttyS0 quiet panic=-1 mitigations=off repvol.share=$share$treecmd" </dev/null |
        sed -u 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g; s/\r$//' || rc=${PIPESTATUS[0]}
    if ((rc == 124 || rc == 137)); then
        say "the VM did not finish within ${VM_TIMEOUT}s"
        rc=124
    elif [[ -s $share/.vm/rc ]]; then
        rc=$(cat "$share/.vm/rc")
    else
        say "the VM exited (qemu status $rc) without the script's exit status"
        rc=125
    fi
    ((own_share == 0)) || rm -rf "$share"
    return "$rc"
}

cmd_shell() {
    local share
    prepare "$1"
    accel
    share=$(mktemp -d /tmp/repvol-vm.XXXXXX)
    qemu_cmd "$ACCEL"
    "${QEMU[@]}" \
        -virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap,id=hostroot \
        -virtfs "local,path=$share,mount_tag=share,security_model=passthrough,id=share" \
        -append "console=ttyS0 quiet panic=-1 mitigations=off repvol.share=$share repvol.mode=shell" || true
    rm -rf "$share"
}

case ${1:-} in
fetch)   cmd_fetch ;;
run)     (($# >= 3)) || die "usage: $0 run trixie|bookworm SCRIPT [ARGS...]"
         modules_for "$2" >/dev/null; shift; cmd_run "$@" ;;
shell)   (($# == 2)) || die "usage: $0 shell trixie|bookworm"; modules_for "$2" >/dev/null; cmd_shell "$2" ;;
kmod)    (($# == 3)) || die "usage: $0 kmod trixie|bookworm OUTDIR"; modules_for "$2" >/dev/null; cmd_kmod "$2" "$3" ;;
version) (($# == 2)) || die "usage: $0 version trixie|bookworm"; prepare "$2"; echo "$KVER" ;;
accel)   k=trixie; fetched trixie || k=bookworm; prepare "$k"; accel; echo "$ACCEL" ;;
*)       sed -n '2,/^set -euo/{/^set -euo/d;p}' "$0" >&2; exit 2 ;;
esac
