"""A WebSocket client over HTTP/2 (RFC 8441 extended CONNECT): the `h2` library frames the HTTP/2 side, the
`websockets` library's sans-I/O protocol the WebSocket frames inside the stream. It waits for the server's
SETTINGS_ENABLE_CONNECT_PROTOCOL, opens `CONNECT :protocol websocket`, then sends --messages messages of --size
bytes and checks their echo, a ping, and a close with --close-code.

  ws_h2_client.py HOST:PORT [--path /] [--size N] [--messages N] [--no-ping] [--close-code C] [--expect-close C]
  (--expect-close C other than --close-code: the server is to close first, with C)

Prints key=value lines: connect_protocol (the server's setting), status (the CONNECT's answer), sent_sha256,
echo_sha256, echo_bytes, pong_ms, close_code; exit 0 on success, else one line on stderr and exit 1.
"""
import argparse
import hashlib
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
from websockets.frames import Opcode
from websockets.protocol import Protocol, Side, State


def out(**kv):
    for k, v in kv.items():
        print(f"{k}={v}", flush=True)


def die(msg):
    print(f"ws_h2_client: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


class Client:
    def __init__(self, addr, timeout):
        host, port = addr.rsplit(":", 1)
        self.authority = addr
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()
        self.flush()
        self.events = []
        self.closed = False

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self):
        """Reads once; returns the h2 events."""
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            die("timed out waiting for the server")
        if not data:
            self.closed = True
            return []
        evs = self.h2.receive_data(data)
        self.flush()
        return evs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("addr")
    ap.add_argument("--path", default="/")
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--messages", type=int, default=1)
    ap.add_argument("--close-code", type=int, default=1000)
    ap.add_argument("--no-ping", action="store_true")
    ap.add_argument("--expect-close", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()

    c = Client(a.addr, a.timeout)
    # The server's SETTINGS must allow extended CONNECT (RFC 8441 3).
    setting = None
    while setting is None:
        for ev in c.pump():
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                ch = ev.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
                setting = ch.new_value if ch is not None else 0
        if c.closed:
            die("the server closed before its SETTINGS")
    out(connect_protocol=setting)
    if setting != 1:
        die("the server does not allow extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL)")

    sid = c.h2.get_next_available_stream_id()
    c.h2.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                            (":path", a.path), (":authority", c.authority), ("sec-websocket-version", "13")])
    c.flush()
    ws = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)

    def send_ws():
        for chunk in ws.data_to_send():
            view = memoryview(chunk)
            while view:
                n = min(c.h2.local_flow_control_window(sid), c.h2.max_outbound_frame_size, len(view))
                if n == 0:
                    handle(c.pump())  # wait for WINDOW_UPDATE
                    continue
                c.h2.send_data(sid, view[:n].tobytes())
                view = view[n:]
                c.flush()

    frames = []

    def handle(evs):
        for ev in evs:
            if isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                c.h2.acknowledge_received_data(ev.flow_controlled_length, sid)
                ws.receive_data(ev.data)
                frames.extend(ws.events_received())
            elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                if ev.error_code != 0:
                    die(f"the stream was reset ({ev.error_code!r})")
                frames.append(None)  # NO_ERROR after the server's END_STREAM: stop sending, nothing lost
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                frames.append(None)
        c.flush()

    def next_frame():
        while not frames:
            handle(c.pump())
            if c.closed and not frames:
                die("the connection closed")
        return frames.pop(0)

    # The answer; DATA that came in the same read (a server that speaks, or closes, at once) is kept.
    status = None
    while status is None:
        evs = c.pump()
        for i, ev in enumerate(evs):
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                status = dict(ev.headers).get(":status")
                out(status=status)
                if status != "200":
                    die(f"the CONNECT got {status}")
                handle(evs[i + 1:])
                break
            elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                die(f"the CONNECT was refused: {ev}")
        if status is None and c.closed:
            die("the server closed the connection")

    sent, echoed, total = hashlib.sha256(), hashlib.sha256(), 0
    for i in range(a.messages):
        payload = bytes((j * 31 + 7 + i) & 0xFF for j in range(min(a.size, 1 << 16))) * (a.size // (1 << 16) or 1)
        payload = payload[:a.size]
        sent.update(payload)
        ws.send_binary(payload)
        send_ws()
        got = bytearray()
        while True:
            f = next_frame()
            if f is None:
                die("the stream ended before the echo")
            if f.opcode in (Opcode.BINARY, Opcode.TEXT, Opcode.CONT):
                got += f.data
                if f.fin:
                    break
        echoed.update(got)
        total += len(got)
    out(sent_sha256=sent.hexdigest(), echo_sha256=echoed.hexdigest(), echo_bytes=total)
    if sent.digest() != echoed.digest():
        die("the echo differs from what was sent")

    if not a.no_ping:
        t0 = time.monotonic()
        ws.send_ping(b"ping")
        send_ws()
        while True:
            f = next_frame()
            if f is not None and f.opcode == Opcode.PONG:
                break
        out(pong_ms=round((time.monotonic() - t0) * 1000, 1))

    if a.expect_close is None or a.expect_close == a.close_code:
        ws.send_close(a.close_code, "bye")
        send_ws()
    code = None
    while code is None:
        f = next_frame()
        if f is None:
            break
        if f.opcode == Opcode.CLOSE:
            code = ws.close_rcvd.code if ws.close_rcvd is not None else None
    out(close_code=code)
    expect = a.expect_close if a.expect_close is not None else a.close_code
    if code != expect:
        die(f"close code {code}, expected {expect}")


if __name__ == "__main__":
    main()
