#!/usr/bin/env python3
"""An HTTP/2 upstream for the tests: h2c with prior knowledge (or TLS with ALPN h2), on the `h2`
library over asyncio. Prints "port=N" on stdout when it listens; SIGTERM/SIGINT stop it.

  h2_upstream.py [--port 0] [--max-streams N] [--goaway-after N] [--window BYTES]
                 [--tls CERT KEY] [--verbose]

What it answers, by path (every response has x-upstream-conn: K and x-upstream-stream: ID):
  /bytes/N     N bytes of the pattern (i*31+7)&0xff (as build/es-upstream's /bytes), streamed as the
               client's flow-control window allows; content-length N
  /sha256      reads the request body (acknowledging it only as it is read) and answers
               "len=N sha256=HEX\\n", also as headers x-body-len and x-body-sha256
  /trailers    a body "trailers follow\\n" then trailers x-trailer-one: 1, x-trailer-two: 2
  /request-trailers  the request's trailers, "name: value" a line (or "no trailers")
  /slow/MS     waits MS milliseconds, then answers like the default
  /status/C    status C, body "status C\\n"
  anything     echoes the request body as it arrives; a request without one gets
               "upstream ok METHOD PATH\\n"
Request bodies are acknowledged (WINDOW_UPDATE) only as a handler reads them. --window sets
SETTINGS_INITIAL_WINDOW_SIZE, 65535 or more: h2 fails a stream whose window a SETTINGS change
shrinks below 0, which a client sending DATA before it has the SETTINGS may legally cause.
--max-streams sets SETTINGS_MAX_CONCURRENT_STREAMS (default 100); a stream over it gets
RST_STREAM(REFUSED_STREAM). --goaway-after N sends GOAWAY
(NO_ERROR, last stream = the Nth) once N streams have arrived, finishes them, then closes.
"""
import argparse
import asyncio
import hashlib
import signal
import ssl
import sys

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

PATTERN = bytes((i * 31 + 7) & 0xFF for i in range(256)) * 1025  # 256-periodic, 262400 bytes


def pattern(offset, n):
    """n <= 256 * 1024 bytes of the pattern from offset."""
    s = offset % 256
    return PATTERN[s:s + n]


class Stream:
    def __init__(self, sid, headers):
        self.sid = sid
        self.headers = dict(headers)
        self.body = asyncio.Queue()   # chunks (bytes, flow-controlled length); None at the end
        self.has_body = True
        self.task = None


