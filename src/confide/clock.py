"""An injectable UTC clock, so tests control time instead of sleeping."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock(Clock):
    """A clock tests move by hand."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at

    def advance(self, delta: timedelta) -> None:
        self._at += delta


clock: Clock = Clock()


def utcnow() -> datetime:
    return clock.now()


@contextmanager
def frozen_at(at: datetime) -> Iterator[FrozenClock]:
    """Run the block on a :class:`FrozenClock` starting at ``at``; the clock in use before is
    put back afterwards, whatever happens (the way tests move time)."""
    global clock
    frozen = FrozenClock(at)
    saved, clock = clock, frozen
    try:
        yield frozen
    finally:
        clock = saved
