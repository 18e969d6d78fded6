#!/bin/bash
# nbd-kernel-manual.sh - the kernel NBD frontend on a real kernel, by hand.
#
# Longer than the tier's kernel NBD tests (020, 021), so not part of it:
# runs INSIDE a guest that has the nbd module loaded, as root, with this
# tree's build/ visible at the same path, for example:
#
#     scripts/kernel-vm.sh run trixie $PWD/tests/kernel/nbd-kernel-manual.sh
#     scripts/kernel-vm.sh run bookworm $PWD/tests/kernel/nbd-kernel-manual.sh
#
# Checked this way on Debian 13's 6.12 and Debian 12's 6.1 kernels.
#
# Checks, in order: /dev/nbd0 through "repvol attach --nbd-device", a
# second attach on the same device refused as busy, mkfs.ext4 + mount +
# files + detach, re-attach with --nbd-device auto and --device auto
# (files and checksums intact), status naming the device and the
# filesystem, discard and write-zeroes, fio libaio O_DIRECT with crc32c
# verify, detach with the replicas byte-identical, a non-root attach
# told why not, and a SIGKILLed attach whose device fails I/O and is
# freed by detach.  With the nbd module not loaded, only that attach
# says "modprobe nbd".
#
# Exits non-zero on the first failure.  Never relies on timing: every
# wait polls a condition with a bound.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=$TOP/build
export PATH=$B:$PATH
export REPVOL_REGISTRY=/tmp/reg REPVOL_RUN_DIR=/tmp/run
W=/tmp/nbdk
# Booted without nbd (recipe's init skips modules named by
# vmtest.nomod=), only the "modprobe nbd" message is checked.
if [ -e /sys/module/nbd ]; then MODE=full; else MODE=nomod; fi

