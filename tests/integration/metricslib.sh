# metricslib.sh - scraping /metrics in tests 096 and 097 (after lib.sh).
#
# promtool (Debian's prometheus package, which scripts/install-deps.sh
# installs) is required: without it the test fails, it does not skip.
command -v promtool >/dev/null ||
    fail "promtool not found: run scripts/install-deps.sh (package prometheus)"
command -v curl >/dev/null || fail "curl not found: run scripts/install-deps.sh"

# scrape ADDR:PORT OUT: GET /metrics into OUT; it must be 200 with the
# exposition format's content type, and pass promtool check metrics.
scrape() {
    local addr=$1 out=$2 code ctype lint
    code=$(curl -s --max-time 5 -o "$out" -D "$out.hdr" -w '%{http_code}' \
           "http://$addr/metrics") || fail "curl http://$addr/metrics failed"
    assert_eq 200 "$code" "GET http://$addr/metrics"
    ctype=$(tr -d '\r' <"$out.hdr" | sed -n 's/^[Cc]ontent-[Tt]ype: //p')
    [[ $ctype == "text/plain; version=0.0.4"* ]] ||
        fail "GET /metrics: Content-Type '$ctype'"
    lint=$(promtool check metrics <"$out" 2>&1) ||
        { cat "$out" >&2; fail "promtool check metrics: $lint"; }
    [[ -z $lint ]] || fail "promtool check metrics: $lint"
}

# promq FILE NAME [LABEL=VALUE...]: the sum of the samples of NAME (as
# written: foo_total, foo_bucket, foo_count) in a scrape whose labels
# include every LABEL="VALUE" given; status 2 when none matches, so a
# series that is not there fails rather than reading 0.  awk, not a
# program per question: the tests ask dozens.  Values with escapes
# (\" \\ \n) are not needed here and not decoded.
promq() {
    local file=$1 name=$2
    shift 2
    awk -v name="$name" -v want="$*" '
        BEGIN { n = split(want, w, " ") }
        /^#/ || NF == 0 { next }
        {
            series = $0; sub(/ [^ ]*$/, "", series); value = $NF
            base = series; sub(/\{.*/, "", base)
            if (base != name) next
            labels = series; sub(/^[^{]*\{?/, "", labels); sub(/\}$/, "", labels)
            labels = "," labels ","
            for (i = 1; i <= n; i++) {
                eq = index(w[i], "=")
                pair = "," substr(w[i], 1, eq - 1) "=\"" substr(w[i], eq + 1) "\","
                if (!index(labels, pair)) next
            }
            sum += value; hits++
        }
        END {
            if (!hits) exit 2
            if (sum == int(sum)) printf "%d\n", sum; else print sum
        }' "$file"
}

# prom FILE NAME [LABEL=VALUE...]: promq's answer; fails the test when
# no sample matches.
prom() {
    local v
    v=$(promq "$@") || fail "no sample: $*"
    printf '%s\n' "$v"
}

# prom_is ADDR:PORT VALUE NAME [LABEL=VALUE...]: a fresh scrape shows
# VALUE (for wait_for).
prom_is() {
    local addr=$1 want=$2 f=$T/prom_is.$$
    shift 2
    curl -s --max-time 5 -o "$f" "http://$addr/metrics" || return 1
    [[ $(promq "$f" "$@" 2>/dev/null) == "$want" ]]
}

# prom_at_least ADDR:PORT MIN NAME [LABEL=VALUE...]: a fresh scrape
# shows at least MIN (for wait_for: gauges copied by a sampler).
prom_at_least() {
    local addr=$1 min=$2 f=$T/prom_is.$$ v
    shift 2
    curl -s --max-time 5 -o "$f" "http://$addr/metrics" || return 1
    v=$(promq "$f" "$@" 2>/dev/null) || return 1
    ((v >= min))
}

# http_code ADDR:PORT [CURL ARGS...]: the status curl gets (000: none).
http_code() {
    local addr=$1
    shift
    curl -s --max-time 15 -o /dev/null -w '%{http_code}' "$@" "http://$addr" || true
}

# raw_http ADDR:PORT DATA: send DATA (printf format) on a raw TCP
# connection, print what comes back before the server closes (bounded).
raw_http() {
    python3 - "$@" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=15)
try:
    s.sendall(sys.argv[2].encode("latin-1").decode("unicode_escape").encode("latin-1"))
except OSError:
    pass
out = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
except OSError:
    pass
print(out.split(b"\r\n", 1)[0].decode("latin-1"))
PY
}
