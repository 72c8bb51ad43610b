"""The console's lead panel and Deliveries page in a real browser, against a live server.

The operator is the real console page; the visitor speaks protocol v1 (``tests/chat/helpers``)
from its own event loop in a background thread: the Playwright sync API owns this thread's loop,
and the visitor's socket must stay open across several steps (it answers the consent question),
so a one-shot ``off_loop`` call per step would not do.

No destinations exist until the last test adds one, so a consented lead is delivered to the
portal directly ("Delivered") in the first test. Set ``CONFIDE_SHOTS=/some/dir`` to also save
desktop (1280 x 800) and phone (360 x 740) screenshots of the panel and the page.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from confide.testing import ws_connect
from tests.chat.helpers import Peer, client_id
from tests.web.browser_support import (
    DESKTOP,
    PHONE,
    Demo,
    Watched,
    assert_clean,
    off_loop,
    require_chromium,
)

require_chromium()
expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser

T = TypeVar("T")
SHOTS = os.environ.get("CONFIDE_SHOTS")
STEP_TIMEOUT_S = 15  # one protocol step (connect, send + ack, wait for a frame)


class Visitor:
    """A visitor on the demo site, speaking protocol v1 from a loop in its own thread."""

    def __init__(self, demo: Demo, *, gpc: bool = False) -> None:
        self.demo = demo
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.peer: Peer = self._run(self._connect(gpc))
        self.conversation = ""

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(STEP_TIMEOUT_S)

    async def _connect(self, gpc: bool) -> Peer:
        url = f"{self.demo.server.ws_url}/ws/widget?v=1&site={self.demo.key}"
        peer = Peer(await ws_connect(url, origin=self.demo.host))
        hello: dict[str, Any] = {"type": "hello", "v": 1, "host": self.demo.host}
        if gpc:
            hello["signals"] = {"gpc": True}  # the browser sends Global Privacy Control
        await peer.send(**hello)
        await peer.expect("welcome")
        return peer

    def open(self) -> str:
        async def go() -> str:
            await self.peer.send(type="open", ref="open")
            frame = await self.peer.expect("conversation", ref="open")
            return str(frame["conversation"]["id"])

        self.conversation = self._run(go())
        return self.conversation

    def say(self, text: str) -> None:
        async def go() -> None:
            cid = client_id()
            await self.peer.send(
                type="send", conversation=self.conversation, client_id=cid, text=text
            )
            await self.peer.expect("ack", client_id=cid)

        self._run(go())

    def close_chat(self) -> None:
        async def go() -> None:
            await self.peer.send(type="close", conversation=self.conversation, ref="close")
            await self.peer.expect("conversation", ref="close")

        self._run(go())

    def consent_question(self) -> dict[str, Any]:
        """Wait for the consent question the operator asked in this chat."""

        async def go() -> dict[str, Any]:
            frame = await self.peer.expect("consent", timeout=10, conversation=self.conversation)
            return dict(frame["request"])

        return self._run(go())

    def answer(self, request_id: str, answer: str) -> None:
        async def go() -> None:
            await self.peer.send(
                type="consent",
                conversation=self.conversation,
                request=request_id,
                answer=answer,
                ref="answer",
            )
            await self.peer.expect("consent", ref="answer")

        self._run(go())

    def stop(self) -> None:
        try:
            self._run(self.peer.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(STEP_TIMEOUT_S)
            self.loop.close()


@pytest.fixture
def visitor(demo: Demo) -> Iterator[Callable[..., Visitor]]:
    made: list[Visitor] = []

    def make(*, gpc: bool = False) -> Visitor:
        v = Visitor(demo, gpc=gpc)
        made.append(v)
        return v

    yield make
    for v in made:
        v.stop()


def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"console-{name}.png"))


def open_waiting(page: Any, cid: str) -> Any:
    """Open a waiting chat from the queue and accept it; returns its pane."""
    page.locator(f'#waiting-list .conv-li[data-id="{cid}"] .conv-item').click()
    pane = page.locator(f"#pane-{cid}")
    pane.get_by_role("button", name="Accept chat").click()
    expect(pane.locator(".pane-status")).to_contain_text("You are handling this chat")
    return pane


# ---- tests -------------------------------------------------------------------------------------


def test_details_from_chat_consent_and_a_delivered_lead(
    operator_page: Callable[..., Watched], visitor: Callable[..., Visitor]
) -> None:
    op = operator_page()
    page = op.page
    v = visitor()
    cid = v.open()
    v.say("I'm Sam, sam@example.org, 07400 123456")

    pane = open_waiting(page, cid)
    lead = pane.locator(".lead-panel")
    expect(lead.get_by_role("button", name=re.compile(r"^Lead\b"))).to_have_attribute(
        "aria-expanded", "true"
    )
    suggestions = lead.locator(".lp-suggestion")
    expect(suggestions).to_have_count(2)
    expect(lead.locator(".lp-suggest")).to_contain_text("Detected in chat")

    # One click each: saved, and shown in the form in the server's normalised form.
    lead.get_by_role("button", name="Use email sam@example.org").click()
    expect(lead.get_by_label("Email", exact=True)).to_have_value("sam@example.org")
    expect(suggestions).to_have_count(1)
    lead.get_by_role("button", name="Use phone +447400123456").click()
    expect(lead.get_by_label("Phone", exact=True)).to_have_value("+447400123456")
    expect(lead.locator(".lp-suggest")).to_be_hidden()

    lead.get_by_label("Name", exact=True).fill("Sam Example")
    lead.get_by_role("button", name="Save details").click()
    expect(lead.locator('[data-lslot="details-msg"]')).to_have_text("Details saved.")
    # The chat is named after the visitor now: header, list and their lines in the transcript.
    expect(pane.locator('[data-slot="visitor"]')).to_have_text("Sam Example")
    expect(pane.locator(".msg-visitor .msg-author").first).to_have_text("Sam Example")
    expect(page.locator("#mine-list .conv-li", has_text="Sam Example")).to_be_visible()
    lead.get_by_text("Change history").click()
    history = lead.locator(".lp-change")
    expect(history).to_have_count(3)
    expect(history.first).to_contain_text("Sam Example")
    expect(history.first).to_contain_text("Olivia Operator")

    # Consent is asked in the chat; the visitor's answer shows live.
    consent = lead.locator('[data-lslot="consent-text"]')
    expect(consent).to_have_text("Not asked")
    lead.get_by_role("button", name="Ask for consent").click()
    expect(consent).to_have_text("Asked — waiting for the visitor")
    question = v.consent_question()
    assert question["text"].startswith("May we pass your name")
    v.answer(question["id"], "granted")
    expect(consent).to_have_text(re.compile(r"^Agreed at "))
    expect(lead.get_by_role("button", name="Ask for consent")).to_be_hidden()

    # A test-drive lead: with consent and no destinations, delivered to the portal at once.
    expect(lead.locator(".lp-empty")).to_have_text("No lead from this chat yet.")
    lead.get_by_label("Purpose", exact=True).select_option(label="Test drive")
    lead.get_by_label("Make", exact=True).fill("Skoda")
    lead.get_by_label("Model", exact=True).fill("Octavia")
    lead.get_by_label("Year", exact=True).fill("2021")
    lead.get_by_label("New or used", exact=True).select_option(label="Used")
    lead.get_by_label("Part-exchange Make", exact=True).fill("Ford")
    lead.get_by_label("Part-exchange Model", exact=True).fill("Focus")
    lead.get_by_role("button", name="Create lead").click()
    item = lead.locator(".lp-lead")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Test drive")
    expect(item.locator(".lp-delivery")).to_have_text("Delivered")
    expect(item).to_contain_text("Vehicle: 2021 Skoda Octavia · Used")
    expect(item).to_contain_text("Part-exchange: Ford Focus")
    expect(item.get_by_role("button", name="Send now")).to_be_hidden()
    expect(lead.locator('[data-lslot="create-msg"]')).to_contain_text("sees it in their portal")

    # The operator's own card number is masked by the server: the pane shows what was stored.
    composer = pane.get_by_role("textbox", name=re.compile("^Reply to"))
    composer.fill("Please don't send 4111 1111 1111 1111 here")
    composer.press("Enter")
    mine = pane.locator(".msg-agent:not(.msg-pending)").last
    expect(mine.locator(".msg-note")).to_have_text("A card number was removed from this message.")
    expect(mine.locator(".msg-bubble")).not_to_contain_text("4111 1111 1111 1111")

    lead.locator('[data-lslot="history-wrap"] summary').click()  # fold it for the picture
    shot(page, "lead-desktop")

    # On a phone the panels fold above the chat; the lead panel opens from its heading.
    page.set_viewport_size(PHONE)
    page.reload()
    pane = page.locator(f"#pane-{cid}")
    toggle = pane.locator(".lead-panel").get_by_role("button", name=re.compile(r"^Lead\b"))
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_contain_text("Sam Example · Agreed")
    toggle.click()
    expect(pane.locator(".lp-lead .lp-delivery")).to_have_text("Delivered")
    shot(page, "lead-phone")
    page.set_viewport_size(DESKTOP)
    assert_clean(op)


def test_send_now_without_consent_and_a_returning_visitor(
    operator_page: Callable[..., Watched], visitor: Callable[..., Visitor]
) -> None:
    op = operator_page()
    page = op.page
    v = visitor(gpc=True)
    v.open()
    v.say("Just browsing the SUVs, thanks")
    v.close_chat()
    cid = v.open()  # the same visitor comes back
    v.say("Could you value my car? Jo here")

    pane = open_waiting(page, cid)
    lead = pane.locator(".lead-panel")
    expect(lead.get_by_text("GPC: do not sell/share")).to_be_hidden()  # no details yet

    earlier = lead.locator(".lp-earlier-item")
    expect(earlier).to_have_count(1)
    expect(earlier).to_contain_text("1 message")
    earlier.locator("summary").click()
    expect(earlier.locator(".lp-line-text")).to_have_text(["Just browsing the SUVs, thanks"])

    # The server's own words when it refuses a detail, next to the form.
    lead.get_by_label("Name", exact=True).fill("Jo")
    lead.get_by_label("Email", exact=True).fill("jo at example")
    lead.get_by_role("button", name="Save details").click()
    message = lead.locator('[data-lslot="details-msg"]')
    expect(message).to_contain_text("That email address is not valid")
    expect(lead.get_by_label("Email", exact=True)).to_have_attribute("aria-invalid", "true")
    lead.get_by_label("Email", exact=True).fill("jo@example.org")
    lead.get_by_role("button", name="Save details").click()
    expect(message).to_have_text("Details saved.")
    expect(lead.get_by_text("GPC: do not sell/share")).to_be_visible()

    lead.get_by_label("Purpose", exact=True).select_option(label="Valuation")
    lead.get_by_label("Comments", exact=True).fill("Wants a price before Friday")
    lead.get_by_role("button", name="Create lead").click()
    item = lead.locator(".lp-lead")
    expect(item.locator(".lp-delivery")).to_have_text("Waiting for the visitor's consent")
    item.get_by_role("button", name="Send now").click()
    expect(item.locator(".lp-msg")).to_contain_text("has not consented")
    expect(item.locator(".lp-delivery")).to_have_text("Waiting for the visitor's consent")

    # The visitor turns out to be under age: details are redacted, the lead is never sent.
    lead.get_by_label("Visitor's stated age", exact=True).fill("14")
    lead.get_by_role("button", name="Record the visitor's stated age").click()
    expect(lead.locator('[data-lslot="age-msg"]')).to_contain_text(
        "details were redacted and no lead can be made"
    )
    expect(lead.locator(".lp-alert")).to_be_visible()
    expect(lead.get_by_label("Email", exact=True)).to_have_value("")
    expect(lead.get_by_label("Email", exact=True)).to_be_disabled()
    expect(item.locator(".lp-delivery")).to_have_text("Consent withdrawn — not sent")
    expect(lead.get_by_text("New lead")).to_be_hidden()
    assert_clean(op)


def test_deliveries_page(operator_page: Callable[..., Watched], demo: Demo) -> None:
    # A destination in the US: it receives this site's leads, but without personal data.
    off_loop(lambda: demo.server.service(_add_us_destination(demo.site_id)))

    op = operator_page()
    page = op.page
    page.get_by_role("link", name="Deliveries").click()
    expect(page).to_have_url(re.compile(r"/console/deliveries$"))
    expect(page.get_by_role("heading", name="Deliveries", level=1)).to_be_visible()
    expect(page.locator("#jobs-empty")).to_contain_text("No deliveries yet")

    page.get_by_role("button", name="Failed").click()
    expect(page.get_by_role("button", name="Failed")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#jobs-empty")).to_contain_text("No failed deliveries")
    expect(page).to_have_url(re.compile(r"/console/deliveries\?state=dead$"))

    card = page.locator(".dv-dest-card", has_text="US CRM")
    expect(card).to_contain_text("Webhook")
    expect(card).to_contain_text("https://crm.example.com/leads")
    expect(card.locator(".dv-warn")).to_contain_text(
        "Outside the EU/UK: receives leads without personal data"
    )
    shot(page, "deliveries-desktop")
    page.set_viewport_size(PHONE)
    expect(card).to_be_visible()
    shot(page, "deliveries-phone")
    assert_clean(op)


def _add_us_destination(site_id: str) -> Callable[[Any], Coroutine[Any, Any, object]]:
    async def add(ctx: Any) -> object:
        from confide.sites.models import Site
        from confide.storage.scope import Scope

        async with ctx.db.session(Scope.system(), read_only=True) as s:
            site = await s.get(Site, site_id)
        return await ctx.delivery_admin.add_destination(
            Scope.system(),
            organisation_id=site.organisation_id,
            site_id=site_id,
            kind="webhook",
            target="https://crm.example.com/leads",
            region="US",
            name="US CRM",
        )

    return add
