#!/usr/bin/env python3
"""pitwriter - prove that a snapshot holds exactly one point in time of a
volume that was being written while the snapshot was taken.

    pitwriter.py write SOCK LOG [--qd N] [--blocks N] [--first-block N] [--seed N]
                 [--trigger-after N | --trigger-file PATH]
                 [--after-point M] [--until-done] [--max-writes N]
                 [--cmd-timeout S]
                 -- CMD [ARG...]
    pitwriter.py check LOG IMAGE [--t0 T] [--quiet]
    pitwriter.py selftest

write: speaks NBD (fixed newstyle, simple replies; nbdproto.py) on the
unix socket SOCK and keeps N (default 8) 4 KiB writes in flight,
pipelined, each to a random block of the first --blocks blocks (default
4096, i.e. 16 MiB, from block --first-block, default 0; never two writes to the same block in flight at once,
so the writes to one block are strictly ordered: each is submitted after
the previous one to that block was acknowledged).  Write number seq
(1, 2, ... over the whole run) to block b holds

    "PITWRv01" | b (u64 le) | seq (u64 le) | filler(b, seq)

(filler: SHA-256 of (b, seq), repeated).  Every write's submit and ack
times (time.monotonic, taken in the one thread that does everything) are
logged.  Once N writes have been acknowledged (--trigger-after, default
2000) or the file --trigger-file appears, it records t0 and starts CMD
with its stdout on a pipe; it keeps writing, reading CMD's stdout lines
as they come, until a line {"event":"point",...} has been read (its time
is t_point_seen) and then --after-point M (default 2000) more writes
have been submitted (with --until-done: and CMD has closed its stdout, so
that writes go on during the whole upload; that time is t_cmd_eof).  Then it stops submitting, collects the
outstanding acks, waits for CMD to exit (at most --cmd-timeout seconds,
default 300) and writes LOG (JSON): the writes, t0, t_point_seen, CMD's
exit status, stdout and stderr.  Exit 0 if CMD exited 0 after printing a
point line, 1 otherwise.  --max-writes bounds the run if no point line
ever comes (default 2,000,000).

check: IMAGE holds the volume's bytes as of the snapshot (e.g. a restore
read back with nbdcopy).  For every block b of the run's range
(which must have held zeroes before the run):
  - its content must be a well-formed block written by this run for
    block b (header and filler), or all zeroes;
  - its seq s must be >= A(b), the last write to b acknowledged before t0
    (the snapshot holds every write acknowledged before its point, which
    comes after t0); all zeroes counts as s = 0 and is wrong if A(b) > 0;
  - s (if not 0) must be a write submitted before t_point_seen (a write
    submitted after the point is announced cannot be in the snapshot).
Prints counts (blocks checked, blocks holding a write that was still in
flight or not yet acknowledged at t0, blocks whose snapshot content was
overwritten after the point, writes submitted after the point) and exits
1 with the first violations.

selftest: runs the checker on synthetic logs and images, good and bad,
so that a checker that accepts everything is caught.
"""
import hashlib
import json
import os
import random
import selectors
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdproto  # noqa: E402  (next to this file)

BS = 4096
MAGIC = b"PITWRv01"
HDR = struct.Struct("<8sQQ")


