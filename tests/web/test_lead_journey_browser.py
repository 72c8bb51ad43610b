"""The whole lead journey in three real browsers against one live server and a real SMTP server.

A visitor on the dealership's page asks a question in the widget and gives their details in
passing; the operator, signed in to the console, accepts the chat, confirms the detected details,
makes a test-drive lead and asks for consent; the visitor agrees in the widget; the lead is
emailed (with its ADF attachment) to the organisation's UK destination, which the client user set
up through the API; the client user then works the lead in the portal.

The steps are separate tests in file order, sharing one server and one browser context per
person (``Walk``), so that a bug in one step fails that step alone. A step whose earlier steps did
not finish is skipped. The site is in "notice" mode, so the visit (its page paths) is recorded:
that is what makes "the email carries nothing the visitor did not agree to share" a real check.

The SMTP server holds each message until the test releases it (``HeldSmtp``), as a real mail
server is slower than the console: the operator sees "Sending…" first, deterministically. That is
what checks that the worker tells the console when the delivery finished
(``test_5_operator_sees_the_lead_delivered_live``): the panel turns "Delivered" without a reload.

Set ``CONFIDE_SHOTS=/some/dir`` to save a screenshot of each person's view at steps 3 to 6
(``journey-3-operator.png`` …).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from confide.delivery.adf import ADF_MIME, validate_adf
from confide.leads.consent import DEFAULT_TEXT
from confide.storage.scope import Scope
from confide.testing import Account
from tests.leads.helpers import Console, SmtpSink
from tests.web.browser_support import (
    DESKTOP,
    SITE,
    Demo,
    Watched,
    assert_clean,
    chat_frame,
    click_launcher,
    demo_server,
    new_visitor,
    require_chromium,
    send,
    sign_in,
)

require_chromium()
expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("CONFIDE_SHOTS")
POLICY_URL = "https://dealer.test/privacy"
POLICY_VERSION = "2025-03"
DESTINATION = "sales@demo-motors.example"
PAGE = "/demo/used-cars"  # where the visitor chats from: a page path, recorded with the visit

NAME = "Sam Example"
EMAIL = "sam.example@example.org"
PHONE_TYPED = "07400 123456"
PHONE = "+447400123456"  # as the server normalises it (the site is in GB)
QUESTION = (
    f"Hi, is the Skoda Octavia still available for a test drive on Saturday? "
    f"I'm {NAME}, {EMAIL} or {PHONE_TYPED}"
)
CONSENT_TEXT = DEFAULT_TEXT.replace("{site}", SITE)
MAIL_WAIT_S = 15  # the worker is woken on commit; retries back off from 0.2 s
#: The server does not count headless Chromium's own User-Agent (a bot): the visitor's browser
#: says what an ordinary Chrome says, so that its visit is recorded.
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
#: Longest the mail server holds a message before answering; below smtplib's 10 s timeout, so an
#: unreleased hold can never make the worker resend.
HOLD_S = 8


# ---- the server, the people and the walk they share ---------------------------------------------


class _Held:
    """An aiosmtpd handler that answers DATA only once released (or after ``HOLD_S``)."""

    def __init__(self, inner: Any, release: threading.Event) -> None:
        self.inner = inner
        self.release = release

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        deadline = time.monotonic() + HOLD_S
        while not self.release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return str(await self.inner.handle_DATA(server, session, envelope))


class HeldSmtp(SmtpSink):
    """A real SMTP server that accepts a message only when the test releases it.

    A real mail server takes longer to accept a message than the console takes to re-read a
    lead, so the operator first sees "Sending…". Locally aiosmtpd answers in milliseconds and the
    order would be a race; holding the answer makes it the order a dealership sees.
    """

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        # The same port, collector and event loop, behind the holding handler. (A second loop
        # would be left unclosed: the controller never closes its loop.)
        self.controller = Controller(
            _Held(self.handler, self.release),
            loop=self.controller.loop,
            hostname="127.0.0.1",
            port=self.port,
        )


@pytest.fixture(scope="module")
def smtp() -> Iterator[HeldSmtp]:
    sink = HeldSmtp()
    with sink:
        yield sink
        sink.release.set()


@dataclass
class Walk:
    """What each step leaves for the next: the three people's pages and what they made."""

    demo: Demo
    client: Account
    smtp: HeldSmtp
    browser: Any
    contexts: list[Any] = field(default_factory=list)
    visitor: Watched | None = None
    operator: Watched | None = None
    frame: Any = None  # the widget iframe in the visitor's page
    cid: str = ""
    lead_id: str = ""
    done: set[str] = field(default_factory=set)

    def context(self, **options: Any) -> Any:
        """A desktop browser context, closed when the module ends."""
        ctx = self.browser.new_context(viewport=DESKTOP, **options)
        self.contexts.append(ctx)
        return ctx

    def after(self, *steps: str) -> None:
        """Skip the calling step unless the steps it builds on finished."""
        missing = [s for s in steps if s not in self.done]
        if missing:
            pytest.skip(f"an earlier step did not finish: {', '.join(missing)}")

    @property
    def lead_panel(self) -> Any:
        assert self.operator is not None
        return self.operator.page.locator(f"#pane-{self.cid} .lead-panel")

    @property
    def lead_item(self) -> Any:
        return self.lead_panel.locator(f'.lp-lead[data-id="{self.lead_id}"]')


