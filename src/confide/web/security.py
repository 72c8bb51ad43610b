"""Security headers: a CSP nonce per page, no framing of our pages except the widget."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from confide.settings import Settings

_NONCE = "csp_nonce"


class _RequestState(dict[str, Any]):
    """``scope["state"]`` (what ``request.state`` reads) that makes the CSP nonce on first use.
    Only pages rendering inline scripts or styles read it; the JSON API (and the beacon, our
    busiest endpoint) never does, so it pays neither for the random bytes nor for the policy."""

    def __missing__(self, key: str) -> Any:
        if key != _NONCE:
            raise KeyError(key)
        nonce = self[key] = secrets.token_urlsafe(16)
        return nonce


def _policy(sources: str) -> bytes:
    return (
        f"default-src 'self'; script-src {sources}; style-src {sources}; img-src 'self' data:; "
        "connect-src 'self' ws: wss:; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ).encode()


#: For a response that used no nonce: the same policy, without one (no inline code allowed).
_POLICY_WITHOUT_NONCE = _policy("'self'")


class SecurityHeaders:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer and cost per request)."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope["state"] = _RequestState(scope.get("state") or {})

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                names = {k.lower() for k, _ in headers}
                extra = {
                    b"x-content-type-options": b"nosniff",
                    b"referrer-policy": b"strict-origin-when-cross-origin",
                }
                if b"content-security-policy" not in names:
                    nonce = state.get(_NONCE)  # None unless the response used one
                    extra[b"content-security-policy"] = (
                        _policy(f"'self' 'nonce-{nonce}'") if nonce else _POLICY_WITHOUT_NONCE
                    )
                    extra[b"x-frame-options"] = b"DENY"
                if self.hsts or scope.get("scheme") == "https":  # https: tell browsers to stay
                    extra[b"strict-transport-security"] = b"max-age=31536000; includeSubDomains"
                headers.extend((k, v) for k, v in extra.items() if k not in names)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def secure_cookie(request: Request, settings: Settings) -> bool:
    """``Secure`` on our cookies whenever browsers reach us over https: configured, or this
    request came over https (directly or, behind a trusted proxy, per ``X-Forwarded-Proto``).
    Plain-http development keeps working without it."""
    return settings.secure_cookies or request.url.scheme == "https"
