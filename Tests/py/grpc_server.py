#!/usr/bin/env python3
"""A gRPC test server on grpcio without protoc: generic handlers, bytes in and out (identity
serializers). Insecure h2c on 127.0.0.1; prints "port=N" on stdout when ready; SIGTERM/SIGINT stop it.

  grpc_server.py [--port 0] [--verbose]

Service test.Echo, every message raw bytes:
  Unary            returns the request
  ServerStream     request "N SIZE" (text): N messages of SIZE bytes of the pattern (i*31+7)&0xff
  ClientStream     reads every message, returns "count=N bytes=B sha256=HEX" over their concatenation
  Bidi             echoes each message as it arrives
  Status           request "CODE message": ends with status CODE (a name or number) and that
                   message, no response message (trailers-only)
  Sleep            request "MS": sleeps MS milliseconds (stopping early when cancelled), returns "slept"
  Trailers         returns the request, with trailing metadata x-trailer-one: 1, x-trailer-bin: b'\\x00\\x01'
                   and initial metadata x-initial: yes
"""
import argparse
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

PATTERN = bytes((i * 31 + 7) & 0xFF for i in range(256))


def pattern(n):
    return (PATTERN * (n // 256 + 1))[:n]


def code_of(text):
    if text.isdigit():
        return next(c for c in grpc.StatusCode if c.value[0] == int(text))
    return grpc.StatusCode[text.upper()]


class Echo:
    def __init__(self, verbose):
        self.verbose = verbose

    def log(self, what, ctx):
        if self.verbose:
            print(f"grpc_server: {what} from {ctx.peer()}", file=sys.stderr, flush=True)

    def unary(self, req, ctx):
        self.log("Unary", ctx)
        return req

    def server_stream(self, req, ctx):
        self.log("ServerStream", ctx)
        n, size = (int(x) for x in req.decode().split())
        for _ in range(n):
            yield pattern(size)

    def client_stream(self, reqs, ctx):
        import hashlib
        self.log("ClientStream", ctx)
        h, count, total = hashlib.sha256(), 0, 0
        for m in reqs:
            h.update(m)
            count, total = count + 1, total + len(m)
        return f"count={count} bytes={total} sha256={h.hexdigest()}".encode()

    def bidi(self, reqs, ctx):
        self.log("Bidi", ctx)
        for m in reqs:
            yield m

    def status(self, req, ctx):
        self.log("Status", ctx)
        code, _, msg = req.decode().partition(" ")
        ctx.abort(code_of(code), msg)

    def sleep(self, req, ctx):
        self.log("Sleep", ctx)
        done = threading.Event()
        ctx.add_callback(done.set)  # called when the RPC ends, also by cancellation or deadline
        done.wait(int(req.decode() or "0") / 1000)
        return b"slept"

    def trailers(self, req, ctx):
        self.log("Trailers", ctx)
        ctx.send_initial_metadata((("x-initial", "yes"),))
        ctx.set_trailing_metadata((("x-trailer-one", "1"), ("x-trailer-bin", b"\x00\x01")))
        return req


def main():
    ap = argparse.ArgumentParser(description="gRPC test server (test.Echo, raw bytes)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    e = Echo(args.verbose)
    rpc = {"Unary": grpc.unary_unary_rpc_method_handler(e.unary),
           "ServerStream": grpc.unary_stream_rpc_method_handler(e.server_stream),
           "ClientStream": grpc.stream_unary_rpc_method_handler(e.client_stream),
           "Bidi": grpc.stream_stream_rpc_method_handler(e.bidi),
           "Status": grpc.unary_unary_rpc_method_handler(e.status),
           "Sleep": grpc.unary_unary_rpc_method_handler(e.sleep),
           "Trailers": grpc.unary_unary_rpc_method_handler(e.trailers)}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_receive_message_length", 64 << 20),
                                  ("grpc.max_send_message_length", 64 << 20)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", rpc),))
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    if not port:
        print(f"grpc_server: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        sys.exit(1)
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"port={port}", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop(grace=1).wait()


if __name__ == "__main__":
    main()
