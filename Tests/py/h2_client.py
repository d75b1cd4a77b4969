#!/usr/bin/env python3
"""An HTTP/2 test client on the `h2` library over a raw socket: h2c with prior knowledge, or TLS with
ALPN h2 (--tls, no certificate verification). Measured facts go to stdout as key=value lines; exit 0
on success, else one line on stderr saying why and exit 1.

  h2_client.py HOST:PORT MODE [options]

Modes (options in brackets; --path overrides each mode's default path):
  get | post        --streams N concurrent streams on one connection [--path / ; post: --size BYTES of
                    the pattern as each body]; success: every stream answered --expect-status (200).
                    Per stream I: streamI.id/status/bytes/sha256/ms/trailers (and streamI.header.NAME
                    for each --header NAME); then streams, completed, statuses, sha256, ms_min, ms_max
  big-upload        POST --size BYTES to --path /sha256 (what h2_upstream.py answers), checked
                    against the sha256 the upstream reports (x-body-sha256 header or "sha256=" in the
                    body; failing those, the length it reports as x-body-len or "len=")
  big-download      GET --path /bytes/SIZE with a --window BYTES receive window (16 KiB), acknowledged
                    only as it is read; checked against the pattern's sha256
  window-stall      GET --path /bytes/SIZE, --window BYTES, never acknowledged: how much arrives
                    before the server stalls (quiet for --idle MS)
  rapid-reset       --count N streams opened and reset (CANCEL) at once (CVE-2023-44487)
  continuation-flood  HEADERS without END_HEADERS, then --count CONTINUATION frames (raw, hyperframe)
  slow-headers      HEADERS without END_HEADERS, then nothing for --wait ms: closed_after_ms (or none)
  connect           a plain CONNECT to --path (its authority), --size bytes through the tunnel, checked echoed
  fuzz              --count connections of random frames after the preface (--seed): connections, answered
  empty-data-flood  --count empty DATA frames without END_STREAM on one open stream
  ping-flood        --count PINGs, written without reading the acknowledgements
  settings-flood    --count SETTINGS frames, written without reading the acknowledgements
  headers-too-large one request with --size BYTES of header values (x-big-K: 4 KiB each)
  concurrent-streams  learns the server's MAX_CONCURRENT_STREAMS on a first connection, then on a
                    second opens --count streams (default max+5) of --path /slow/1000 before reading
  reset-while-held  a request on --path /slow/2000, RST_STREAM(CANCEL) after --delay MS (300), then a
                    GET of --path2 / on the same connection, which must answer 200

The pattern is byte i = (i*31+7) & 0xff, the one build/es-upstream and h2_upstream.py serve.
Abuse modes report what the server did: goaway=ERROR_CODE (or none), goaway_last_stream=N,
rst_streams=N, rst_codes=CODE:COUNT,..., closed=0|1, and the frames sent before that; they succeed
when the server defended itself (a GOAWAY, RST_STREAMs or a close; concurrent-streams: a refusal).
"""
import argparse
import hashlib
import select
import socket
import ssl
import sys
import time

import h2.config
import hpack
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
                              SettingsFrame)

PATTERN = bytes((i * 31 + 7) & 0xFF for i in range(256)) * 1025


def pattern(offset, n):
    """n <= 256 KiB of the pattern from offset."""
    s = offset % 256
    return PATTERN[s:s + n]


def pattern_sha256(size):
    h, off = hashlib.sha256(), 0
    while off < size:
        k = min(size - off, 256 * 1024)
        h.update(pattern(off, k))
        off += k
    return h.hexdigest()


def code_name(code):
    try:
        return ErrorCodes(code).name
    except ValueError:
        return str(code)


def die(msg):
    print(f"h2_client: {msg}", file=sys.stderr)
    sys.exit(1)


def out(**kv):
    for k, v in kv.items():
        print(f"{k}={v}", flush=True)


class Stream:
    def __init__(self, sid):
        self.sid, self.start = sid, time.monotonic()
        self.status, self.headers, self.trailers = None, {}, {}
        self.sha, self.bytes, self.body_head = hashlib.sha256(), 0, b""
        self.ended, self.reset, self.ms = False, None, None
        self.upload, self.upload_size, self.upload_off = None, 0, 0   # a body still to send


