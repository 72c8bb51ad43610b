"""The operator console in a real browser, against a live server, with a real visitor widget.

An operator signs in through the login form; a visitor (a second browser context) chats from the
demo dealership page. The demo page is served to the visitor's browser as ``http://dealer.test``
(Playwright routing; nothing listens there), while the widget comes from the server at 127.0.0.1,
so the host page and the chat iframe are cross-site as on a client's site.

Uses the shared ``live_server`` fixture; this module overrides ``server_env`` so that the server
starts with ``CONFIDE_DEMO_SITE_KEY`` set to a site seeded into the module's database first.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from confide.testing import Account, LiveServer

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CONFIDE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    # dealer.test is served by Playwright, so Chrome deems it public, and a public page may not
    # reach a loopback server. In production both ends are public and these checks never apply.
    "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests",
]
HOST = "http://dealer.test"  # the client's site, as the visitor's browser sees it
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}
ORG = "Demo Motors"
SITE = "Main Street"
XSS = '<img src=x onerror="window.__xss=1;alert(1)"><script>window.__xss=2</script>'

T = TypeVar("T")

if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)


@dataclass
class Seed:
    key: str
    site_id: str
    operator: Account


def off_loop(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh thread: the seeding helpers use asyncio.run, which cannot run in a
    thread where a Playwright sync API (an event loop) is already active."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result()


@pytest.fixture(scope="module")
def seed(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Seed:
    """The organisation, site and operator, created before the server starts."""
    helper = LiveServer(database_url, tmp_path_factory.mktemp("seed"))

    def make() -> Seed:
        org = helper.create_org(ORG)
        key, site_id = helper.create_site(org, SITE, [HOST])
        operator = helper.create_user("operator", sites=[site_id], name="Olivia Operator")
        return Seed(key, site_id, operator)

    return off_loop(make)


@pytest.fixture(scope="module")
def server_env(seed: Seed) -> dict[str, str]:
    return {"CONFIDE_DEMO_SITE_KEY": seed.key}


@pytest.fixture(scope="module")
def browser(live_server: LiveServer, seed: Seed) -> Iterator[Any]:
    # Module-scoped on purpose: closed when this module ends, so another module can start its own
    # (two sync Playwright instances cannot be active in one thread).
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Watched:
    """A page that records script errors and dialogs: an XSS would show up in one of them."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))

        def on_dialog(d: Any) -> None:
            self.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", on_dialog)


@pytest.fixture
def contexts(browser: Any) -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for ctx in made:
        ctx.close()


@pytest.fixture
def operator_page(
    browser: Any, contexts: list[Any], live_server: LiveServer, seed: Seed
) -> Callable[..., Watched]:
    """A signed-in operator console (through the real login form)."""

    def make(viewport: dict[str, int] = DESKTOP) -> Watched:
        ctx = browser.new_context(viewport=viewport)
        contexts.append(ctx)
        w = Watched(ctx.new_page())
        page = w.page
        page.goto(live_server.url + "/console")
        expect(page).to_have_url(re.compile(r"/console/login$"))
        page.get_by_label("Email").fill(seed.operator.email)
        page.get_by_label("Password").fill(seed.operator.password)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/console$"))
        expect(page.locator("#conn-status")).to_have_text("Connected")
        return w

    return make


@pytest.fixture
def visitor_page(
    browser: Any, contexts: list[Any], live_server: LiveServer
) -> Callable[[], Watched]:
    """A new visitor on the demo dealership page (served as HOST)."""

    def make() -> Watched:
        ctx = browser.new_context(viewport=DESKTOP)
        contexts.append(ctx)

        def serve_demo(route: Any) -> None:
            path = route.request.url[len(HOST) :] or "/"
            response = route.fetch(url=live_server.url + path)
            headers = dict(response.headers)
            csp = headers.get("content-security-policy", "")
            for directive in ("script-src", "frame-src"):
                csp = csp.replace(directive, f"{directive} {live_server.url}")
            headers["content-security-policy"] = csp
            route.fulfill(response=response, headers=headers)

        ctx.route(HOST + "/**", serve_demo)
        return Watched(ctx.new_page())

    return make


