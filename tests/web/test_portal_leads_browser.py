"""The portal's leads in a real browser: usable at 1280 and 360 px, and by keyboard without
JavaScript (status buttons, the forwarding form inside a <details>).

Leads are seeded on the demo site as in test_portal_leads.py (a chat, details, a lead, consent
granted in the chat). Set ``CONFIDE_SHOTS`` to a directory to save screenshots of the list and
a lead (``portal-leads-desktop.png``, ``portal-lead-phone.png``, …).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from confide.storage.scope import Scope
from confide.testing import Account
from tests.leads.helpers import Console
from tests.web.browser_support import DESKTOP, PHONE, Demo, off_loop, require_chromium
from tests.web.test_portal_leads import Site, chat_to_lead, track, visit_id

require_chromium()

SHOTS = os.environ.get("CONFIDE_SHOTS")


@dataclass
class Portal:
    client: Account
    lead: str  # with a visit, markup in its comments and a GPC flag
    other: str


def _seed(demo: Demo) -> Portal:
    server = demo.server
    listed = server.service(lambda ctx: ctx.sites.list_sites(Scope.system()))
    org = next(site.organisation_id for site, _name in listed if site.id == demo.site_id)
    client = server.create_user("client", org=org, sites=[demo.site_id], name="Claire Client")
    server.service(lambda ctx: ctx.sites.configure(demo.site_id, consent_mode="notice"))
    site = Site(server, demo.key, demo.host)
    visit = visit_id()
    track(site, visit)
    op = Console(server, demo.operator)
    try:
        lead = asyncio.run(
            chat_to_lead(
                site,
                op,
                {"name": "Sam Example", "email": "sam@example.org", "phone": "07400 123456"},
                {
                    "purpose": "test_drive",
                    "vehicle": {"make": "Skoda", "model": "Octavia", "year": "2021"},
                    "comments": "Saturday morning <b>please</b>",
                },
                visit=visit,
                gpc=True,
                rating=5,
            )
        )
        other = asyncio.run(
            chat_to_lead(
                site,
                op,
                {"name": "Priya Shah", "email": "priya.shah@example.com"},
                {"purpose": "finance"},
            )
        )
    finally:
        op.close()
    return Portal(client, lead, other)


@pytest.fixture(scope="module")
def portal(demo: Demo) -> Portal:
    result: Portal = off_loop(lambda: _seed(demo))
    return result


def _signed_in(new_context: Callable[..., Any], demo: Demo, account: Account, **kw: Any) -> Any:
    from playwright.sync_api import expect

    page = new_context(**kw).new_page()
    page.goto(demo.server.url + "/console/login")
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill(account.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/console$"))
    return page


#: Elements of the page's main content that reach past the window's right edge.
_OVERFLOWING = """() => [...document.querySelectorAll("main *")]
  .filter((el) => !el.closest(".portal-tabs"))  // the tab bar scrolls sideways on a phone
  .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5)
  .map((el) => `${el.tagName}.${el.className}`)"""


def _fits(page: Any) -> None:
    """Nothing in the page's content is wider than the window (no sideways scrolling). The top
    bar is the console's, tested with the console."""
    assert page.evaluate(_OVERFLOWING) == []


def _shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"portal-{name}.png"))


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_list_and_lead_fit_the_screen(
    new_context: Callable[..., Any], demo: Demo, portal: Portal, viewport: dict[str, int]
) -> None:
    from playwright.sync_api import expect

    label = "phone" if viewport["width"] < 500 else "desktop"
    errors: list[str] = []
    page = _signed_in(new_context, demo, portal.client, viewport=viewport, is_mobile=False)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(demo.server.url + "/portal/leads")
    expect(page.get_by_role("heading", name="Leads", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Priya Shah")).to_be_visible()
    expect(page.get_by_text("GPC: do not sell/share")).to_be_visible()
    _fits(page)
    _shot(page, f"leads-{label}")

    page.get_by_role("link", name="Sam Example").click()
    expect(page.get_by_role("heading", name="Sam Example", level=1)).to_be_visible()
    expect(page.get_by_text("Saturday morning <b>please</b>")).to_be_visible()
    expect(page.get_by_text("/used-cars/octavia")).to_be_visible()
    _fits(page)
    _shot(page, f"lead-{label}")
    assert errors == []


def test_status_and_forward_by_keyboard_without_javascript(
    new_context: Callable[..., Any], demo: Demo, portal: Portal
) -> None:
    from playwright.sync_api import expect

    page = _signed_in(new_context, demo, portal.client, java_script_enabled=False)
    page.goto(demo.server.url + f"/portal/leads/{portal.other}")

    page.get_by_role("button", name="Mark as contacted").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Status changed to contacted.")
    expect(page.locator(".lead-status-now")).to_contain_text("Contacted")

    page.locator(".forward-box summary").focus()
    page.keyboard.press("Enter")  # opens the <details>: no script needed
    page.get_by_label("Receiving organisation").fill("Leeds Motor Finance")
    page.get_by_label("Their contact").fill("quotes@leeds-finance.example")
    page.get_by_label("Why: what the visitor asked for").fill("She asked for a finance quote.")
    page.get_by_role("button", name="Record transfer").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"\?done=forwarded#transfers$"))
    transfers = page.locator("#transfers")
    expect(transfers).to_contain_text("Leeds Motor Finance")
    expect(transfers).to_contain_text("She asked for a finance quote.")
    expect(transfers).to_contain_text("Recorded by Claire Client")