class Client:
    """One HTTP/2 connection: h2 for the protocol, a blocking socket and select() for the I/O."""

    def __init__(self, args, window=None, auto_ack=True, rcvbuf=None):
        self.args, self.auto_ack = args, auto_ack
        host, port = args.addr.rsplit(":", 1)
        self.authority = args.addr
        try:
            self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            if rcvbuf:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(args.timeout)
            self.sock.connect((host.strip("[]"), int(port)))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if args.tls:
                ctx = ssl.create_default_context()
                ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
                ctx.set_alpn_protocols(["h2"])
                self.sock = ctx.wrap_socket(self.sock, server_hostname=host.strip("[]"))
                out(alpn=self.sock.selected_alpn_protocol())
                if self.sock.selected_alpn_protocol() != "h2":
                    die(f"TLS: the server chose ALPN {self.sock.selected_alpn_protocol()!r}, not h2")
        except OSError as e:
            die(f"cannot connect to {args.addr}: {e}")
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=cfg)
        init = {h2.settings.SettingCodes.ENABLE_PUSH: 0}
        if window:
            init[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = window
        self.h2.local_settings = h2.settings.Settings(client=True, initial_values=init)
        self.h2.initiate_connection()
        self.streams = {}
        self.goaway = None            # (error code name, last stream id)
        self.closed = False           # the server's side ended (EOF or reset): nothing more to read
        self.closed_by = None         # eof | reset | error
        self.write_failed = False     # a write failed: the server reset or closed; still read what came
        self.rst = {}                 # code name -> count
        self.pings_acked = 0
        self.settings_acked = 0
        self.remote_settings_seen = False
        self.h2_error = None          # what h2 refused in what the server sent
        self.inbuf = bytearray()      # received bytes not yet a whole frame
        self.flush()

    # ---- I/O ----
    def flush(self):
        self.write(self.h2.data_to_send())

    @property
    def broken(self):
        return self.closed or self.write_failed

    def write(self, data):
        if not data or self.broken:
            return
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError):
            self.write_failed = True

    def pump(self, timeout):
        """Reads what arrives within timeout (seconds), handing it to h2; False when nothing did."""
        if self.closed:
            return False
        if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            r, _, _ = select.select([self.sock], [], [], timeout)
            if not r:
                return False
        try:
            data = self.sock.recv(1 << 18)
        except (OSError, ssl.SSLError) as e:
            data, self.closed_by = b"", "reset" if isinstance(e, ConnectionResetError) else "error"
        if not data:
            self.closed = True
            self.closed_by = self.closed_by or "eof"
            return True
        if self.h2_error:
            return True   # h2 takes nothing more: only the close is still of interest
        try:
            events = self.h2.receive_data(self.take_goaway(data))
        except h2.exceptions.ProtocolError as e:
            self.h2_error = type(e).__name__
            return True
        for ev in events:
            self.on_event(ev)
        self.flush()
        return True

    def take_goaway(self, data):
        """Returns data less any GOAWAY frame, which is noted here: h2 takes no frame at all after a
        GOAWAY, while the streams up to its last stream id may still finish (hyperframe splits)."""
        self.inbuf += data
        keep = bytearray()
        while len(self.inbuf) >= 9:
            f, length = Frame.parse_frame_header(memoryview(self.inbuf)[:9])
            if len(self.inbuf) < 9 + length:
                break
            if isinstance(f, GoAwayFrame):
                f.parse_body(memoryview(bytes(self.inbuf[9:9 + length])))
                self.goaway = (code_name(f.error_code), f.last_stream_id)
                for s in self.streams.values():
                    if s.sid > f.last_stream_id and not (s.ended or s.reset):
                        s.reset = "GOAWAY"
            else:
                keep += self.inbuf[:9 + length]
            del self.inbuf[:9 + length]
        return bytes(keep)

    def on_event(self, ev):
        s = self.streams.get(getattr(ev, "stream_id", 0))
        if isinstance(ev, h2.events.ResponseReceived) and s:
            s.headers = dict(ev.headers)
            s.status = int(s.headers.get(":status", 0))
        elif isinstance(ev, h2.events.TrailersReceived) and s:
            s.trailers = dict(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            if s:
                s.sha.update(ev.data)
                s.bytes += len(ev.data)
                if len(s.body_head) < 4096:
                    s.body_head += ev.data[:4096]
            if self.auto_ack and ev.flow_controlled_length:
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded) and s:
            s.ended, s.ms = True, (time.monotonic() - s.start) * 1000
        elif isinstance(ev, h2.events.StreamReset):
            name = code_name(ev.error_code)
            self.rst[name] = self.rst.get(name, 0) + 1
            if s:
                s.reset, s.ms = name, (time.monotonic() - s.start) * 1000
        elif isinstance(ev, h2.events.PingAckReceived):
            self.pings_acked += 1
        elif isinstance(ev, h2.events.SettingsAcknowledged):
            self.settings_acked += 1
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            self.remote_settings_seen = True

    # ---- requests ----
    def request(self, method, path, body_size=None, extra=()):
        """Opens a stream; a body of body_size pattern bytes is sent by send_bodies()."""
        sid = self.h2.get_next_available_stream_id()
        s = Stream(sid)
        headers = [(":method", method), (":path", path), (":scheme", "https" if self.args.tls else "http"),
                   (":authority", self.authority)] + list(extra)
        if body_size is not None:
            headers.append(("content-length", str(body_size)))
            s.upload, s.upload_size = hashlib.sha256(), body_size
        self.h2.send_headers(sid, headers, end_stream=body_size is None)
        self.streams[sid] = s
        self.flush()
        return s

    def send_bodies(self):
        """Sends what the send windows allow of every stream's body; True while some is left."""
        left = False
        for s in self.streams.values():
            if s.upload is None or s.reset or self.goaway or self.broken:
                continue
            while s.upload_off < s.upload_size:
                try:
                    n = min(self.h2.local_flow_control_window(s.sid), self.h2.max_outbound_frame_size,
                            s.upload_size - s.upload_off)
                except h2.exceptions.StreamClosedError:
                    break
                if n <= 0:
                    break
                chunk = pattern(s.upload_off, n)
                s.upload.update(chunk)
                self.h2.send_data(s.sid, chunk, end_stream=(s.upload_off + n == s.upload_size))
                s.upload_off += n
                self.flush()
            if s.upload_off < s.upload_size:
                left = True
        return left

    def run(self, done, deadline):
        """Pumps until done() or the deadline (monotonic seconds) or the connection's end."""
        while not done():
            if self.broken or self.h2_error:
                return False
            if self.goaway and all(s.ended or s.reset for s in self.streams.values()):
                return False
            if time.monotonic() > deadline:
                return False
            self.send_bodies()
            self.pump(0.05)
        return True

    def settle(self, secs):
        """Reads until the server closes or secs pass: what it answers to an abuse."""
        end = time.monotonic() + secs
        while not self.closed and time.monotonic() < end:
            self.pump(0.05)

    def report_defence(self, **extra):
        g = self.goaway or ("none", "none")
        out(goaway=g[0], goaway_last_stream=g[1], rst_streams=sum(self.rst.values()),
            rst_codes=",".join(f"{k}:{v}" for k, v in sorted(self.rst.items())) or "none",
            closed=int(self.closed), closed_by=self.closed_by or "none", write_failed=int(self.write_failed), **extra)
        if self.h2_error:
            out(client_protocol_error=self.h2_error)

    def defended(self):
        return self.goaway is not None or self.rst or self.broken


