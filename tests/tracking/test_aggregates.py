"""Daily roll-ups and the clients' report, checked against counts computed from the raw rows.

A few hundred visits and page views with known timestamps over three days (plus a day either
side that a report must not include), several channels, countries, devices and browsers, two
sites of two organisations. Runs on SQLite and PostgreSQL (the ``database_url`` fixture).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import delete, func, insert, select

from confide.accounts.service import AccountService
from confide.chat.models import Conversation, Visitor
from confide.errors import NotFound
from confide.ids import new_id
from confide.sites.models import Site
from confide.sites.service import SiteService
from confide.storage.engine import Database
from confide.storage.scope import Scope
from confide.tracking.aggregates import TOP, Reports, _lock_key
from confide.tracking.models import DailyStat, PageView, SiteVisitor, Visit

T = TypeVar("T")

DAY1, DAY2, DAY3 = date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30)
BEFORE, AFTER = DAY1 - timedelta(days=1), DAY3 + timedelta(days=1)
DAYS = [BEFORE, DAY1, DAY2, DAY3, AFTER]
CHANNELS = ["direct", "search", "search", "search", "social", "email", "campaign", "other"]
COUNTRIES = ["GB", "GB", "GB", "IE", "FR", "DE", "US", None]
DEVICES = ["desktop", "desktop", "mobile", "mobile", "mobile", "tablet"]
BROWSERS = [("Chrome", "Windows"), ("Mobile Safari", "iOS"), ("Firefox", "Linux"),
            ("Chrome Mobile", "Android"), ("Edge", "Windows"), ("Samsung Internet", "Android"),
            ("Safari", "Mac OS X"), (None, None)]  # fmt: skip
PATHS = [f"/used-cars/{m}" for m in ("golf", "polo", "focus", "fiesta", "corsa", "astra")] + [
    "/",
    "/finance",
    "/contact",
    "/about",
    "/part-exchange",
    "/new-cars",
    "/servicing",
    "/blog",
]


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def with_db(url: str, call: Callable[[Database], Awaitable[T]]) -> T:
    db = Database(url)
    try:
        return await call(db)
    finally:
        await db.dispose()


@dataclass
class Seeded:
    url: str
    org_a: str
    org_b: str
    site: Site  # the site under test (organisation A)
    other: Site  # organisation B's site, with its own traffic on the same days
    visits: list[dict[str, Any]]  # the site's visits (all days)
    pages: list[dict[str, Any]]  # the site's page views (all days)
    chats: list[datetime] = field(default_factory=list)  # the site's chats' start times


def _make_traffic(
    rng: random.Random, org: str, site: str, n: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    people = [
        {
            "id": new_id(),
            "organisation_id": org,
            "site_id": site,
            "cookie_hash": new_id() + new_id(),
            "first_seen_at": datetime.combine(BEFORE, time.min, UTC),
            "last_seen_at": datetime.combine(AFTER, time.min, UTC),
            "visit_count": 0,
        }
        for _ in range(n // 3)
    ]
    visits: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    for i in range(n):
        day = DAYS[i % len(DAYS)] if i >= 10 else DAY1
        start = datetime.combine(day, time.min, UTC) + timedelta(seconds=rng.randrange(86_400))
        if i < 4:  # the edges of a day: midnight exactly, and the last second
            start = datetime.combine([DAY1, DAY2, DAY3, DAY3][i], time.min, UTC) + timedelta(
                seconds=[0, 0, 86_399, 0][i], microseconds=[0, 0, 999_999, 0][i]
            )
        count = rng.choice([1, 1, 1, 2, 2, 3, 5, 8])
        gaps = [rng.randrange(5, 400) for _ in range(count)]
        if i == 2:  # a visit started at 23:59:59 that goes on past midnight
            gaps = [30] * count
        person = rng.choice(people) if rng.random() < 0.6 else None
        browser, os_family = rng.choice(BROWSERS)
        visit_id = new_id()
        at = start
        for seq in range(1, count + 1):
            pages.append(
                {
                    "organisation_id": org,
                    "site_id": site,
                    "visit_id": visit_id,
                    "seq": seq,
                    "path": rng.choice(PATHS[: 4 + (i % len(PATHS))]),
                    "title": None,
                    "at": at,
                    "seconds": gaps[seq - 1],
                }
            )
            at += timedelta(seconds=gaps[seq - 1])
        visits.append(
            {
                "id": visit_id,
                "organisation_id": org,
                "site_id": site,
                "site_visitor_id": person["id"] if person else None,
                "started_at": start,
                "last_seen_at": at,
                "pageviews": count,
                "seconds": int((at - start).total_seconds()),
                "is_returning": False,
                "country": rng.choice(COUNTRIES),
                "region": None,
                "city": None,
                "browser": browser,
                "browser_major": "1" if browser else None,
                "os": os_family,
                "device": rng.choice(DEVICES),
                "referrer": None,
                "channel": rng.choice(CHANNELS),
                "campaign": {},
                "conversation_id": new_id() if rng.random() < 0.15 else None,
                **({"first_ts": start} if "first_ts" in Visit.__table__.c else {}),
            }
        )
    return people, visits, pages


def _chat(site: Site, conversation_id: str, at: datetime, source: str) -> tuple[Any, Any]:
    visitor_id = new_id()
    return (
        Visitor(
            id=visitor_id,
            organisation_id=site.organisation_id,
            site_id=site.id,
            token_hash=None,
            label="Visitor X",
            created_at=at,
            last_seen_at=at,
        ),
        Conversation(
            id=conversation_id,
            organisation_id=site.organisation_id,
            site_id=site.id,
            visitor_id=visitor_id,
            source=source,
            state="closed",
            last_seq=0,
            visitor_seen_seq=0,
            agent_seen_seq=0,
            created_at=at,
            updated_at=at,
        ),
    )


@pytest.fixture(scope="module")
def seeded(database_url: str) -> Seeded:
    rng = random.Random(20260328)

    async def seed(db: Database) -> Seeded:
        accounts = AccountService(
            db, max_failures=5, lockout=timedelta(minutes=1), session_ttl=timedelta(hours=1)
        )
        sites = SiteService(db)
        org_a = (await accounts.create_organisation("Alpha Cars")).id
        org_b = (await accounts.create_organisation("Beta Motors")).id
        site = await sites.create_site(
            organisation_id=org_a, name="Alpha Leeds", origins=["https://alpha.example"]
        )
        other = await sites.create_site(
            organisation_id=org_b, name="Beta York", origins=["https://beta.example"]
        )
        people, visits, pages = _make_traffic(rng, org_a, site.id, 400)
        people_b, visits_b, pages_b = _make_traffic(rng, org_b, other.id, 120)
        # The chats of the visits that had one, a few by visitors who refused statistics (no
        # visit behind them), and offline enquiries (not chats).
        chats = [
            (v["conversation_id"], v["started_at"] + timedelta(seconds=20), "chat")
            for v in visits
            if v["conversation_id"]
        ]
        for n in range(12):
            at = datetime.combine(DAYS[n % len(DAYS)], time(9 + n), UTC)
            chats.append((new_id(), at, "chat" if n % 4 else "enquiry"))
        async with db.session(Scope.system()) as s:
            await s.execute(insert(SiteVisitor), people + people_b)
            await s.execute(insert(Visit), visits + visits_b)
            await s.execute(insert(PageView), pages + pages_b)
            made = [
                _chat(site, conversation_id, at, source) for conversation_id, at, source in chats
            ]
            s.add_all([visitor for visitor, _conv in made])
            await s.flush()  # no ORM relationships: the visitors go in before their chats
            s.add_all([conv for _visitor, conv in made])
        started = [at for _id, at, source in chats if source == "chat"]
        return Seeded(database_url, org_a, org_b, site, other, visits, pages, started)

    data = run(with_db(database_url, seed))
    assert sum(1 for v in data.visits if DAY1 <= v["started_at"].date() <= DAY3) > 200
    return data


@pytest.fixture(scope="module")
def rolled_up(seeded: Seeded) -> Iterator[Seeded]:
    run(with_db(seeded.url, lambda db: Reports(db).rollup(DAYS)))
    yield seeded


# --- the expected report, from the raw rows ------------------------------------------------


def _day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def expected_report(data: Seeded, start: date, end: date) -> dict[str, Any]:
    visits = [v for v in data.visits if start <= _day(v["started_at"]) <= end]
    pages = [p for p in data.pages if start <= _day(p["at"]) <= end]
    by_day: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for v in visits:
        by_day[_day(v["started_at"])].append(v)
    series = []
    day = start
    while day <= end:
        vs = by_day.get(day, [])
        series.append(
            {
                "day": day.isoformat(),
                "visits": len(vs),
                "visitors": len({v["site_visitor_id"] or v["id"] for v in vs}),
                "pageviews": sum(v["pageviews"] for v in vs),
                "chats": sum(1 for at in data.chats if _day(at) == day),
                "visits_with_chat": sum(1 for v in vs if v["conversation_id"]),
                "anonymous_pageviews": 0,  # none seeded: tests/tracking/test_uk_stats.py
            }
        )
        day += timedelta(days=1)
    n = len(visits)
    seconds = sum(v["seconds"] for v in visits)
    with_chat = sum(s["visits_with_chat"] for s in series)
    totals = {
        "visits": n,
        "visitors": sum(s["visitors"] for s in series),  # daily uniques, summed
        "pageviews": sum(s["pageviews"] for s in series),
        "average_visit_seconds": round(seconds / n) if n else 0,
        "chats": sum(s["chats"] for s in series),  # every chat, tracked visit or not
        "visits_with_chat": with_chat,
        "chat_share": round(with_chat / n, 4) if n else 0.0,
        "anonymous_pageviews": 0,
    }
    breakdowns: dict[str, dict[str, dict[str, int]]] = {}
    for dim in ("channel", "country", "device", "browser"):
        rows: dict[str, Counter[str]] = defaultdict(Counter)
        for v in visits:
            key = v[dim] if v[dim] is not None else "unknown"
            rows[key].update(
                visits=1,
                pageviews=v["pageviews"],
                chats=1 if v["conversation_id"] else 0,
                seconds=v["seconds"],
            )
        breakdowns[dim] = {k: dict(c) for k, c in rows.items()}
    page_rows: dict[str, Counter[str]] = defaultdict(Counter)
    visits_per_day: dict[tuple[date, str], set[str]] = defaultdict(set)
    for p in pages:
        page_rows[p["path"]].update(pageviews=1, seconds=p["seconds"])
        visits_per_day[(_day(p["at"]), p["path"])].add(p["visit_id"])
    chatted = {v["id"] for v in data.visits if v["conversation_id"]}  # started any day
    for (_d, path), ids in visits_per_day.items():
        page_rows[path]["visits"] += len(ids)  # distinct visits per day, summed over days
        page_rows[path]["chats"] += len(ids & chatted)  # of them, visits that had a chat
    breakdowns["page"] = {k: {"chats": 0, **dict(c)} for k, c in page_rows.items()}
    return {"series": series, "totals": totals, "breakdowns": breakdowns}


def check_breakdown(dim: str, got: list[dict[str, Any]], want: dict[str, dict[str, int]]) -> None:
    """The top rows, by page views (pages) or visits (the rest), each with exact counts."""
    metric = "pageviews" if dim == "page" else "visits"
    assert len(got) == min(TOP, len(want)), dim
    for row in got:
        expected = want[row["key"]]
        assert {k: row[k] for k in ("visits", "pageviews", "chats", "seconds")} == {
            "visits": expected.get("visits", 0),
            "pageviews": expected.get("pageviews", 0),
            "chats": expected.get("chats", 0),
            "seconds": expected.get("seconds", 0),
        }, (dim, row["key"])
    values = [row[metric] for row in got]
    assert values == sorted(values, reverse=True), dim
    left_out = [v.get(metric, 0) for k, v in want.items() if k not in {r["key"] for r in got}]
    assert all(v <= values[-1] for v in left_out), dim  # nothing bigger was left out
    for a, b in itertools.pairwise(got):  # ties: by key (same on both backends here)
        if a[metric] == b[metric] and a["key"].isalnum() and b["key"].isalnum():
            assert a["key"] < b["key"], dim


def report(data: Seeded, scope: Scope, start: date, end: date, site: Site | None = None) -> Any:
    return run(
        with_db(data.url, lambda db: Reports(db).site_report(scope, site or data.site, start, end))
    )


# --- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [(DAY1, DAY3), (DAY2, DAY2), (DAY1 - timedelta(days=10), DAY3), (DAY3, DAY1)],
    ids=["three-days", "one-day", "with-empty-days", "reversed"],
)
def test_report_equals_counts_from_raw_rows(rolled_up: Seeded, start: date, end: date) -> None:
    got = report(rolled_up, Scope.organisation(rolled_up.org_a), start, end)
    lo, hi = min(start, end), max(start, end)
    want = expected_report(rolled_up, lo, hi)
    assert got["site"] == {"id": rolled_up.site.id, "name": "Alpha Leeds"}
    assert (got["from"], got["to"]) == (lo.isoformat(), hi.isoformat())
    assert got["series"] == want["series"]
    assert got["totals"] == want["totals"]
    assert set(got["breakdowns"]) == {"page", "channel", "country", "device", "browser"}
    for dim, rows in got["breakdowns"].items():
        check_breakdown(dim, rows, want["breakdowns"][dim])
    assert got["totals"]["visits"] > 0


def test_the_seed_exercises_what_it_should(rolled_up: Seeded) -> None:
    want = expected_report(rolled_up, DAY1, DAY3)
    assert len(want["breakdowns"]["page"]) > TOP  # the top-10 cut is exercised
    assert "unknown" in want["breakdowns"]["country"] and "unknown" in want["breakdowns"]["browser"]
    assert want["totals"]["chats"] > 0
    # some visitors came back on another day: daily uniques summed > distinct over the range
    distinct = {v["site_visitor_id"] for v in rolled_up.visits if v["site_visitor_id"]}
    assert want["totals"]["visitors"] > len(distinct)


def test_every_row_for_the_csv(rolled_up: Seeded) -> None:
    """The charts show the top ten; the export has every page."""
    want = expected_report(rolled_up, DAY1, DAY3)["breakdowns"]["page"]
    got = run(
        with_db(
            rolled_up.url,
            lambda db: Reports(db).site_report(
                Scope.organisation(rolled_up.org_a), rolled_up.site, DAY1, DAY3, top=None
            ),
        )
    )
    assert len(got["breakdowns"]["page"]) == len(want) > TOP


def test_rollup_is_idempotent(rolled_up: Seeded) -> None:
    async def snapshot(db: Database) -> list[tuple[Any, ...]]:
        async with db.session(Scope.system()) as s:
            rows = await s.execute(
                select(
                    DailyStat.site_id, DailyStat.day, DailyStat.dimension, DailyStat.key,
                    DailyStat.visits, DailyStat.visitors, DailyStat.pageviews,
                    DailyStat.seconds, DailyStat.chats,
                ).order_by(DailyStat.site_id, DailyStat.day, DailyStat.dimension, DailyStat.key)
            )  # fmt: skip
            return [tuple(r) for r in rows.all()]

    before = run(with_db(rolled_up.url, snapshot))
    report_before = report(rolled_up, Scope.organisation(rolled_up.org_a), DAY1, DAY3)
    counts = [run(with_db(rolled_up.url, lambda db: Reports(db).rollup(DAYS))) for _ in range(2)]
    assert counts[0] == counts[1] == len(before)
    assert run(with_db(rolled_up.url, snapshot)) == before
    assert report(rolled_up, Scope.organisation(rolled_up.org_a), DAY1, DAY3) == report_before
    # a roll-up of one day leaves the others alone
    run(with_db(rolled_up.url, lambda db: Reports(db).rollup([DAY2])))
    assert run(with_db(rolled_up.url, snapshot)) == before


def test_concurrent_rollups_of_the_same_days(rolled_up: Seeded) -> None:
    """The background task (every minute) and `confide stats rollup` may overlap: on PostgreSQL
    the write of a site-day takes an advisory lock, so the second waits, then replaces the rows."""

    async def both() -> list[Any]:
        dbs = [Database(rolled_up.url) for _ in range(2)]
        try:
            return await asyncio.gather(
                *(Reports(db).rollup([DAY1, DAY2, DAY3]) for db in dbs for _ in range(2)),
                return_exceptions=True,
            )
        finally:
            for db in dbs:
                await db.dispose()

    results = run(both())
    assert not [r for r in results if isinstance(r, BaseException)], results
    want = expected_report(rolled_up, DAY1, DAY3)
    assert (
        report(rolled_up, Scope.organisation(rolled_up.org_a), DAY1, DAY3)["totals"]
        == want["totals"]
    )


def test_a_rollup_waits_for_the_site_day_lock(rolled_up: Seeded) -> None:
    """PostgreSQL: while another transaction holds a site-day's advisory lock, a roll-up of that
    day does not write it; it goes on once the lock is released."""
    if not rolled_up.url.startswith("postgresql"):
        pytest.skip("SQLite serialises writes; no advisory lock")

    async def scenario(db: Database) -> None:
        key = _lock_key(rolled_up.site.id, DAY2)
        async with db.engine.connect() as holder:
            await holder.execute(select(func.pg_advisory_xact_lock(key)))
            rollup = asyncio.create_task(Reports(db).rollup([DAY2]))
            await asyncio.sleep(0.5)
            assert not rollup.done()
            await holder.rollback()  # releases the lock
        assert await asyncio.wait_for(rollup, 10) > 0

    run(with_db(rolled_up.url, scenario))
    want = expected_report(rolled_up, DAY2, DAY2)
    got = report(rolled_up, Scope.organisation(rolled_up.org_a), DAY2, DAY2)
    assert got["totals"] == want["totals"]


def test_a_late_visit_is_counted_after_the_next_rollup(rolled_up: Seeded) -> None:
    data = rolled_up
    at = datetime.combine(DAY2, time(12), UTC)
    visit = {
        **data.visits[-1],
        "id": new_id(),
        "started_at": at,
        "last_seen_at": at + timedelta(seconds=10),
        "pageviews": 1,
        "seconds": 10,
        "site_visitor_id": None,
        "channel": "late",
    }
    page = {**data.pages[-1], "visit_id": visit["id"], "seq": 1, "at": at, "path": "/late"}

    async def add(db: Database) -> None:
        async with db.session(Scope.system()) as s:
            await s.execute(insert(Visit), [visit])
            await s.execute(insert(PageView), [page])

    before = report(data, Scope.organisation(data.org_a), DAY2, DAY2)["totals"]
    run(with_db(data.url, add))
    assert report(data, Scope.organisation(data.org_a), DAY2, DAY2)["totals"] == before  # stale
    run(with_db(data.url, lambda db: Reports(db).rollup([DAY2])))
    after = report(data, Scope.organisation(data.org_a), DAY2, DAY2)
    assert after["totals"]["visits"] == before["visits"] + 1
    assert after["totals"]["pageviews"] == before["pageviews"] + 1
    late = {"key": "late", "visits": 1, "pageviews": 1, "chats": 0, "seconds": 10}
    assert late in after["breakdowns"]["channel"]  # 7 channels < TOP: all are listed

    async def remove(db: Database) -> None:
        async with db.session(Scope.system()) as s:
            await s.execute(delete(Visit).where(Visit.id == visit["id"]))

    run(with_db(data.url, remove))
    run(with_db(data.url, lambda db: Reports(db).rollup([DAY2])))
    assert report(data, Scope.organisation(data.org_a), DAY2, DAY2)["totals"] == before


def test_sites_are_reported_separately(rolled_up: Seeded) -> None:
    a = report(rolled_up, Scope.system(), DAY1, DAY3)
    b = report(rolled_up, Scope.organisation(rolled_up.org_b), DAY1, DAY3, rolled_up.other)
    assert a["totals"] == expected_report(rolled_up, DAY1, DAY3)["totals"]
    assert b["site"]["id"] == rolled_up.other.id
    assert 0 < b["totals"]["visits"] < a["totals"]["visits"]


def test_another_tenant_cannot_read_the_report(rolled_up: Seeded) -> None:
    data = rolled_up

    async def get(db: Database, scope: Scope) -> Site:
        return await SiteService(db).get(scope, data.site.id)

    for scope in (
        Scope.organisation(data.org_b),
        Scope.sites(frozenset({data.other.id}), frozenset({data.org_b})),
        Scope.sites(frozenset({data.other.id}), frozenset({data.org_a})),  # right org, wrong site
    ):
        with pytest.raises(NotFound):
            run(with_db(data.url, lambda db, scope=scope: get(db, scope)))
    assert run(with_db(data.url, lambda db: get(db, Scope.organisation(data.org_a)))).id == (
        data.site.id
    )
    # and if a caller skipped that check, the scoped session still returns none of A's rows
    leaked = report(data, Scope.organisation(data.org_b), DAY1, DAY3)
    assert leaked["totals"]["visits"] == 0
    assert all(rows == [] for rows in leaked["breakdowns"].values())


def test_a_range_is_capped_at_366_days(rolled_up: Seeded) -> None:
    got = report(rolled_up, Scope.organisation(rolled_up.org_a), date(2020, 1, 1), DAY3)
    assert len(got["series"]) == 366 and got["to"] == DAY3.isoformat()
