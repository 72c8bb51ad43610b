"""Lead webhooks: a JSON body signed with HMAC-SHA256, posted once per attempt.

Signature scheme (receivers verify with :func:`verify`)::

    Confide-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, b"<t>." + body)>

The timestamp is inside the MAC so a captured request cannot be replayed later than
``tolerance_s``; ``Idempotency-Key`` stays the same across retries of one delivery so a
receiver can drop duplicates (we retry on timeouts, when the first attempt may have landed).

Errors::

    WebhookError (retryable: bool)
      retryable=True    network errors, timeouts, 408, 425, 429, 5xx
      retryable=False   other 3xx/4xx (redirects are not followed), bad URLs
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
import orjson

from confide.delivery.snapshot import LeadSnapshot

USER_AGENT = "Confide-Webhooks/1"

#: Receivers are CRMs and automation tools that should answer in well under a second; 10 s
#: leaves room for a cold start without letting one slow endpoint hold a delivery worker.
TIMEOUT_S = 10.0

#: 408 Request Timeout, 425 Too Early, 429 Too Many Requests: "try again later" in HTTP terms.
RETRYABLE_STATUSES = frozenset({408, 425, 429})


class WebhookError(Exception):
    """A failed delivery attempt; ``retryable`` tells the outbox whether to try again."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


def lead_payload(
    snapshot: LeadSnapshot, *, event: str = "lead.created", idempotency_key: str
) -> bytes:
    """Compact JSON: ``{"event", "id", "lead": {every snapshot field}}``.

    The snapshot already holds only what this destination may see (residency applied), so
    every field goes out as is; orjson writes datetimes as ISO 8601 with their offset.
    """
    document: dict[str, Any] = {"event": event, "id": idempotency_key, "lead": snapshot}
    return orjson.dumps(document)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Confide-Signature`` header value for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance_s: int = 300) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and is at most ``tolerance_s`` old.

    Several ``v1`` values are accepted (any may match) so a sender can sign with an old and a
    new secret while a receiver rotates. Comparison is constant-time.
    """
    timestamp, signatures = _parse_signature(header)
    if timestamp is None or not signatures or abs(now - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _parse_signature(header: str) -> tuple[int | None, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    return timestamp, signatures


def webhook_headers(secret: str, body: bytes, idempotency_key: str, *, now: int) -> dict[str, str]:
    return {
        "Confide-Signature": sign(secret, now, body),
        "Confide-Timestamp": str(now),
        "Idempotency-Key": idempotency_key,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


async def post_webhook(
    url: str,
    secret: str,
    body: bytes,
    idempotency_key: str,
    *,
    client: httpx.AsyncClient,
    now: int,
) -> int:
    """POST one signed attempt and return the 2xx status, else raise :class:`WebhookError`.

    The response body is never read: we only need the status, and a hostile or broken
    receiver must not make us buffer an arbitrary amount of data.
    """
    headers = webhook_headers(secret, body, idempotency_key, now=now)
    try:
        async with client.stream(
            "POST",
            url,
            content=body,
            headers=headers,
            timeout=TIMEOUT_S,
            follow_redirects=False,
        ) as response:
            status = response.status_code
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise WebhookError(f"Webhook URL cannot be used: {exc}", retryable=False) from exc
    except httpx.TransportError as exc:
        raise WebhookError(f"Webhook request failed: {exc!r}", retryable=True) from exc
    return _check_status(status)


def _check_status(status: int) -> int:
    if 200 <= status < 300:
        return status
    retryable = status in RETRYABLE_STATUSES or status >= 500
    raise WebhookError(f"Webhook answered HTTP {status}", retryable=retryable, status=status)