# ---- the modes ----
def mode_get_post(a):
    c = Client(a, window=a.window)
    post = a.mode == "post"
    path = a.path or "/"
    streams = [c.request("POST" if post else "GET", path, a.size if post else None) for _ in range(a.streams)]
    ok = c.run(lambda: all(s.ended or s.reset for s in streams), time.monotonic() + a.timeout)
    statuses = {}
    for i, s in enumerate(streams):
        out(**{f"stream{i}.id": s.sid, f"stream{i}.status": s.status or 0, f"stream{i}.bytes": s.bytes,
               f"stream{i}.sha256": s.sha.hexdigest(), f"stream{i}.ms": f"{s.ms or 0:.1f}"})
        out(**{f"stream{i}.trailers": ";".join(f"{k}:{v}" for k, v in s.trailers.items()) or "none"})
        for name in a.header:
            out(**{f"stream{i}.header.{name.lower()}": s.headers.get(name.lower(), "none")})
        if s.reset:
            out(**{f"stream{i}.reset": s.reset})
        statuses[s.status or 0] = statuses.get(s.status or 0, 0) + 1
    done = [s for s in streams if s.ended]
    shas = {s.sha.hexdigest() for s in done}
    ms = [s.ms for s in done] or [0]
    out(goaway=c.goaway[0] if c.goaway else "none", goaway_last_stream=c.goaway[1] if c.goaway else "none")
    out(streams=len(streams), completed=len(done), statuses=",".join(f"{k}:{v}" for k, v in sorted(statuses.items())),
        sha256=shas.pop() if len(shas) == 1 else "mixed", ms_min=f"{min(ms):.1f}", ms_max=f"{max(ms):.1f}")
    if post:
        out(sent_sha256=pattern_sha256(a.size), sent_bytes=a.size)
    if not ok or len(done) < len(streams):
        why = c.goaway and f"GOAWAY {c.goaway[0]}" or c.broken and "connection closed" or "timeout"
        die(f"{len(done)} of {len(streams)} streams completed ({why})")
    bad = [s for s in streams if s.status != a.expect_status]
    if bad:
        die(f"{len(bad)} of {len(streams)} streams answered other than {a.expect_status} (first: {bad[0].status})")


