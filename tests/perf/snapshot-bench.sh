#!/bin/bash
# Snapshot throughput against a real S3 server ("make bench" runs it after
# the fio table), with its baseline measured in the same run.
#
#   tests/perf/snapshot-bench.sh
#
# It starts the test S3 server (scripts/s3-server.sh: Ceph's RADOS Gateway
# on loopback) and two replica servers, fills a volume with random data
# (incompressible, so compression cannot flatter repvol), then measures:
#
#   upload    repvol snapshot create (a full snapshot of the detached
#             volume: attach, read the replicas, hash, compress, PUT)
#   restore   repvol snapshot restore (full: GET, check, decompress, write
#             both new replicas)
#   baseline  the same bytes, cut into objects of the snapshot's chunk
#             size, PUT and then GET by parallel "curl --aws-sigv4"
#             processes (tests/perf/s3-baseline.sh, S3_PARALLEL at a time)
#
# and prints MiB/s for each and repvol's ratio to the baseline.  Wall-clock
# rates on a shared machine are noisy; compare the ratios, and run it more
# than once.  It asserts nothing about speed, but it does check that the
# restored volume equals the source.
#
# The server answers its very first request slowly (the RADOS Gateway
# sets itself up then: 1-2 s on loopback); one HEAD before anything is
# timed keeps that out of whichever measurement would come first.
#
# It also prints the CPU time (user, system) of the repvol process that
# does the work (for a detached volume, "snapshot create" and "snapshot
# restore" run the attach, and so the upload and the fetcher, in their
# own process), which says whether repvol or the server is the limit.
#
# Environment: SNAP_BENCH_SIZE (volume and data size, default 512M),
# SNAP_BENCH_CHUNK (chunk size, default 4M), S3_PARALLEL (curl processes at
# a time, default 8), BENCH_OUT_DIR (when set, the figures also go to
# $BENCH_OUT_DIR/snapshot.json: {"upload_mib_s": N, "curl_put_mib_s": N,
# "restore_mib_s": N, "curl_get_mib_s": N}).
set -euo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/integration/lib.sh
. "$TOP/tests/integration/lib.sh"

SIZE=${SNAP_BENCH_SIZE:-512M}
CHUNK=${SNAP_BENCH_CHUNK:-4M}
BYTES=$(numfmt --from=iec "$SIZE")
CHUNK_BYTES=$(numfmt --from=iec "$CHUNK")

say() { printf '==> %s\n' "$*"; }

say "snapshot bench: $SIZE of random data in chunks of $CHUNK"
S3_STATE=$T/s3
stop_s3() { "$TOP/scripts/s3-server.sh" stop "$S3_STATE" >/dev/null 2>&1 || true; }
EXIT_HOOKS+=(stop_s3)
if ! "$TOP/scripts/s3-server.sh" start "$S3_STATE" >"$T/s3.log" 2>&1; then
    tail -5 "$T/s3.log" >&2
    echo "SKIP: snapshot bench: the S3 server did not start (above)"
    exit 0
fi
# shellcheck disable=SC1091
. "$S3_STATE/env"
STORE=$REPVOL_TEST_S3_URL/bench
# Warm the server up (see above); a missing key's 404 is the answer.
s3_curl HEAD "/${REPVOL_TEST_S3_URL#s3://}/bench/warm-up" -o /dev/null -I || true

start_repvold a zone-a
start_repvold b zone-b
repvol create src --size "$SIZE" --chunk-size "$CHUNK" \
    --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}" >/dev/null
head -c "$BYTES" /dev/urandom >"$T/data.bin"
start_attach src "$T/src.sock"
nbdcopy "$T/data.bin" "$(nbd_uri "$T/src.sock")"
stop_attach src

# cpu FILE: "user U s, system S s" from /usr/bin/time's "%U %S" in FILE.
cpu() { awk 'NF == 2 { u = $1; s = $2 } END { printf "user %.2f s, system %.2f s", u, s }' "$1"; }
# timed FILE CMD...: CMD, its CPU time into FILE (if /usr/bin/time exists).
timed() {
    local f=$1
    shift
    if [[ -x /usr/bin/time ]]; then
        /usr/bin/time -o "$f" -f '%U %S' "$@"
    else
        echo "0 0" >"$f"
        "$@"
    fi
}

