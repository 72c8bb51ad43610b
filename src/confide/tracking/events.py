"""Validation of tracking beacons: each event is checked on its own, so one bad event in a
batch is refused with its reason while the good ones are kept."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from confide.errors import InvalidInput

MAX_EVENTS = 50
MAX_BODY_BYTES = 32 * 1024
#: Beacons queued offline may arrive late; anything older is refused rather than mis-dated.
MAX_AGE = timedelta(hours=24)
#: Clocks drift; a timestamp more than this ahead of ours is "in the future".
MAX_SKEW = timedelta(seconds=60)
_ID = re.compile(r"^[A-Za-z0-9_-]{16,40}$")
#: A visit id is stored as the row's key (VARCHAR(32)); the visitor cookie is only hashed.
_VISIT_ID = re.compile(r"[A-Za-z0-9_-]{16,32}")
EVENT_TYPES = frozenset({"pageview", "ping", "leave", "optout"})


@dataclass(frozen=True)
class Event:
    type: str
    at: datetime
    url: str = ""
    title: str | None = None
    referrer: str | None = None
    seq: int = 0
    seconds: int = 0


@dataclass
class Beacon:
    site: str
    visit: str | None
    visitor: str | None
    consent: str | None
    events: list[Event] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    #: Each kept event's index in the request (for reasons given later: ``require_visit``).
    indexes: list[int] = field(default_factory=list)


def _ts(value: Any, now: datetime) -> datetime:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidInput("ts must be a number (milliseconds since the epoch)")
    try:
        at = datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidInput("ts is out of range") from None
    if at > now + MAX_SKEW:
        raise InvalidInput("ts is in the future")
    if at < now - MAX_AGE:
        raise InvalidInput("ts is older than 24 hours")
    return at


def _text(value: Any, name: str, limit: int, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise InvalidInput(f"{name} must be a string")
    if len(value) > limit:
        raise InvalidInput(f"{name} is longer than {limit} characters")
    return value


def _int(value: Any, name: str, limit: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise InvalidInput(f"{name} must be an integer from 0 to {limit}")
    return value


def parse_event(raw: Any, now: datetime) -> Event:
    if not isinstance(raw, dict):
        raise InvalidInput("an event must be an object")
    kind = raw.get("type")
    if kind not in EVENT_TYPES:
        raise InvalidInput(f"unknown event type {str(kind)[:30]!r}")
    if kind == "optout":
        return Event("optout", now)
    at = _ts(raw.get("ts"), now)
    if kind == "pageview":
        return Event(
            "pageview",
            at,
            url=_text(raw.get("url"), "url", 2048, required=True) or "/",
            title=_text(raw.get("title"), "title", 300),
            referrer=_text(raw.get("referrer"), "referrer", 2048),
        )
    return Event(
        kind,
        at,
        seq=_int(raw.get("seq"), "seq", 10_000),
        seconds=_int(raw.get("seconds"), "seconds", 86_400),
    )


def parse_beacon(data: Any, now: datetime, *, visit_required: bool = True) -> Beacon:
    """The beacon's envelope must be valid as a whole; its events are judged one by one.

    ``visit_required=False`` leaves the visit check to :func:`require_visit`, once the site is
    known: a cookieless site's beacons carry no visit id (the server derives the visit, R21)."""
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    site = data.get("site")
    if not isinstance(site, str) or not 1 <= len(site) <= 64:
        raise InvalidInput("site (the site key) is required")
    visit, visitor = data.get("visit"), data.get("visitor")
    if visit is not None and not (isinstance(visit, str) and _VISIT_ID.fullmatch(visit)):
        raise InvalidInput("visit must be 16 to 32 characters of [A-Za-z0-9_-]")
    if visitor is not None and not (isinstance(visitor, str) and _ID.fullmatch(visitor)):
        raise InvalidInput("visitor must be 16 to 40 characters of [A-Za-z0-9_-]")
    consent = data.get("consent")
    if consent is not None and consent not in ("granted", "denied"):
        raise InvalidInput("consent must be 'granted' or 'denied'")
    events = data.get("events")
    if not isinstance(events, list) or not events:
        raise InvalidInput("events must be a non-empty list")
    if len(events) > MAX_EVENTS:
        raise InvalidInput(f"at most {MAX_EVENTS} events per request")
    beacon = Beacon(site, visit, visitor, consent)
    for index, raw in enumerate(events):
        try:
            beacon.events.append(parse_event(raw, now))
            beacon.indexes.append(index)
        except InvalidInput as exc:
            beacon.rejected.append({"index": index, "reason": exc.message})
    if visit_required:
        require_visit(beacon)
    return beacon


def require_visit(beacon: Beacon) -> None:
    """Without a visit id only ``optout`` events are kept; the others are refused with that
    reason (each refused event is listed once, with the first reason found: its own, if any)."""
    if beacon.visit is not None or all(e.type == "optout" for e in beacon.events):
        return
    beacon.rejected.extend(
        {"index": i, "reason": "visit is required"}
        for i, e in zip(beacon.indexes, beacon.events, strict=True)
        if e.type != "optout"
    )
    beacon.rejected.sort(key=lambda r: int(r["index"]))
    kept = [
        (i, e) for i, e in zip(beacon.indexes, beacon.events, strict=True) if e.type == "optout"
    ]
    beacon.indexes = [i for i, _ in kept]
    beacon.events = [e for _, e in kept]
