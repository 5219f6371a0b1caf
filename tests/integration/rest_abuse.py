"""Client abuse against a REST port, run as its own process so that the attacker's work never shares a
Python interpreter (and its GIL) with the test that measures health-check latency.

    python3 rest_abuse.py idle PORT N        open N idle TCP connections and hold them
    python3 rest_abuse.py slowloris PORT N   N connections that trickle one request header byte by byte
    python3 rest_abuse.py flood PORT         connect and reset, FLOOD_RATE times a second

Each mode prints "ready N" (N: sockets open, or 0 for the flood) once it is running, then keeps going
until its standard input closes, closes every socket, prints "done N" (connections made) and exits.
Only 127.0.0.1. Every loop is bounded by MAX_SECONDS so a forgotten attacker ends on its own.
"""
import errno
import os
import resource
import select
import socket
import struct
import sys
import time

MAX_SECONDS = 120.0  # an attacker nobody stops ends by itself
CONNECT_TIMEOUT = 10.0  # for all N connections to be established
ATTACKER_NICENESS = 19
SLOWLORIS_BYTE_INTERVAL = 1.0  # each slowloris socket sends a byte this often (Patroni has no timeout)
FLOOD_RATE = 2000.0  # flood connections a second (an HAProxy check is one every 2 s per backend)
FLOOD_BATCH = 50  # connections opened, then reset, at once


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


def stdin_closed(timeout):
    """Waits up to timeout seconds; True once the controlling test closed our standard input."""
    r, _, _ = select.select([sys.stdin], [], [], timeout)
    return bool(r) and not os.read(sys.stdin.fileno(), 4096)


def open_sockets(port, n):
    """n connected sockets to 127.0.0.1:port (the server may have them queued, not yet accepted)."""
    socks, pending = [], set()
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            continue
        socks.append(s)
        pending.add(s)
    deadline = time.monotonic() + CONNECT_TIMEOUT
    poller = select.poll()
    for s in pending:
        poller.register(s, select.POLLOUT)
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(100):
            poller.unregister(fd)
            pending.discard(next(s for s in pending if s.fileno() == fd))
    return socks


def run_idle(port, n):
    socks = open_sockets(port, n)
    print(f"ready {len(socks)}", flush=True)
    end = time.monotonic() + MAX_SECONDS
    while time.monotonic() < end and not stdin_closed(0.5):
        pass
    for s in socks:
        s.close()
    print(f"done {len(socks)}", flush=True)


def run_slowloris(port, n):
    socks = open_sockets(port, n)
    for s in socks:
        try:
            s.send(b"GET /leader HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        except OSError:
            pass
    print(f"ready {len(socks)}", flush=True)
    end = time.monotonic() + MAX_SECONDS
    made = len(socks)
    while time.monotonic() < end and not stdin_closed(SLOWLORIS_BYTE_INTERVAL):
        alive = []
        for s in socks:
            try:
                s.send(b"X")
                alive.append(s)
            except OSError:  # the server cut it off: reopen, as a slowloris does
                s.close()
        for s in open_sockets(port, len(socks) - len(alive)):
            try:
                s.send(b"GET /leader HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            except OSError:
                pass
            alive.append(s)
            made += 1
        socks = alive
    for s in socks:
        s.close()
    print(f"done {made}", flush=True)


def run_flood(port):
    # Each socket ends with a reset (SO_LINGER 0) rather than a FIN: a FIN leaves this side in TIME_WAIT
    # for a minute, and at thousands of connections a second the loopback ephemeral ports run out, so
    # the test's own health checks would stall in connect() for reasons that are not the server's.
    linger = struct.pack("ii", 1, 0)
    print("ready 0", flush=True)
    end = time.monotonic() + MAX_SECONDS
    made = 0
    batch_started = time.monotonic()
    while time.monotonic() < end:
        batch = []
        for _ in range(FLOOD_BATCH):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            if s.connect_ex(("127.0.0.1", port)) in (0, errno.EINPROGRESS):
                made += 1
            batch.append(s)
        for s in batch:
            s.close()
        # paced at FLOOD_RATE: the test measures the server among flood connections, not how a
        # 2-core CI machine schedules one process that makes connections as fast as it can
        batch_started += FLOOD_BATCH / FLOOD_RATE
        if stdin_closed(max(0.0, batch_started - time.monotonic())):
            break
    print(f"done {made}", flush=True)


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    # The attacker stands for other hosts: on this machine it must not take the server's CPU away, or
    # the test would measure the scheduler on a busy CI runner instead of the server.
    os.nice(ATTACKER_NICENESS)
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    raise_nofile(n + 64)
    if mode == "idle":
        run_idle(port, n)
    elif mode == "slowloris":
        run_slowloris(port, n)
    elif mode == "flood":
        run_flood(port)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
