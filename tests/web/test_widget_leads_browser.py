"""The visitor's side of lead capture in the widget, in a real browser: the consent question,
the card-number notice, the rating after a chat, the contact-details form and the offline form's
consent box.

The operator works through the console's HTTP API (``Console``: a signed-in client with the CSRF
header); a console socket held open by ``online`` is what makes the team show as online. Every
state shown in the widget comes from a server frame, so once the widget shows it the server has
committed it and the API can be asked straight away.

Set ``CONFIDE_SHOTS`` to a directory to save screenshots of each state (desktop and phone).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from confide.testing import session_cookie
from tests.leads.helpers import Console, SmtpSink
from tests.web.browser_support import (
    PHONE,
    Demo,
    Watched,
    chat_frame,
    click_launcher,
    demo_server,
    require_chromium,
    send,
)

require_chromium()
websockets_sync = pytest.importorskip("websockets.sync.client")
from playwright.sync_api import expect  # noqa: E402  (after the skip: Playwright may be absent)

pytestmark = pytest.mark.browser

POLICY = "https://dealer.test/privacy"
SHOTS = os.environ.get("CONFIDE_SHOTS")
GRANTED = "You agreed to share your details with Main Street"
DENIED = "You chose not to share your details. You can keep chatting."
CARD_NOTE = "We removed a card number from your message. Please never share card details in chat."
ENQUIRY_CONSENT = "I agree that Main Street may contact me about my enquiry and receive my details"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpSink) -> Iterator[Demo]:
    def with_policy(d: Demo) -> None:
        d.server.env["CONFIDE_SMTP_PORT"] = str(smtp.port)  # transcripts by email
        # No service sets a site's policy link yet: write it before the server starts.
        path = d.server.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as db:
            db.execute("UPDATE sites SET privacy_policy_url = ? WHERE id = ?", (POLICY, d.site_id))

    with demo_server(tmp_path_factory.mktemp("leads"), prepare=with_policy) as d:
        yield d


@pytest.fixture(scope="module")
def console(demo: Demo) -> Iterator[Console]:
    c = Console(demo.server, demo.operator)
    yield c
    c.close()


@pytest.fixture
def online(demo: Demo, console: Console) -> Iterator[None]:
    """The operator's console socket is open, so the widget offers the chat."""
    with websockets_sync.connect(
        demo.server.ws_url + "/ws/console?v=1",
        origin=demo.server.url,
        additional_headers={"Cookie": f"confide_session={session_cookie(console.http)}"},
    ) as ws:
        ws.send(json.dumps({"type": "hello", "v": 1}))
        assert json.loads(ws.recv(timeout=10))["type"] == "welcome"

        def drain() -> None:  # read every frame, so the server never sees a slow client
            try:
                for _ in ws:
                    pass
            except Exception:  # closed at the end of the test
                return

        threading.Thread(target=drain, daemon=True).start()
        yield


# ---- helpers -----------------------------------------------------------------------------------


def shoot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"widget-{name}.png"))


def start_chat(visitor: Watched, demo: Demo, text: str) -> tuple[Any, str]:
    """Open the panel and send ``text``; returns (the chat frame, the conversation id)."""
    page = visitor.page
    page.goto(demo.host + "/demo/used-cars")
    frame = chat_frame(page)
    click_launcher(page)
    expect(frame.locator("#status")).to_have_class(re.compile(r"\bon\b"))
    send(frame, text)
    expect(frame.locator("#msgs .visitor .tick").last).to_have_text("Sent")
    return frame, conversation_id(frame)


def conversation_id(frame: Any) -> str:
    """The conversation the widget holds (its session state in the iframe's storage)."""
    return str(
        frame.evaluate(
            "JSON.parse(sessionStorage.getItem('confide:' + document.body.dataset.site)).conv.id"
        )
    )


def ask_consent(console: Console, cid: str) -> dict[str, Any]:
    asked = console.post(f"/api/conversations/{cid}/consent-request")
    assert asked.status_code == 200, asked.text
    return dict(asked.json())