def mode_big_upload(a):
    c = Client(a, window=a.window)
    t0 = time.monotonic()
    s = c.request("POST", a.path or "/sha256", a.size)
    ok = c.run(lambda: s.ended or s.reset, t0 + a.timeout)
    secs = time.monotonic() - t0
    sent = s.upload.hexdigest()
    body = s.body_head.decode("latin-1")
    kv = dict(w.split("=", 1) for w in body.split() if "=" in w)
    up_sha = s.headers.get("x-body-sha256") or kv.get("sha256")
    up_len = s.headers.get("x-body-len") or kv.get("len")
    out(status=s.status or 0, bytes_sent=s.upload_off, sha256=sent, upstream_sha256=up_sha or "none",
        upstream_len=up_len or "none", upstream_fnv=kv.get("fnv", "none"), ms=f"{secs * 1000:.0f}",
        mib_per_s=f"{s.upload_off / secs / 2**20:.1f}")
    if not ok or not s.ended:
        die(f"upload did not complete: {s.reset and 'RST_STREAM ' + s.reset or c.goaway and 'GOAWAY ' + c.goaway[0] or c.broken and 'connection closed' or 'timeout'} after {s.upload_off} bytes")
    if s.status != a.expect_status:
        die(f"status {s.status}, expected {a.expect_status}")
    if up_sha:
        out(verified="sha256")
        if up_sha != sent:
            die(f"the upstream read sha256 {up_sha}, the client sent {sent}")
    elif up_len:
        out(verified="len")
        if int(up_len) != a.size:
            die(f"the upstream read {up_len} bytes, the client sent {a.size}")
    else:
        die("the response reports neither sha256 nor len of what the upstream read")


def mode_big_download(a):
    c = Client(a, window=a.window)
    t0 = time.monotonic()
    s = c.request("GET", a.path or f"/bytes/{a.size}")
    ok = c.run(lambda: s.ended or s.reset, t0 + a.timeout)
    secs = time.monotonic() - t0
    got, want = s.sha.hexdigest(), pattern_sha256(s.bytes)
    out(status=s.status or 0, bytes=s.bytes, sha256=got, expected_sha256=want, window=a.window,
        ms=f"{secs * 1000:.0f}", mib_per_s=f"{s.bytes / secs / 2**20:.1f}")
    if not ok or not s.ended:
        die(f"download did not complete: {s.reset and 'RST_STREAM ' + s.reset or c.goaway and 'GOAWAY ' + c.goaway[0] or c.broken and 'connection closed' or 'timeout'} after {s.bytes} bytes")
    if s.bytes != a.size:
        die(f"received {s.bytes} bytes, expected {a.size}")
    if got != want:
        die("the body is not the pattern (sha256 differs)")


