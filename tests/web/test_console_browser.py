"""The operator console in a real browser, against a live server, with a real visitor widget.

An operator signs in through the login form; a visitor (a second browser context) chats from the
demo dealership page. The demo page is served to the visitor's browser as ``http://dealer.test``
(Playwright routing; nothing listens there), while the widget comes from the server at 127.0.0.1,
so the host page and the chat iframe are cross-site as on a client's site.

Uses the shared ``live_server`` fixture (so it runs on every backend); this module overrides
``server_env`` so that the server starts with ``CONFIDE_DEMO_SITE_KEY`` set to a site seeded into
the module's database first, and ``demo`` so that the shared browser fixtures
(tests/web/conftest.py) use that server.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from confide.testing import LiveServer
from tests.web.browser_support import (
    HOST,
    ORG,
    PHONE,
    SITE,
    Demo,
    Watched,
    assert_clean,
    chat_frame,
    off_loop,
    require_chromium,
    seed_demo,
)

require_chromium()
expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser

XSS = '<img src=x onerror="window.__xss=1;alert(1)"><script>window.__xss=2</script>'


@pytest.fixture(scope="module")
def seed(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The organisation, site and operator, created before the server starts."""
    helper = LiveServer(database_url, tmp_path_factory.mktemp("seed"))
    return off_loop(lambda: seed_demo(helper))


@pytest.fixture(scope="module")
def server_env(seed: Demo) -> dict[str, str]:
    return {"CONFIDE_DEMO_SITE_KEY": seed.key}


@pytest.fixture(scope="module")
def demo(live_server: LiveServer, seed: Demo) -> Demo:
    return dataclasses.replace(seed, server=live_server)


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


def test_an_enquiry_is_answered_by_email_or_phone_not_in_the_chat(
    operator_page: Callable[..., Watched], demo: Demo
) -> None:
    """Left while nobody was online, the visitor is not in a chat: after Accept the console says
    how to answer and offers no reply box (a reply there would reach nobody)."""
    sent = httpx.post(
        f"{demo.server.url}/api/widget/enquiry",
        headers={"Origin": HOST},
        json={
            "site": demo.key,
            "host": HOST,
            "name": "Owen Offline",
            "contact": "owen@example.org",
            "message": "Call me about the Polo #enquiry",
        },
    )
    assert sent.status_code == 201, sent.text
    op = operator_page()
    page = op.page
    waiting_item(page, "#enquiry").locator(".conv-item").click()
    pane = open_pane(page)
    pane.get_by_role("button", name="Accept chat").click()
    expect(pane).to_contain_text("You took this enquiry. Answer the visitor by email or phone.")
    expect(pane.locator('[data-slot="locked"]')).to_contain_text("answer them by email or phone")
    expect(pane.locator('[data-slot="row"]')).to_be_hidden()
    assert_clean(op)


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


def test_client_staff_reach_their_leads_and_the_bar_fits_a_phone(
    operator_page: Callable[..., Watched], demo: Demo
) -> None:
    """Client staff have one more section (their leads, in the portal) than operators; on a
    360 px phone the sections scroll inside the bar instead of widening the page."""
    from confide.storage.scope import Scope

    site = off_loop(
        lambda: demo.server.service(lambda ctx: ctx.sites.get(Scope.system(), demo.site_id))
    )
    staff = off_loop(
        lambda: demo.server.create_user(
            "client", org=site.organisation_id, sites=[demo.site_id], name="Cara Client"
        )
    )
    phone = operator_page(PHONE, account=staff)
    nav = phone.page.get_by_role("navigation", name="Console")
    expect(nav.get_by_role("link", name="Reports")).to_be_attached()
    assert phone.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    expect(phone.page.get_by_role("button", name="Sign out")).to_be_in_viewport(ratio=1)

    desk = operator_page(account=staff)
    desk.page.get_by_role("navigation", name="Console").get_by_role("link", name="Leads").click()
    desk.page.wait_for_url("**/portal/leads")
    expect(desk.page.get_by_role("heading", level=1)).to_be_visible()
    assert_clean(phone, desk)