def consent_answer(console: Console, cid: str) -> str | None:
    panel = console.get(f"/api/conversations/{cid}/lead-panel")
    assert panel.status_code == 200, panel.text
    return panel.json()["consent"]["answer"]  # type: ignore[no-any-return]


def consent_frames_sent(page: Any) -> list[dict[str, Any]]:
    """Records every consent frame the page's sockets send (iframes included)."""
    sent: list[dict[str, Any]] = []

    def watch(ws: Any) -> None:
        def on_frame(payload: str | bytes) -> None:
            frame = json.loads(payload)
            if frame.get("type") == "consent":
                sent.append(frame)

        ws.on("framesent", on_frame)

    page.on("websocket", watch)
    return sent


# ---- tests -------------------------------------------------------------------------------------


def test_consent_is_given_and_withdrawn_with_one_click_each_and_survives_a_reload(
    visitor_page: Callable[..., Watched], demo: Demo, console: Console, online: None
) -> None:
    visitor = visitor_page()
    page = visitor.page
    sent = consent_frames_sent(page)
    frame, cid = start_chat(visitor, demo, "Hello, is the Golf still available?")

    request = ask_consent(console, cid)["request"]
    card = frame.get_by_role("group", name="Sharing your details")
    expect(card).to_contain_text(request["text"])
    policy = card.get_by_role("link", name="Privacy policy")
    expect(policy).to_have_attribute("href", POLICY)
    expect(policy).to_have_attribute("target", "_blank")
    expect(policy).to_have_attribute("rel", "noopener")
    # The question is shown once, as the card, not also as a plain line.
    expect(frame.locator("#msgs .bubble", has_text=request["text"])).to_be_hidden()
    shoot(page, "consent-card-desktop")

    card.get_by_role("button", name="Yes, share my details").click()
    expect(card).to_contain_text(GRANTED)
    expect(frame.locator("#consent-live")).to_have_text(GRANTED)
    assert consent_answer(console, cid) == "granted"
    expect(card.get_by_role("button", name="Withdraw")).to_be_visible()
    shoot(page, "consent-granted-desktop")

    # After a reload the server says it again (the stored copy is dropped to prove it).
    frame.evaluate(
        """() => { const k = 'confide:' + document.body.dataset.site;
                   const s = JSON.parse(sessionStorage.getItem(k)); delete s.consent;
                   sessionStorage.setItem(k, JSON.stringify(s)); }"""
    )
    page.reload()
    frame = chat_frame(page, not_this=frame)
    card = frame.get_by_role("group", name="Sharing your details")
    expect(card).to_contain_text(GRANTED)

    card.get_by_role("button", name="Withdraw").click()
    expect(card).to_contain_text("You withdrew your consent")
    expect(card.get_by_role("button", name="Withdraw")).to_be_hidden()
    assert consent_answer(console, cid) == "withdrawn"
    answers = [f["answer"] for f in sent]
    assert answers == ["granted", "withdrawn"]  # one click, one frame, each way
    assert {f["request"] for f in sent} == {request["id"]}
    assert visitor.errors == []


def test_the_consent_question_comes_into_view_in_a_long_chat(
    visitor_page: Callable[..., Watched], demo: Demo, console: Console, online: None
) -> None:
    """Asked after the transcript scrolls: the card is scrolled to, and the transcript still
    follows the messages after it (it once stayed put, hiding both)."""
    visitor = visitor_page()
    frame, cid = start_chat(visitor, demo, "Question 1 about the Golf")
    for n in range(2, 13):
        send(frame, f"Question {n} about the Golf")
    expect(frame.locator("#msgs .visitor .tick").nth(11)).to_have_text("Sent")
    ask_consent(console, cid)
    card = frame.get_by_role("group", name="Sharing your details")
    expect(card.get_by_role("button", name="Yes, share my details")).to_be_in_viewport()
    send(frame, "And one more after the question")
    expect(frame.locator("#msgs .bubble", has_text="one more after")).to_be_in_viewport()
    assert visitor.errors == []


