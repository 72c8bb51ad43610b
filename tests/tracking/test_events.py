"""Beacon validation: the envelope as a whole, then each event on its own with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from confide.errors import InvalidInput
from confide.tracking.events import MAX_EVENTS, Event, parse_beacon, parse_event

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
VISIT = "v" * 22
VISITOR = "c" * 22


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def pageview(**extra: Any) -> dict[str, Any]:
    return {"type": "pageview", "url": "/cars", "ts": ms(NOW), **extra}


def beacon(*events: Any, **envelope: Any) -> dict[str, Any]:
    return {
        "site": "SITEKEY",
        "visit": VISIT,
        "visitor": VISITOR,
        "events": list(events),
        **envelope,
    }


# --- single events -------------------------------------------------------------------------


def test_valid_events() -> None:
    assert parse_event(pageview(title="Cars", referrer="https://www.google.com/"), NOW) == Event(
        "pageview", NOW, url="/cars", title="Cars", referrer="https://www.google.com/"
    )
    ping = parse_event({"type": "ping", "seq": 2, "seconds": 15, "ts": ms(NOW)}, NOW)
    assert (ping.type, ping.seq, ping.seconds) == ("ping", 2, 15)
    leave = parse_event({"type": "leave", "seq": 1, "seconds": 86_400, "ts": ms(NOW)}, NOW)
    assert (leave.type, leave.seconds) == ("leave", 86_400)
    # an opt-out carries nothing, not even a timestamp
    assert parse_event({"type": "optout"}, NOW) == Event("optout", NOW)
    # clock skew up to a minute and beacons up to 24 hours late are fine
    assert parse_event(pageview(ts=ms(NOW + timedelta(seconds=59))), NOW).at > NOW
    assert parse_event(pageview(ts=ms(NOW - timedelta(hours=23, minutes=59))), NOW)
    assert parse_event(pageview(ts=float(ms(NOW))), NOW).at == NOW


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("pageview", "an event must be an object"),
        ([1], "an event must be an object"),
        (None, "an event must be an object"),
        ({"url": "/"}, "unknown event type 'None'"),
        ({"type": "click", "ts": 1}, "unknown event type 'click'"),
        ({"type": "PAGEVIEW", "url": "/", "ts": 1}, "unknown event type 'PAGEVIEW'"),
        ({"type": "x" * 500}, "unknown event type '" + "x" * 30 + "'"),
        # timestamps
        ({"type": "pageview", "url": "/"}, "ts must be a number (milliseconds since the epoch)"),
        (pageview(ts="1764100000000"), "ts must be a number (milliseconds since the epoch)"),
        (pageview(ts=True), "ts must be a number (milliseconds since the epoch)"),
        (pageview(ts=ms(NOW + timedelta(minutes=2))), "ts is in the future"),
        (pageview(ts=ms(NOW + timedelta(days=3650))), "ts is in the future"),
        (pageview(ts=ms(NOW - timedelta(hours=24, seconds=1))), "ts is older than 24 hours"),
        (pageview(ts=0), "ts is older than 24 hours"),
        (pageview(ts=10**20), "ts is out of range"),
        (pageview(ts=-(10**20)), "ts is out of range"),
        # seconds instead of milliseconds: looks like 1970
        (pageview(ts=ms(NOW) // 1000), "ts is older than 24 hours"),
        # pageview fields
        (pageview(url=None), "url must be a string"),
        (pageview(url=""), "url must be a string"),
        (pageview(url=42), "url must be a string"),
        (pageview(url="/" + "u" * 2048), "url is longer than 2048 characters"),
        (pageview(title="t" * 301), "title is longer than 300 characters"),
        (pageview(title=["x"]), "title must be a string"),
        (
            pageview(referrer="https://r.example/" + "r" * 2048),
            "referrer is longer than 2048 characters",
        ),
        # ping / leave
        ({"type": "ping", "seconds": 1, "ts": ms(NOW)}, "seq must be an integer from 0 to 10000"),
        (
            {"type": "ping", "seq": -1, "seconds": 1, "ts": ms(NOW)},
            "seq must be an integer from 0 to 10000",
        ),
        (
            {"type": "ping", "seq": 10_001, "seconds": 1, "ts": ms(NOW)},
            "seq must be an integer from 0 to 10000",
        ),
        (
            {"type": "ping", "seq": 1.5, "seconds": 1, "ts": ms(NOW)},
            "seq must be an integer from 0 to 10000",
        ),
        (
            {"type": "ping", "seq": True, "seconds": 1, "ts": ms(NOW)},
            "seq must be an integer from 0 to 10000",
        ),
        (
            {"type": "leave", "seq": 1, "seconds": 86_401, "ts": ms(NOW)},
            "seconds must be an integer from 0 to 86400",
        ),
        (
            {"type": "leave", "seq": 1, "seconds": "9", "ts": ms(NOW)},
            "seconds must be an integer from 0 to 86400",
        ),
    ],
)
def test_invalid_events_are_refused_with_a_reason(raw: Any, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_event(raw, NOW)
    assert caught.value.message == reason


def test_limits_are_inclusive() -> None:
    assert parse_event(pageview(url="/" + "u" * 2047, title="t" * 300), NOW).title == "t" * 300
    ping = parse_event({"type": "ping", "seq": 10_000, "seconds": 0, "ts": ms(NOW)}, NOW)
    assert ping.seq == 10_000


# --- beacons -------------------------------------------------------------------------------


def test_one_bad_event_keeps_the_good_ones() -> None:
    parsed = parse_beacon(
        beacon(
            pageview(),
            {"type": "click", "ts": ms(NOW)},
            {"type": "ping", "seq": 1, "seconds": 15, "ts": ms(NOW)},
            pageview(ts=ms(NOW + timedelta(hours=1))),
        ),
        NOW,
    )
    assert [e.type for e in parsed.events] == ["pageview", "ping"]
    assert parsed.rejected == [
        {"index": 1, "reason": "unknown event type 'click'"},
        {"index": 3, "reason": "ts is in the future"},
    ]
    assert (parsed.site, parsed.visit, parsed.visitor, parsed.consent) == (
        "SITEKEY",
        VISIT,
        VISITOR,
        None,
    )


def test_all_bad_events_leave_an_empty_beacon_with_every_reason() -> None:
    parsed = parse_beacon(beacon({"type": "x"}, pageview(url=None)), NOW)
    assert parsed.events == []
    assert [r["index"] for r in parsed.rejected] == [0, 1]


def test_at_most_fifty_events() -> None:
    assert len(parse_beacon(beacon(*[pageview()] * MAX_EVENTS), NOW).events) == 50
    with pytest.raises(InvalidInput, match="at most 50 events per request"):
        parse_beacon(beacon(*[pageview()] * (MAX_EVENTS + 1)), NOW)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([], "the body must be a JSON object"),
        ("text", "the body must be a JSON object"),
        ({"events": [pageview()]}, "site (the site key) is required"),
        (beacon(pageview(), site=""), "site (the site key) is required"),
        (beacon(pageview(), site="k" * 65), "site (the site key) is required"),
        (beacon(pageview(), site=7), "site (the site key) is required"),
        (beacon(pageview(), visit="short"), "visit must be 16 to 32 characters of [A-Za-z0-9_-]"),
        (beacon(pageview(), visit="v" * 41), "visit must be 16 to 32 characters of [A-Za-z0-9_-]"),
        (
            beacon(pageview(), visit="v" * 15 + "/"),
            "visit must be 16 to 32 characters of [A-Za-z0-9_-]",
        ),
        (
            beacon(pageview(), visit=12345678901234567),
            "visit must be 16 to 32 characters of [A-Za-z0-9_-]",
        ),
        (
            beacon(pageview(), visitor="a@b.c-aaaaaaaaaaaaaa"),
            "visitor must be 16 to 40 characters of [A-Za-z0-9_-]",
        ),
        (beacon(pageview(), visitor=""), "visitor must be 16 to 40 characters of [A-Za-z0-9_-]"),
        (beacon(pageview(), consent="yes"), "consent must be 'granted' or 'denied'"),
        (beacon(pageview(), consent=True), "consent must be 'granted' or 'denied'"),
        (beacon(), "events must be a non-empty list"),
        ({"site": "SITEKEY", "visit": VISIT}, "events must be a non-empty list"),
        (beacon(events={"0": pageview()}), "events must be a non-empty list"),
    ],
)
def test_invalid_envelopes_refuse_the_whole_beacon(data: Any, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_beacon(data, NOW)
    assert caught.value.message == reason


@pytest.mark.parametrize("name", ["visit", "visitor"])
def test_an_id_with_a_trailing_newline_is_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        parse_beacon(beacon(pageview(), **{name: "v" * 20 + "\n"}), NOW)


def test_ids_of_16_to_40_url_safe_characters() -> None:
    """Visitor cookies up to 40 (only hashed); visit ids up to 32 (stored as the row key)."""
    for ok in ("a" * 16, "A-b_9" * 6, "x" * 32):
        assert parse_beacon(beacon(pageview(), visit=ok, visitor=ok), NOW).visit == ok
    assert parse_beacon(beacon(pageview(), visit="a" * 16, visitor="x" * 40), NOW).visitor
    assert parse_beacon(beacon(pageview(), visit="a" * 16, visitor="x" * 40), NOW).visit
    parsed = parse_beacon(beacon(pageview(), visitor=None, consent="granted"), NOW)
    assert parsed.visitor is None and parsed.consent == "granted"


def test_optout_needs_no_ids() -> None:
    parsed = parse_beacon({"site": "SITEKEY", "events": [{"type": "optout"}]}, NOW)
    assert [e.type for e in parsed.events] == ["optout"]
    assert parsed.visit is None and parsed.visitor is None and parsed.rejected == []


def test_events_without_a_visit_are_refused() -> None:
    parsed = parse_beacon({"site": "SITEKEY", "events": [pageview(), {"type": "optout"}]}, NOW)
    assert [e.type for e in parsed.events] == ["optout"]
    assert parsed.rejected == [{"index": 0, "reason": "visit is required"}]


def test_each_refused_index_is_listed_once() -> None:
    parsed = parse_beacon({"site": "SITEKEY", "events": [{"type": "click"}, pageview()]}, NOW)
    indices = [r["index"] for r in parsed.rejected]
    assert sorted(indices) == sorted(set(indices)) == [0, 1]
    assert parsed.rejected == [  # its own reason first, in index order
        {"index": 0, "reason": "unknown event type 'click'"},
        {"index": 1, "reason": "visit is required"},
    ]
