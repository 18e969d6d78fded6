#!/bin/bash
# Where io_uring is barred (a container's seccomp profile makes
# io_uring_setup fail with EPERM), repvold notices at start-up, says so,
# falls back to libaio, and serves correct data.
. "$(dirname "$0")/lib.sh"
require_cmd fio
NO_URING=$BUILD/tests/no_io_uring
[[ -x $NO_URING ]] || fail "$NO_URING not built"

# The wrapper itself must really bar io_uring, or this test proves nothing.
python3 - "$NO_URING" <<'PY'
import ctypes, subprocess, sys
code = "import ctypes,sys; libc=ctypes.CDLL(None,use_errno=True); p=ctypes.create_string_buffer(120); r=libc.syscall(425,8,p); sys.exit(0 if r==-1 and ctypes.get_errno()==1 else 1)"
assert subprocess.run([sys.argv[1], sys.executable, "-c", code]).returncode == 0, "io_uring_setup not barred"
PY

LAUNCH=("$NO_URING")
start_repvold a zone-a
LAUNCH=()
start_repvold b zone-b
grep -Eqi 'io_uring.*(unavailable|not available|barred|failed|permitted)' "$T/repvold-a.log" ||
    { cat "$T/repvold-a.log" >&2; fail "repvold a did not say why io_uring is not used"; }
grep -qi 'libaio' "$T/repvold-a.log" || fail "repvold a does not say it uses libaio"

repvol create vol --size 16M --replica "${REPVOLD_ADDR[a]}" --replica "${REPVOLD_ADDR[b]}"
start_attach vol "$T/nbd.sock"
fio --name=v --ioengine=nbd --uri="$(nbd_uri "$T/nbd.sock")" --rw=randwrite \
    --bs=4k --iodepth=16 --size=16M --verify=crc32c --verify_fatal=1 \
    --output="$T/fio.out" || { cat "$T/fio.out" >&2; fail "fio verify failed"; }
stop_attach vol
assert_files_identical "${REPVOLD_DIR[a]}/vol.data" "${REPVOLD_DIR[b]}/vol.data"
log "ok"