def test_declining_keeps_the_chat_working_and_card_numbers_are_masked(
    visitor_page: Callable[..., Watched], demo: Demo, console: Console, online: None
) -> None:
    visitor = visitor_page(PHONE)
    page = visitor.page
    frame, cid = start_chat(visitor, demo, "Can I book a test drive?")
    ask_consent(console, cid)
    card = frame.get_by_role("group", name="Sharing your details")
    expect(card.get_by_role("button", name="No thanks")).to_be_visible()
    shoot(page, "consent-card-phone")

    card.get_by_role("button", name="No thanks").click()
    expect(frame.locator("#consent-state")).to_have_text(DENIED)
    assert consent_answer(console, cid) == "denied"

    send(frame, "Saturday morning works for me")
    expect(frame.locator("#msgs .visitor .tick").last).to_have_text("Sent")
    send(frame, "My card is 4111 1111 1111 1111 for the deposit")
    masked = frame.locator("#msgs .msg.visitor").last
    expect(masked.locator(".bubble")).to_have_text(
        "My card is [card number removed] for the deposit"
    )
    expect(masked.locator(".msg-note")).to_have_text(CARD_NOTE)
    shoot(page, "card-notice-phone")

    texts = [m["text"] for m in console.get(f"/api/conversations/{cid}").json()["messages"]]
    assert "Saturday morning works for me" in texts
    assert not any("4111" in t for t in texts)
    assert visitor.errors == []


def test_rating_after_the_chat_is_closed(
    visitor_page: Callable[..., Watched],
    demo: Demo,
    console: Console,
    online: None,
    smtp: SmtpSink,
) -> None:
    visitor = visitor_page()
    page = visitor.page
    frame, cid = start_chat(visitor, demo, "Thanks for the help earlier")
    send(frame, "My card is 4111 1111 1111 1111")
    expect(frame.locator("#msgs .msg.visitor").last.locator(".msg-note")).to_have_text(CARD_NOTE)
    shoot(page, "card-notice-desktop")

    closed = console.post(f"/api/conversations/{cid}/close")
    assert closed.status_code == 200, closed.text
    rating = frame.get_by_role("radiogroup", name="How was your chat?")
    expect(rating).to_be_visible()
    # Keyboard only: the stars are a radio group, so arrows move the choice.
    one = rating.get_by_role("radio", name="1 star")
    one.focus()
    expect(one).to_be_focused()
    page.keyboard.press("Space")
    expect(one).to_be_checked()
    for stars in ("2 stars", "3 stars", "4 stars"):
        page.keyboard.press("ArrowRight")
        expect(rating.get_by_role("radio", name=stars)).to_be_checked()
    frame.get_by_label("Anything to add? (optional)").fill("Quick and friendly")
    shoot(page, "rating-desktop")
    frame.get_by_role("button", name="Send", exact=True).click()
    expect(frame.get_by_text("Thank you for your feedback.")).to_be_visible()
    expect(rating).to_be_hidden()

    conv = console.get(f"/api/conversations/{cid}").json()["conversation"]
    assert conv["rating"] == {"score": 4, "comment": "Quick and friendly"}

    # A copy of the chat by email, on request: a bad address is refused inline, then it goes.
    before = len(smtp.messages)
    address = frame.get_by_label("Email me a copy of this chat")
    address.fill("ann at example")
    frame.get_by_role("button", name="Send copy").click()
    expect(frame.locator("#transcript-error")).to_contain_text("Please enter your email address")
    expect(address).to_be_focused()
    address.fill("ann@example.org")
    address.press("Enter")
    expect(frame.get_by_text("We've sent a copy to ann@example.org.")).to_be_visible()
    shoot(page, "transcript-sent-desktop")
    mail = smtp.messages[before]
    assert mail["To"] == "ann@example.org"
    assert "Thanks for the help earlier" in mail.get_content()
    assert "4111" not in mail.get_content()  # the card number was masked before it was stored
    assert visitor.errors == []


