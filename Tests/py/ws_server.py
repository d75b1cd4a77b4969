#!/usr/bin/env python3
"""A WebSocket echo server for the tests, on the `websockets` library. Listens on 127.0.0.1, prints
"port=N" on stdout when ready; SIGTERM/SIGINT stop it.

  ws_server.py [--port 0] [--max-size BYTES] [--verbose]

Paths: /close/CODE closes at once with CODE (reason "closed by path"); /echo-then-close/CODE echoes
one message, then closes with CODE; anything else echoes every message (text as text, binary as
binary) until the client closes. Pings are answered by the library.
"""
import argparse
import asyncio
import signal
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def handler(ws, args):
    path = ws.request.path.split("?")[0]
    parts = path.strip("/").split("/")
    if args.verbose:
        print(f"ws_server: {path}", file=sys.stderr, flush=True)
    code = int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else None
    try:
        if parts[0] == "close" and code:
            await ws.close(code, "closed by path")
            return
        async for msg in ws:
            await ws.send(msg)
            if parts[0] == "echo-then-close" and code:
                await ws.close(code, "closed by path")
                return
    except ConnectionClosed:
        pass


async def main():
    ap = argparse.ArgumentParser(description="WebSocket echo server for the tests")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--max-size", type=int, default=64 << 20, help="largest message accepted (64 MiB)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    try:
        server = await serve(lambda ws: handler(ws, args), "127.0.0.1", args.port, max_size=args.max_size)
    except OSError as e:
        print(f"ws_server: cannot listen on 127.0.0.1:{args.port}: {e.strerror}", file=sys.stderr)
        sys.exit(1)
    async with server:
        print(f"port={server.sockets[0].getsockname()[1]}", flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main())
