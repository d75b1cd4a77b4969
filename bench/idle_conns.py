#!/usr/bin/env python3
"""Idle keep-alive client connections, for the memory part of bench/run.sh.

    bench/idle_conns.py PORT COUNT [--parallel P] [--max-hold SECONDS]

Opens COUNT connections to 127.0.0.1:PORT, at most P (default 16) at a time, so the proxy never
needs more than P upstream connections. Each sends one `GET /` and reads the whole response (status
200, Content-Length body), then stays open and idle: a keep-alive connection after a response.
When all are idle it prints `ready COUNT` and waits for SIGUSR1 or --max-hold seconds (default 120,
so it always stops by itself; 0 for a warm-up that closes at once). Then it checks that every
connection is still open with nothing unread (the server's idle timeout did not fire), prints
`open N of COUNT`, resets them all (SO_LINGER 0: no TIME_WAIT left behind) and exits 0 if all N
were open, 1 otherwise. SIGTERM or SIGINT: exit 1 at once.
Any failure while opening (refused, reset, a non-200, a stall of 30 s) prints one line and exits 1.
"""
import argparse
import errno
import resource
import selectors
import signal
import socket
import struct
import sys
import time

LINGER0 = struct.pack("ii", 1, 0)


def fail(msg):
    print(f"idle_conns: {msg}", flush=True)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--parallel", type=int, default=16)
    ap.add_argument("--max-hold", type=float, default=120.0)
    a = ap.parse_args()

    # Signals wait in the mask until sigtimedwait below, even if they come early.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM, signal.SIGINT})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < a.count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if hard < a.count + 64:
            fail(f"ulimit -n is {hard}, need {a.count + 64}")

    request = (f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{a.port}\r\n"
               "User-Agent: idle_conns\r\nAccept: */*\r\n\r\n").encode()
    sel = selectors.DefaultSelector()
    idle = []
    started = 0
    inflight = 0
    last_progress = time.monotonic()

    def start_one():
        nonlocal started, inflight
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        e = s.connect_ex(("127.0.0.1", a.port))
        if e not in (0, errno.EINPROGRESS):
            fail(f"connect #{started}: {errno.errorcode.get(e, e)}")
        sel.register(s, selectors.EVENT_WRITE, {"state": "connect", "buf": b""})
        started += 1
        inflight += 1

    def response_done(buf):
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = buf[:end].decode("latin-1").split("\r\n")
        parts = head[0].split(" ")
        if len(parts) < 2 or parts[1] != "200":
            fail(f"unexpected response: {head[0]!r}")
        length = None
        for line in head[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
            if k.strip().lower() == "connection" and v.strip().lower() == "close":
                fail("the server asked to close the connection")
        if length is None:
            fail(f"response without Content-Length: {head!r}")
        if len(buf) > end + 4 + length:
            fail("more bytes than one response")
        return len(buf) == end + 4 + length

    while len(idle) < a.count:
        while inflight < a.parallel and started < a.count:
            start_one()
        events = sel.select(timeout=1.0)
        now = time.monotonic()
        if events:
            last_progress = now
        elif now - last_progress > 30:
            fail(f"stalled with {len(idle)} idle, {inflight} in flight")
        for key, _ in events:
            s, st = key.fileobj, key.data
            if st["state"] == "connect":
                e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if e:
                    fail(f"connect: {errno.errorcode.get(e, e)} after {len(idle)} idle")
                s.send(request)  # a few dozen bytes into an empty socket buffer: all of it
                st["state"] = "read"
                sel.modify(s, selectors.EVENT_READ, st)
                continue
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError as ex:
                fail(f"read: {ex} after {len(idle)} idle")
            if not chunk:
                fail(f"closed by the server before a whole response, after {len(idle)} idle")
            st["buf"] += chunk
            if response_done(st["buf"]):
                sel.unregister(s)
                idle.append(s)
                inflight -= 1

    print(f"ready {len(idle)}", flush=True)
    sig = signal.sigtimedwait({signal.SIGUSR1, signal.SIGTERM, signal.SIGINT}, a.max_hold)
    if sig is not None and sig.si_signo != signal.SIGUSR1:
        sys.exit(1)

    still_open = 0
    for s in idle:
        try:
            s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)  # b"" (closed) or bytes: not idle
        except BlockingIOError:
            still_open += 1
        except OSError:
            pass
    for s in idle:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        s.close()
    print(f"open {still_open} of {a.count}", flush=True)
    sys.exit(0 if still_open == a.count else 1)


if __name__ == "__main__":
    main()
