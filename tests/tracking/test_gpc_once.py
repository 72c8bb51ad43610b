"""The header-only GPC opt-out is counted once per visit, in bounded memory."""

from datetime import UTC, datetime

from confide.tracking.events import Beacon, Event
from confide.tracking.gpc_once import GpcOnce

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def beacon(visit: str | None, kind: str = "pageview") -> Beacon:
    return Beacon("KEY", visit, None, None, [Event(kind, NOW)])


def test_first_page_view_of_a_visit_counts_once() -> None:
    once = GpcOnce()
    assert once.first("s1", beacon("v1"))
    assert not once.first("s1", beacon("v1"))
    assert not once.first("s1", beacon("v1", "ping"))
    assert once.first("s2", beacon("v1"))  # another site: another visit
    assert once.first("s1", beacon(None)) and once.first("s1", beacon(None))


def test_a_ping_alone_records_nothing() -> None:
    assert not GpcOnce().first("s1", beacon("v9", "ping"))


def test_memory_is_bounded_and_forgets_the_oldest() -> None:
    once = GpcOnce(remembered=2)
    for visit in ("a", "b", "c"):
        assert once.first("s", beacon(visit))
    assert not once.first("s", beacon("c"))
    assert once.first("s", beacon("a"))  # forgotten: counted again (over-, never under-reported)
