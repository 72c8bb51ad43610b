"""The client portal over real HTTP: who sees which report, numbers that match what was tracked,
CSV exports, date validation and escaping. Runs on SQLite and PostgreSQL (``world`` fixture).

Visits are recorded the way a browser records them (beacons to ``/api/t`` from the site's
origin, docs/tracking.md), one of them starts a chat over the widget socket, then the daily
roll-up runs and the pages are compared with the raw rows.
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from sqlalchemy import distinct, func, select

from confide.storage.scope import Scope
from confide.testing import LiveServer
from confide.tracking.models import Visit
from confide.web.routes.portal import (
    csv_cell,
    duration,
    key_label,
    kpis,
    parse_period,
    percent,
)
from tests.chat.helpers import visitor
from tests.conftest import ORIGIN_A, World

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
EVIL_PATH = "/<script>alert(1)</script>"
EVIL_SITE = "<script>alert('site')</script> Showroom"


def _id() -> str:
    return secrets.token_urlsafe(16)[:22]


@dataclass
class Raw:
    visits: int
    visitors: int
    pageviews: int
    seconds: int
    chats: int


@dataclass
class Seeded:
    raw: Raw
    evil_site_id: str


def _beacon(
    http: httpx.Client,
    key: str,
    visit: str,
    visitor_cookie: str | None,
    events: list[dict[str, Any]],
    ua: str,
) -> None:
    response = http.post(
        "/api/t",
        content=orjson.dumps(
            {"site": key, "visit": visit, "visitor": visitor_cookie, "events": events}
        ),
        headers={"Origin": ORIGIN_A, "Content-Type": "text/plain", "User-Agent": ua},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["honoured"] is None and body["accepted"] == len(events), body


def _raw_counts(server: LiveServer, site_id: str) -> Raw:
    async def count(ctx: Any) -> Raw:
        async with ctx.db.session(Scope.system()) as s:
            row = (
                await s.execute(
                    select(
                        func.count(),
                        func.count(distinct(func.coalesce(Visit.site_visitor_id, Visit.id))),
                        func.coalesce(func.sum(Visit.pageviews), 0),
                        func.coalesce(func.sum(Visit.seconds), 0),
                        func.count(Visit.conversation_id),
                    ).where(Visit.site_id == site_id)
                )
            ).one()
        return Raw(*(int(v) for v in row))

    result: Raw = server.service(count)
    return result


@pytest.fixture(scope="module")
def seeded(world: World) -> Seeded:
    """Four visits on site A (three browsers, one of them twice), one chat, then the roll-up."""
    server = world.server
    server.service(lambda ctx: ctx.sites.configure(world.site_a_id, consent_mode="notice"))
    now = int(time.time() * 1000)
    t0 = now - 50_000  # every event within the last minute: one UTC day but at midnight
    returning = _id()
    chat_visit = _id()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        # 1. From Google: two pages, 40 s on site.
        _beacon(
            http,
            world.site_a,
            _id(),
            returning,
            [
                {
                    "type": "pageview",
                    "url": "/?utm_source=google&email=a@b.c",
                    "title": "Home",
                    "referrer": "https://www.google.com/",
                    "ts": t0,
                },
                {"type": "pageview", "url": "/used-cars", "title": "Used cars", "ts": t0 + 10_000},
                {"type": "leave", "seq": 2, "seconds": 30, "ts": t0 + 40_000},
            ],
            CHROME,
        )
        # 2. Direct, on a phone; this visitor starts a chat.
        _beacon(
            http,
            world.site_a,
            chat_visit,
            _id(),
            [
                {"type": "pageview", "url": "/used-cars", "title": "Used cars", "ts": t0},
                {"type": "ping", "seq": 1, "seconds": 15, "ts": t0 + 15_000},
            ],
            IPHONE,
        )
        # 3. From Facebook, to a page whose path and title are markup.
        _beacon(
            http,
            world.site_a,
            _id(),
            _id(),
            [
                {
                    "type": "pageview",
                    "url": EVIL_PATH,
                    "title": "<script>alert('title')</script>",
                    "referrer": "https://m.facebook.com/",
                    "ts": t0 + 5_000,
                },
                {"type": "leave", "seq": 1, "seconds": 20, "ts": t0 + 25_000},
            ],
            FIREFOX,
        )
        # 4. The first browser again (same cookie): a returning visitor, direct.
        _beacon(
            http,
            world.site_a,
            _id(),
            returning,
            [{"type": "pageview", "url": "/finance", "title": "Finance", "ts": t0 + 45_000}],
            CHROME,
        )

    async def chat() -> None:
        peer, _welcome = await visitor(server, world.site_a, ORIGIN_A)
        try:
            await peer.send(type="open", ref="o1", visit=chat_visit)
            await peer.expect("conversation", ref="o1")
        finally:
            await peer.close()

    asyncio.run(chat())
    evil_site_id = server.create_site(world.org_a, EVIL_SITE, [ORIGIN_A])[1]
    today = datetime.now(UTC).date()
    server.service(lambda ctx: ctx.reports.rollup([today - timedelta(days=1), today]))
    raw = _raw_counts(server, world.site_a_id)
    # What the beacons above must have produced, so the comparisons below are not vacuous.
    assert raw == Raw(visits=4, visitors=3, pageviews=5, seconds=40 + 15 + 20 + 0, chats=1)
    return Seeded(raw, evil_site_id)


@pytest.fixture(scope="module")
def client_a(world: World, seeded: Seeded) -> Iterator[httpx.Client]:
    http = world.server.login(world.client_a)
    yield http
    http.close()


@pytest.fixture(scope="module")
def client_b(world: World, seeded: Seeded) -> Iterator[httpx.Client]:
    http = world.server.login(world.client_b)
    yield http
    http.close()


def _kpis(page: str) -> dict[str, str]:
    pairs = re.findall(
        r'<dt class="kpi-label">([^<]+)</dt>\s*<dd class="kpi-value">([^<]+)</dd>', page
    )
    return {html.unescape(k): html.unescape(v) for k, v in pairs}


def _csv(response: httpx.Response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.text)))


# ---- who may see what ------------------------------------------------------------------------


def test_pages_without_a_session_redirect_to_sign_in(live_server: LiveServer, world: World) -> None:
    with httpx.Client(base_url=live_server.url) as anonymous:
        for path in (
            "/portal",
            f"/portal/sites/{world.site_a_id}",
            f"/portal/sites/{world.site_a_id}/export.csv",
        ):
            response = anonymous.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"] == "/console/login?next=" + quote(path, safe="")


def _sign_in(server: LiveServer, account: Any, next_path: str | None) -> httpx.Response:
    with httpx.Client(base_url=server.url) as http:
        query = {"next": next_path} if next_path is not None else {}
        page = http.get("/console/login", params=query)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        form = {"email": account.email, "password": account.password, "csrf_token": token[1]}
        if next_path is not None:
            form["next"] = next_path
        return http.post("/console/login", data=form)


def test_sign_in_returns_to_the_page_asked_for(live_server: LiveServer, world: World) -> None:
    """A sales manager opening a portal link signs in and lands on it, not in the console;
    without a link they go to the console (client staff chat too); nothing sends them off this
    server."""
    signed = _sign_in(live_server, world.client_a, "/portal/leads?status=new")
    assert signed.headers["location"] == "/portal/leads?status=new"
    assert _sign_in(live_server, world.client_a, None).headers["location"] == "/console"
    for outside in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        assert _sign_in(live_server, world.client_a, outside).headers["location"] == "/console"
    page = httpx.get(f"{live_server.url}/console/login", params={"next": "/portal/leads"})
    assert "Sign in to the client portal" in page.text
    assert 'name="next" value="/portal/leads"' in page.text


def test_the_list_shows_the_sites_in_scope(client_a: httpx.Client, world: World) -> None:
    page = client_a.get("/portal")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert page.headers["cache-control"] == "no-store"
    assert f'href="/portal/sites/{world.site_a_id}"' in page.text
    assert "Alpha Cars Leeds" in page.text
    assert world.site_b_id not in page.text
    assert 'aria-current="page">Reports</a>' in page.text  # the console's nav, this section


@pytest.mark.parametrize(
    ("path", "tab"),
    [
        ("/portal", "Reports"),
        ("/portal/leads", "Leads"),
        ("/portal/privacy", "Privacy requests"),
        ("/portal/audit", "Audit trail"),
        ("/portal/ropa", "Record of processing"),
        ("/portal/inbox", "Inbox"),
    ],
)
def test_each_portal_page_is_the_current_page_once_in_each_nav(
    client_a: httpx.Client, path: str, tab: str
) -> None:
    """The top bar marks the portal's section, the tabs mark the page: never a second page
    claiming to be the current one (a screen reader announces "current page")."""
    page = client_a.get(path)
    assert page.status_code == 200, page.text
    top, tabs = page.text.split('class="portal-tabs"', 1)
    tabs = tabs.split("</nav>", 1)[0]
    assert re.findall(r'aria-current="page">([^<]+)</a>', tabs) == [tab]
    expected_top = [tab] if tab in ("Reports", "Leads") else []
    top_nav = top.split('aria-label="Console"', 1)[1].split("</nav>", 1)[0]
    assert re.findall(r'aria-current="page">([^<]+)</a>', top_nav) == expected_top
    if not expected_top:
        assert 'class="in-section">Reports</a>' in top_nav  # still shows where in the bar we are


def test_another_tenants_site_is_not_found(client_b: httpx.Client, world: World) -> None:
    listing = client_b.get("/portal")
    assert world.site_a_id not in listing.text
    assert world.site_b_id in listing.text
    report = client_b.get(f"/portal/sites/{world.site_a_id}")
    assert report.status_code == 404
    assert "text/html" in report.headers["content-type"]
    assert "Page not found" in report.text
    assert "Alpha" not in report.text
    export = client_b.get(f"/portal/sites/{world.site_a_id}/export.csv?table=page")
    assert export.status_code == 404
    assert export.json()["code"] == "not_found"
    assert "/used-cars" not in export.text
    as_browser = client_b.get(
        f"/portal/sites/{world.site_a_id}/export.csv", headers={"Accept": "text/html"}
    )
    assert as_browser.status_code == 404
    assert "Page not found" in as_browser.text
    unknown = client_b.get("/portal/sites/no-such-site")
    assert unknown.status_code == 404


def test_operators_are_refused(world: World, seeded: Seeded) -> None:
    http = world.server.login(world.operator_a)
    try:
        assert http.get("/portal").status_code == 403
        assert http.get(f"/portal/sites/{world.site_a_id}").status_code == 403
        history = http.get("/console/history")
        assert 'href="/portal"' not in history.text  # no Reports link in their console
    finally:
        http.close()


def test_admins_see_every_organisation(world: World, seeded: Seeded) -> None:
    http = world.server.login(world.admin)
    try:
        listing = http.get("/portal")
        assert world.site_a_id in listing.text and world.site_b_id in listing.text
        assert "Alpha Cars" in listing.text and "Beta Motors" in listing.text
        report = http.get(f"/portal/sites/{world.site_b_id}")
        assert report.status_code == 200
    finally:
        http.close()


# ---- the numbers -------------------------------------------------------------------------------


def test_report_numbers_equal_the_raw_counts(
    client_a: httpx.Client, world: World, seeded: Seeded
) -> None:
    raw = seeded.raw
    page = client_a.get(f"/portal/sites/{world.site_a_id}")
    assert page.status_code == 200
    kpis = _kpis(page.text)
    average = round(raw.seconds / raw.visits)
    assert kpis == {
        "Visits": str(raw.visits),
        "Daily unique visitors": str(raw.visitors),
        "Page views": str(raw.pageviews),
        "Average visit": f"{average}s",
        "Chats": str(raw.chats),
        "Visits with a chat": f"{raw.chats / raw.visits * 100:g}%",
    }
    assert "No visits recorded" not in page.text
    # The chart and the breakdowns are there, each with its table.
    assert page.text.count('role="img"') == 1 + 5
    assert "Visits and chats per day" in page.text
    for title in ("Top pages", "Channels", "Locations", "Devices", "Browsers"):
        assert f">{title}</h2>" in page.text
    assert "Search engines" in page.text and "Social media" in page.text
    assert ">Mobile</th>" in page.text and ">Desktop</th>" in page.text
    # Nothing inline that the CSP would block, and the scripts and styles are our files.
    assert 'style="' not in page.text
    assert "<script>" not in page.text
    assert 'src="/static/portal/portal.js"' in page.text


def test_daily_csv_matches_the_totals(client_a: httpx.Client, world: World, seeded: Seeded) -> None:
    today = datetime.now(UTC).date()
    start = today - timedelta(days=6)
    response = client_a.get(
        f"/portal/sites/{world.site_a_id}/export.csv",
        params={"from": start.isoformat(), "to": today.isoformat(), "table": "daily"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = response.headers["content-disposition"]
    assert disposition == (f'attachment; filename="alpha-cars-leeds-daily-{start}-to-{today}.csv"')
    rows = _csv(response)
    assert rows[0] == [
        "day",
        "visits",
        "daily_unique_visitors",
        "pageviews",
        "chats",
        "visits_with_chat",
        "anonymous_pageviews",
    ]
    body = rows[1:]
    assert [r[0] for r in body] == [(start + timedelta(days=i)).isoformat() for i in range(7)]
    raw = seeded.raw
    sums = [sum(int(r[i]) for r in body) for i in range(1, 5)]
    assert sums == [raw.visits, raw.visitors, raw.pageviews, raw.chats]
    assert sum(int(r[6]) for r in body) == 0  # no UK anonymous counts on this site


def test_breakdown_csvs(client_a: httpx.Client, world: World, seeded: Seeded) -> None:
    url = f"/portal/sites/{world.site_a_id}/export.csv"
    pages = _csv(client_a.get(url, params={"table": "page"}))
    assert pages[0] == ["page", "visits", "pageviews", "chats", "seconds"]
    by_page = {r[0]: (int(r[1]), int(r[2])) for r in pages[1:]}
    assert by_page == {"/used-cars": (2, 2), "/": (1, 1), "/finance": (1, 1), EVIL_PATH: (1, 1)}
    # The chat's visit viewed /used-cars only: the page that led to a chat.
    assert {r[0]: int(r[3]) for r in pages[1:]} == {
        "/used-cars": 1,
        "/": 0,
        "/finance": 0,
        EVIL_PATH: 0,
    }
    channels = _csv(client_a.get(url, params={"table": "channel"}))
    assert channels[0][0] == "channel"
    assert {r[0]: int(r[1]) for r in channels[1:]} == {"direct": 2, "search": 1, "social": 1}
    assert {r[0]: int(r[3]) for r in channels[1:]}["direct"] == 1  # the chat
    devices = _csv(client_a.get(url, params={"table": "device"}))
    assert {r[0]: int(r[1]) for r in devices[1:]} == {"desktop": 3, "mobile": 1}
    browsers = _csv(client_a.get(url, params={"table": "browser"}))
    assert sum(int(r[1]) for r in browsers[1:]) == 4
    countries = _csv(client_a.get(url, params={"table": "country"}))
    assert sum(int(r[1]) for r in countries[1:]) == 4
    for table in ("page", "channel", "country", "device", "browser"):
        response = client_a.get(url, params={"table": table})
        assert f"-{table}-" in response.headers["content-disposition"]


def test_csv_cells_cannot_become_formulas() -> None:
    for value in ("=1+1", "+44 113", "-2", "@SUM(A1)", "\tx", "\rx"):
        cell = csv_cell(value)
        assert isinstance(cell, str) and cell.startswith("'") and cell[1:] == value
    assert csv_cell("/used-cars") == "/used-cars"
    assert csv_cell(12) == 12
    assert csv_cell("Chrome") == "Chrome"


# ---- dates -------------------------------------------------------------------------------------


def test_default_range_presets_and_a_chosen_range(
    client_a: httpx.Client, world: World, seeded: Seeded
) -> None:
    today = datetime.now(UTC).date()
    page = client_a.get(f"/portal/sites/{world.site_a_id}").text
    start = today - timedelta(days=29)
    assert f'value="{start.isoformat()}"' in page and f'value="{today.isoformat()}"' in page
    assert "30 days" in page
    assert re.search(r'aria-current="true">30 days</a>', page)
    for n in (7, 90):
        assert f"from={(today - timedelta(days=n - 1)).isoformat()}&amp;to={today}" in page
    week = client_a.get(
        f"/portal/sites/{world.site_a_id}",
        params={"from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat()},
    ).text
    assert re.search(r'aria-current="true">7 days</a>', week)
    assert _kpis(week)["Visits"] == str(seeded.raw.visits)
    # A range before anything was tracked: the empty state, with the consent hint.
    old = client_a.get(
        f"/portal/sites/{world.site_a_id}", params={"from": "2024-01-01", "to": "2024-01-31"}
    )
    assert old.status_code == 200
    assert "No visits recorded in this period" in old.text
    assert "consent" in old.text
    assert _kpis(old.text)["Visits"] == "0"


def test_empty_site_explains_opt_in(world: World, seeded: Seeded) -> None:
    http = world.server.login(world.client_b)
    try:
        page = http.get(f"/portal/sites/{world.site_b_id}")
        assert page.status_code == 200
        assert "No visits recorded in this period" in page.text
        assert "tracking needs the visitor's consent" in page.text
    finally:
        http.close()


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"from": "2026-13-01"}, "&#39;from&#39; must be a date written YYYY-MM-DD"),
        ({"to": "yesterday"}, "&#39;to&#39; must be a date written YYYY-MM-DD"),
        ({"from": "20260101"}, "&#39;from&#39; must be a date written YYYY-MM-DD"),
        ({"from": "0001-01-01"}, "&#39;from&#39; must be between 2000-01-01 and 2099-12-31"),
        ({"from": "2026-03-10", "to": "2026-03-01"}, "The start date (&#39;from&#39;) is after"),
    ],
)
def test_bad_dates_are_422_with_the_reason(
    client_a: httpx.Client, world: World, query: dict[str, str], reason: str
) -> None:
    page = client_a.get(f"/portal/sites/{world.site_a_id}", params=query)
    assert page.status_code == 422
    assert "text/html" in page.headers["content-type"]
    assert reason in page.text
    assert f'href="/portal/sites/{world.site_a_id}"' in page.text  # back to the report
    export = client_a.get(f"/portal/sites/{world.site_a_id}/export.csv", params=query)
    assert export.status_code == 422
    assert html.unescape(reason) in export.json()["detail"]


def test_unknown_export_table_is_422(client_a: httpx.Client, world: World) -> None:
    response = client_a.get(
        f"/portal/sites/{world.site_a_id}/export.csv", params={"table": "visitors"}
    )
    assert response.status_code == 422
    assert "'table' must be one of" in response.json()["detail"]


def test_a_long_range_is_capped_at_366_days(client_a: httpx.Client, world: World) -> None:
    today = datetime.now(UTC).date()
    page = client_a.get(
        f"/portal/sites/{world.site_a_id}", params={"from": "2020-01-01", "to": today.isoformat()}
    )
    assert page.status_code == 200
    assert "at most 366 days" in page.text
    assert f'value="{(today - timedelta(days=365)).isoformat()}"' in page.text
    export = client_a.get(
        f"/portal/sites/{world.site_a_id}/export.csv",
        params={"from": "2020-01-01", "to": today.isoformat()},
    )
    assert len(_csv(export)) == 1 + 366


def test_parse_period_defaults() -> None:
    today = date(2026, 3, 31)
    p = parse_period(None, None, today)
    assert (p.start, p.end) == (date(2026, 3, 2), today)
    p = parse_period("2026-03-01", None, today)
    assert (p.start, p.end) == (date(2026, 3, 1), date(2026, 3, 30))
    p = parse_period("2026-03-20", "", today)
    assert (p.start, p.end) == (date(2026, 3, 20), today)
    p = parse_period(None, "2026-02-28", today)
    assert (p.start, p.end) == (date(2026, 1, 30), date(2026, 2, 28))
    p = parse_period(" 2026-03-05 ", "2026-03-05", today)
    assert p.days == 1
    p = parse_period("2026-03-20", "2027-01-01", today)  # ends in the future: up to today
    assert (p.start, p.end) == (date(2026, 3, 20), today)


# ---- escaping ----------------------------------------------------------------------------------


def test_markup_in_paths_and_names_is_shown_not_run(
    client_a: httpx.Client, world: World, seeded: Seeded
) -> None:
    report = client_a.get(f"/portal/sites/{world.site_a_id}").text
    assert EVIL_PATH not in report
    assert "<script>alert" not in report
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report  # in the chart and the table
    listing = client_a.get("/portal").text
    assert "<script>alert('site')" not in listing
    assert "&lt;script&gt;alert(&#39;site&#39;)&lt;/script&gt; Showroom" in listing
    evil = client_a.get(f"/portal/sites/{seeded.evil_site_id}")
    assert evil.status_code == 200
    assert "<script>alert" not in evil.text
    assert "&lt;script&gt;alert(&#39;site&#39;)&lt;/script&gt; Showroom" in evil.text
    export = client_a.get(f"/portal/sites/{seeded.evil_site_id}/export.csv")
    filename = export.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="[a-z0-9-]+\.csv"', filename), filename


# ---- formatting --------------------------------------------------------------------------------


def test_formatting_helpers() -> None:
    assert [duration(s) for s in (0, 42, 60, 75, 3599, 3725)] == [
        "0s",
        "42s",
        "1m 00s",
        "1m 15s",
        "59m 59s",
        "1h 02m",
    ]
    assert [percent(x) for x in (0, 0.0004, 0.068, 0.25, 1)] == [
        "0%",
        "<0.1%",
        "6.8%",
        "25%",
        "100%",
    ]
    assert key_label("channel", "search") == "Search engines"
    assert key_label("country", "gb") == "United Kingdom"
    assert key_label("country", "ZZ") == "ZZ"
    assert key_label("device", "unknown") == "Unknown"
    assert key_label("browser", "Chrome") == "Chrome"


def test_kpi_deltas_compare_with_the_previous_period() -> None:
    def totals(visits: int, chats: int, seconds: int) -> dict[str, Any]:
        return {
            "visits": visits,
            "visitors": visits,
            "pageviews": visits * 2,
            "average_visit_seconds": seconds,
            "chats": chats,
            "chat_share": chats / visits if visits else 0.0,
        }

    now = {k.label: k for k in kpis(totals(120, 6, 60), totals(100, 6, 80), True)}
    assert (now["Visits"].delta, now["Visits"].trend) == ("+20%", "up")
    assert (now["Average visit"].delta, now["Average visit"].trend) == ("\u221225%", "down")
    assert (now["Chats"].delta, now["Chats"].trend) == ("No change", "flat")
    assert now["Visits with a chat"].delta == "\u22121.0 pts"  # 6% to 5%
    jump = {k.label: k for k in kpis(totals(630, 1, 60), totals(10, 0, 60), True)}
    assert jump["Visits"].delta == "63\u00d7"
    assert jump["Chats"].delta == "New"
    first = kpis(totals(5, 0, 10), totals(0, 0, 0), False)
    assert all(k.delta is None and k.trend == "none" for k in first)
