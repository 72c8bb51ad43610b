"""Limits on the public forms (no sign-in): privacy requests and their codes, newsletter sign-ups,
offline enquiries.

Why: each of them sends an email or a text message, or creates a record, for anyone who asks.
Without a limit one script could flood a person's inbox with verification codes or fill a
client's queue with junk. The limit is per form and per network (IPv4 /24, IPv6 /48: the
truncation tracking uses, so a whole office shares one allowance and no full address is kept),
as a token bucket held in memory only: the address is never stored or logged. Past the limit
the form answers 429 with a reason and a ``Retry-After``, and changes nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from confide.errors import RateLimited
from confide.lru import LruDict
from confide.realtime.ratelimit import TokenBucket
from confide.tracking.geo import truncate


class FormThrottle:
    """Token buckets per (form, network); the least recently used are forgotten past
    ``max_keys`` (a forgotten network starts again with a full bucket)."""

    def __init__(self, per_hour: float, burst: int, max_keys: int = 20_000) -> None:
        self._rate = per_hour / 3600
        self._burst = burst
        self._buckets: LruDict[tuple[str, str], TokenBucket] = LruDict(max_keys)

    @property
    def retry_after_s(self) -> int:
        """How long until a spent bucket holds one request again."""
        return max(1, round(1 / self._rate)) if self._rate else 3600

    def check(self, form: str, ip: str | None) -> None:
        key = (form, (truncate(ip) if ip else None) or "unknown")
        bucket = self._buckets.get(key) or TokenBucket(self._rate, self._burst)
        self._buckets[key] = bucket  # the most recent now; the least recent beyond max_keys go
        if not bucket.take():
            minutes = max(1, self.retry_after_s // 60)
            raise RateLimited(
                f"Too many requests from your network. Please try again in {minutes} minute"
                f"{'s' if minutes != 1 else ''}; nothing was sent or changed.",
                retry_after_s=self.retry_after_s,
            )


def limited(form: str) -> Any:
    """A route dependency: refuse with 429 once ``form`` was used too often from this network."""

    def check(request: Request) -> None:
        throttle: FormThrottle = request.app.state.form_throttle
        throttle.check(form, request.client.host if request.client else None)

    return Depends(check)
