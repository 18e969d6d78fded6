#!/bin/bash
# S3 throughput baseline with plain curl: what the snapshot benchmark's
# uploads and restores are compared against.
#
#   tests/perf/s3-baseline.sh DIR [S3_URL]
#   tests/perf/s3-baseline.sh --generate N SIZE DIR [S3_URL]
#
# PUTs every regular file in DIR to S3_URL (s3://BUCKET/PREFIX, default
# $REPVOL_TEST_S3_URL/baseline-PID) with S3_PARALLEL (default 8) curl
# processes at a time, each "curl --aws-sigv4 aws:amz:REGION:s3" with
# one request per file, then GETs them all back the same way into a temp
# dir, checks every file is byte-identical, deletes the objects, and
# prints one line per direction:
#
#   PUT  32 files, 512.0 MiB in 4.21 s: 121.6 MiB/s (8 curl at a time)
#   GET  32 files, 512.0 MiB in 1.70 s: 301.2 MiB/s (8 curl at a time)
#
# --generate first fills DIR (created) with N files of SIZE (e.g. 16M)
# of random data.  Credentials, region and endpoint come from the usual
# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION
# (default us-east-1) and AWS_ENDPOINT_URL (path-style URLs; without it,
# https://BUCKET.s3.REGION.amazonaws.com).  Against the test server:
#
#   scripts/s3-server.sh start /tmp/s3 && . /tmp/s3/env
#   tests/perf/s3-baseline.sh --generate 32 16M /tmp/s3-files
#   scripts/s3-server.sh stop /tmp/s3
#
# Wall-clock rates on a shared machine are noisy: run it more than once.
# It is not part of bench.sh and asserts nothing about speed.
set -euo pipefail

usage() {
    sed -n '4,6p' "$0" >&2
    exit 2
}

if [[ ${1-} == --generate ]]; then
    (($# >= 4)) || usage
    n=$2 size=$3 dir=$4
    shift 4
    mkdir -p "$dir"
    for ((i = 0; i < n; i++)); do
        head -c "$size" /dev/urandom >"$dir/file-$(printf %04d "$i")"
    done
    set -- "$dir" "$@"
fi
(($# >= 1 && $# <= 2)) || usage
DIR=$1
URL=${2:-${REPVOL_TEST_S3_URL:+$REPVOL_TEST_S3_URL/baseline-$$}}
[[ -d $DIR ]] || { echo "s3-baseline: $DIR: not a directory" >&2; exit 1; }
[[ $URL == s3://?* ]] || { echo "s3-baseline: give S3_URL (s3://BUCKET/PREFIX) or set REPVOL_TEST_S3_URL" >&2; exit 1; }
: "${AWS_ACCESS_KEY_ID:?AWS_ACCESS_KEY_ID is not set}" "${AWS_SECRET_ACCESS_KEY:?AWS_SECRET_ACCESS_KEY is not set}"
REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}
PAR=${S3_PARALLEL:-8}

rest=${URL#s3://}
BUCKET=${rest%%/*}
PREFIX=
[[ $rest == */* ]] && PREFIX=${rest#*/}
PREFIX=${PREFIX%/}
if [[ -n ${AWS_ENDPOINT_URL-} ]]; then
    BASE=${AWS_ENDPOINT_URL%/}/$BUCKET
else
    BASE=https://$BUCKET.s3.$REGION.amazonaws.com
fi
BASE=$BASE${PREFIX:+/$PREFIX}

mapfile -t files < <(find "$DIR" -maxdepth 1 -type f -printf '%f\n' | sort)
((${#files[@]} > 0)) || { echo "s3-baseline: no files in $DIR" >&2; exit 1; }
bytes=$(find "$DIR" -maxdepth 1 -type f -printf '%s\n' | awk '{s += $1} END {print s}')

OUTDIR=$(mktemp -d "${TMPDIR:-/tmp}/s3-baseline.XXXXXX")
trap 'rm -rf "$OUTDIR"' EXIT

# Every curl gets the same signing arguments; the secret goes through a
# config file rather than the command line (ps shows arguments).
CFG=$OUTDIR/curl.cfg
{
    printf 'user = "%s:%s"\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
    printf 'aws-sigv4 = "aws:amz:%s:s3"\n' "$REGION"
    printf 'header = "x-amz-content-sha256: UNSIGNED-PAYLOAD"\n'
    [[ -n ${AWS_SESSION_TOKEN-} ]] && printf 'header = "x-amz-security-token: %s"\n' "$AWS_SESSION_TOKEN"
    printf 'silent\nshow-error\nfail\nmax-time = 600\n'
} >"$CFG"
export CFG BASE DIR OUTDIR

# run VERB: every file through "xargs -P", timed as a whole.
run() {
    local verb=$1 t0 t1 secs
    t0=$(date +%s%N)
    case $verb in
    PUT) printf '%s\n' "${files[@]}" |
            xargs -P "$PAR" -I{} curl -K "$CFG" -T "$DIR/{}" -o /dev/null "$BASE/{}" ;;
    GET) printf '%s\n' "${files[@]}" |
            xargs -P "$PAR" -I{} curl -K "$CFG" -o "$OUTDIR/{}" "$BASE/{}" ;;
    esac
    t1=$(date +%s%N)
    secs=$(( (t1 - t0) / 1000000 ))
    awk -v v="$verb" -v n="${#files[@]}" -v b="$bytes" -v ms="$secs" -v p="$PAR" 'BEGIN {
        s = ms / 1000; if (s <= 0) s = 0.001
        printf "%-4s %d files, %.1f MiB in %.2f s: %.1f MiB/s (%d curl at a time)\n",
            v, n, b / 1048576, s, b / 1048576 / s, p }'
}

echo "s3-baseline: ${#files[@]} files from $DIR to $BASE"
run PUT
run GET
for f in "${files[@]}"; do
    cmp -s "$DIR/$f" "$OUTDIR/$f" || { echo "s3-baseline: $f differs after GET" >&2; exit 1; }
done
printf '%s\n' "${files[@]}" |
    xargs -P "$PAR" -I{} curl -K "$CFG" -X DELETE -o /dev/null "$BASE/{}"
echo "s3-baseline: every file read back identical; objects deleted"