def mode_window_stall(a):
    c = Client(a, window=a.window, auto_ack=False)
    s = c.request("GET", a.path or f"/bytes/{a.size}")
    last = time.monotonic()
    end = last + a.timeout
    while time.monotonic() - last < a.idle / 1000 and time.monotonic() < end and not c.closed:
        before = s.bytes
        c.pump(0.02)
        if s.bytes != before:
            last = time.monotonic()
    out(status=s.status or 0, received=s.bytes, window=a.window, ended=int(s.ended),
        flow_control_violation=int(c.h2_error == "FlowControlError"), closed=int(c.closed),
        rst_codes=",".join(f"{k}:{v}" for k, v in sorted(c.rst.items())) or "none")
    if c.h2_error:
        die(f"the server broke the protocol ({c.h2_error}) after {s.bytes} bytes")
    if s.ended:
        die(f"the whole body ({s.bytes} bytes) arrived: nothing stalled (is it smaller than the window?)")


def mode_rapid_reset(a):
    c = Client(a)
    c.pump(0.2)
    sent = 0
    for i in range(a.count):
        if c.broken or c.goaway or c.h2_error:
            break
        s = c.request("GET", a.path or "/")
        c.h2.reset_stream(s.sid, ErrorCodes.CANCEL)
        sent += 1
        if i % 100 == 99:
            c.flush()
            c.pump(0)
    c.flush()
    c.settle(a.wait / 1000)
    c.report_defence(streams_reset=sent)
    if not (c.goaway or c.broken):
        die(f"the server took {sent} opened-and-reset streams without a GOAWAY or a close")


def mode_continuation_flood(a):
    c = Client(a)
    c.pump(0.2)
    # h2 opens the stream (so that it understands the answers), but its bytes are thrown away and
    # replaced by a HEADERS frame without END_HEADERS and the flood of CONTINUATION frames, their
    # header block from a fresh HPACK encoder (the server's decoder has seen nothing yet).
    req = [(":method", "GET"), (":path", a.path or "/"), (":scheme", "https" if a.tls else "http"),
           (":authority", c.authority)]
    sid = c.h2.get_next_available_stream_id()
    c.streams[sid] = Stream(sid)
    c.h2.send_headers(sid, req, end_stream=True)
    c.h2.data_to_send()
    enc = hpack.Encoder()
    c.write(HeadersFrame(sid, data=enc.encode(req), flags=["END_STREAM"]).serialize())
    # Each CONTINUATION: one never-indexed literal field of 1 KiB (no HPACK state grows).
    hdr = enc.encode([hpack.NeverIndexedHeaderTuple("x-flood", "a" * 1000)])
    frame = ContinuationFrame(sid, data=hdr).serialize()
    sent = 0
    for i in range(a.count):
        c.write(frame)
        if c.broken:
            break
        sent += 1
        if i % 64 == 63:
            c.pump(0)
            if c.goaway or c.broken:
                break
    c.settle(a.wait / 1000)
    c.report_defence(continuation_frames_sent=sent)
    if not c.defended():
        die(f"the server took {sent} CONTINUATION frames without a GOAWAY, a reset or a close")