def within_phone(locator: Any) -> None:
    box = locator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]


def test_consent_and_rating_fit_a_phone(
    visitor_page: Callable[..., Watched], demo: Demo, console: Console, online: None
) -> None:
    visitor = visitor_page(PHONE)
    frame, cid = start_chat(visitor, demo, "Just browsing, thanks")
    ask_consent(console, cid)
    card = frame.get_by_role("group", name="Sharing your details")
    card.get_by_role("button", name="Yes, share my details").click()
    expect(card.get_by_role("button", name="Withdraw")).to_be_visible()
    within_phone(card)
    shoot(visitor.page, "consent-granted-phone")

    assert console.post(f"/api/conversations/{cid}/close").status_code == 200
    rating = frame.get_by_role("radiogroup", name="How was your chat?")
    rating.get_by_role("radio", name="5 stars").click()  # on the star itself
    expect(rating.get_by_role("radio", name="5 stars")).to_be_checked()
    within_phone(frame.locator("#rate"))
    within_phone(frame.locator("#transcript"))
    shoot(visitor.page, "rating-phone")


def test_visitor_shares_details_and_sees_server_errors_inline(
    visitor_page: Callable[..., Watched], demo: Demo, console: Console, online: None
) -> None:
    visitor = visitor_page()
    frame, cid = start_chat(visitor, demo, "Please call me about the Octavia")
    frame.get_by_role("button", name="Share my contact details").click()
    frame.get_by_label("Name", exact=True).fill("Sam Example")
    frame.get_by_label("Phone", exact=True).fill(
        "123456"
    )  # looks like a number; the server knows better
    frame.get_by_role("button", name="Share details").click()
    expect(frame.locator("#d-phone-error")).to_contain_text("phone number is not valid")
    expect(frame.get_by_label("Phone", exact=True)).to_be_focused()
    shoot(visitor.page, "details-error-desktop")

    frame.get_by_label("Phone", exact=True).fill("+44 7400 123456")
    frame.get_by_role("button", name="Share details").click()
    expect(frame.get_by_text("Thanks — the team can now contact you.")).to_be_visible()
    shoot(visitor.page, "details-saved-desktop")
    person = console.get(f"/api/conversations/{cid}/lead-panel").json()["person"]
    assert person["name"] == "Sam Example"
    assert person["phone"] == "+447400123456"
    frame.get_by_role("button", name="Back to chat").click()
    expect(frame.get_by_role("button", name="Share my contact details")).to_be_focused()


def test_offline_enquiry_sends_the_consent_box_and_its_words(
    visitor_page: Callable[..., Watched], demo: Demo
) -> None:
    visitor = visitor_page()
    page = visitor.page
    bodies: list[dict[str, Any]] = []

    def record(route: Any) -> None:
        bodies.append(json.loads(route.request.post_data or "{}"))
        route.continue_()

    visitor.context.route(re.compile(r"/api/widget/enquiry$"), record)
    page.goto(demo.host + "/demo/contact")
    frame = chat_frame(page)
    click_launcher(page)
    box = frame.get_by_role("checkbox", name=ENQUIRY_CONSENT)
    expect(box).not_to_be_checked()  # unticked until the visitor ticks it
    frame.get_by_label("Your name").fill("Alex Driver")
    frame.get_by_label("Email or phone").fill("alex@example.com")
    frame.get_by_role("textbox", name="Message", exact=True).fill("Is the Tesla still available?")
    box.check()
    shoot(page, "enquiry-consent-desktop")
    frame.get_by_role("button", name="Send message").click()
    expect(frame.get_by_text("Thanks — we'll get back to you")).to_be_visible()
    assert len(bodies) == 1
    assert bodies[0]["consent"] is True
    assert bodies[0]["consent_text"] == ENQUIRY_CONSENT
