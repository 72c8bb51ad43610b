"""The UK statistics exception in a real browser (R12, docs/tracking.md): the demo site (opt-in,
country GB) with ``uk_stats_exception`` on. Before consent the widget sends each page view with
no identifier and stores nothing; the privacy panel says "anonymous statistics only" and offers
"Object"; after objecting, the next 10 page views add nothing; consent then switches to normal
tracking.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.browser_support import DESKTOP, Demo, demo_server, require_chromium, wait_for
from tests.web.test_cookieless_browser import STORAGE, UA, Page

require_chromium()

pytestmark = pytest.mark.browser

OBJECTION = "confide.stats_objection"
PAGES = ("/demo/", "/demo/used-cars", "/demo/contact")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    def prepare(d: Demo) -> None:
        d.server.service(lambda ctx: ctx.sites.configure(d.site_id, uk_stats_exception=True))

    with demo_server(tmp_path_factory.mktemp("uk_stats"), prepare) as d:
        yield d


def query(demo: Demo, sql: str, *args: Any) -> Any:
    db = sqlite3.connect(Path(demo.server.database_url.removeprefix("sqlite:///")), timeout=10)
    try:
        return db.execute(sql, args).fetchone()[0]
    finally:
        db.close()


def counted(demo: Demo) -> int:
    sql = "SELECT coalesce(sum(pageviews), 0) FROM anonymous_counts WHERE site_id = ?"
    return int(query(demo, sql, demo.site_id))


@pytest.fixture
def visitor(new_context: Callable[..., Any], demo: Demo) -> Page:
    return Page(new_context(DESKTOP, user_agent=UA), demo)


def test_anonymous_counts_before_consent_stop_after_an_objection(visitor: Page, demo: Demo) -> None:
    page = visitor.page
    before = counted(demo)
    frame = visitor.goto("/demo/used-cars?email=a@b.c")
    page.wait_for_function("!document.getElementById('consent').hidden")  # the dealer's banner
    wait_for(lambda: counted(demo) == before + 1, what="an anonymous count", page=page)
    frame = visitor.goto("/demo/contact")
    wait_for(lambda: counted(demo) == before + 2, what="a second count", page=page)
    # Nothing but counts: no visit, no visitor, no page view; no identifier sent or stored.
    for table in ("visits", "site_visitors", "page_views"):
        assert query(demo, f"SELECT count(*) FROM {table} WHERE site_id = ?", demo.site_id) == 0
    assert [b["events"][0]["url"] for b in visitor.beacons] == ["/demo/used-cars", "/demo/contact"]
    assert all(b["visit"] is None and b["visitor"] is None for b in visitor.beacons)
    assert visitor.context.cookies() == []
    assert page.evaluate(STORAGE) == ["", [], []]

    # Clear information and a simple way to object, in the widget's privacy panel.
    page.evaluate("Confide.open()")
    frame.click("#privacy-btn")
    state = frame.locator("#privacy-state")
    assert state.inner_text().startswith("Anonymous statistics only")
    frame.get_by_role("button", name="Object to anonymous statistics").click()
    assert "You objected" in state.inner_text()
    assert frame.locator("#stats-object").is_hidden()
    assert frame.evaluate(f"localStorage.getItem('{OBJECTION}')") == "1"

    # The next 10 page views add nothing, and no beacon leaves the page.
    sent, objected_at = len(visitor.beacons), counted(demo)
    for n in range(10):
        frame = visitor.goto(PAGES[n % len(PAGES)])
        # The config has arrived (the panel's text needs it), so a count would have gone out.
        frame.wait_for_function(
            "document.getElementById('privacy-state').textContent.includes('You objected')"
        )
    page.wait_for_timeout(1500)  # any late beacon would have arrived
    assert counted(demo) == objected_at
    assert len(visitor.beacons) == sent
    page.evaluate("Confide.open()")
    frame.click("#privacy-btn")
    assert "You objected" in frame.inner_text("#privacy-state")
    page.evaluate("Confide.close()")

    # Consent, given later, is normal tracking (the objection was to anonymous counts only).
    page.get_by_role("button", name="Accept cookies").click()
    wait_for(
        lambda: query(demo, "SELECT count(*) FROM visits WHERE site_id = ?", demo.site_id) == 1,
        what="a visit after consent",
        page=page,
    )
    assert counted(demo) == objected_at
    assert re.fullmatch(r"[\w-]{22}", visitor.context.cookies()[0]["value"])
    assert visitor.errors == []
