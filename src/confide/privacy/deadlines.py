"""Deadlines per regime (R45, R46, R48), computed once and stored on the request.

GDPR / UK GDPR: one calendar month from receipt, extendable by two months with reasons given
inside the first month. CCPA: 45 calendar days, extendable by 45. Opt-out of sale/sharing: 15
business days at most (we apply it at once). Acknowledgement: at once (at most 10 business days).
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

REGIMES = ("gdpr", "ccpa")


def add_months(at: datetime, months: int) -> datetime:
    """The same day ``months`` later, or the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    month = at.month - 1 + months
    year = at.year + month // 12
    month = month % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


def add_business_days(at: datetime, days: int) -> datetime:
    out = at
    while days > 0:
        out += timedelta(days=1)
        if out.weekday() < 5:
            days -= 1
    return out


def due(received: datetime, regime: str, kind: str) -> datetime:
    if kind == "opt_out":
        return add_business_days(received, 15)
    if regime == "ccpa":
        return received + timedelta(days=45)
    return add_months(received, 1)


def extended(received: datetime, regime: str) -> datetime:
    if regime == "ccpa":
        return received + timedelta(days=90)
    return add_months(received, 3)


def may_extend(received: datetime, regime: str, now: datetime) -> bool:
    """An extension must be notified within the first period."""
    return now <= due(received, regime, "access")


def elapsed_share(received: datetime, due_at: datetime, now: datetime) -> float:
    total = (due_at - received).total_seconds()
    return 1.0 if total <= 0 else max(0.0, (now - received).total_seconds() / total)
