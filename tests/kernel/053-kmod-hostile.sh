#!/bin/bash
# repvol.ko against hostile input (tests/kernel/kmod-hostile.c): every bad
# ioctl, read, write, pread and pwrite the contract names fails with its
# errno, and the device keeps serving real I/O in between; the kernel
# logs no WARNING, BUG, Oops or general protection fault meanwhile.
. "$(dirname "$0")/lib.sh"
need_kmod
prog=$BUILD/tests/kmod-hostile
[[ -x $prog ]] || fail "$prog missing (make all)"
rc=0
"$prog" >"$T/hostile.out" 2>&1 || rc=$?
grep -E '^FAIL|^SKIP' "$T/hostile.out" >&2 || true
tail -n 1 "$T/hostile.out" >&2
((rc == 0)) || { cat "$T/hostile.out" >&2; fail "kmod-hostile exited $rc"; }
log "$(tail -n 1 "$T/hostile.out")"
bad=$(dmesg | tail -n +"$((DMESG_MARK + 1))" |
      grep -E 'WARNING|BUG|Oops|general protection|refcount_t|use-after-free|KASAN' || true)
[[ -z $bad ]] || fail "the kernel complained: $bad"
# Nothing left behind: the program deleted its device.
for d in /sys/block/repvol*; do
    [[ -e $d ]] && fail "$d is still there after kmod-hostile"
done
true
