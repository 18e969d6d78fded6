#!/usr/bin/env python3
"""slowlink - a TCP relay that adds latency, standing in for a replica in
a distant (slow) availability zone.

    slowlink.py LISTEN_PORT TARGET_PORT DELAY_MS STATS_FILE

Relays 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT and delays every
chunk by DELAY_MS in each direction, in order; STATS_FILE holds the
number of bytes relayed from the target back to the client.
"""
import os
import socket
import sys
import threading
import time

listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
delay = int(sys.argv[3]) / 1000.0
stats_file = sys.argv[4]
lock = threading.Lock()
back_bytes = 0


def save():
    with open(stats_file + ".tmp", "w") as f:
        f.write("%d\n" % back_bytes)
    os.replace(stats_file + ".tmp", stats_file)


def relay(src, dst, count):
    global back_bytes
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            time.sleep(delay)
            dst.sendall(data)
            if count:
                with lock:
                    back_bytes += len(data)
                    save()
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    save()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", listen_port))
    ls.listen(16)
    while True:
        client, _ = ls.accept()
        target = socket.create_connection(("127.0.0.1", target_port))
        for s in (client, target):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=relay, args=(client, target, False), daemon=True).start()
        threading.Thread(target=relay, args=(target, client, True), daemon=True).start()


main()
