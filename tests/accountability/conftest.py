"""The accountability tests run on a clock they control (``confide.clock.clock``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import confide.clock
from confide.clock import FrozenClock
from tests.accountability.helpers import T0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FrozenClock]:
    frozen = FrozenClock(T0)
    monkeypatch.setattr(confide.clock, "clock", frozen)
    yield frozen
