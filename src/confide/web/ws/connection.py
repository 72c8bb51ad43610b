"""One WebSocket connection: a bounded outbox, a sender task while there is something to send,
and the frame loop.

Why an outbox per socket: fan-out must never wait on one slow client. ``push`` writes at once
when the server can take the frame without waiting (uvicorn buffers in the transport: the usual
case, and a task per frame would cost more than the write); a frame the server makes wait, and
every frame behind it, goes to the outbox, which a sender task drains and then ends (an idle
socket holds no task: memory per idle connection is a target, docs/performance.md).
A client that falls more than ``MAX_OUTBOX`` frames behind is disconnected (it reconnects and
``sync``s from the database), so one stuck browser costs bounded memory and never slows anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from confide.errors import ConfideError
from confide.ids import new_id
from confide.realtime.protocol import Frame, ProtocolError, encode, error_frame, parse
from confide.realtime.ratelimit import TokenBucket

log = logging.getLogger(__name__)

#: Frames a socket may fall behind before we drop it (it resyncs on reconnect).
MAX_OUTBOX = 2000
#: After a rate-limit refusal every frame is refused for this long (see ``run``).
RATE_COOLDOWN_S = 1.0
#: Close code for a client that could not keep up.
CLOSE_TOO_SLOW = 4408

Handler = Callable[[Frame], Awaitable[None]]


class Connection:
    __slots__ = ("_closed", "_cooldown_until", "_outbox", "_sender", "bucket", "id", "ws")

    def __init__(self, ws: WebSocket, bucket: TokenBucket) -> None:
        self.id = new_id()
        self.ws = ws
        self.bucket = bucket
        self._outbox: deque[str] = deque()
        self._sender: asyncio.Task[None] | None = None
        self._closed = False
        self._cooldown_until = 0.0

    def push(self, text: str) -> None:
        if self._closed:
            return
        if len(self._outbox) >= MAX_OUTBOX:
            self._closed = True
            self._outbox.clear()
            asyncio.get_running_loop().create_task(self._close(CLOSE_TOO_SLOW))
            return
        if self._sender is None and not self._outbox:
            self._send_now(text)
            return
        self._outbox.append(text)
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._drain())

    def _send_now(self, text: str) -> None:
        """Run the ASGI send without a task; if it has to wait, a task finishes it.

        Stepping the coroutine by hand is what a task would do for its first step; most sends
        complete in it (the frame lands in the transport's buffer), so no task is created.
        """
        step = self.ws.send_text(text)
        try:
            waiting = step.send(None)
        except StopIteration:
            return
        except Exception:  # the peer went away; the frame loop sees the disconnect
            self._closed = True
            return
        self._sender = asyncio.get_running_loop().create_task(self._finish(step, waiting))

    async def _finish(self, step: Coroutine[Any, Any, None], waiting: Any) -> None:
        """Carry a suspended send to its end (as its task would have), then drain the rest."""
        try:
            while True:
                if waiting is None:
                    await asyncio.sleep(0)  # a bare yield: give the loop a turn
                else:
                    with contextlib.suppress(Exception):
                        await waiting  # its result or error is read by ``step`` itself
                try:
                    waiting = step.send(None)
                except StopIteration:
                    break
        except Exception:
            self._outbox.clear()
        except BaseException:
            step.close()
            raise
        self._sender = None
        if self._outbox:
            self._sender = asyncio.get_running_loop().create_task(self._drain())

    def send(self, frame: dict[str, Any]) -> None:
        self.push(encode(frame))

    def error(self, code: str, message: str, ref: str | None = None, **extra: Any) -> None:
        self.send(error_frame(code, message, ref, **extra))

    def fail(
        self, exc: BaseException, what: str, ref: str | None, client_id: str | None = None
    ) -> None:
        """Answer a frame that failed: a domain error with its code and reason (naming the
        message, for a ``send``), anything else as ``internal`` (logged, never shown)."""
        if isinstance(exc, ConfideError):
            extra = {"client_id": client_id} if client_id is not None else {}
            self.error(exc.code, exc.message, ref, **extra)
            return
        log.error("frame %s failed", what, exc_info=exc)
        self.error("internal", "The server failed; nothing was changed. Retry.", ref)

    async def _drain(self) -> None:
        try:
            while self._outbox:
                await self.ws.send_text(self._outbox.popleft())
        except Exception:  # the peer went away; the frame loop sees the disconnect
            self._outbox.clear()
        finally:
            self._sender = None

    async def _close(self, code: int) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code)

    async def run(self, handle: Handler, audience: str) -> None:
        """Read frames until the client goes; each frame's failure is answered, not fatal."""
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                raw = message.get("text")
                if raw is None:
                    self.error("bad_frame", "Frames must be JSON text, not binary.")
                    continue
                now = time.monotonic()
                if now < self._cooldown_until or not self.bucket.take():
                    # Refuse everything for a moment after a refusal: a later frame must not
                    # slip in ahead of the refused one (clients resend after the pause, in order).
                    self._cooldown_until = now + RATE_COOLDOWN_S
                    self.error("rate_limited", "Too many frames; slow down and retry.")
                    continue
                try:
                    frame = parse(raw, audience)
                except ProtocolError as exc:
                    self.error(exc.code, exc.message, exc.ref)
                    continue
                try:
                    await handle(frame)
                except ProtocolError as exc:
                    self.error(exc.code, exc.message, frame.ref)
                except Exception as exc:
                    self.fail(exc, frame.type, frame.ref, frame.data.get("client_id"))
        except (WebSocketDisconnect, RuntimeError):
            pass  # RuntimeError: the socket closed under us
        finally:
            self._closed = True
            if self._sender is not None:
                self._sender.cancel()
                with contextlib.suppress(BaseException):
                    await self._sender
            if self.ws.application_state != WebSocketState.DISCONNECTED:
                await self._close(1000)