# rate SECONDS BYTES: MiB/s
rate() { awk -v s="$1" -v b="$2" 'BEGIN { printf "%.1f", b / 1048576 / (s > 0 ? s : 0.001) }'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

say "repvol snapshot create (full, $SIZE)"
t0=$(now)
timed "$T/create.cpu" "$REPVOL" snapshot create src --to "$STORE" --name bench --json >"$T/create.json"
t_up=$(elapsed "$t0" "$(now)")
up_bytes=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d.get("event") == "done": print(d["bytes_uploaded"])' "$T/create.json")
echo "    $up_bytes bytes uploaded in $t_up s"
echo "    cpu of repvol snapshot create: $(cpu "$T/create.cpu")"

say "repvol snapshot restore (full)"
t0=$(now)
timed "$T/restore.cpu" "$REPVOL" snapshot restore "$STORE" bench dst \
    --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}" >/dev/null
t_down=$(elapsed "$t0" "$(now)")
echo "    $BYTES bytes restored in $t_down s"
echo "    cpu of repvol snapshot restore: $(cpu "$T/restore.cpu")"
start_attach dst "$T/dst.sock"
nbdcopy "$(nbd_uri "$T/dst.sock")" "$T/restored.bin"
stop_attach dst
cmp "$T/data.bin" "$T/restored.bin" || fail "the restored volume differs from the source"
echo "    restored volume identical to the source"

say "baseline: the same bytes as $CHUNK objects, curl --aws-sigv4, ${S3_PARALLEL:-8} at a time"
mkdir -p "$T/objects"
split -b "$CHUNK_BYTES" -a 5 -d "$T/data.bin" "$T/objects/chunk-"
"$TOP/tests/perf/s3-baseline.sh" "$T/objects" "$REPVOL_TEST_S3_URL/baseline" |
    tee "$T/baseline.txt" | sed 's/^/    /'
base_put=$(awk '$1 == "PUT" { sub(":", ""); for (i = 1; i <= NF; i++) if ($(i+1) == "MiB/s") print $i }' "$T/baseline.txt")
base_get=$(awk '$1 == "GET" { sub(":", ""); for (i = 1; i <= NF; i++) if ($(i+1) == "MiB/s") print $i }' "$T/baseline.txt")

up=$(rate "$t_up" "$up_bytes")
down=$(rate "$t_down" "$BYTES")
echo
printf '%-44s %10s %12s %7s\n' "snapshot throughput, $SIZE, $CHUNK chunks" "repvol" "curl baseline" "ratio"
printf '%-44s %10s %12s %7s\n' "upload (snapshot create vs curl PUT)" "$up MiB/s" "$base_put MiB/s" \
    "$(awk -v a="$up" -v b="$base_put" 'BEGIN { printf "%.2fx", a / b }')"
printf '%-44s %10s %12s %7s\n' "restore (snapshot restore vs curl GET)" "$down MiB/s" "$base_get MiB/s" \
    "$(awk -v a="$down" -v b="$base_get" 'BEGIN { printf "%.2fx", a / b }')"

if [[ -n ${BENCH_OUT_DIR-} ]]; then
    mkdir -p "$BENCH_OUT_DIR"
    # Numbers, not strings: another program reads exactly these keys.
    awk -v up="$up" -v put="${base_put:-0}" -v down="$down" -v get="${base_get:-0}" 'BEGIN {
        printf "{\"upload_mib_s\": %s, \"curl_put_mib_s\": %s, \"restore_mib_s\": %s, \"curl_get_mib_s\": %s}\n",
            up + 0, put + 0, down + 0, get + 0 }' >"$BENCH_OUT_DIR/snapshot.json"
    echo "figures written to $BENCH_OUT_DIR/snapshot.json"
fi