@dataclass
class Staged:
    demo: Demo
    client: Account


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory, smtp: HeldSmtp) -> Iterator[Staged]:
    clients: list[Account] = []

    def prepare(d: Demo) -> None:  # before the server starts and before Playwright's loop
        d.server.env.update(
            {
                "CONFIDE_SMTP_PORT": str(smtp.port),
                "CONFIDE_WORKER_POLL_S": "0.2",
                "CONFIDE_DELIVERY_BACKOFF_S": "0.2",
            }
        )
        # "notice": the visit and its pages are recorded, so the lead has some to leave out.
        d.server.service(lambda ctx: ctx.sites.configure(d.site_id, consent_mode="notice"))
        # No service sets a site's policy link or version yet: write them before the start.
        path = d.server.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as db:
            db.execute(
                "UPDATE sites SET privacy_policy_url = ?, policy_version = ? WHERE id = ?",
                (POLICY_URL, POLICY_VERSION, d.site_id),
            )
        listed = d.server.service(lambda ctx: ctx.sites.list_sites(Scope.system()))
        org = next(site.organisation_id for site, _name in listed if site.id == d.site_id)
        clients.append(
            d.server.create_user("client", org=org, sites=[d.site_id], name="Claire Client")
        )

    with demo_server(tmp_path_factory.mktemp("journey"), prepare=prepare) as d:
        yield Staged(d, clients[0])


@pytest.fixture(scope="module")
def demo(staged: Staged) -> Demo:
    return staged.demo


@pytest.fixture(scope="module")
def walk(staged: Staged, smtp: HeldSmtp, browser: Any) -> Iterator[Walk]:
    w = Walk(staged.demo, staged.client, smtp, browser)
    yield w
    for ctx in w.contexts:
        ctx.close()


# ---- helpers -----------------------------------------------------------------------------------


def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"journey-{name}.png"))


def conversation_id(frame: Any) -> str:
    """The conversation the widget holds (its session state in the iframe's storage)."""
    return str(
        frame.evaluate(
            "JSON.parse(sessionStorage.getItem('confide:' + document.body.dataset.site)).conv.id"
        )
    )


def lead_mails(smtp: SmtpSink, lead_id: str) -> list[EmailMessage]:
    return [m for m in smtp.messages if m["X-Confide-Lead"] == lead_id]


def wait_for_mail(smtp: SmtpSink, lead_id: str) -> list[EmailMessage]:
    """Poll the sink (no browser involved) until the lead's email arrived."""
    deadline = time.monotonic() + MAIL_WAIT_S
    while time.monotonic() < deadline:
        mails = lead_mails(smtp, lead_id)
        if mails:
            return mails
        time.sleep(0.05)
    raise AssertionError(f"no email for lead {lead_id} within {MAIL_WAIT_S} s")


