"""Security headers: a CSP nonce per response, no framing of our pages except the widget."""

from __future__ import annotations

import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class SecurityHeaders:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer and cost per request)."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                names = {k.lower() for k, _ in headers}
                extra = {
                    b"x-content-type-options": b"nosniff",
                    b"referrer-policy": b"strict-origin-when-cross-origin",
                }
                if b"content-security-policy" not in names:
                    extra[b"content-security-policy"] = (
                        f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; "
                        f"style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; "
                        "connect-src 'self' ws: wss:; frame-src 'self'; "
                        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
                    ).encode()
                    extra[b"x-frame-options"] = b"DENY"
                if self.hsts:
                    extra[b"strict-transport-security"] = b"max-age=31536000; includeSubDomains"
                headers.extend((k, v) for k, v in extra.items() if k not in names)
            await send(message)

        await self.app(scope, receive, send_with_headers)
