"""The console's Visitors view and a chat's Visit panel, in a real browser against a live server.

Visits are made by POSTing tracking beacons to ``/api/t`` the way the widget loader does
(docs/tracking.md: ``Origin`` = the site's origin, ``Content-Type: text/plain``), so these tests do
not depend on the loader's tracking code. The site is in ``notice`` consent mode (it records
without an explicit consent), and the operator is assigned to it. A chat linked to a visit is
opened over the widget socket directly (``open{visit}`` after ``hello``), as tests/chat does.

The server sees every beacon come from 127.0.0.1, which has no country: the location shows as
"Unknown".
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from confide.testing import Account, LiveServer
from tests.web.browser_support import (
    DESKTOP,
    HOST,
    PHONE,
    Demo,
    Watched,
    assert_clean,
    demo_server,
    off_loop,
    require_chromium,
)

require_chromium()
expect = pytest.importorskip("playwright.sync_api").expect
websockets_sync = pytest.importorskip("websockets.sync.client")

pytestmark = pytest.mark.browser

ORG = "Eastside Motors"
SITE_NAME = "Eastside Motors - Used Cars"  # shown as "Used Cars" beside the organisation
OPERATOR = "Nina Notice"
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
XSS_TITLE = "<img src=x onerror=window.__xss=1>"
LONG_TITLE = " ".join(["A rather long page title"] * 6)


@dataclass
class Tracked:
    demo: Demo
    key: str  # the notice-mode site
    site_id: str
    operator: Account  # assigned to the demo site and the notice-mode site

    @property
    def server(self) -> LiveServer:
        return self.demo.server


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tracked]:
    made: dict[str, Any] = {}

    def prepare(d: Demo) -> None:
        org = d.server.create_org(ORG)
        site = d.server.service(
            lambda ctx: ctx.sites.create_site(
                organisation_id=org, name=SITE_NAME, origins=[HOST], consent_mode="notice"
            )
        )
        made["key"], made["site_id"] = site.key, site.id
        made["operator"] = d.server.create_user(
            "operator", sites=[d.site_id, site.id], name=OPERATOR
        )

    with demo_server(tmp_path_factory.mktemp("visitors"), prepare) as d:
        yield Tracked(d, made["key"], made["site_id"], made["operator"])


@pytest.fixture(scope="module")
def demo(tracked: Tracked) -> Demo:
    """The shared browser fixtures (tests/web/conftest.py) use this module's server."""
    return tracked.demo


# ---- visits, by beacon ---------------------------------------------------------------------


def new_id() -> str:
    return secrets.token_urlsafe(16)  # 22 characters of [A-Za-z0-9_-]


