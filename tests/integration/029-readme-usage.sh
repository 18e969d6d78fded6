#!/bin/bash
# The README's Usage runs as written, top to bottom: every indented
# block of "## Usage" and its "Across networks" part, in order, as one
# bash script with -e, as root, in private mount and network namespaces
# (tmpfs on /srv, /run, /var/lib/repvol, /etc/repvol and /tmp; a
# loopback of its own, so ports 7001-7004 are free), from the top of
# the tree.  Any command that fails fails the test.
. "$(dirname "$0")/lib.sh"
require_cmd unshare nbdcopy fio cmp certtool
[[ $(id -u) == 0 ]] || skip "needs root (mount and network namespaces)"
[[ -x $TOP/build/repvol ]] || skip "the README uses build/; run make first"

python3 - "$TOP/README.md" > "$T/usage.sh" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
out, on = [], False
for l in lines:
    if l.startswith("## "):
        on = l == "## Usage"
        continue
    if on and l.startswith("    "):
        out.append(l[4:])
    elif on and out and out[-1] != "":
        out.append("")
print("\n".join(out))
PY
grep -q "repvol create vol1" "$T/usage.sh" || fail "no Usage blocks found in README.md"
# Whatever the README started is stopped when it ends, also on a failure.
sed -i '1i trap '"'"'kill $(jobs -p) 2>/dev/null || true; wait'"'"' EXIT' "$T/usage.sh"
log "README Usage: $(grep -c . "$T/usage.sh") lines"

unshare --mount --net bash -c '
    set -e
    ip link set lo up
    mount -t tmpfs tmpfs /run
    cp "$1" /run/usage.sh
    # The tree may itself be under /tmp (a CI clone): keep it reachable.
    mkdir /run/tree
    mount --bind "$2" /run/tree
    for d in /srv /var/lib/repvol /etc/repvol /tmp; do
        mkdir -p "$d"; mount -t tmpfs tmpfs "$d"
    done
    cd /run/tree
    exec env -u REPVOL_REGISTRY -u REPVOL_RUN_DIR -u REPVOL_TLS_DIR \
        -u REPVOL_TLS_PSK bash -e /run/usage.sh' usage "$T/usage.sh" "$TOP" > "$T/usage.out" 2>&1 || {
        tail -n 40 "$T/usage.out" >&2
        fail "the README's Usage failed (above)"
    }
tail -n 5 "$T/usage.out" >&2
grep -q "^tls: *required" "$T/usage.out" || fail "the TLS volume's status does not say tls: required"