step() { echo "=== $* (uptime $(cut -d' ' -f1 /proc/uptime)s)"; }
die() { echo "FAILED: $*"; exit 1; }
# wait_for SECONDS CMD...: poll CMD every 0.2 s.
wait_for() {
  local n=$(( $1 * 5 )); shift
  until "$@"; do
    n=$((n - 1)); [ $n -gt 0 ] || die "timed out waiting for: $*"
    sleep 0.2
  done
}
pids=()
cleanup() {
  set +e
  umount $W/mnt 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT

ip link set lo up 2>/dev/null || true
rm -rf $W $REPVOL_REGISTRY $REPVOL_RUN_DIR
mkdir -p $W/a $W/b $W/mnt $REPVOL_REGISTRY
cd $W                           # fio leaves its verify state here
uname -r

repvold --data-dir $W/a --listen 127.0.0.1:7101 --name a --zone za 2> $W/a.log &
pids+=($!)
repvold --data-dir $W/b --listen 127.0.0.1:7102 --name b --zone zb 2> $W/b.log &
pids+=($!)
wait_for 10 repvol create v --size 256M --replica 127.0.0.1:7101 \
  --replica 127.0.0.1:7102

if [ "$MODE" = nomod ]; then
  step "no nbd module: attach says what is missing"
  [ ! -e /sys/module/nbd ] || die "nbd is loaded; MODE=nomod wants it absent"
  if repvol attach v --nbd-device /dev/nbd0 2> $W/err; then
    die "attach succeeded without nbd"
  fi
  cat $W/err; grep -q "modprobe nbd" $W/err || die "no modprobe hint"
  repvol attach v --device auto 2> $W/err && die "--device auto succeeded"
  cat $W/err; grep -q "modprobe nbd" $W/err || die "no modprobe hint"
  step "done"; exit 0
fi

# device_of VOL: the /dev/nbdN its attach serves, from the registry.
device_of() {
  repvol status "$1" --json | python3 -c 'import json, sys
f = (json.load(sys.stdin)["attachment"] or {}).get("frontend", "")
print(f.split()[1] if f.startswith("nbd-kernel /dev/") else "")'
}
# connected VOL: its attach ($apid) has connected the device it names.
connected() {
  local d; d=$(device_of "$1"); [ -n "$d" ] || return 1
  [ "$(cat /sys/block/${d#/dev/}/pid 2>/dev/null)" = "$apid" ]
}
# attach VOL ARGS...: start it in the background, wait until served.
attach() {
  local v=$1; shift
  repvol attach "$v" "$@" 2>> $W/attach-$v.log &
  apid=$!; pids+=($apid)
  wait_for 30 connected "$v"
  dev=$(device_of "$v")
  echo "attach pid $apid serves $dev"
}
detach() {
  repvol detach "$1"
  wait "$apid" || die "attach of $1 exited $?"
}

step "attach --nbd-device /dev/nbd0"
attach v --nbd-device /dev/nbd0
[ "$dev" = /dev/nbd0 ] || die "served $dev, not /dev/nbd0"
[ "$(blockdev --getsize64 /dev/nbd0)" = $((256 << 20)) ] || die "wrong size"
grep -h "nbd-kernel" $W/attach-v.log
cat /sys/block/nbd0/pid

step "a second volume on /dev/nbd0 is refused as busy"
repvol create w --size 64M --replica 127.0.0.1:7101 --replica 127.0.0.1:7102
if repvol attach w --nbd-device /dev/nbd0 2> $W/err; then die "attach w on a busy device"; fi
cat $W/err; grep -q "busy" $W/err || die "no 'busy' in the error"

step "not root: attach says so"
chmod -R a+rwX $REPVOL_REGISTRY
mkdir -p -m 777 /tmp/run-nobody
if REPVOL_RUN_DIR=/tmp/run-nobody setpriv --reuid=65534 --regid=65534 --clear-groups \
    repvol attach w --nbd-device /dev/nbd1 2> $W/err; then
  die "attach as nobody succeeded"
fi
cat $W/err; grep -q "not root" $W/err || die "no 'not root' in the error"

step "mkfs.ext4, mount, write files"
mkfs.ext4 -q -F -L kdata /dev/nbd0
mount /dev/nbd0 $W/mnt
dd if=/dev/urandom of=$W/mnt/big bs=1M count=48 status=none
for i in $(seq 50); do head -c $((i * 1000)) /dev/urandom > $W/mnt/small.$i; done
(cd $W/mnt && sha256sum big small.* > $W/sums)
sync
umount $W/mnt

step "detach"
detach v
[ ! -e /sys/block/nbd0/pid ] || die "/dev/nbd0 still connected after detach"

step "re-attach --nbd-device auto, compare checksums"
attach v --nbd-device auto
mount $dev $W/mnt
(cd $W/mnt && sha256sum -c --quiet $W/sums) || die "checksums differ after re-attach"
echo "checksums match on $dev"
umount $W/mnt
repvol status v | grep -E "attachment|contents" || true
detach v

step "re-attach --device auto, compare checksums, discard + write-zeroes"
attach v --device auto
mount $dev $W/mnt
(cd $W/mnt && sha256sum -c --quiet $W/sums) || die "checksums differ after --device auto"
fstrim -v $W/mnt || die "fstrim"
umount $W/mnt
# Zero the last 16 MiB (write-zeroes where the kernel sends it), read back.
blkdiscard -f -z -o $((240 << 20)) -l $((16 << 20)) $dev || die "blkdiscard -z"
[ "$(dd if=$dev bs=1M skip=240 count=16 status=none | tr -d '\0' | wc -c)" = 0 ] ||
  die "zeroed range reads back non-zero"
cat /sys/block/${dev#/dev/}/queue/write_zeroes_max_bytes

step "fio libaio O_DIRECT randwrite + verify crc32c on $dev"
fio --name=verify --filename=$dev --ioengine=libaio --direct=1 --rw=randwrite \
  --bsrange=4k-256k --iodepth=16 --size=96M --offset=128M --verify=crc32c \
  --do_verify=1 --verify_fatal=1 --group_reporting > $W/fio.log ||
  { cat $W/fio.log; die "fio verify"; }
grep -E "IOPS|err=" $W/fio.log
fio --name=qd32 --filename=$dev --ioengine=libaio --direct=1 --rw=randrw \
  --bs=4k --iodepth=32 --size=24M --offset=64M --verify=crc32c --do_verify=1 \
  --verify_fatal=1 --group_reporting > $W/fio2.log ||
  { cat $W/fio2.log; die "fio verify qd32"; }
grep -E "IOPS|err=" $W/fio2.log

step "detach; replicas byte-identical"
detach v
cmp $W/a/v.data $W/b/v.data || die "replicas differ"
echo "replicas identical"

step "attach killed: I/O fails after the dead-connection timeout; the device stays busy until detach"
attach v --nbd-device /dev/nbd0
kill -KILL $apid; wait $apid || true
s=$(date +%s)
if timeout 120 dd if=/dev/nbd0 of=/dev/null bs=4k count=1 iflag=direct status=none; then
  die "read from a dead attach's device succeeded"
fi
echo "read failed after $(( $(date +%s) - s )) s"
# Another volume cannot have it, and is told who held it.
if repvol attach w --nbd-device /dev/nbd0 2> $W/err; then die "attach w on a dead attach's device"; fi
cat $W/err; grep -q "has exited" $W/err || die "busy message does not say the holder exited"
# detach of the dead attach clears its attachment and frees the device.
repvol detach v 2>&1 | tee $W/err
grep -q "disconnected /dev/nbd0" $W/err || die "detach did not free /dev/nbd0"
wait_for 10 test ! -e /sys/block/nbd0/pid
attach v --nbd-device /dev/nbd0
want=$(head -c 64M $W/a/v.data | sha256sum)
got=$(dd if=/dev/nbd0 bs=1M count=64 iflag=direct status=none | sha256sum)
[ "$want" = "$got" ] || die "first 64 MiB differ from the replica after the kill"

step "attach killed again: re-attaching the volume frees its device by itself"
kill -KILL $apid; wait $apid || true
attach v --nbd-device /dev/nbd0
grep "left behind" $W/attach-v.log || die "re-attach did not free /dev/nbd0"
got=$(dd if=/dev/nbd0 bs=1M count=64 iflag=direct status=none | sha256sum)
[ "$want" = "$got" ] || die "first 64 MiB differ after the second kill"
detach v
cmp $W/a/v.data $W/b/v.data || die "replicas differ"
grep -h "warning" $W/attach-v.log | sort | uniq -c || true
dmesg | grep -iE "nbd|stuck|blocked" | tail -20 || true
step "done"
