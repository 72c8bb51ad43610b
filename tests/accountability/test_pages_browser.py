"""The record of processing, the inbox and the newsletter pages in a real browser, at 1280 and
360 px: nothing wider than the window, the facts on screen, an objection by keyboard.

Set ``CONFIDE_SHOTS`` to a directory to save screenshots (``acct-ropa-desktop.png``, …).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

import confide.clock
from confide.accountability.models import NewsletterSubscription
from confide.accountability.service import Accountability
from confide.accounts.models import Organisation
from confide.clock import Clock, FrozenClock
from confide.settings import Settings
from confide.storage.migrate import upgrade
from confide.storage.scope import Scope
from confide.testing import Account, LiveServer, free_port
from confide.web.context import AppContext
from tests.leads.helpers import SmtpSink
from tests.web.browser_support import DESKTOP, PHONE, launch, require_chromium

require_chromium()
pytestmark = pytest.mark.browser

SHOTS = os.environ.get("CONFIDE_SHOTS")


@dataclass
class Seeded:
    server: LiveServer
    client: Account
    admin: Account
    confirm_path: str
    unsubscribe_path: str
    pending_sp: str


async def _seed(url: str, sink: SmtpSink, port: int) -> tuple[str, str, str, str]:
    """Organisation, destinations, sub-processors (one in effect), a notified breach, a policy
    version and newsletter links; returns (org id, confirm path, unsubscribe path, sp id)."""
    base = f"http://127.0.0.1:{port}"
    ctx = AppContext.build(
        Settings(database_url=url, smtp_host="127.0.0.1", smtp_port=sink.port, worker=False)
    )
    acct = Accountability(ctx.db, ctx.settings)
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        org = await ctx.accounts.create_organisation("Demo Motors")
        async with ctx.db.session(Scope.system()) as s:
            row = await s.get(Organisation, org.id)
            assert row is not None
            row.contract_end, row.retention_months = (now + timedelta(days=400)).date(), 12
        for kind, target, region, name in (
            ("email", "sales@demo-motors.example", "UK", "Sales inbox"),
            ("webhook", "https://crm.example.com/hooks/confide", "US", "Dealer CRM (US)"),
        ):
            await ctx.delivery_admin.add_destination(
                Scope.system(),
                organisation_id=org.id,
                kind=kind,
                target=target,
                region=region,
                name=name,
            )
        # Announced 40 days ago, so in effect now.
        confide.clock.clock = FrozenClock(now - timedelta(days=40))
        await acct.subprocessors.add(
            None,
            name="Amazon Web Services (Ireland)",
            region="EU",
            purpose="Hosts the database and the application servers.",
            categories=["user.contact", "user.content", "user.device", "system.operations"],
        )
        confide.clock.clock = FrozenClock(now - timedelta(days=2))
        breach = await acct.breaches.record(
            None,
            nature="A support engineer's laptop holding a CSV export of leads was stolen.",
            categories=["user.contact.email", "user.name"],
            subjects_approx=87,
            records_approx=87,
            consequences="Unsolicited contact or phishing of the people in the export.",
            measures="Disk encrypted; remote wipe confirmed; exports now need approval.",
            contact_name="Dana Protection",
            contact_email="dpo@confide-example.com",
            discovered_at=now - timedelta(days=2, hours=6),
            organisation_ids=[org.id],
        )
        await acct.breaches.notify(None, breach["id"])
        confide.clock.clock = Clock()
        pending = await acct.subprocessors.add(
            None,
            name="Postmark",
            region="EU",
            purpose="Sends notification and lead emails.",
            categories=["user.contact.email", "user.content.message"],
        )
        await acct.policies.publish(
            None,
            version="v2",
            text="1. Introduction\n\nConfide is a data processor for the dealerships using it.",
            summary="Section 4 now names our hosting region (Ireland) and sub-processors.",
            base_url=base,
        )
        since = len(sink.messages)
        await acct.newsletter.subscribe("sam.reader@example.com", base_url=base)
        mail = sink.messages[since]
        link = re.search(r"http://\S+/newsletter/confirm\?token=[\w-]+", mail.get_content())
        assert link is not None
        unsubscribe = mail["List-Unsubscribe"].strip("<>")
        async with ctx.db.session(Scope.system(), read_only=True) as s:
            assert await s.scalar(select(NewsletterSubscription.id)) is not None
        path = urlsplit(link.group())
        unsub = urlsplit(unsubscribe)
        assert parse_qs(path.query)["token"]
        return (
            org.id,
            f"{path.path}?{path.query}",
            f"{unsub.path}?{unsub.query}",
            pending.subprocessor["id"],
        )
    finally:
        confide.clock.clock = Clock()
        await ctx.stop()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    workdir = tmp_path_factory.mktemp("acct-browser")
    url = f"sqlite:///{workdir / 'confide.db'}"
    upgrade(url)
    server = LiveServer(url, workdir)
    server.port = free_port()
    with SmtpSink() as sink:
        org, confirm, unsub, sp = asyncio.run(_seed(url, sink, server.port))
    client = server.create_user("client", org=org, name="Claire Client")
    admin = server.create_user("admin", name="Ada Admin")
    server.start()
    try:
        yield Seeded(server, client, admin, confirm, unsub, sp)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(seeded: Seeded) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    made: list[Any] = []

    def make(viewport: dict[str, int]) -> Any:
        context = browser.new_context(viewport=viewport)
        made.append(context)
        page = context.new_page()
        page.errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
        return page

    yield make
    for context in made:
        context.close()


def _sign_in(page: Any, server: LiveServer, account: Account) -> None:
    from playwright.sync_api import expect

    page.goto(server.url + "/console/login")
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill(account.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/console$"))


_OVERFLOWING = """() => [...document.querySelectorAll("main *")]
  .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5)
  .filter((el) => !el.closest(".acct-table-wrap, .portal-tabs"))
  .map((el) => `${el.tagName}.${el.className}`)"""


def _fits(page: Any) -> None:
    """Nothing in the content is wider than the window (tables and the tabs scroll in their
    box). The top bar is the console's, tested with the console."""
    assert page.evaluate(_OVERFLOWING) == []