def mode_connect(a):
    """A plain CONNECT (no :path) to --path as its authority, then --size bytes through the tunnel, read back."""
    c = Client(a)
    c.pump(0.2)
    sid = c.h2.get_next_available_stream_id()
    st = c.streams[sid] = Stream(sid)
    c.h2.send_headers(sid, [(":method", "CONNECT"), (":authority", a.path or "echo.test:7")])
    c.flush()
    if not c.run(lambda: st.status is not None or st.reset, time.monotonic() + a.timeout):
        die("no answer to the CONNECT")
    out(status=st.status or 0)
    if st.status != 200:
        die(f"the CONNECT got {st.status or 'a reset ' + str(st.reset)}")
    payload = b"".join(pattern(o, min(a.size - o, 256 * 1024)) for o in range(0, a.size, 256 * 1024))
    off = 0
    while off < len(payload):
        n = min(c.h2.local_flow_control_window(sid), c.h2.max_outbound_frame_size, len(payload) - off)
        if n > 0:
            c.h2.send_data(sid, payload[off:off + n])
            off += n
            c.flush()
        c.pump(0.01)
    c.run(lambda: st.bytes >= len(payload) or st.reset or st.ended, time.monotonic() + a.timeout)
    out(echo_bytes=st.bytes, echo_sha256=st.sha.hexdigest(), sent_sha256=hashlib.sha256(payload).hexdigest())
    if st.sha.hexdigest() != hashlib.sha256(payload).hexdigest():
        die(f"the tunnel echoed {st.bytes} bytes that differ from the {len(payload)} sent")
    c.h2.end_stream(sid)
    c.flush()
    c.settle(1)
    out(ended=int(st.ended), reset=st.reset or "none")


def mode_fuzz(a):
    """--count connections, each the preface and SETTINGS, then 1-8 frames with random types, flags, stream ids
    and payloads (some a valid header block of random fields), then a short read. A seeded PRNG (--seed) makes a
    run repeatable. What the server does is counted; success is only that it kept answering."""
    import random
    import struct
    if a.seed is None:
        a.seed = int(time.time() * 1000) % 2**31
    rnd = random.Random(a.seed)
    host, port = a.addr.rsplit(":", 1)
    names = [b":method", b":path", b":scheme", b":authority", b":protocol", b"host", b"te", b"connection",
             b"content-length", b"x-a", b"X-Upper", b"", b"bad name", b"x-\x00"]
    values = [b"GET", b"POST", b"CONNECT", b"/", b"http", b"h", b"trailers", b"close", b"5", b"-1",
              b"x" * 300, b"\r\n", b"\x00", b"websocket", b""]
    answered = closed = 0
    for i in range(a.count):
        sock = socket.create_connection((host, int(port)), timeout=2)
        enc = hpack.Encoder()
        out_bytes = bytearray(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        for _ in range(rnd.randint(1, 8)):
            ftype = rnd.choice([0, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, rnd.randint(0, 255)])
            flags = rnd.choice([0, 1, 4, 5, 8, 0x20, rnd.randint(0, 255)])
            sid = rnd.choice([0, 1, 3, 5, 2, rnd.randint(0, 2**31 - 1)])
            if ftype == 1 and rnd.random() < 0.7:
                fields = [(rnd.choice(names), rnd.choice(values)) for _ in range(rnd.randint(0, 8))]
                try:
                    payload = enc.encode(fields)
                except Exception:
                    payload = b""
            else:
                payload = bytes(rnd.randint(0, 255) for _ in range(rnd.choice([0, 1, 4, 8, 9, 20, 100])))
            if rnd.random() < 0.1 and payload:
                payload = payload[: rnd.randint(0, len(payload))]  # a lie about its length follows
                length = len(payload) + rnd.randint(0, 50)
            else:
                length = len(payload)
            out_bytes += struct.pack(">I", length)[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload
        try:
            sock.sendall(bytes(out_bytes))
            got = b""
            deadline = time.monotonic() + 0.2
            while time.monotonic() < deadline:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    closed += 1
                    break
                got += chunk
        except (socket.timeout, ConnectionError):
            pass
        finally:
            sock.close()
        if got:
            answered += 1
    out(connections=a.count, answered=answered, closed_by_server=closed, seed=a.seed)


def mode_slow_headers(a):
    """HEADERS without END_HEADERS and then nothing: how long until the server gives up on the header block."""
    c = Client(a)
    c.pump(0.2)
    req = [(":method", "GET"), (":path", a.path or "/"), (":scheme", "https" if a.tls else "http"),
           (":authority", c.authority)]
    sid = c.h2.get_next_available_stream_id()
    c.streams[sid] = Stream(sid)
    c.h2.send_headers(sid, req, end_stream=True)
    c.h2.data_to_send()
    enc = hpack.Encoder()
    start = time.monotonic()
    c.write(HeadersFrame(sid, data=enc.encode(req), flags=["END_STREAM"]).serialize())
    c.settle(a.wait / 1000)
    out(closed_after_ms=round((time.monotonic() - start) * 1000) if c.closed or c.goaway else "none")
    c.report_defence()
    if not c.defended():
        die(f"the server kept a header block open for {a.wait} ms")


def flood(a, frame, label):
    """Writes frame --count times (in batches), reading nothing meanwhile (and a small receive
    buffer: the server's answers back up), then reads the answer."""
    c = Client(a, rcvbuf=4096)
    c.pump(0.2)
    sent, batch = 0, 256
    c.sock.settimeout(2)
    while sent < a.count and not c.broken:
        n = min(batch, a.count - sent)
        c.write(frame * n)
        if not c.broken:
            sent += n
    c.sock.settimeout(a.timeout)
    c.settle(a.wait / 1000)
    c.report_defence(**{f"{label}_sent": sent}, pings_acked=c.pings_acked, settings_acked=c.settings_acked)
    if not c.defended():
        die(f"the server took {sent} {label} frames without a GOAWAY, a reset or a close")


def mode_empty_data_flood(a):
    cl = Client(a, rcvbuf=4096)
    cl.pump(0.2)
    sid = cl.h2.get_next_available_stream_id()
    cl.streams[sid] = Stream(sid)
    cl.h2.send_headers(sid, [(":method", "POST"), (":path", a.path or "/sha256"),
                             (":scheme", "https" if a.tls else "http"),
                             (":authority", cl.authority)], end_stream=False)
    cl.flush()
    frame = DataFrame(sid, data=b"").serialize()
    sent = 0
    cl.sock.settimeout(2)
    while sent < a.count and not cl.broken:
        n = min(256, a.count - sent)
        cl.write(frame * n)
        if not cl.broken:
            sent += n
    cl.sock.settimeout(a.timeout)
    cl.settle(a.wait / 1000)
    cl.report_defence(empty_data_sent=sent)
    if not cl.defended():
        die(f"the server took {sent} empty DATA frames without a GOAWAY, a reset or a close")


def mode_ping_flood(a):
    flood(a, PingFrame(0, opaque_data=b"floodpng").serialize(), "ping")


def mode_settings_flood(a):
    flood(a, SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 65535}).serialize(), "settings")