class Conn(asyncio.Protocol):
    ordinal = 0

    def __init__(self, args):
        self.args = args
        Conn.ordinal += 1
        self.num = Conn.ordinal
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=cfg)
        self.h2.local_settings = self.settings(args.max_streams)
        self.streams = {}
        self.seen = 0
        self.goaway_sent, self.goaway_last = False, 0
        self.window_open = asyncio.Event()
        self.transport = None

    # ---- transport ----
    def settings(self, max_streams):
        return h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.args.window})

    def connection_made(self, transport):
        self.transport = transport
        self.h2.initiate_connection()
        self.flush()
        # The SETTINGS sent say --max-streams; h2 itself enforces a far larger limit (it would answer
        # a stream over the limit with a connection error), and on_event refuses the streams over
        # --max-streams with RST_STREAM(REFUSED_STREAM), as nghttp2 does.
        self.h2.local_settings = self.settings(1 << 20)

    def connection_lost(self, exc):
        for s in self.streams.values():
            if s.task:
                s.task.cancel()
        self.window_open.set()

    def flush(self):
        data = self.h2.data_to_send()
        if data and self.transport and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data):
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            self.log(f"protocol error: {e!r}")
            self.flush()
            self.transport.close()
            return
        for ev in events:
            self.on_event(ev)
        self.flush()

    def log(self, msg):
        if self.args.verbose:
            print(f"h2_upstream: conn {self.num}: {msg}", file=sys.stderr, flush=True)

    # ---- events ----
    def on_event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            if (self.goaway_sent and ev.stream_id > self.goaway_last) or len(self.streams) >= self.args.max_streams:
                self.log(f"stream {ev.stream_id} refused")
                self.h2.reset_stream(ev.stream_id, ErrorCodes.REFUSED_STREAM)
                return
            s = Stream(ev.stream_id, ev.headers)
            self.streams[ev.stream_id] = s
            self.seen += 1
            self.log(f"stream {ev.stream_id}: {s.headers.get(':method')} {s.headers.get(':path')}")
            if ev.stream_ended is not None:
                s.has_body = False
                s.body.put_nowait(None)
            s.task = asyncio.ensure_future(self.serve(s))
            if self.args.goaway_after and self.seen >= self.args.goaway_after and not self.goaway_sent:
                # h2's close_connection() would refuse to finish the open streams: the GOAWAY is
                # written beside it (hyperframe), later streams are refused, the open ones finish.
                self.goaway_sent, self.goaway_last = True, ev.stream_id
                self.flush()
                self.transport.write(GoAwayFrame(0, last_stream_id=ev.stream_id, error_code=0).serialize())
                self.log(f"GOAWAY last_stream_id={ev.stream_id}")
        elif isinstance(ev, h2.events.DataReceived):
            s = self.streams.get(ev.stream_id)
            if s:
                s.body.put_nowait((ev.data, ev.flow_controlled_length))
        elif isinstance(ev, h2.events.TrailersReceived):
            s = self.streams.get(ev.stream_id)
            if s:
                s.trailers = [(k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
                              for k, v in ev.headers]
        elif isinstance(ev, h2.events.StreamEnded):
            s = self.streams.get(ev.stream_id)
            if s:
                s.body.put_nowait(None)
        elif isinstance(ev, h2.events.StreamReset):
            s = self.streams.pop(ev.stream_id, None)
            self.log(f"stream {ev.stream_id} reset by the client ({ev.error_code!r})")
            if s and s.task:
                s.task.cancel()
            self.window_open.set()
        elif isinstance(ev, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self.window_open.set()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.log(f"GOAWAY from the client ({ev.error_code!r})")
            self.transport.close()

    # ---- helpers for the handlers ----
    async def read_chunk(self, s):
        """The next body chunk (acknowledged as read: the client's window reopens only now), or None."""
        item = await s.body.get()
        if item is None:
            return None
        data, fc_len = item
        if fc_len and s.sid in self.streams:
            self.h2.acknowledge_received_data(fc_len, s.sid)
            self.flush()
        return data

    async def send(self, s, data, end=False):
        """Sends data as the stream's and the connection's send windows allow."""
        view = memoryview(data)
        while view:
            while True:
                if self.transport.is_closing() or s.sid not in self.streams:
                    raise asyncio.CancelledError()
                n = min(self.h2.local_flow_control_window(s.sid), self.h2.max_outbound_frame_size, len(view))
                if n > 0:
                    break
                self.window_open.clear()
                await self.window_open.wait()
            self.h2.send_data(s.sid, view[:n].tobytes())
            view = view[n:]
            self.flush()
            await self.drained()
        if end:
            self.h2.end_stream(s.sid)
            self.flush()

    async def drained(self):
        # Let the transport's buffer drain a bit so a big body never piles up in memory.
        while self.transport.get_write_buffer_size() > 1 << 20 and not self.transport.is_closing():
            await asyncio.sleep(0.001)

    def respond(self, s, status, headers=(), end=False):
        h = [(":status", str(status)), ("x-upstream-conn", str(self.num)), ("x-upstream-stream", str(s.sid))]
        self.h2.send_headers(s.sid, h + list(headers), end_stream=end)
        self.flush()

    # ---- the handlers ----
    async def serve(self, s):
        try:
            await self.route(s)
        except asyncio.CancelledError:
            pass
        except h2.exceptions.StreamClosedError:
            pass
        finally:
            self.streams.pop(s.sid, None)
            if self.goaway_sent and not self.streams:
                self.flush()
                self.transport.close()

    async def route(self, s):
        method, path = s.headers.get(":method", "?"), s.headers.get(":path", "/")
        parts = path.split("?")[0].strip("/").split("/")
        if parts[0] == "bytes" and len(parts) == 2 and parts[1].isdigit():
            await self.drain_body(s)
            n = int(parts[1])
            self.respond(s, 200, [("content-length", str(n)), ("content-type", "application/octet-stream")],
                         end=(n == 0))
            off = 0
            while off < n:
                k = min(n - off, 256 * 1024)
                await self.send(s, pattern(off, k), end=(off + k == n))
                off += k
        elif parts[0] == "sha256":
            h, total = hashlib.sha256(), 0
            while (chunk := await self.read_chunk(s)) is not None:
                h.update(chunk)
                total += len(chunk)
            body = f"len={total} sha256={h.hexdigest()}\n".encode()
            self.respond(s, 200, [("x-body-len", str(total)), ("x-body-sha256", h.hexdigest()),
                                  ("content-length", str(len(body)))])
            await self.send(s, body, end=True)
        elif parts[0] == "trailers":
            await self.drain_body(s)
            self.respond(s, 200, [("content-type", "text/plain")])
            await self.send(s, b"trailers follow\n")
            self.h2.send_headers(s.sid, [("x-trailer-one", "1"), ("x-trailer-two", "2")], end_stream=True)
            self.flush()
        elif parts[0] == "request-trailers":
            await self.drain_body(s)
            body = "".join(f"{k}: {v}\n" for k, v in getattr(s, "trailers", [])).encode() or b"no trailers\n"
            self.respond(s, 200, [("content-length", str(len(body)))])
            await self.send(s, body, end=True)
        elif parts[0] == "status" and len(parts) == 2 and parts[1].isdigit():
            await self.drain_body(s)
            body = f"status {parts[1]}\n".encode()
            self.respond(s, int(parts[1]), [("content-length", str(len(body)))])
            await self.send(s, body, end=True)
        else:
            if parts[0] == "slow" and len(parts) == 2 and parts[1].isdigit():
                await asyncio.sleep(int(parts[1]) / 1000)
            await self.echo(s, method, path)

    async def drain_body(self, s):
        while await self.read_chunk(s) is not None:
            pass

    async def echo(self, s, method, path):
        if not s.has_body:
            body = f"upstream ok {method} {path}\n".encode()
            self.respond(s, 200, [("content-length", str(len(body)))])
            await self.send(s, body, end=True)
            return
        self.respond(s, 200, [("content-type", "application/octet-stream")])
        while (chunk := await self.read_chunk(s)) is not None:
            await self.send(s, chunk)
        await self.send(s, b"", end=True)


async def main():
    ap = argparse.ArgumentParser(description="HTTP/2 test upstream (h2c prior knowledge, or TLS)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--max-streams", type=int, default=100)
    ap.add_argument("--goaway-after", type=int, default=0)
    ap.add_argument("--window", type=int, default=65535, help="SETTINGS_INITIAL_WINDOW_SIZE")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if args.window < 65535:
        ap.error("--window: 65535 or more (see the header)")

    ctx = None
    if args.tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*args.tls)
        ctx.set_alpn_protocols(["h2"])
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(lambda: Conn(args), "127.0.0.1", args.port, ssl=ctx,
                                          reuse_address=True)
    except OSError as e:
        print(f"h2_upstream: cannot listen on 127.0.0.1:{args.port}: {e.strerror}", file=sys.stderr)
        sys.exit(1)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"port={server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
