#!/bin/bash
# tests/kernel/run.sh [TEST...] - the kernel test tier ("make check-kernel").
#
# Fetches the Debian kernels (scripts/kernel-vm.sh fetch; cached), builds
# repvol.ko for each into $BUILD/kmod/KVER/ (scripts/kernel-vm.sh kmod), then boots
# each kernel once (REPVOL_VM_KERNELS, default "trixie bookworm") and runs
# every tests/kernel/[0-9]*.sh (or the TESTs given) inside that one boot
# through tests/kernel/guest.sh.  Tests that need a driver the kernel lacks,
# or a frontend this build lacks, skip.  Prints PASS/FAIL/SKIP per test per
# kernel and a summary; logs go to tests/out/kernel/KERNEL/ (console.log and
# one NAME.log per test).
#
# Environment: REPVOL_VM_KERNELS, BUILD (binaries, default build/),
# KTEST_TIMEOUT (per test, default 300 s), WAIT_TIMEOUT, KEEP_TMP and
# KCRASH_POINTS (test 040) are
# passed to the guest; REPVOL_VM_* as scripts/kernel-vm.sh documents.
#
# When the Debian archive cannot be reached (and nothing is cached) the tier
# prints "SKIPPED, not passed" with the reason and exits 0; any failed test,
# or a VM that did not finish, exits 1.
set -uo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
VM=$TOP/scripts/kernel-vm.sh
OUT=${TEST_OUT:-$TOP/tests/out}/kernel
KERNELS=${REPVOL_VM_KERNELS:-trixie bookworm}
t0=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t0 ))s"; }

# BUILD: the binaries to test (default build/).  This tree is shared into
# the guest at its own path even under /tmp, /run, /var/tmp or /root (which
# the guest covers with tmpfs); a BUILD elsewhere must not be under those.
export BUILD=${BUILD:-$TOP/build}
for b in repvol repvold; do
    [[ -x $BUILD/$b ]] || { echo "kernel tier: $BUILD/$b missing (make all)" >&2; exit 1; }
done
if ! command -v qemu-system-x86_64 >/dev/null; then
    echo "kernel tier: SKIPPED, not passed: qemu-system-x86_64 is not installed (scripts/install-deps.sh)"
    exit 0
fi

rc=0
mkdir -p "$OUT"
"$VM" fetch >"$OUT/fetch.log" 2>&1 || rc=$?
if ((rc == 77)); then
    sed 's/^/    | /' "$OUT/fetch.log"
    echo "kernel tier: SKIPPED, not passed: $(grep -m1 '^SKIP: ' "$OUT/fetch.log" | sed 's/^SKIP: //')"
    exit 0
elif ((rc != 0)); then
    sed 's/^/    | /' "$OUT/fetch.log"
    echo "kernel tier: FAIL: fetching the kernels failed (exit $rc)"
    exit 1
fi
grep 'kernel-vm: [a-z]*: \(cached\|current\)' "$OUT/fetch.log" | sed 's/^kernel-vm: /fetch: /'

# The VM's bound: every test's own bound (tests/kernel/bound.sh), plus
# the boot.
# shellcheck source=bound.sh
. "$TOP/tests/kernel/bound.sh"
vm_bound=120
if (($#)); then sel=("$@"); else sel=("$TOP"/tests/kernel/[0-9][0-9][0-9]-*.sh); fi
for t in "${sel[@]}"; do
    [[ -f $t ]] || t=$(compgen -G "$TOP/tests/kernel/$(basename "$t" .sh)*.sh" | head -n 1)
    vm_bound=$((vm_bound + $(test_bound "$t")))
done
export REPVOL_VM_TIMEOUT=${REPVOL_VM_TIMEOUT:-$vm_bound}

declare -A NP=() NF=() NS=() KV=()
failed=0
for k in $KERNELS; do
    rm -rf "${OUT:?}/$k" && mkdir -p "$OUT/$k"
    # repvol.ko for this kernel, where the kmod tests (need_kmod) look.
    kv=$("$VM" version "$k" 2>/dev/null)
    if "$VM" kmod "$k" "$BUILD/kmod/$kv" >"$OUT/$k/kmod-build.log" 2>&1; then
        echo "=== Debian $k: built repvol.ko for $kv"
    else
        echo "=== Debian $k: repvol.ko did not build for $kv (its tests will fail):"
        tail -n 15 "$OUT/$k/kmod-build.log" | sed 's/^/    | /'
        rm -f "$BUILD/kmod/$kv/repvol.ko"
    fi
    echo "=== Debian $k: booting ($(elapsed) so far)"
    vrc=0
    REPVOL_VM_PASSENV="BUILD KTEST_TIMEOUT WAIT_TIMEOUT KEEP_TMP KCRASH_POINTS" REPVOL_VM_SHARE=$OUT/$k "$VM" run "$k" "$TOP/tests/kernel/guest.sh" "$OUT/$k" "$@" 2>&1 |
        tee "$OUT/$k/console.log" | grep --line-buffered -E '^(PASS|FAIL|SKIP) |^    |^guest:|^kernel-vm:|repvol-vm:' ||
        true
    vrc=${PIPESTATUS[0]}
    KV[$k]=$(cat "${REPVOL_VM_CACHE:-/var/cache/repvol-vm}/$k/KVER" 2>/dev/null || echo "?")
    NP[$k]=$(grep -c '^PASS ' "$OUT/$k/results" 2>/dev/null)
    NF[$k]=$(grep -c '^FAIL ' "$OUT/$k/results" 2>/dev/null)
    NS[$k]=$(grep -c '^SKIP ' "$OUT/$k/results" 2>/dev/null)
    if ((vrc != 0 && vrc != 1)) || [[ ! -f $OUT/$k/results ]]; then
        echo "FAIL $k: the VM did not run the tests to the end (status $vrc; see ${OUT#"$TOP"/}/$k/console.log)"
        tail -n 20 "$OUT/$k/console.log" | sed 's/^/    | /'
        NF[$k]=$(( ${NF[$k]:-0} + 1 ))
        failed=1
    fi
    (( ${NF[$k]:-0} == 0 )) || failed=1
done

echo "=== kernel tier summary ($(elapsed))"
for k in $KERNELS; do
    printf '  %-9s %-24s %s passed, %s failed, %s skipped\n' "$k" "${KV[$k]}" \
        "${NP[$k]:-0}" "${NF[$k]:-0}" "${NS[$k]:-0}"
done
if ((failed)); then
    echo "kernel tier: FAILED"
    exit 1
fi
echo "kernel tier: passed (skipped tests are listed above, with their reasons)"