def sign_in_client(walk: Walk) -> Watched:
    """The client user signs in through the console's form and opens the portal's Leads tab."""
    w = Watched(walk.context().new_page())
    page = w.page
    page.goto(walk.demo.server.url + "/console/login")
    page.get_by_label("Email").fill(walk.client.email)
    page.get_by_label("Password").fill(walk.client.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/(console|portal)$"))
    if page.url.endswith("/console"):  # signed in to the live chats: the portal is "Reports"
        page.get_by_role("navigation", name="Console").get_by_role("link", name="Reports").click()
        expect(page).to_have_url(re.compile(r"/portal$"))
    page.get_by_role("navigation", name="Client portal").get_by_role("link", name="Leads").click()
    expect(page).to_have_url(re.compile(r"/portal/leads$"))
    expect(page.get_by_role("heading", name="Leads", level=1)).to_be_visible()
    return w


# ---- the walk, one step per test, in order ------------------------------------------------------


def test_1_visitor_asks_with_their_details_while_the_operator_is_online(walk: Walk) -> None:
    demo = walk.demo
    client = Console(demo.server, walk.client)
    try:
        made = client.post(
            "/api/destinations",
            json={"kind": "email", "target": DESTINATION, "region": "UK", "name": "Sales inbox"},
        )
    finally:
        client.close()
    assert made.status_code == 201, made.text

    walk.operator = sign_in(walk.context(is_mobile=False), demo.server.url, demo.operator)
    walk.visitor = new_visitor(walk.context(user_agent=CHROME), demo.server.url, host=demo.host)
    page = walk.visitor.page
    page.goto(demo.host + PAGE)
    walk.frame = chat_frame(page)
    click_launcher(page)
    expect(walk.frame.locator("#status")).to_have_class(re.compile(r"\bon\b"))  # a live chat
    send(walk.frame, QUESTION)
    expect(walk.frame.locator("#msgs .visitor .tick").last).to_have_text("Sent")
    walk.cid = conversation_id(walk.frame)
    walk.done.add("asked")


def test_2_operator_accepts_confirms_the_details_makes_a_lead_and_asks_for_consent(
    walk: Walk,
) -> None:
    walk.after("asked")
    assert walk.operator is not None
    page = walk.operator.page
    item = page.locator(f'#waiting-list .conv-li[data-id="{walk.cid}"]')
    expect(item).to_contain_text("Skoda Octavia")  # arrived live over the console socket
    item.locator(".conv-item").click()
    pane = page.locator(f"#pane-{walk.cid}")
    pane.get_by_role("button", name="Accept chat").click()
    expect(pane.locator(".pane-status")).to_contain_text("You are handling this chat")
    expect(pane.locator(".msg-visitor .msg-bubble")).to_have_text([QUESTION])

    lead = walk.lead_panel
    expect(lead.locator(".lp-suggest")).to_contain_text("Detected in chat")
    expect(lead.locator(".lp-suggestion")).to_have_count(2)  # the email and the phone
    lead.get_by_role("button", name=f"Use email {EMAIL}").click()
    expect(lead.get_by_label("Email", exact=True)).to_have_value(EMAIL)
    lead.get_by_role("button", name=f"Use phone {PHONE}").click()
    expect(lead.get_by_label("Phone", exact=True)).to_have_value(PHONE)
    lead.get_by_label("Name", exact=True).fill(NAME)
    lead.get_by_role("button", name="Save details").click()
    expect(lead.locator('[data-lslot="details-msg"]')).to_have_text("Details saved.")

    lead.get_by_label("Purpose", exact=True).select_option(label="Test drive")
    lead.get_by_label("Make", exact=True).fill("Skoda")
    lead.get_by_label("Model", exact=True).fill("Octavia")
    lead.get_by_label("Year", exact=True).fill("2021")
    lead.get_by_label("New or used", exact=True).select_option(label="Used")
    lead.get_by_role("button", name="Create lead").click()
    made = lead.locator(".lp-lead")
    expect(made).to_have_count(1)
    expect(made).to_contain_text("Vehicle: 2021 Skoda Octavia · Used")
    # Held back: no consent yet, so nothing is sent and the client does not see it.
    expect(made.locator(".lp-delivery")).to_have_text("Waiting for the visitor's consent")
    walk.lead_id = str(made.get_attribute("data-id"))

    consent = lead.locator('[data-lslot="consent-text"]')
    expect(consent).to_have_text("Not asked")
    lead.get_by_role("button", name="Ask for consent").click()
    expect(consent).to_have_text("Asked — waiting for the visitor")
    shot(page, "3-operator")
    walk.done.add("lead")


def test_3_visitor_agrees_in_the_widget(walk: Walk) -> None:
    walk.after("lead")
    assert walk.visitor is not None and walk.operator is not None
    card = walk.frame.get_by_role("group", name="Sharing your details")
    expect(card).to_contain_text(CONSENT_TEXT)
    expect(card.get_by_role("link", name="Privacy policy")).to_have_attribute("href", POLICY_URL)
    shot(walk.visitor.page, "4-visitor-asked")

    card.get_by_role("button", name="Yes, share my details").click()
    expect(card).to_contain_text(f"You agreed to share your details with {SITE}")
    expect(card.get_by_role("button", name="Withdraw")).to_be_visible()
    shot(walk.visitor.page, "4-visitor-agreed")
    consent = walk.lead_panel.locator('[data-lslot="consent-text"]')
    expect(consent).to_have_text(re.compile(r"^Agreed at "))  # live, over the console socket
    # Released with the consent: on its way to the mail server, which has not answered yet.
    expect(walk.lead_item.locator(".lp-delivery")).to_have_text("Sending…")
    walk.smtp.release.set()  # the mail server accepts the message
    walk.done.add("consent")


def test_4_one_email_with_valid_adf_and_nothing_beyond_what_was_agreed(walk: Walk) -> None:
    walk.after("consent")
    mails = wait_for_mail(walk.smtp, walk.lead_id)
    assert len(mails) == 1
    mail = mails[0]
    assert mail["To"] == DESTINATION
    adf_part = next(p for p in mail.iter_attachments() if p.get_content_type() == ADF_MIME)
    adf = adf_part.get_payload(decode=True)
    assert isinstance(adf, bytes)
    validate_adf(adf)
    for value in (EMAIL, PHONE, NAME, "Skoda", "Octavia", "2021", walk.lead_id):
        assert value.encode() in adf, value

    plain = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    texts = {"text": plain.get_content(), "html": html.get_content(), "adf": adf.decode()}
    assert EMAIL in texts["text"] and "2021 Skoda Octavia" in texts["text"]
    # The visitor agreed to their name, contact details and this conversation: not their visit.
    for where, text in texts.items():
        assert PAGE not in text, f"the {where} names a page the visitor viewed"
        assert "/demo" not in text, f"the {where} names a page the visitor viewed"
    # What the server recorded, as the client's API reports it.
    client = Console(walk.demo.server, walk.client)
    try:
        # The mail goes out before the worker records it as done: wait for that commit.
        deadline = time.monotonic() + 15
        while (lead := client.get(f"/api/leads/{walk.lead_id}").json())[
            "delivery_state"
        ] != "delivered" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.close()
    assert lead["delivery_state"] == "delivered"
    assert [d["state"] for d in lead["deliveries"]] == ["done"]
    walk.done.add("mailed")


def test_5_operator_sees_the_lead_delivered_live(walk: Walk) -> None:
    walk.after("mailed")
    assert walk.operator is not None
    try:
        expect(walk.lead_item.locator(".lp-delivery")).to_have_text("Delivered")
    finally:
        walk.lead_item.scroll_into_view_if_needed()
        shot(walk.operator.page, "5-operator-live")


def test_5_operator_sees_the_lead_delivered_after_a_reload(walk: Walk) -> None:
    walk.after("mailed")
    assert walk.operator is not None
    page = walk.operator.page
    page.reload()
    expect(page.locator("#conn-status")).to_have_text("Connected")
    expect(walk.lead_item.locator(".lp-delivery")).to_have_text("Delivered")
    walk.lead_item.scroll_into_view_if_needed()
    shot(page, "5-operator-reloaded")
    assert len(lead_mails(walk.smtp, walk.lead_id)) == 1  # sent once, however often it is read


def test_6_client_opens_the_lead_checks_the_evidence_and_marks_it_contacted(walk: Walk) -> None:
    walk.after("mailed")  # the page is rendered once: the delivery must have been recorded
    customer = sign_in_client(walk)
    page = customer.page
    row = page.locator("tr.lead-row", has=page.get_by_role("link", name=NAME))
    expect(row).to_contain_text(EMAIL)
    expect(row).to_contain_text("New")
    row.get_by_role("link", name=NAME).click()
    expect(page).to_have_url(re.compile(rf"/portal/leads/{walk.lead_id}$"))
    expect(page.get_by_role("heading", name=NAME, level=1)).to_be_visible()

    transcript = page.get_by_role("region", name="Transcript")
    expect(transcript).to_contain_text(QUESTION)
    consent = page.get_by_role("region", name="Consent")
    answer = consent.locator(".consent-answer")
    expect(answer).to_have_text("Granted")
    expect(answer).to_have_class(re.compile(r"\banswer-granted\b"))
    expect(consent.locator(".lead-fact", has_text="Policy version")).to_contain_text(POLICY_VERSION)
    expect(consent.locator(".consent-text")).to_have_text(CONSENT_TEXT)
    sha = hashlib.sha256(CONSENT_TEXT.encode()).hexdigest()
    expect(consent.get_by_label("SHA-256 of that text")).to_have_text(sha)
    # The client sees the visit (usage data, on their own site) that the email left out.
    expect(page.get_by_role("region", name="The visit")).to_contain_text(PAGE)
    deliveries = page.get_by_role("region", name="Deliveries")
    expect(deliveries.locator(".delivery", has_text="Sales inbox")).to_contain_text("Delivered")

    page.get_by_role("button", name="Mark as contacted").click()
    expect(page.get_by_role("status")).to_have_text("Status changed to contacted.")
    expect(page.locator(".lead-status-now")).to_contain_text("Contacted")
    shot(page, "6-portal")
    assert walk.visitor is not None and walk.operator is not None
    assert_clean(walk.visitor, walk.operator, customer)