def mode_headers_too_large(a):
    c = Client(a)
    c.pump(0.2)
    n = max(1, a.size // 4096)
    extra = [(f"x-big-{k}", "v" * 4096) for k in range(n)]
    s = c.request("GET", a.path or "/", extra=extra)
    c.run(lambda: s.ended or s.reset, time.monotonic() + a.timeout)
    c.settle(0.2)
    out(status=s.status or "none", header_bytes=n * 4096, stream_reset=s.reset or "none")
    c.report_defence()
    if s.status == 200:
        die(f"the server answered 200 to {n * 4096} bytes of headers")
    if not (s.status or s.reset or c.goaway or c.broken):
        die("the server did not answer")


def mode_concurrent_streams(a):
    probe = Client(a)
    end = time.monotonic() + a.timeout
    while not probe.remote_settings_seen and time.monotonic() < end and not probe.closed:
        probe.pump(0.05)
    limit = probe.h2.remote_settings.max_concurrent_streams
    probe.sock.close()
    if limit > 10000:
        die("the server sets no SETTINGS_MAX_CONCURRENT_STREAMS")
    count = a.count if a.count_given else limit + 5
    # Before the server's SETTINGS arrive h2 sets no limit: every stream goes out at once.
    c = Client(a)
    streams = [c.request("GET", a.path or "/slow/1000") for _ in range(count)]
    c.run(lambda: all(s.ended or s.reset for s in streams), time.monotonic() + a.timeout)
    refused = [s for s in streams if s.reset == "REFUSED_STREAM"]
    other = [s for s in streams if s.reset and s.reset != "REFUSED_STREAM"]
    done = [s for s in streams if s.ended and s.status == 200]
    out(max_concurrent_streams=limit, opened=count, completed=len(done), refused=len(refused),
        refused_streams=",".join(str(s.sid) for s in refused) or "none",
        other_resets=len(other))
    c.report_defence()
    if not (refused or other or c.goaway):
        die(f"{count} streams over a limit of {limit} were all accepted")


def mode_reset_while_held(a):
    c = Client(a)
    s = c.request("GET", a.path or "/slow/2000")
    end = time.monotonic() + a.delay / 1000
    while time.monotonic() < end and not c.closed:
        c.pump(0.02)
    early = s.ended
    c.h2.reset_stream(s.sid, ErrorCodes.CANCEL)
    c.flush()
    t = c.request("GET", a.path2)
    ok = c.run(lambda: t.ended or t.reset, time.monotonic() + a.timeout)
    out(held_status=s.status or "none", held_ended_before_reset=int(early), after_status=t.status or 0,
        after_ms=f"{t.ms or 0:.1f}", after_reset=t.reset or "none")
    c.report_defence()
    if not ok or t.status != 200:
        die(f"the stream after the reset did not answer 200 ({t.status or t.reset or 'no answer'})")


MODES = {"get": mode_get_post, "post": mode_get_post, "big-upload": mode_big_upload,
         "big-download": mode_big_download, "window-stall": mode_window_stall,
         "rapid-reset": mode_rapid_reset, "continuation-flood": mode_continuation_flood,
         "empty-data-flood": mode_empty_data_flood, "ping-flood": mode_ping_flood,
         "settings-flood": mode_settings_flood, "headers-too-large": mode_headers_too_large,
         "concurrent-streams": mode_concurrent_streams, "reset-while-held": mode_reset_while_held,
         "slow-headers": mode_slow_headers, "connect": mode_connect, "fuzz": mode_fuzz}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("addr", help="HOST:PORT")
    ap.add_argument("mode", choices=sorted(MODES))
    ap.add_argument("--tls", action="store_true", help="TLS with ALPN h2, no verification")
    ap.add_argument("--path")
    ap.add_argument("--path2", default="/", help="reset-while-held: the request after the reset")
    ap.add_argument("--streams", type=int, default=1)
    ap.add_argument("--size", type=int, default=None, help="bytes (default: 1 MiB; headers-too-large: 64 KiB)")
    ap.add_argument("--window", type=int, default=None, help="the client's receive window (SETTINGS_INITIAL_WINDOW_SIZE)")
    ap.add_argument("--count", type=int, default=None, help="frames or streams an abuse mode sends")
    ap.add_argument("--delay", type=int, default=300, help="ms")
    ap.add_argument("--seed", type=int, default=None, help="fuzz: the PRNG's seed (default: from the clock)")
    ap.add_argument("--idle", type=int, default=1000, help="window-stall: ms without data that end the wait")
    ap.add_argument("--wait", type=int, default=2000, help="abuse modes: ms to read the server's answer")
    ap.add_argument("--header", action="append", default=[], help="get/post: print this response header per stream")
    ap.add_argument("--expect-status", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=None, help="seconds (30; big-upload, big-download: 600)")
    a = ap.parse_args()
    a.count_given = a.count is not None
    if a.timeout is None:
        a.timeout = 600 if a.mode in ("big-upload", "big-download") else 30
    if a.size is None:
        a.size = 65536 if a.mode == "headers-too-large" else 1 << 20
    if a.window is None and a.mode in ("big-download", "window-stall"):
        a.window = 16384
    if a.count is None:
        a.count = {"rapid-reset": 5000, "continuation-flood": 10000, "empty-data-flood": 100000,
                   "ping-flood": 100000, "settings-flood": 100000, "fuzz": 500}.get(a.mode, 0)
    MODES[a.mode](a)


if __name__ == "__main__":
    main()
