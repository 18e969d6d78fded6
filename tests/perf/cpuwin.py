#!/usr/bin/env python3
"""cpuwin.py - run fio and account the CPU of every process of a row.

    cpuwin.py OUT RAMP RUNTIME NAME=PID... -- FIO-COMMAND...

Starts FIO-COMMAND (a time-based fio job with ramp_time RAMP and runtime
RUNTIME) as a child, samples every NAME=PID and fio's own process tree
RAMP seconds after the start and again RAMP + RUNTIME seconds after it,
waits for fio, and writes one line per process to OUT:

    NAME <tab> CPU_US <tab> VOLUNTARY_CS <tab> INVOLUNTARY_CS

Exits with fio's status.

Why this window: both samples are taken while fio still runs its job,
so every thread of every process is still there (nbdkit, for one, ends
a connection's threads when fio disconnects, and their context switches
would be lost), and the window is RUNTIME long, the span whose I/Os fio
counts.  It is shifted from fio's own span by fio's start-up (its
connect, a few ms), which is steady state on both sides.  A fio that
exits before the second sample (a failed job) is read from wait4()'s
rusage instead, which covers fio and every process it waited for.

What each figure is:
  - CPU: utime + stime of /proc/PID/stat (fields 14, 15): for a process
    the kernel sums every thread, exited ones too; clock ticks (10 ms),
    so a 6 s window at 20% CPU is good to about 1%.  fio's is the sum
    over fio and its job processes (fio forks one per job).
  - context switches: voluntary_ctxt_switches and
    nonvoluntary_ctxt_switches summed over /proc/PID/task/*/status (a
    process's own status shows its main thread only); a thread that
    exits inside the window would lose its switches, which the window
    above avoids.
"""
import os
import sys
import time

TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


def stat_cpu_us(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime is field 14, stime field 15
    return (int(fields[11]) + int(fields[12])) * TICK_US


def ctxsw(pid):
    vol = inv = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0, 0
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        inv += int(line.split()[1])
        except OSError:
            pass
    return vol, inv


def sample(pid):
    try:
        us = stat_cpu_us(pid)
    except OSError:
        return None
    v, i = ctxsw(pid)
    return us, v, i


def tree(pid):
    """pid and its descendants (by /proc/*/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def tree_sample(pid):
    tot = [0.0, 0, 0]
    for p in tree(pid):
        s = sample(p)
        if s:
            tot = [a + b for a, b in zip(tot, s)]
    return tot


def sleep_until(pid, deadline):
    """Sleep until deadline (monotonic) or until pid exits: its wait4()."""
    while time.monotonic() < deadline:
        r = os.wait4(pid, os.WNOHANG)
        if r[0]:
            return r
        time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
    return None


def main():
    args = sys.argv[1:]
    if "--" not in args or args.index("--") < 3 or len(args) < args.index("--") + 2:
        sys.exit("usage: cpuwin.py OUT RAMP RUNTIME NAME=PID... -- COMMAND...")
    sep = args.index("--")
    out, ramp, runtime = args[0], float(args[1]), float(args[2])
    procs, cmd = args[3:sep], args[sep + 1:]
    named = [(p.split("=", 1)[0], int(p.split("=", 1)[1])) for p in procs]

    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    done = sleep_until(pid, start + ramp)
    before = {n: sample(p) for n, p in named}
    fio0 = tree_sample(pid) if done is None else [0.0, 0, 0]
    if done is None:
        done = sleep_until(pid, start + ramp + runtime)
    after = {n: sample(p) for n, p in named}
    if done is None:
        fio1 = tree_sample(pid)
        done = os.wait4(pid, 0)
    else:
        ru = done[2]
        fio1 = [(ru.ru_utime + ru.ru_stime) * 1e6, ru.ru_nvcsw, ru.ru_nivcsw]
    status = done[1]
    with open(out, "w") as f:
        for n, _ in named:
            b, a = before[n], after[n]
            if b is None or a is None:
                continue
            f.write("%s\t%.0f\t%d\t%d\n" % (n, a[0] - b[0], a[1] - b[1], a[2] - b[2]))
        f.write("fio\t%.0f\t%d\t%d\n" % (fio1[0] - fio0[0], fio1[1] - fio0[1], fio1[2] - fio0[2]))
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
