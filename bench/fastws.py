"""A minimal, callback-based WebSocket client for the load generator.

Why not the ``websockets`` asyncio client: at 5,000 msg/s the generator handles ~20,000 frames/s
(send + ack + echo + operator delivery); the asyncio client's per-frame queue, task hand-off and
``async for`` cost ~60 % of a core at 2,000 msg/s on this machine, so the *client* would be the
limit.  This one parses frames straight out of ``data_received`` and calls a plain function, and
writes frames with ``transport.write`` (no ``drain``: the generator is open loop, and the size of
the write buffer is reported instead).

Supports: RFC 6455 client handshake (Origin / Cookie headers), text/binary frames, fragmentation,
ping -> pong, close.  No extensions (permessage-deflate is not offered).  Client frames are
masked with a random key per frame as the RFC requires (``websockets.speedups.apply_mask`` when
available).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct
from collections.abc import Callable

try:
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # pragma: no cover

    def _apply_mask(data: bytes, mask: bytes) -> bytes:
        n = len(data)
        m = (mask * (n // 4 + 1))[:n]
        return (int.from_bytes(data, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")


_urandom = os.urandom
_pack_H = struct.Struct("!H").pack
_pack_Q = struct.Struct("!Q").pack
_unpack_H = struct.Struct("!H").unpack_from
_unpack_Q = struct.Struct("!Q").unpack_from


class HandshakeError(ConnectionError):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"handshake refused: HTTP {status}: {text[:200]}")
        self.status = status


class FastWS(asyncio.Protocol):
    on_message: Callable[[bytes], None]
    on_close: Callable[[int | None, str], None]

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.open = False
        self.frag: list[bytes] = []
        self.close_code: int | None = None
        self.on_message = lambda data: None
        self.on_close = lambda code, reason: None

    # asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[: end + 4]
            status_line = head.split("\r\n", 1)[0]
            parts = status_line.split(" ", 2)
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            if status != 101:
                if not self.handshake.done():
                    self.handshake.set_exception(
                        HandshakeError(status, head + bytes(buf).decode("utf-8", "replace"))
                    )
                if self.transport:
                    self.transport.close()
                return
            self.open = True
            if not self.handshake.done():
                self.handshake.set_result(None)
        self._parse()

    def _parse(self) -> None:
        buf = self.buf
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            ln = b1 & 0x7F
            hl = 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln = _unpack_H(buf, pos + 2)[0]
                hl = 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln = _unpack_Q(buf, pos + 2)[0]
                hl = 10
            if b1 & 0x80:  # server frames must not be masked; tolerate
                hl += 4
            if n - pos < hl + ln:
                break
            payload = bytes(buf[pos + hl : pos + hl + ln])
            if b1 & 0x80:
                payload = _apply_mask(payload, bytes(buf[pos + hl - 4 : pos + hl]))
            pos += hl + ln
            op = b0 & 0x0F
            fin = b0 & 0x80
            if op in (1, 2):
                if fin:
                    self.on_message(payload)
                else:
                    self.frag = [payload]
            elif op == 0:
                self.frag.append(payload)
                if fin:
                    data = b"".join(self.frag)
                    self.frag = []
                    self.on_message(data)
            elif op == 9:
                self._write_frame(0xA, payload)
            elif op == 8:
                code = _unpack_H(payload, 0)[0] if len(payload) >= 2 else None
                self.close_code = code
                reason = payload[2:].decode("utf-8", "replace")
                if self.open:
                    self._write_frame(0x8, payload[:2])
                    self.open = False
                self.on_close(code, reason)
                if self.transport:
                    self.transport.close()
                break
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        was_open = self.open
        self.open = False
        if not self.handshake.done():
            self.handshake.set_exception(exc or ConnectionError("closed during handshake"))
        if was_open:
            self.on_close(None, f"connection lost: {exc}")
        if not self.closed.done():
            self.closed.set_result(None)

    # sending ----------------------------------------------------------------------------------

    def _write_frame(self, opcode: int, payload: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            raise ConnectionError("socket closed")
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = bytes((0x80 | opcode, 0x80 | 126)) + _pack_H(n)
        else:
            head = bytes((0x80 | opcode, 0x80 | 127)) + _pack_Q(n)
        mask = _urandom(4)
        t.write(head + mask + _apply_mask(payload, mask))

    def send_text(self, text: str | bytes) -> None:
        if not self.open:
            raise ConnectionError("socket not open")
        self._write_frame(0x1, text.encode() if isinstance(text, str) else text)

    def write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport else 0

    async def close(self, code: int = 1000, timeout: float = 2.0) -> None:
        if self.open:
            self.open = False
            with contextlib.suppress(ConnectionError):
                self._write_frame(0x8, _pack_H(code))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        if self.transport:
            self.transport.close()

    def abort(self) -> None:
        if self.transport:
            self.transport.abort()


async def ws_connect(
    host: str,
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> FastWS:
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(loop.create_connection(FastWS, host, port), timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        "User-Agent: confide-bench",
    ]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    assert proto.transport is not None
    proto.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        await asyncio.wait_for(proto.handshake, timeout)
    except BaseException:
        proto.abort()
        raise
    return proto


def parse_ws_url(url: str) -> tuple[str, int, str]:
    assert url.startswith("ws://"), url
    rest = url[5:]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    return host, int(port or 80), "/" + path


async def connect_url(
    url: str, headers: dict[str, str] | None = None, timeout: float = 60
) -> FastWS:
    host, port, path = parse_ws_url(url)
    return await ws_connect(host, port, path, headers, timeout)