def block_data(blk, seq):
    h = hashlib.sha256(struct.pack("<QQ", blk, seq)).digest()
    fill = (h * (BS // 32 + 1))[:BS - HDR.size]
    return HDR.pack(MAGIC, blk, seq) + fill


def parse_block(data, blk):
    """The seq the block holds: 0 for all zeroes, None if malformed."""
    if data.count(0) == len(data):
        return 0
    if len(data) != BS:
        return None
    magic, b, seq = HDR.unpack_from(data)
    if magic != MAGIC or b != blk or seq == 0 or data != block_data(blk, seq):
        return None
    return seq


# ---------------------------------------------------------------------------
# write

def write(sock, logpath, qd, nblocks, first, seed, trigger_after, trigger_file,
          after_point, until_done, max_writes, cmd, cmd_timeout):
    rnd = random.Random(seed)
    s = nbdproto.greeting(sock)
    size = nbdproto.go(s)
    nblocks = min(nblocks, size // BS - first)
    assert nblocks > qd, "too few blocks for the queue depth"
    writes = {}          # seq -> [blk, t_submit, t_ack, err]
    inflight = {}        # seq -> blk
    busy = set()         # blocks with a write in flight
    seq = 0
    acked = 0
    t0 = t_point = t_eof = None
    proc = None
    out_buf = b""
    out_lines = []
    submitted_after_point = 0
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ, "nbd")

    cmd_eof = False

    def stop_submitting():
        if t_point is not None and submitted_after_point >= after_point \
                and (not until_done or cmd_eof):
            return True
        if proc is not None and t_point is None and cmd_eof:
            return True          # the command ended without a point line
        return seq >= max_writes

    while True:
        if not stop_submitting():
            while len(inflight) < qd:
                blk = first + rnd.randrange(nblocks)
                while blk in busy:
                    blk = first + rnd.randrange(nblocks)
                seq += 1
                t_sub = time.monotonic()
                s.sendall(nbdproto.request(nbdproto.CMD_WRITE, seq, blk * BS, BS)
                          + block_data(blk, seq))
                writes[seq] = [blk, t_sub, None, None]
                inflight[seq] = blk
                busy.add(blk)
                if t_point is not None:
                    submitted_after_point += 1
                if stop_submitting():
                    break
        elif not inflight:
            break
        # Trigger the command.
        if proc is None and (acked >= trigger_after if trigger_file is None
                             else os.path.exists(trigger_file)):
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            os.set_blocking(proc.stdout.fileno(), False)
            sel.register(proc.stdout, selectors.EVENT_READ, "cmd")
        for key, _ in sel.select(timeout=1.0):
            if key.data == "nbd":
                magic, err, handle = nbdproto.reply(s)
                assert magic == nbdproto.REP_MAGIC, "bad reply magic %x" % magic
                blk = inflight.pop(handle)
                busy.discard(blk)
                w = writes[handle]
                w[2] = time.monotonic()
                w[3] = err
                if err == 0:
                    acked += 1
                else:
                    print("write seq %d block %d: NBD error %d" % (handle, blk, err),
                          file=sys.stderr)
            else:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:            # EOF
                    sel.unregister(proc.stdout)
                    cmd_eof = True
                    t_eof = time.monotonic()
                    continue
                out_buf += chunk
                while b"\n" in out_buf:
                    line, out_buf = out_buf.split(b"\n", 1)
                    now = time.monotonic()
                    out_lines.append(line.decode(errors="replace"))
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    if t_point is None and isinstance(ev, dict) and ev.get("event") == "point":
                        t_point = now
    s.close()
    if proc is not None and not cmd_eof:
        sel.unregister(proc.stdout)
        os.set_blocking(proc.stdout.fileno(), True)

    rc = None
    err_text = ""
    if proc is not None:
        try:
            rest, err_b = proc.communicate(timeout=cmd_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, err_b = proc.communicate()
            err_b += b"\npitwriter: command killed after %d s" % cmd_timeout
        out_buf += rest or b""
        for line in out_buf.split(b"\n"):
            if line:
                out_lines.append(line.decode(errors="replace"))
        rc = proc.returncode
        err_text = err_b.decode(errors="replace")

    log = {"block_size": BS, "nblocks": nblocks, "first_block": first, "qd": qd, "seed": seed,
           "t0": t0, "t_point_seen": t_point, "t_cmd_eof": t_eof, "cmd": cmd, "cmd_rc": rc,
           "cmd_stdout": out_lines, "cmd_stderr": err_text,
           "writes": [[q] + w for q, w in sorted(writes.items())]}
    with open(logpath, "w") as f:
        json.dump(log, f)
    st = stats(log)
    print("writes %d (errors %d); acked before t0 %d; in flight at t0 %d; "
          "submitted before the point was seen %d, after it %d (%d of them before "
          "the command ended); command exit %s"
          % (len(writes), st["errors"], st["acked_before_t0"], st["inflight_at_t0"],
             st["submitted_before_point"], st["submitted_after_point"],
             st["submitted_after_point_before_cmd_end"], rc))
    if rc != 0:
        print("pitwriter: the command exited %s: %s" % (rc, err_text.strip()), file=sys.stderr)
        return 1
    if t_point is None:
        print("pitwriter: the command printed no point line", file=sys.stderr)
        return 1
    return 0


def stats(log):
    t0, tp = log["t0"], log["t_point_seen"]
    te = log.get("t_cmd_eof")
    st = {"errors": 0, "acked_before_t0": 0, "inflight_at_t0": 0,
          "submitted_before_point": 0, "submitted_after_point": 0,
          "submitted_after_point_before_cmd_end": 0}
    for _seq, _blk, t_sub, t_ack, err in log["writes"]:
        if err:
            st["errors"] += 1
        if t0 is not None:
            if t_ack is not None and t_ack < t0 and err == 0:
                st["acked_before_t0"] += 1
            elif t_sub < t0:
                st["inflight_at_t0"] += 1
        if tp is not None:
            if t_sub < tp:
                st["submitted_before_point"] += 1
            else:
                st["submitted_after_point"] += 1
                if te is not None and t_sub < te:
                    st["submitted_after_point_before_cmd_end"] += 1
    return st


# ---------------------------------------------------------------------------
# check

def check_image(log, read_block, t0=None, max_report=10):
    """Returns (violations, counts).  read_block(b) gives block b's bytes."""
    if t0 is None:
        t0 = log["t0"]
    tp = log["t_point_seen"]
    if t0 is None or tp is None:
        return ["the log has no t0 or no t_point_seen: the command never "
                "started or never announced its point"], {}
    nblocks = log["nblocks"]
    first = log.get("first_block", 0)
    must = {}            # blk -> last seq acked before t0
    allowed = {}         # blk -> set of seqs submitted before the point
    last = {}            # blk -> last seq ever submitted
    for seq, blk, t_sub, t_ack, err in log["writes"]:
        if err == 0 and t_ack is not None and t_ack < t0:
            must[blk] = max(seq, must.get(blk, 0))
        if t_sub < tp:
            allowed.setdefault(blk, set()).add(seq)
        last[blk] = max(seq, last.get(blk, 0))
    viol = []
    counts = {"blocks": nblocks, "blocks_written": len(allowed), "zero": 0,
              "holds_unacked_at_t0": 0, "overwritten_after_point": 0}
    for blk in range(first, first + nblocks):
        got = parse_block(read_block(blk), blk)
        if got is None:
            viol.append("block %d: not a block this run wrote (torn or foreign data)" % blk)
        elif got == 0:
            counts["zero"] += 1
            if must.get(blk, 0):
                viol.append("block %d: zeroes, but write %d was acknowledged before t0"
                            % (blk, must[blk]))
        else:
            if got < must.get(blk, 0):
                viol.append("block %d: holds write %d, older than write %d acknowledged before t0"
                            % (blk, got, must[blk]))
            elif got not in allowed.get(blk, ()):
                viol.append("block %d: holds write %d, which was not submitted before the point"
                            % (blk, got))
            else:
                if got > must.get(blk, 0):
                    counts["holds_unacked_at_t0"] += 1
                if last.get(blk, 0) > got:
                    counts["overwritten_after_point"] += 1
        if len(viol) >= max_report:
            break
    return viol, counts


def check(logpath, image, t0=None, quiet=False):
    with open(logpath) as f:
        log = json.load(f)
    with open(image, "rb") as img:
        size = os.fstat(img.fileno()).st_size
        if size < (log.get("first_block", 0) + log["nblocks"]) * BS:
            print("image %s: %d bytes, shorter than the %d blocks written"
                  % (image, size, log["nblocks"]))
            return 1

        def rb(b):
            img.seek(b * BS)
            return img.read(BS)
        viol, counts = check_image(log, rb, t0)
    st = stats(log) if log["t0"] is not None and log["t_point_seen"] is not None else {}
    print("check: %s; %s" % (json.dumps(counts, sort_keys=True), json.dumps(st, sort_keys=True)))
    if viol:
        for v in viol:
            print("VIOLATION: " + v)
        return 1
    if not quiet:
        print("check: the image is one point in time between t0 and the point")
    return 0


# ---------------------------------------------------------------------------
# selftest

def selftest():
    """Synthetic logs: t in [0, 100); t0 = 50; point seen at 60."""
    failures = []

    def run(name, writes, image, expect_ok, t0=50.0, tp=60.0, nblocks=4):
        log = {"nblocks": nblocks, "t0": t0, "t_point_seen": tp,
               "writes": [[q, b, ts, ta, e] for q, b, ts, ta, e in writes]}
        viol, _ = check_image(log, lambda b: image[b])
        if (not viol) != expect_ok:
            failures.append("%s: expected %s, got %s" % (name, "ok" if expect_ok else "violation",
                                                         viol or "ok"))

    Z = bytes(BS)

    def upd(img, blk, data):
        d = dict(img)
        d[blk] = data
        return d
    # seq, blk, t_submit, t_ack, err
    base = [(1, 0, 10.0, 11.0, 0),      # block 0: acked before t0
            (2, 1, 12.0, 13.0, 0),      # block 1: acked before t0 ...
            (3, 1, 55.0, 58.0, 0),      # ... then submitted and acked between t0 and point
            (4, 2, 49.0, 65.0, 0),      # block 2: in flight at t0, acked after the point
            (5, 0, 61.0, 62.0, 0),      # block 0: submitted after the point
            (6, 2, 70.0, 71.0, 0)]      # block 2: after the point
    good = {0: block_data(0, 1), 1: block_data(1, 3), 2: block_data(2, 4), 3: Z}
    run("all newest allowed", base, good, True)
    run("older allowed for 1 and 2", base,
        {0: block_data(0, 1), 1: block_data(1, 2), 2: Z, 3: Z}, True)
    run("block 0 holds a write submitted after the point", base,
        upd(good, 0, block_data(0, 5)), False)
    run("block 2 holds a write submitted after the point", base,
        upd(good, 2, block_data(2, 6)), False)
    run("block 0 lost its acked write (zeroes)", base, upd(good, 0, Z), False)
    run("block 1 holds the write acked before t0, not the later one", base,
        {0: block_data(0, 1), 1: block_data(1, 2), 2: Z, 3: Z}, True)   # 2 is the last acked
    base2 = base + [(7, 3, 20.0, 21.0, 0), (8, 3, 30.0, 31.0, 0)]
    run("block 3 older than the last acked before t0", base2,
        upd(good, 3, block_data(3, 7)), False)
    run("block 3 newest acked", base2, upd(good, 3, block_data(3, 8)), True)
    run("never-written block holds data", base, upd(good, 3, block_data(3, 9)), False)
    run("torn block", base, upd(good, 1, block_data(1, 3)[:2048] + block_data(1, 2)[2048:]), False)
    run("block holds another block's write", base, upd(good, 3, block_data(0, 1)), False)
    run("header right, filler wrong", base,
        upd(good, 0, block_data(0, 1)[:HDR.size] + bytes(BS - HDR.size)), False)
    run("a write that failed (err) may be absent", base + [(9, 3, 20.0, 21.0, 5)], good, True)
    run("an explicit t0 later than every ack makes more writes required", base,
        {0: block_data(0, 1), 1: block_data(1, 2), 2: Z, 3: Z}, False, t0=59.0)
    # no point seen: never ok
    log = {"nblocks": 1, "t0": 1.0, "t_point_seen": None, "writes": []}
    if not check_image(log, lambda b: Z)[0]:
        failures.append("a log without a point line passed")
    # counts: overwritten after the point and in flight at t0 are counted
    log = {"nblocks": 4, "t0": 50.0, "t_point_seen": 60.0,
           "writes": [list(w) for w in base]}
    viol, counts = check_image(log, lambda b: good[b])
    if viol or counts["overwritten_after_point"] != 2 or counts["holds_unacked_at_t0"] != 2:
        failures.append("counts wrong: %s %s" % (viol, counts))
    # the file-based check end to end, on a bad image
    with tempfile.TemporaryDirectory() as d:
        lp, ip = os.path.join(d, "log"), os.path.join(d, "img")
        with open(lp, "w") as f:
            json.dump(dict(log, block_size=BS), f)
        with open(ip, "wb") as f:
            f.write(good[0] + good[1] + block_data(2, 6) + Z)
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()):
            bad_rc = check(lp, ip, quiet=True)
        if bad_rc != 1:
            failures.append("check() accepted a bad image file")
        with open(ip, "wb") as f:
            f.write(good[0] + good[1] + good[2] + Z)
        with contextlib.redirect_stdout(io.StringIO()):
            good_rc = check(lp, ip, quiet=True)
        if good_rc != 0:
            failures.append("check() refused a good image file")
    for f in failures:
        print("SELFTEST FAILED: " + f)
    print("selftest: %s" % ("FAILED" if failures else "ok"))
    return 1 if failures else 0


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    mode = argv[1]
    if mode == "selftest":
        return selftest()
    if mode == "check":
        args = argv[2:]
        pos, t0, quiet = [], None, False
        i = 0
        while i < len(args):
            if args[i] == "--t0":
                t0 = float(args[i + 1]); i += 2
            elif args[i] == "--quiet":
                quiet = True; i += 1
            else:
                pos.append(args[i]); i += 1
        if len(pos) != 2:
            sys.exit(__doc__)
        return check(pos[0], pos[1], t0, quiet)
    if mode == "write":
        if "--" not in argv:
            sys.exit("write: the command goes after --")
        k = argv.index("--")
        args, cmd = argv[2:k], argv[k + 1:]
        if len(args) < 2 or not cmd:
            sys.exit(__doc__)
        sock, logpath = args[0], args[1]
        until_done = "--until-done" in args
        args = [a for a in args if a != "--until-done"]
        opt = {"--qd": 8, "--blocks": 4096, "--first-block": 0, "--seed": None, "--trigger-after": 2000,
               "--trigger-file": None, "--after-point": 2000, "--max-writes": 2000000,
               "--cmd-timeout": 300}
        rest = args[2:]
        for i in range(0, len(rest), 2):
            if rest[i] not in opt or i + 1 >= len(rest):
                sys.exit("write: bad option %s" % rest[i])
            opt[rest[i]] = rest[i + 1] if rest[i] == "--trigger-file" else int(rest[i + 1])
        seed = opt["--seed"] if opt["--seed"] is not None else random.randrange(1 << 30)
        return write(sock, logpath, opt["--qd"], opt["--blocks"], opt["--first-block"], seed,
                     opt["--trigger-after"], opt["--trigger-file"], opt["--after-point"],
                     until_done, opt["--max-writes"], cmd, opt["--cmd-timeout"])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
