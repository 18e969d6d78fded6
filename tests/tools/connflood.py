#!/usr/bin/env python3
"""connflood - open many connections to a repvold from one source address
and hold them, as an attacker (or a leaky client) would, for the
connection-resource tests (tests/integration/055, 059).

    connflood.py HOST PORT STATE_DIR [options]

    --from ADDR        source address to bind (127.0.0.2 works on loopback)
    --count N          connections to open (default 500)
    --hello K          every K-th connection sends a data HELLO (for volume
                       "flood") and reads its WELCOME; the others send
                       nothing at all.  1: all, 0: none (default 2: half)
    --expect-open M    the server is expected to keep M open and close the
                       rest at once: wait (bounded) until it has closed
                       N - M, then check exactly M stay open
    --ping-until FILE  keep the welcomed connections alive with PING every
                       0.5 s, from the first one opened, until FILE exists
                       (then stop pinging)
    --wait-closed S    finally wait (at most S seconds) until the server has
                       closed every connection

Progress goes to STATE_DIR, one small file per step, each written
atomically, for the test to poll:
    opened   "open=M closed=C welcomed=W"    once the expectation is met
    checked  "open=M"                        after STATE_DIR/check appears
                                             (or the pinging stops)
    closed   "seconds=T"                     once all are closed
Exits non-zero, saying why, if an expectation or a bound fails.
"""
import argparse
import os
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rvproto  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("host")
ap.add_argument("port", type=int)
ap.add_argument("state")
ap.add_argument("--from", dest="src", default="127.0.0.1")
ap.add_argument("--count", type=int, default=500)
ap.add_argument("--hello", type=int, default=2)
ap.add_argument("--expect-open", type=int)
ap.add_argument("--ping-until")
ap.add_argument("--wait-closed", type=float)
args = ap.parse_args()


def note(name, text):
    path = os.path.join(args.state, name)
    with open(path + ".tmp", "w") as f:
        f.write(text + "\n")
    os.replace(path + ".tmp", path)


def die(why):
    print("connflood: " + why, file=sys.stderr)
    sys.exit(1)


class Conn:
    def __init__(self, i):
        self.hello = args.hello > 0 and i % args.hello == 0
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.bind((args.src, 0))
        self.s.settimeout(20)
        self.s.connect((args.host, args.port))
        self.got = b""          # the WELCOME, as it arrives
        self.closed = False
        self.welcomed = False
        if self.hello:
            try:
                self.s.sendall(rvproto.hello_frame(b"flood"))
            except (BrokenPipeError, ConnectionResetError):
                self.closed = True
        self.s.setblocking(False)

    def readable(self):
        """Take what arrived: WELCOME bytes, or the end."""
        try:
            b = self.s.recv(rvproto.WELCOME_SIZE - len(self.got) or 1)
        except BlockingIOError:
            return
        except (ConnectionResetError, BrokenPipeError):
            b = b""
        if not b or self.welcomed:
            self.closed = True  # anything after WELCOME would be a surprise
            return
        self.got += b
        if len(self.got) == rvproto.WELCOME_SIZE:
            w = rvproto.parse_welcome(self.got)
            if w["status"] != rvproto.OK:
                die("WELCOME status %d" % w["status"])
            self.welcomed = True


conns = []
sel = selectors.DefaultSelector()


def pump(timeout):
    """Take whatever the server said within timeout seconds."""
    for key, _ in sel.select(timeout):
        c = key.data
        c.readable()
        if c.closed:
            sel.unregister(c.s)


last_ping, ping_id = 0.0, 0


def keep_alive():
    """With --ping-until, until that file exists: a PING on every welcomed
    connection every 0.5 s, from the first one opened on."""
    global last_ping, ping_id
    if not args.ping_until or os.path.exists(args.ping_until) or \
            time.time() - last_ping < 0.5:
        return
    last_ping = time.time()
    for c in conns:
        if c.welcomed and not c.closed:
            ping_id += 1
            c.s.settimeout(10)
            try:
                c.s.sendall(rvproto.req(rvproto.PING, ping_id, 0, 0))
                st, rid, ln, crc = rvproto.reply(c.s)
                if st != rvproto.OK or rid != ping_id:
                    die("PING %d answered %d (id %d)" % (ping_id, st, rid))
            except (OSError, EOFError) as e:
                die("a pinged connection was closed: %s" % e)
            c.s.setblocking(False)


for i in range(args.count):
    c = Conn(i)
    conns.append(c)
    if not c.closed:
        sel.register(c.s, selectors.EVENT_READ, c)
    pump(0)
    keep_alive()


def counts():
    return (sum(not c.closed for c in conns), sum(c.closed for c in conns),
            sum(c.welcomed and not c.closed for c in conns))


if args.expect_open is not None:
    want_closed = args.count - args.expect_open
    deadline = time.time() + 30
    while counts()[1] < want_closed:
        if time.time() > deadline:
            die("after 30 s the server has closed %d of %d connections, "
                "expected %d" % (counts()[1], args.count, want_closed))
        pump(0.2)
        keep_alive()
    # Those it keeps it must not close now; the WELCOMEs must all come.
    deadline = time.time() + 10
    while counts()[2] < sum(c.hello and not c.closed for c in conns):
        if time.time() > deadline:
            break
        pump(0.2)
        keep_alive()
    pump(0.5)
    if counts()[0] != args.expect_open:
        die("%d connections open, expected %d" % (counts()[0],
                                                   args.expect_open))
opened, closed, welcomed = counts()
note("opened", "open=%d closed=%d welcomed=%d" % (opened, closed, welcomed))

if args.ping_until:
    while not os.path.exists(args.ping_until):
        keep_alive()
        pump(0.1)
else:
    deadline = time.time() + 300
    while not os.path.exists(os.path.join(args.state, "check")):
        if time.time() > deadline:
            die("nobody asked for the check within 300 s")
        pump(0.2)
pump(0)
note("checked", "open=%d" % counts()[0])

if args.wait_closed is not None:
    t0 = time.time()
    while counts()[0] > 0:
        if time.time() - t0 > args.wait_closed:
            die("%d connections still open after %.0f s" %
                (counts()[0], args.wait_closed))
        pump(0.2)
    note("closed", "seconds=%.1f" % (time.time() - t0))