def chat_frame(page: Any, timeout: float = 10) -> Any:
    """The widget iframe (inside a closed shadow root, so found through the frame tree)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for f in page.frames:
            if "/widget/frame" in f.url and not f.is_detached():
                f.wait_for_selector("body[data-site]", state="attached")
                return f
        time.sleep(0.05)
    raise AssertionError("the widget iframe never appeared")


def visitor_says(visitor: Watched, text: str) -> Any:
    """Open the widget on the demo page and send ``text``; returns the chat frame."""
    visitor.page.goto(HOST + "/demo/")
    frame = chat_frame(visitor.page)
    visitor.page.evaluate("Confide.open()")
    frame.wait_for_selector("#status.on")  # an operator is online: the chat view, not the form
    frame.fill("#text", text)
    frame.press("#text", "Enter")
    return frame


def waiting_item(page: Any, text: str) -> Any:
    return page.locator("#waiting-list .conv-li", has_text=text)


def open_pane(page: Any) -> Any:
    return page.locator(".pane:not([hidden])")


def assert_clean(*pages: Watched) -> None:
    for w in pages:
        assert w.errors == [], w.errors
        assert w.dialogs == [], w.dialogs
        assert w.page.evaluate("window.__xss") is None
        for frame in w.page.frames:
            assert frame.evaluate("window.__xss") is None


# ---- tests -------------------------------------------------------------------------------------


def test_new_chat_appears_live_and_operator_replies(
    operator_page: Callable[..., Watched], visitor_page: Callable[[], Watched]
) -> None:
    op = operator_page()
    page = op.page
    expect(page.locator(".topbar")).to_contain_text("Olivia Operator")
    expect(page.locator(".topbar")).to_contain_text("Operator")

    visitor = visitor_page()
    frame = visitor_says(visitor, "Is the red Golf still available? #live")

    # Appears without a reload, saying plainly which organisation and site it belongs to.
    item = waiting_item(page, "#live")
    expect(item).to_be_visible()
    expect(item).to_contain_text(ORG)
    expect(item).to_contain_text(SITE)
    expect(item.locator('[data-slot="unread"]')).to_have_text("1")
    expect(page).to_have_title(re.compile(r"^\(\d+\) "))

    item.locator(".conv-item").click()
    pane = open_pane(page)
    expect(pane.locator(".pane-head")).to_contain_text(ORG)
    expect(pane.locator(".pane-head")).to_contain_text(SITE)
    expect(pane.locator('[role="log"]')).to_contain_text("Is the red Golf still available? #live")
    expect(item.locator('[data-slot="unread"]')).to_be_hidden()  # seen in the focused pane

    pane.get_by_role("button", name="Accept chat").click()
    expect(item).to_have_count(0)  # left the waiting list...
    mine = page.locator("#mine-list .conv-li", has_text="#live")
    expect(mine).to_be_visible()  # ...and is now one of mine
    composer = pane.get_by_role("textbox", name=re.compile("^Reply to"))
    expect(composer).to_be_focused()

    composer.fill("Hello! Yes, it is.")
    composer.press("Shift+Enter")
    composer.press_sequentially("Would you like a test drive?")
    composer.press("Enter")
    expect(composer).to_have_value("")
    agent_bubble = pane.locator(".msg-agent:not(.msg-pending) .msg-bubble").last
    expect(agent_bubble).to_have_text("Hello! Yes, it is.\nWould you like a test drive?")
    expect(pane.locator("li[data-pending]")).to_have_count(0)  # acked

    # The visitor sees the reply.
    expect(frame.locator("#msgs")).to_contain_text("Would you like a test drive?")

    # The visitor typing shows in the pane; their reply arrives live.
    frame.locator("#text").press_sequentially("Yes please")
    expect(pane.locator('[data-slot="typing"]')).to_have_text("Visitor is typing…")
    frame.press("#text", "Enter")
    expect(pane.locator(".msg-visitor .msg-bubble").last).to_have_text("Yes please")
    assert_clean(op, visitor)


def test_xss_payload_from_visitor_and_operator_is_only_text(
    operator_page: Callable[..., Watched], visitor_page: Callable[[], Watched]
) -> None:
    op = operator_page()
    page = op.page
    visitor = visitor_page()
    frame = visitor_says(visitor, XSS)

    item = waiting_item(page, "window.__xss=2")
    expect(item).to_be_visible()
    expect(item.locator('[data-slot="preview"]')).to_have_text(XSS)  # the list preview, as text
    item.locator(".conv-item").click()
    pane = open_pane(page)
    expect(pane.locator(".msg-visitor .msg-bubble").last).to_have_text(XSS)
    pane.get_by_role("button", name="Accept chat").click()
    composer = pane.get_by_role("textbox", name=re.compile("^Reply to"))
    composer.fill(XSS)
    composer.press("Enter")
    expect(pane.locator(".msg-agent:not(.msg-pending) .msg-bubble").last).to_have_text(XSS)
    expect(frame.locator("#msgs")).to_contain_text("window.__xss=2")

    assert page.locator("#console-app img, #console-app script").count() == 0
    page.wait_for_timeout(300)  # give any injected handler a chance to fire
    assert_clean(op, visitor)


def test_reload_restores_open_chats_without_duplicates(
    operator_page: Callable[..., Watched], visitor_page: Callable[[], Watched]
) -> None:
    op = operator_page()
    page = op.page
    visitor = visitor_page()
    frame = visitor_says(visitor, "First question #reload")
    waiting_item(page, "#reload").locator(".conv-item").click()
    pane = open_pane(page)
    pane.get_by_role("button", name="Accept chat").click()
    composer = pane.get_by_role("textbox", name=re.compile("^Reply to"))
    for i in range(3):
        composer.fill(f"Answer {i}")
        composer.press("Enter")
    expect(pane.locator("li.msg[data-seq]")).to_have_count(4)
    expect(pane.locator("li[data-pending]")).to_have_count(0)
    conversation_id = pane.get_attribute("data-id")

    page.reload()
    expect(page.locator("#conn-status")).to_have_text("Connected")
    pane = page.locator(f"#pane-{conversation_id}")
    expect(pane).to_be_visible()  # the open pane came back (sessionStorage) and re-joined
    expect(pane.locator("li.msg[data-seq]")).to_have_count(4)
    seqs = pane.locator("li.msg[data-seq]").evaluate_all("els => els.map(e => +e.dataset.seq)")
    assert seqs == [1, 2, 3, 4]

    frame.fill("#text", "Still there? #reload")
    frame.press("#text", "Enter")
    expect(pane.locator("li.msg[data-seq]")).to_have_count(5)
    assert_clean(op, visitor)


def test_closing_a_chat_removes_it_from_my_chats(
    operator_page: Callable[..., Watched], visitor_page: Callable[[], Watched]
) -> None:
    op = operator_page()
    page = op.page
    visitor = visitor_page()
    visitor_says(visitor, "Quick one #close")
    waiting_item(page, "#close").locator(".conv-item").click()
    pane = open_pane(page)
    pane.get_by_role("button", name="Accept chat").click()
    mine = page.locator("#mine-list .conv-li", has_text="#close")
    expect(mine).to_be_visible()

    close = pane.locator('[data-slot="close-conv"]')
    expect(close).to_have_text("Close chat")
    close.click()
    expect(close).to_have_text("Click again to close")  # two steps: no accidental closes
    close.click()
    expect(mine).to_have_count(0)
    expect(pane.locator('[data-slot="locked"]')).to_contain_text("closed")
    assert_clean(op, visitor)


def test_phone_stacks_the_list_and_the_pane(
    operator_page: Callable[..., Watched], visitor_page: Callable[[], Watched]
) -> None:
    op = operator_page(PHONE)
    page = op.page
    visitor = visitor_page()
    visitor_says(visitor, "Hello from a phone test #phone")
    item = waiting_item(page, "#phone")
    expect(item).to_be_visible()
    expect(page.locator(".workspace")).to_be_hidden()

    item.locator(".conv-item").click()
    pane = open_pane(page)
    expect(pane).to_be_visible()
    expect(page.locator(".sidebar")).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    pane.get_by_role("button", name="Chats").click()
    expect(page.locator(".sidebar")).to_be_visible()
    expect(item.locator(".conv-item")).to_be_focused()
    assert_clean(op, visitor)