def beacon(
    t: Tracked,
    visit: str,
    events: list[dict[str, Any]],
    *,
    visitor: str | None = None,
    ua: str = CHROME_WINDOWS,
    ago: float = 0,
) -> dict[str, Any]:
    """POST one beacon as the loader's sendBeacon would; returns the 202 body."""
    ts = int((time.time() - ago) * 1000)
    body = {
        "site": t.key,
        "visit": visit,
        "visitor": visitor,
        "events": [{"ts": ts, **e} for e in events],
    }
    response = httpx.post(
        t.server.url + "/api/t",
        content=json.dumps(body),
        headers={"Origin": HOST, "Content-Type": "text/plain", "User-Agent": ua},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()
    assert result["accepted"] == len(events), result
    return result


def pageview(url: str, title: str | None, referrer: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "pageview", "url": url, "title": title}
    if referrer:
        event["referrer"] = referrer
    return event


def ping(seq: int, seconds: int) -> dict[str, Any]:
    return {"type": "ping", "seq": seq, "seconds": seconds}


def open_chat(t: Tracked, visit: str, text: str) -> str:
    """The widget frame's socket: hello, open{visit}, one message. Returns the conversation id."""
    with websockets_sync.connect(
        f"{t.server.ws_url}/ws/widget?v=1&site={t.key}", origin=HOST, open_timeout=10
    ) as ws:

        def recv(kind: str) -> dict[str, Any]:
            deadline = time.monotonic() + 10
            while True:
                frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
                assert frame["type"] != "error", frame
                if frame["type"] == kind:
                    return dict(frame)

        ws.send(json.dumps({"type": "hello", "v": 1, "host": HOST}))
        recv("welcome")
        ws.send(json.dumps({"type": "open", "visit": visit}))
        cid = str(recv("conversation")["conversation"]["id"])
        ws.send(
            json.dumps(
                {
                    "type": "send",
                    "conversation": cid,
                    "client_id": "visit-" + secrets.token_hex(8),
                    "text": text,
                }
            )
        )
        recv("ack")
    return cid


# ---- the console ---------------------------------------------------------------------------


def console(
    operator_page: Callable[..., Watched], t: Tracked, viewport: dict[str, int] = DESKTOP
) -> Watched:
    """The console, signed in as the operator of the notice-mode site."""
    return operator_page(viewport, t.operator)


def show_visitors(page: Any) -> None:
    page.locator('.topnav a[data-nav="visitors"]').click()
    expect(page).to_have_url(re.compile(r"/console#visitors$"))
    expect(page.locator("#visitors-view")).to_be_visible()
    expect(page.locator("#visitors-heading")).to_be_focused()


def row(page: Any, visit: str) -> Any:
    return page.locator(f'#visitor-list .visitor-row[data-id="{visit}"]')


def fact(r: Any, name: str) -> Any:
    return r.locator(f'[data-vslot="{name}"]')


# ---- tests ---------------------------------------------------------------------------------


def test_visitors_appear_and_update_live(
    operator_page: Callable[..., Watched], tracked: Tracked
) -> None:
    op = console(operator_page, tracked)
    page = op.page
    show_visitors(page)
    expect(page.locator("#visitors-empty")).to_be_visible()
    expect(page.locator("#visitors-empty")).to_contain_text(
        "Nobody is browsing your sites right now"
    )
    expect(page.locator("#nav-visitors-count")).to_be_hidden()

    visit, cookie = new_id(), new_id()
    beacon(
        tracked,
        visit,
        [
            pageview(
                "/used-cars/golf?utm_source=news&email=someone@example.com",
                "Used Golf GTI",
                "https://www.google.com/search?q=golf+gti",
            )
        ],
        visitor=cookie,
    )
    r = row(page, visit)
    expect(r).to_be_visible()  # no reload: the `visitor` frame
    expect(page.locator("#visitors-empty")).to_be_hidden()
    expect(r.locator("article")).to_have_attribute("aria-labelledby", f"visitor-label-{visit}")
    expect(fact(r, "org")).to_have_text(ORG)
    expect(fact(r, "site")).to_have_text("Used Cars")
    expect(fact(r, "label")).to_have_text(re.compile(r"^Visitor \w{4}$"))
    expect(fact(r, "kind")).to_have_text("New")
    expect(fact(r, "title")).to_have_text("Used Golf GTI")
    expect(fact(r, "path")).to_have_text("/used-cars/golf")  # no query string values kept
    expect(fact(r, "pages")).to_have_text("1 page")
    expect(fact(r, "source")).to_have_text("Search · www.google.com")
    expect(fact(r, "device")).to_have_text("Chrome 131 · Windows · Desktop")
    expect(fact(r, "location")).to_have_text("Unknown")  # 127.0.0.1 has no country
    expect(r.get_by_role("button", name="Invite to chat")).to_be_visible()
    badge = page.locator("#nav-visitors-count")
    expect(badge).to_be_visible()
    shown = page.locator("#visitor-list .visitor-row").count()
    expect(badge).to_have_text(str(shown))
    expect(page.locator("#nav-visitors-sr")).to_have_text(f", {shown} browsing now")

    # Time on site ticks without any frame.
    before = fact(r, "time").text_content()
    expect(fact(r, "time")).not_to_have_text(before or "", timeout=4000)

    # A second page view updates the same row in place.
    beacon(tracked, visit, [ping(1, 20), pageview("/used-cars/golf/finance", "Finance options")])
    expect(fact(r, "title")).to_have_text("Finance options")
    expect(fact(r, "path")).to_have_text("/used-cars/golf/finance")
    expect(fact(r, "pages")).to_have_text("2 pages")
    expect(page.locator(f'#visitor-list .visitor-row[data-id="{visit}"]')).to_have_count(1)

    # The same browser (cookie) back for another visit: a returning visitor, direct this time.
    again = new_id()
    beacon(tracked, again, [pageview("/", "Home")], visitor=cookie, ua=FIREFOX_LINUX)
    r2 = row(page, again)
    expect(fact(r2, "kind")).to_have_text("Returning")
    expect(fact(r2, "source")).to_have_text("Direct")
    expect(fact(r2, "device")).to_have_text("Firefox 133 · Linux · Desktop")
    # Newest visit first.
    first = page.locator("#visitor-list .visitor-row").first
    expect(first).to_have_attribute("data-id", again)

    # Back to the chats, and the view is reachable again with the browser's Back button.
    page.locator('.topnav a[data-nav="live"]').click()
    expect(page.locator("#visitors-view")).to_be_hidden()
    expect(page.locator(".sidebar")).to_be_visible()
    expect(page.locator('.topnav a[data-nav="live"]')).to_have_attribute("aria-current", "page")
    page.go_back()
    expect(page.locator("#visitors-view")).to_be_visible()
    expect(page.locator('.topnav a[data-nav="visitors"]')).to_have_attribute("aria-current", "page")
    assert_clean(op)


def test_invite_to_chat(operator_page: Callable[..., Watched], tracked: Tracked) -> None:
    visit = new_id()
    beacon(tracked, visit, [pageview("/used-cars/polo", "Used Polo")])
    op = console(operator_page, tracked)
    page = op.page
    show_visitors(page)
    r = row(page, visit)
    expect(fact(r, "title")).to_have_text("Used Polo")  # from welcome.visitors

    invite = r.get_by_role("button", name="Invite to chat")
    expect(invite).to_have_attribute("aria-expanded", "false")
    # Keyboard: Enter opens the form with the default text; Escape closes it, focus returns.
    invite.focus()
    page.keyboard.press("Enter")
    text = r.get_by_label("Invitation message")
    expect(text).to_be_focused()
    expect(text).to_have_value("Hi! Can we help you with anything?")
    expect(invite).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Escape")
    expect(r.locator("form")).to_be_hidden()
    expect(invite).to_be_focused()

    invite.click()
    text.fill("Hello! Any questions about the Polo?")
    r.get_by_role("button", name="Send invitation").click()
    expect(fact(r, "status")).to_have_text("Invitation sent")
    expect(r.locator("form")).to_be_hidden()
    expect(page.locator("#visitors-announcer")).to_have_text(re.compile("Invitation sent"))

    # The next beacon's response carries the invitation for the loader to show.
    result = beacon(tracked, visit, [ping(1, 15)])
    assert result["invite"] == {"text": "Hello! Any questions about the Polo?", "from": OPERATOR}
    assert beacon(tracked, visit, [ping(1, 30)])["invite"] is None  # delivered once
    assert_clean(op)


def test_visitor_leaves_the_list_two_minutes_after_last_activity(
    operator_page: Callable[..., Watched], tracked: Tracked
) -> None:
    visit = new_id()
    beacon(tracked, visit, [pageview("/stock", "Stock list")])
    # The server stamps beacons with its own clock: 90 s ago leaves 30 s to sign in and look.
    _age_visit(tracked, visit, seconds=90)
    op = console(operator_page, tracked)  # welcome.visitors has it: seen 90 s ago
    page = op.page
    show_visitors(page)
    r = row(page, visit)
    expect(r).to_be_visible()
    expect(r).to_have_count(0, timeout=40_000)
    assert_clean(op)


def _age_visit(t: Tracked, visit: str, *, seconds: float) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from confide.clock import utcnow
    from confide.storage.scope import Scope
    from confide.tracking.models import Visit

    async def age(ctx: Any) -> None:
        async with ctx.db.session(Scope.system()) as s:
            await s.execute(
                update(Visit)
                .where(Visit.id == visit)
                .values(last_seen_at=utcnow() - timedelta(seconds=seconds))
            )

    off_loop(lambda: t.server.service(age))


def test_chat_shows_the_visit_panel(
    operator_page: Callable[..., Watched], tracked: Tracked
) -> None:
    visit = new_id()
    beacon(
        tracked,
        visit,
        [pageview("/", "Home", "https://www.facebook.com/some/post")],
        ua=FIREFOX_LINUX,
    )
    beacon(tracked, visit, [ping(1, 45), pageview("/used-cars", "Used cars")], ua=FIREFOX_LINUX)
    beacon(
        tracked,
        visit,
        [ping(2, 30), pageview("/used-cars/golf", "Used Golf GTI")],
        ua=FIREFOX_LINUX,
    )
    op = console(operator_page, tracked)
    page = op.page
    show_visitors(page)
    r = row(page, visit)
    expect(fact(r, "pages")).to_have_text("3 pages")

    cid = open_chat(tracked, visit, "Is the Golf still for sale? #visit")
    beacon(tracked, visit, [ping(3, 15)], ua=FIREFOX_LINUX)  # the live row learns the chat
    expect(r.locator(".v-inchat-badge")).to_have_text("In chat")
    expect(r.get_by_role("button", name="Invite to chat")).to_be_hidden()

    # "Open chat" goes to the conversation (it is waiting in my queue).
    r.get_by_role("button", name="Open chat").click()
    expect(page.locator("#visitors-view")).to_be_hidden()
    pane = page.locator(f"#pane-{cid}")
    expect(pane).to_be_visible()
    panel = pane.locator(".visit-panel")
    expect(panel).to_be_visible()
    expect(panel).to_have_attribute("aria-labelledby", f"visit-heading-{cid}")
    toggle = panel.get_by_role("button", name=re.compile("^Visit"))
    expect(toggle).to_have_attribute("aria-expanded", "true")  # 1280 px: beside the chat
    titles = panel.locator(".visit-page-title")
    expect(titles).to_have_text(["Home", "Used cars", "Used Golf GTI"])
    expect(panel.locator(".visit-page-path")).to_have_text(["/", "/used-cars", "/used-cars/golf"])
    metas = panel.locator(".visit-page-meta")
    expect(metas.nth(0)).to_contain_text("45 s on page")
    expect(metas.nth(1)).to_contain_text("30 s on page")
    expect(metas.nth(2)).to_contain_text("current page")
    facts = panel.locator(".visit-facts")
    expect(facts).to_contain_text("Social · www.facebook.com")
    expect(facts).to_contain_text("Firefox 133 · Linux · Desktop")
    expect(facts).to_contain_text("Unknown")
    expect(facts).to_contain_text("Browsing now")
    expect(facts.locator(".visit-fact", has_text="Pages")).to_contain_text("3")

    # A new page view while the chat is open: the path follows.
    beacon(
        tracked, visit, [pageview("/used-cars/golf/finance", "Finance options")], ua=FIREFOX_LINUX
    )
    expect(titles).to_have_count(4)
    expect(titles.last).to_have_text("Finance options")

    # The panel folds and unfolds from the keyboard.
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(panel.locator(".visit-body")).to_be_hidden()
    page.keyboard.press("Space")
    expect(panel.locator(".visit-body")).to_be_visible()
    assert_clean(op)


def test_visit_not_tracked(operator_page: Callable[..., Watched], tracked: Tracked) -> None:
    """GET /api/visits/{id} answering 404 (the visit is gone): a short note, nothing breaks."""
    visit = new_id()
    beacon(tracked, visit, [pageview("/contact", "Contact us")])
    op = console(operator_page, tracked)
    page = op.page
    page.route(
        re.compile(r"/api/visits/"),
        lambda route: route.fulfill(
            status=404, content_type="application/json", body='{"detail":"No such visit."}'
        ),
    )
    cid = open_chat(tracked, visit, "Hello #untracked")
    item = page.locator("#waiting-list .conv-li", has_text="#untracked")
    item.locator(".conv-item").click()
    panel = page.locator(f"#pane-{cid} .visit-panel")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("this visit was not tracked")
    expect(panel.locator(".visit-page")).to_have_count(0)
    expect(page.locator(f"#pane-{cid} [role='log']")).to_contain_text("Hello #untracked")
    assert_clean(op)


def test_page_titles_render_as_text(
    operator_page: Callable[..., Watched], tracked: Tracked
) -> None:
    visit = new_id()
    op = console(operator_page, tracked)
    page = op.page
    show_visitors(page)
    beacon(tracked, visit, [pageview("/x?<script>=1", XSS_TITLE, "javascript:alert(1)")])
    r = row(page, visit)
    expect(fact(r, "title")).to_have_text(XSS_TITLE)
    cid = open_chat(tracked, visit, "Hi #xss-title")
    page.locator('.topnav a[data-nav="live"]').click()
    page.locator("#waiting-list .conv-li", has_text="#xss-title").locator(".conv-item").click()
    panel = page.locator(f"#pane-{cid} .visit-panel")
    expect(panel.locator(".visit-page-title")).to_have_text([XSS_TITLE])
    assert page.locator("#console-app img, #console-app script").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert_clean(op)


def test_phone_layout(operator_page: Callable[..., Watched], tracked: Tracked) -> None:
    visit = new_id()
    beacon(tracked, visit, [pageview("/used-cars/a-very-long-path/that-goes-on", LONG_TITLE)])
    op = console(operator_page, tracked, PHONE)
    page = op.page
    show_visitors(page)
    r = row(page, visit)
    expect(r).to_be_visible()
    expect(page.locator(".sidebar")).to_be_hidden()
    expect(r.get_by_role("button", name="Invite to chat")).to_be_in_viewport()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    cid = open_chat(tracked, visit, "From a phone #phone-visit")
    page.locator('.topnav a[data-nav="live"]').click()
    page.locator("#waiting-list .conv-li", has_text="#phone-visit").locator(".conv-item").click()
    panel = page.locator(f"#pane-{cid} .visit-panel")
    toggle = panel.get_by_role("button", name=re.compile("^Visit"))
    expect(toggle).to_have_attribute("aria-expanded", "false")  # folded above the chat
    expect(toggle).to_contain_text("1 page")
    toggle.click()
    expect(panel.locator(".visit-page-title")).to_have_text([LONG_TITLE])
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert_clean(op)
