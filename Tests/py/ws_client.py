#!/usr/bin/env python3
"""A WebSocket test client on the `websockets` library (HTTP/1.1 upgrade). Sends --messages messages of
--size bytes of the pattern (i*31+7)&0xff, checks each echo, pings, then closes with --close-code, or
with --expect-close CODE waits for the server to close with CODE. Facts on stdout as key=value; exit
0 on success, else one line on stderr and exit 1.

  ws_client.py ws://HOST:PORT/PATH [--size 1048576] [--messages 1] [--text] [--no-ping]
               [--close-code 1000 | --expect-close CODE] [--timeout 30]

Keys: sent_bytes, sent_sha256, echo_bytes, echo_sha256, echo_ms, pong_ms, close_code (what the
server sent in its close frame, "none" if the connection ended without one), close_reason.
"""
import argparse
import asyncio
import hashlib
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


def fail(msg):
    print(f"ws_client: {msg}", file=sys.stderr)
    sys.exit(1)


def out(**kv):
    for k, v in kv.items():
        print(f"{k}={v}", flush=True)


async def run(a):
    period = bytes((i * 31 + 7) & 0xFF for i in range(256))
    if a.text:  # printable text: the pattern's bytes mapped into a..z
        period = bytes(97 + b % 26 for b in period)
    payload = (period * (a.size // 256 + 1))[:a.size]
    msg = payload.decode() if a.text else payload
    sha = hashlib.sha256(payload).hexdigest()
    try:
        ws = await connect(a.url, max_size=max(a.size, 1 << 20) + 1024, open_timeout=a.timeout,
                           ping_interval=None)
    except Exception as e:  # refused, timed out, a handshake the server rejected
        fail(f"cannot connect to {a.url}: {e}")
    echoed, echo_sha, echo_ms, pong_ms, err = 0, "none", 0.0, "none", None
    try:
        for _ in range(a.messages):
            t0 = time.monotonic()
            await ws.send(msg)
            back = await asyncio.wait_for(ws.recv(), a.timeout)
            echo_ms += (time.monotonic() - t0) * 1000
            data = back.encode() if isinstance(back, str) else back
            echoed += len(data)
            echo_sha = hashlib.sha256(data).hexdigest()
            if echo_sha != sha:
                err = f"the echo differs from the message ({len(data)} bytes back, {a.size} sent)"
                break
        if not err and not a.no_ping:
            t0 = time.monotonic()
            await asyncio.wait_for(await ws.ping(b"ws_client"), a.timeout)
            pong_ms = f"{(time.monotonic() - t0) * 1000:.1f}"
        if a.expect_close is not None:
            try:
                await asyncio.wait_for(ws.recv(), a.timeout)
                err = err or "a message came where the server's close was expected"
            except ConnectionClosed:
                pass
        else:
            await asyncio.wait_for(ws.close(a.close_code, "ws_client done"), a.timeout)
    except ConnectionClosed as e:
        err = err or f"the connection closed early ({e})"
    except asyncio.TimeoutError:
        err = err or f"no answer within {a.timeout} s"
    await ws.wait_closed()
    rcvd = ws.protocol.close_rcvd
    out(sent_bytes=a.size * a.messages, sent_sha256=sha, echo_bytes=echoed, echo_sha256=echo_sha,
        echo_ms=f"{echo_ms:.1f}", pong_ms=pong_ms, close_code=rcvd.code if rcvd else "none",
        close_reason=(rcvd.reason if rcvd else "").replace(" ", "_") or "none")
    if err:
        fail(err)
    want = a.expect_close if a.expect_close is not None else a.close_code
    if not rcvd or rcvd.code != want:
        fail(f"close code {rcvd.code if rcvd else 'none'}, expected {want}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--messages", type=int, default=1)
    ap.add_argument("--text", action="store_true")
    ap.add_argument("--no-ping", action="store_true")
    ap.add_argument("--close-code", type=int, default=1000)
    ap.add_argument("--expect-close", type=int)
    ap.add_argument("--timeout", type=float, default=30)
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
