"""Cookieless counting in a real browser (R21, docs/tracking.md): the demo site switched to
``tracking_identity = "cookieless"`` (consent mode "notice", so it tracks without a banner
click). The widget learns the mode from ``/api/widget/config`` and stores nothing for statistics
on the device, on the host page or in its frame, while page views, the visit and time on page
are recorded by the server.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.browser_support import (
    DESKTOP,
    HOST,
    Demo,
    chat_frame,
    demo_server,
    require_chromium,
    wait_for,
)

require_chromium()

pytestmark = pytest.mark.browser

UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 CookielessUA/1.0"
)
PING_MS = 1000
#: What the host page and our frame hold: cookies, and every key of both storages.
STORAGE = "[document.cookie, Object.keys(localStorage), Object.keys(sessionStorage)]"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    def prepare(d: Demo) -> None:
        d.server.service(
            lambda ctx: ctx.sites.configure(
                d.site_id, consent_mode="notice", tracking_identity="cookieless"
            )
        )

    with demo_server(tmp_path_factory.mktemp("cookieless"), prepare) as d:
        yield d


def rows(demo: Demo, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    path = Path(demo.server.database_url.removeprefix("sqlite:///"))
    db = sqlite3.connect(path, timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


class Page:
    """A visitor's page with the demo pages served on HOST (``data-ping`` added), recording
    every beacon body."""

    def __init__(self, context: Any, demo: Demo) -> None:
        self.context = context
        self.beacons: list[dict[str, Any]] = []
        self.errors: list[str] = []
        server = demo.server.url

        def serve(route: Any) -> None:
            url = route.request.url
            response = route.fetch(url=server + url[len(HOST) :])
            headers = {k: v for k, v in response.headers.items() if k != "content-length"}
            csp = headers.get("content-security-policy", "")
            for directive in ("script-src", "frame-src"):
                csp = csp.replace(directive, f"{directive} {server}")
            headers["content-security-policy"] = csp + f"; connect-src 'self' {server}"
            body = response.text().replace(" data-site=", f' data-ping="{PING_MS}" data-site=')
            route.fulfill(status=response.status, headers=headers, body=body)

        context.route(re.compile(r"^http://dealer\.test/demo/"), serve)
        self.page = context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

        def on_request(request: Any) -> None:
            if request.url.split("?")[0].endswith("/api/t"):
                self.beacons.append(json.loads(request.post_data or "null"))

        self.page.on("request", on_request)

    def goto(self, path: str) -> Any:
        old = next((f for f in self.page.frames if "/widget/frame" in f.url), None)
        self.page.goto(HOST + path)
        self.page.wait_for_function("window.Confide && window.Confide._loaded === true")
        return chat_frame(self.page, not_this=old)


@pytest.fixture
def visitor(new_context: Callable[..., Any], demo: Demo) -> Page:
    return Page(new_context(DESKTOP, user_agent=UA), demo)


def test_a_cookieless_site_stores_nothing_on_the_device_and_still_counts(
    visitor: Page, demo: Demo
) -> None:
    page = visitor.page
    frame = visitor.goto("/demo/used-cars")
    wait_for(
        lambda: (
            rows(demo, "SELECT count(*) FROM page_views WHERE site_id = ?", demo.site_id)[0][0] == 1
        ),
        what="the first page view",
        page=page,
    )
    frame = visitor.goto("/demo/contact")
    wait_for(
        lambda: (
            rows(demo, "SELECT count(*) FROM page_views WHERE site_id = ?", demo.site_id)[0][0] == 2
        ),
        what="the second page view",
        page=page,
    )
    # One visit of one visitor, both pages in order, and pings (seq from the server's reply)
    # measure the time on the second page.
    [(visit_id, pageviews)] = rows(
        demo, "SELECT id, pageviews FROM visits WHERE site_id = ?", demo.site_id
    )
    assert pageviews == 2
    wait_for(
        lambda: (
            rows(demo, "SELECT seconds FROM page_views WHERE visit_id = ? AND seq = 2", visit_id)[
                0
            ][0]
            >= 2
        ),
        what="time on the second page",
        page=page,
    )
    assert rows(demo, "SELECT count(*) FROM site_visitors WHERE site_id = ?", demo.site_id) == [
        (1,)
    ]
    assert [p for (p,) in rows(
        demo, "SELECT path FROM page_views WHERE visit_id = ? ORDER BY seq", visit_id
    )] == ["/demo/used-cars", "/demo/contact"]  # fmt: skip

    # Nothing stored for statistics: no cookie anywhere, no storage key on the host page, and
    # nothing but the chat's own state in our frame (no visit, no visitor id).
    assert visitor.context.cookies() == []
    cookie, local, session = page.evaluate(STORAGE)
    assert (cookie, local, session) == ("", [], [])
    _cookie, frame_local, frame_session = frame.evaluate(STORAGE)
    assert not [k for k in frame_local + frame_session if re.search(r"cfv|visit", k, re.I)]
    # The beacons carried no identifier at all.
    assert visitor.beacons and all(
        b.get("visit") is None and b.get("visitor") is None for b in visitor.beacons
    )
    assert visit_id not in json.dumps(visitor.beacons)
    assert visitor.errors == []
