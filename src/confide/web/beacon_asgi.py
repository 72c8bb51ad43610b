"""``/api/t`` (the tracking beacon) answered before the app's middleware stack.

Why: the beacon is the busiest endpoint (a request per page view and every 15 s per visible
tab), and it needs nothing the stack does for other requests: no session or CSRF, no dependency
injection, no exception-to-page mapping, no CSP nonce, no routing table. Going through FastAPI
and Starlette (middleware, router, request/response objects) cost about a fifth of the server's
CPU per beacon (bench/ingest_load.py, docs/performance.md "Tracking ingestion").

::

    uvicorn (proxy headers) ──> BeaconDispatch ──┬─ http, path == "/api/t" ──> routes.tracking
                                                 └─ anything else ───────────> FastAPI app

What the beacon keeps of the stack, reproduced here:

- the headers :class:`~confide.web.security.SecurityHeaders` puts on a JSON response
  (``nosniff``, referrer policy, the CSP without a nonce, ``X-Frame-Options``, HSTS when on),
  taken from that middleware once so the two cannot drift apart;
- domain errors as ``{"detail", "code"}`` with the status of ``web.errors.status_for``;
- an unexpected error propagates to uvicorn, which logs it and answers 500 (as Starlette's
  ``ServerErrorMiddleware`` did).

It also writes the access log for every HTTP request (:class:`~confide.logs.AccessLog`, in
place of uvicorn's), so that a successful beacon costs a counter, not a log record.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from confide.errors import ConfideError
from confide.logs import AccessLog
from confide.tracking.events import MAX_BODY_BYTES
from confide.tracking.service import Request as TrackedRequest
from confide.web.context import AppContext
from confide.web.errors import http_code, status_for
from confide.web.routes import tracking
from confide.web.security import SecurityHeaders

PATH = "/api/t"
_JSON = (b"content-type", b"application/json")
_NOT_ALLOWED = orjson.dumps({"detail": "Method Not Allowed", "code": "http_error"})


class BeaconDispatch:
    """Pure ASGI: ``/api/t`` to the beacon handlers, everything else (and lifespan, WebSockets)
    to ``app`` untouched."""

    def __init__(self, app: ASGIApp, ctx: AppContext, *, hsts: bool) -> None:
        self.app = app
        self._ctx = ctx
        self._hsts = hsts
        self._security: list[tuple[bytes, bytes]] | None = None
        #: The access log of every HTTP request (uvicorn's own is off: confide.cli.runtime).
        self._access = AccessLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] != PATH:

            async def send_logged(message: Message) -> None:
                if message["type"] == "http.response.start":
                    self._access.request(scope, message["status"])
                await send(message)

            await self.app(scope, receive, send_logged)
            return
        if self._security is None:
            self._security = await security_headers(self._hsts)
        try:
            status, body, headers = await self._answer(scope, receive)
        except _Disconnected:
            return  # the client left before its body arrived: nobody to answer
        except ConfideError as exc:
            status, headers = status_for(exc), []
            body = orjson.dumps({"detail": exc.message, "code": http_code(exc)})
        start = [(b"content-length", str(len(body)).encode())]
        if body:
            start.append(_JSON)
        start += headers
        start += self._security
        self._access.beacon(scope, status)
        await send({"type": "http.response.start", "status": status, "headers": start})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive) -> tracking.Reply:
        method = scope["method"]
        origin = user_agent = length = dnt = gpc = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = origin if origin is not None else value.decode("latin-1")
            elif name == b"user-agent":
                user_agent = user_agent if user_agent is not None else value.decode("latin-1")
            elif name == b"content-length":
                length = length if length is not None else value
            elif name == b"dnt":
                dnt = dnt if dnt is not None else value
            elif name == b"sec-gpc":
                gpc = gpc if gpc is not None else value
        if method == "POST":
            body = await _read_body(length, receive)
            if body is None:
                return tracking.too_large()
            client = scope.get("client")
            request = TrackedRequest(
                ip=client[0] if client else None,
                user_agent=user_agent or "",
                dnt=dnt == b"1",
                gpc=gpc == b"1",
            )
            return await tracking.ingest(self._ctx, body, origin, request)
        if method == "OPTIONS":
            return await tracking.preflight(self._ctx, origin)
        return 405, _NOT_ALLOWED, [(b"allow", b"POST, OPTIONS")]


class _Disconnected(Exception):
    pass


async def _read_body(declared: bytes | None, receive: Receive) -> bytes | None:
    """The body, or None when it is over MAX_BODY_BYTES: refused on its ``Content-Length``
    before a byte is read, else (a chunked body) as soon as the stream passes the limit. Reading
    first and measuring after would let a client hold a request and its memory for any size."""
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")
        if not message.get("more_body", False) and not chunks:
            return chunk if len(chunk) <= MAX_BODY_BYTES else None  # the usual case: one piece
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def security_headers(hsts: bool) -> list[tuple[bytes, bytes]]:
    """The headers :class:`SecurityHeaders` adds to a response that used no CSP nonce (any
    JSON answer), read from the middleware itself."""
    captured: list[tuple[bytes, bytes]] = []

    async def respond(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def keep(message: Message) -> None:
        captured.extend(message.get("headers", []))

    scope: dict[str, Any] = {"type": "http", "path": PATH}
    await SecurityHeaders(respond, hsts=hsts)(scope, receive, keep)
    return captured
