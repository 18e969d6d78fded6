#!/bin/bash
# Catch-up cost against what changed (repvol issue 15, item 4).
#
#   tests/perf/resync-bench.sh
#
# For each row, on a fresh two-replica volume (BENCH_RESYNC_SIZE, default
# 1G): seed it with random data (nbdcopy, with a final flush in the
# "flushes" variant, without one otherwise), wait RESYNC_SETTLE seconds
# (default 2: the replica is lost some time after the seed, not within a
# second of its last write), kill -9 repvold b, dirty 1%, 10% or 100% of
# the volume with fio random 4 KiB writes (--fsync=64 in the "flushes"
# variant, no flush otherwise), start b again and wait until the registry
# lists it in sync.  The bytes copied come from the attach's "caught up"
# log line; the seconds from that line when it carries them (the engine's
# own clock, from fetching the survivor's map to the final flush),
# otherwise from b's restart to the registry showing in sync (a polled
# wall clock, which also counts the reconnect).
#
# Prints a table: dirty %, flushes, bytes copied, seconds, ratio of the
# seconds to the full copy's (the 100% row without flushes).  With
# BENCH_OUT_DIR set it writes $BENCH_OUT_DIR/resync.json:
#   {"rows": [{"dirty_pct": 1, "flushes": true, "bytes_copied": N,
#              "seconds": S, "wall_seconds": W}, ...],
#    "full_seconds": S, "full_row": "100% dirty, no flushes"}
# Timings on a shared machine are noisy; bytes copied are exact.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/integration/lib.sh
. "$TOP/tests/integration/lib.sh"
require_cmd fio nbdcopy python3

SIZE=${BENCH_RESYNC_SIZE:-1G}
SETTLE=${RESYNC_SETTLE:-2}
BYTES=$(numfmt --from=iec "$SIZE")
PCTS=${RESYNC_PCTS:-"1 10 100"}

say() { printf '==> %s\n' "$*"; }
now() { date +%s.%N; }

start_repvold a zone-a
start_repvold b zone-b
head -c "$BYTES" /dev/urandom >"$T/seed"

ROWS=()
n=0
for flushes in true false; do
    for pct in $PCTS; do
        n=$((n + 1))
        vol=rb$n
        repvol create "$vol" --size "$SIZE" --replica "${REPVOLD_ADDR[a]}" \
            --replica "${REPVOLD_ADDR[b]}" >/dev/null
        start_attach "$vol" "$T/$vol.sock" --timeout 3
        uri=$(nbd_uri "$T/$vol.sock")
        if [[ $flushes == true ]]; then
            nbdcopy --flush "$T/seed" "$uri"
        else
            nbdcopy "$T/seed" "$uri"
        fi
        sleep "$SETTLE"
        stop_repvold b KILL
        io=$((BYTES * pct / 100 / 4096 * 4096))
        fargs=(--name=dirty --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k
               --iodepth=16 --size="$BYTES" --io_size="$io" --randrepeat=0
               --output="$T/fio-$vol.out")
        [[ $flushes == true ]] && fargs+=(--fsync=64)
        fio "${fargs[@]}" || { cat "$T/fio-$vol.out" >&2; fail "fio failed"; }
        t0=$(now)
        start_repvold b zone-b
        wait_for -t 300 all_in_sync "$vol"
        t1=$(now)
        line=$(grep 'caught up' "$T/attach-$vol.log" | tail -1)
        copied=$(grep -Po 'caught up \(\K[0-9]+' <<<"$line" || true)
        [[ -n $copied ]] || fail "no catch-up line in $T/attach-$vol.log"
        wall=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
        secs=$(grep -Po 'copied in \K[0-9.]+' <<<"$line" || echo "$wall")
        say "$pct% dirty, flushes=$flushes: $copied bytes copied in ${secs}s (wall ${wall}s)"
        ROWS+=("$pct $flushes $copied $secs $wall")
        stop_attach "$vol"
        repvol delete "$vol" --force >/dev/null 2>&1 || true
    done
done

printf '%s\n' "${ROWS[@]}" | python3 -c '
import json, os, sys
rows = []
for line in sys.stdin:
    p, f, c, s, w = line.split()
    rows.append({"dirty_pct": int(p), "flushes": f == "true",
                 "bytes_copied": int(c), "seconds": float(s),
                 "wall_seconds": float(w)})
full = [r for r in rows if r["dirty_pct"] == 100 and not r["flushes"]]
full_s = full[0]["seconds"] if full else max(r["seconds"] for r in rows)
size = int(sys.argv[1])
print("%6s %8s %14s %8s %8s %8s" % ("dirty%", "flushes", "bytes copied",
                                     "%volume", "seconds", "ratio"))
for r in rows:
    print("%6d %8s %14d %7.1f%% %8.3f %7.1f%%" % (
        r["dirty_pct"], "yes" if r["flushes"] else "no", r["bytes_copied"],
        100.0 * r["bytes_copied"] / size, r["seconds"],
        100.0 * r["seconds"] / full_s if full_s else 0))
out = os.environ.get("BENCH_OUT_DIR")
if out:
    with open(os.path.join(out, "resync.json"), "w") as fh:
        json.dump({"rows": rows, "full_seconds": full_s,
                   "full_row": "100% dirty, no flushes"}, fh, indent=1)
' "$BYTES"
