#!/usr/bin/env python3
"""A gRPC test client on grpcio without protoc (raw bytes, identity serializers), for
grpc_server.py's test.Echo, directly or through a proxy (h2c, insecure). Facts on stdout as key=value;
exit 0 on success, else one line on stderr and exit 1.

  grpc_client.py HOST:PORT MODE [--size 1024] [--count 10] [--code NOT_FOUND] [--message TEXT]
                 [--deadline-ms 200] [--sleep-ms 2000] [--timeout 30]

Every mode prints status=NAME (the call's status code), code=N (its number) and details=TEXT, and:
  unary          bytes, sha256 (of the answer), sent_sha256, ms           (ok: the answer is the request)
  server-stream  messages, bytes, sha256 (of them all), expected_sha256   (--count messages of --size)
  client-stream  messages, sent_sha256, server_count, server_bytes, server_sha256 (what it read)
  bidi           messages, bytes, sha256 (of the echoes), sent_sha256
  status         (ok: the status is --code and the details --message)
  deadline       elapsed_ms                 (ok: DEADLINE_EXCEEDED before the server's --sleep-ms)
  trailers       initial.NAME=VALUE and trailer.NAME=VALUE lines (ok: x-initial and x-trailer-one)
Payloads are the pattern (i*31+7)&0xff; details have spaces as "_" so each line stays key=value.
"""
import argparse
import hashlib
import sys
import time

import grpc

PATTERN = bytes((i * 31 + 7) & 0xFF for i in range(256))


def pattern(n):
    return (PATTERN * (n // 256 + 1))[:n]


def sha(b):
    return hashlib.sha256(b).hexdigest()


def out(**kv):
    for k, v in kv.items():
        print(f"{k}={v}", flush=True)


def fail(msg):
    print(f"grpc_client: {msg}", file=sys.stderr)
    sys.exit(1)


def report(code, details):
    out(status=code.name, code=code.value[0], details=(details or "").replace(" ", "_") or "none")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("addr")
    ap.add_argument("mode", choices=["unary", "server-stream", "client-stream", "bidi", "status", "deadline",
                                     "trailers"])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--code", default="NOT_FOUND")
    ap.add_argument("--message", default="no such thing")
    ap.add_argument("--deadline-ms", type=int, default=200)
    ap.add_argument("--sleep-ms", type=int, default=2000)
    ap.add_argument("--timeout", type=float, default=30, help="seconds, every call but deadline's")
    a = ap.parse_args()

    ch = grpc.insecure_channel(a.addr, options=[("grpc.max_receive_message_length", 64 << 20),
                                                ("grpc.max_send_message_length", 64 << 20)])
    m = lambda kind, name: getattr(ch, kind)(f"/test.Echo/{name}")  # noqa: E731 (bytes in, bytes out)
    msg = pattern(a.size)
    t0 = time.monotonic()
    try:
        if a.mode == "unary":
            r, call = m("unary_unary", "Unary").with_call(msg, timeout=a.timeout)
            report(call.code(), call.details())
            out(bytes=len(r), sha256=sha(r), sent_sha256=sha(msg), ms=f"{(time.monotonic() - t0) * 1000:.1f}")
            if r != msg:
                fail("the answer is not the request")
        elif a.mode == "server-stream":
            it = m("unary_stream", "ServerStream")(f"{a.count} {a.size}".encode(), timeout=a.timeout)
            h, n, total = hashlib.sha256(), 0, 0
            for r in it:
                h.update(r)
                n, total = n + 1, total + len(r)
            report(it.code(), it.details())
            out(messages=n, bytes=total, sha256=h.hexdigest(), expected_sha256=sha(msg * a.count))
            if n != a.count or h.hexdigest() != sha(msg * a.count):
                fail(f"{n} messages, {total} bytes: not the {a.count} x {a.size} expected")
        elif a.mode == "client-stream":
            r, call = m("stream_unary", "ClientStream").with_call(iter([msg] * a.count), timeout=a.timeout)
            kv = dict(w.split("=", 1) for w in r.decode().split())
            report(call.code(), call.details())
            out(messages=a.count, sent_sha256=sha(msg * a.count), server_count=kv["count"],
                server_bytes=kv["bytes"], server_sha256=kv["sha256"])
            if kv["sha256"] != sha(msg * a.count) or int(kv["count"]) != a.count:
                fail(f"the server read {kv['count']} messages, sha256 {kv['sha256']}")
        elif a.mode == "bidi":
            it = m("stream_stream", "Bidi")(iter([msg] * a.count), timeout=a.timeout)
            h, n, total = hashlib.sha256(), 0, 0
            for r in it:
                h.update(r)
                n, total = n + 1, total + len(r)
            report(it.code(), it.details())
            out(messages=n, bytes=total, sha256=h.hexdigest(), sent_sha256=sha(msg * a.count))
            if h.hexdigest() != sha(msg * a.count):
                fail(f"{n} echoes, {total} bytes: not what was sent")
        elif a.mode == "status":
            m("unary_unary", "Status")(f"{a.code} {a.message}".encode(), timeout=a.timeout)
            report(grpc.StatusCode.OK, "")
            fail(f"the call succeeded, expected {a.code}")
        elif a.mode == "deadline":
            m("unary_unary", "Sleep")(str(a.sleep_ms).encode(), timeout=a.deadline_ms / 1000)
            report(grpc.StatusCode.OK, "")
            out(elapsed_ms=f"{(time.monotonic() - t0) * 1000:.0f}")
            fail(f"the call finished within its deadline of {a.deadline_ms} ms")
        elif a.mode == "trailers":
            r, call = m("unary_unary", "Trailers").with_call(msg, timeout=a.timeout)
            report(call.code(), call.details())
            init, trail = dict(call.initial_metadata()), dict(call.trailing_metadata())
            for k, v in init.items():
                out(**{f"initial.{k}": v.hex() if isinstance(v, bytes) else v})
            for k, v in trail.items():
                out(**{f"trailer.{k}": v.hex() if isinstance(v, bytes) else v})
            if init.get("x-initial") != "yes" or trail.get("x-trailer-one") != "1":
                fail("x-initial or x-trailer-one missing from the metadata")
    except grpc.RpcError as e:
        report(e.code(), e.details())
        elapsed = (time.monotonic() - t0) * 1000
        if a.mode == "status":
            if e.code().name != a.code.upper() and str(e.code().value[0]) != a.code:
                fail(f"status {e.code().name}, expected {a.code}")
            if e.details() != a.message:
                fail(f"details {e.details()!r}, expected {a.message!r}")
        elif a.mode == "deadline":
            out(elapsed_ms=f"{elapsed:.0f}")
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                fail(f"status {e.code().name}, expected DEADLINE_EXCEEDED")
            if elapsed >= a.sleep_ms:
                fail(f"DEADLINE_EXCEEDED after {elapsed:.0f} ms, not before the server's {a.sleep_ms} ms")
        else:
            fail(f"{a.mode}: status {e.code().name}: {e.details()}")


if __name__ == "__main__":
    main()
