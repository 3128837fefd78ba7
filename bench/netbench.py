#!/usr/bin/env python3
"""Measurements for bench/network.sh, on the host side of a container's network.

  netbench.py send PORT MIB      host -> container: the container runs a persistent
                                 `nc -ll -p PORT -e /bench/count.sh` (which answers with the
                                 number of bytes it read) behind a published port; prints
                                 "seconds MiB/s".
  netbench.py recv [--bind ADDR] PORT MIB CMD...   container -> host: listen on ADDR:PORT
                                 (default 127.0.0.1; 0.0.0.0 when host.containers.internal is
                                 the host's own address rather than its loopback), run CMD (which
                                 starts a container that sends MIB MiB to the host), time from
                                 the first byte to the last; prints "seconds MiB/s".
  netbench.py latency [HOST:]PORT N   N sequential HTTP GETs of / on HOST:PORT (default
                                 127.0.0.1; busybox httpd in the container); prints the median
                                 connect+response time in ms.
"""
import socket
import statistics
import subprocess
import sys
import time

READY = 60.0


def send(port, mib):
    total = mib * 1024 * 1024
    deadline = time.monotonic() + READY
    # Ready when an empty connection is answered with a count.
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.shutdown(socket.SHUT_WR)
                if s.recv(64).strip() == b"0":
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"port {port} never answered")
        time.sleep(0.05)
    chunk = b"\0" * (1 << 20)
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as s:
        for _ in range(mib):
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while True:
            b = s.recv(64)
            if not b:
                break
            reply += b
    took = time.monotonic() - start
    if reply.strip() != str(total).encode():
        sys.exit(f"the container counted {reply!r}, sent {total}")
    print(f"{took:.3f} {mib / took:.1f}")


def recv(addr, port, mib, cmd):
    total = mib * 1024 * 1024
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((addr, port))
    l.listen(1)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    l.settimeout(READY)
    c, _ = l.accept()
    got = 0
    start = None
    while got < total:
        b = c.recv(1 << 20)
        if not b:
            break
        if start is None:
            start = time.monotonic()
        got += len(b)
    took = time.monotonic() - (start or time.monotonic())
    c.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    if got < total:
        sys.exit(f"received {got} of {total} bytes: {proc.stderr.read().decode()}")
    print(f"{took:.3f} {mib / took:.1f}")


def latency(host, port, n):
    deadline = time.monotonic() + READY
    times = []
    while len(times) < n:
        t0 = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                data = s.recv(4096)
        except OSError:
            data = b""
        if data.startswith(b"HTTP/"):
            times.append(time.monotonic() - t0)
        elif time.monotonic() > deadline:
            sys.exit(f"port {port} never answered")
        else:
            time.sleep(0.05)
    print(f"{statistics.median(times) * 1000:.2f}")


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "send":
        send(int(sys.argv[2]), int(sys.argv[3]))
    elif what == "recv":
        args = sys.argv[2:]
        addr = "127.0.0.1"
        if args[:1] == ["--bind"]:
            addr, args = args[1], args[2:]
        recv(addr, int(args[0]), int(args[1]), args[2:])
    elif what == "latency":
        host, _, port = sys.argv[2].rpartition(":")
        latency(host or "127.0.0.1", int(port), int(sys.argv[3]))
    else:
        sys.exit(__doc__)