def _shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"acct-{name}.png"), full_page=True)


SIZES = [DESKTOP, PHONE]
IDS = ["desktop", "phone"]


@pytest.mark.parametrize("viewport", SIZES, ids=IDS)
def test_record_of_processing_and_inbox(
    new_page: Callable[..., Any], seeded: Seeded, viewport: dict[str, int]
) -> None:
    from playwright.sync_api import expect

    label = IDS[SIZES.index(viewport)]
    page = new_page(viewport)
    _sign_in(page, seeded.server, seeded.client)
    page.goto(seeded.server.url + "/portal/ropa")
    expect(page.get_by_role("heading", name="Record of processing", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Categories of personal data")).to_be_visible()
    expect(page.get_by_text("Removed before sending")).to_be_visible()  # the US CRM
    expect(page.get_by_text("In effect", exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Announced: from"))).to_be_visible()
    expect(page.get_by_text("Argon2id", exact=False)).to_be_visible()
    _fits(page)
    _shot(page, f"ropa-{label}")

    page.goto(seeded.server.url + "/portal/inbox")
    expect(page.get_by_role("heading", name="Inbox", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Personal data breach notice")).to_be_visible()
    expect(page.get_by_role("heading", name="New sub-processor: Postmark")).to_be_visible()
    _fits(page)
    _shot(page, f"inbox-{label}")
    assert page.errors == []


def test_an_objection_by_keyboard(new_page: Callable[..., Any], seeded: Seeded) -> None:
    from playwright.sync_api import expect

    page = new_page(DESKTOP)
    _sign_in(page, seeded.server, seeded.client)
    page.goto(seeded.server.url + "/portal/ropa#subprocessors")
    summary = page.get_by_text("Object to Postmark", exact=True)
    summary.focus()
    page.keyboard.press("Enter")
    field = page.get_by_label("Why you object to Postmark")
    field.fill("no")  # too short: the form says why and keeps the text
    field.press("Tab")  # to the button
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("Give your reason")
    expect(page.get_by_label("Why you object to Postmark")).to_have_value("no")
    page.get_by_label("Why you object to Postmark").fill("Our DPO must review Postmark first.")
    page.get_by_role("button", name="Record objection").click()
    expect(page.get_by_role("status")).to_contain_text("Your objection is recorded")
    expect(page.get_by_text(re.compile("Your organisation objected on"))).to_be_visible()
    assert page.errors == []


@pytest.mark.parametrize("viewport", SIZES, ids=IDS)
def test_newsletter_confirm_and_unsubscribe_pages(
    new_page: Callable[..., Any], seeded: Seeded, viewport: dict[str, int]
) -> None:
    from playwright.sync_api import expect

    label = IDS[SIZES.index(viewport)]
    page = new_page(viewport)
    page.goto(seeded.server.url + "/newsletter")
    expect(page.get_by_role("heading", name="Get Confide's updates by email")).to_be_visible()
    _fits(page)
    _shot(page, f"newsletter-subscribe-{label}")
    page.goto(seeded.server.url + seeded.confirm_path)
    expect(page.get_by_role("heading", name="Confirm your subscription")).to_be_visible()
    expect(page.get_by_text("s\u2022\u2022\u2022@example.com")).to_be_visible()
    _fits(page)
    _shot(page, f"newsletter-confirm-{label}")
    page.goto(seeded.server.url + seeded.unsubscribe_path)
    expect(page.get_by_role("heading", name="Unsubscribe from Confide updates")).to_be_visible()
    _fits(page)
    _shot(page, f"newsletter-unsubscribe-{label}")
    if label == "phone":  # act once the desktop pass has looked
        page.goto(seeded.server.url + seeded.confirm_path)
        page.get_by_role("button", name="Yes, subscribe me").click()
        expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
        page.goto(seeded.server.url + seeded.unsubscribe_path)
        page.get_by_role("button", name="Unsubscribe").click()
        expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
        _fits(page)
        _shot(page, f"newsletter-unsubscribed-{label}")
    assert page.errors == []


def test_policy_page(new_page: Callable[..., Any], seeded: Seeded) -> None:
    from playwright.sync_api import expect

    page = new_page(PHONE)
    page.goto(seeded.server.url + "/policy")
    expect(page.get_by_text("Version v2 \u00b7 current")).to_be_visible()
    _fits(page)
    _shot(page, "policy-phone")


def test_admin_chooses_the_organisation(new_page: Callable[..., Any], seeded: Seeded) -> None:
    from playwright.sync_api import expect

    page = new_page(DESKTOP)
    _sign_in(page, seeded.server, seeded.admin)
    page.goto(seeded.server.url + "/portal/ropa")
    expect(page.get_by_label("Organisation", exact=True)).to_be_visible()
    expect(page.get_by_text("Demo Motors").first).to_be_visible()
    # Our admins see the objection form nowhere: objecting is the client's.
    expect(page.get_by_text("Object to Postmark", exact=True)).to_have_count(0)
    page.goto(seeded.server.url + "/portal/inbox")
    expect(page.get_by_role("heading", name="New sub-processor: Postmark")).to_be_visible()
    _fits(page)
