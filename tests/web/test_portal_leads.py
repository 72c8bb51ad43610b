"""The client portal's leads over real HTTP, on SQLite and PostgreSQL (``world`` fixture).

Leads are made the way they are made in production: a visitor chats over the widget socket
(after a tracked visit), an operator captures details and creates a lead through the API, asks
for consent and the visitor answers in the chat. No destinations are configured, so a lead is
released straight to the portal when the visitor agrees. One visitor never agrees: that lead
must never reach the client.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import html
import io
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from confide.leads.consent import DEFAULT_TEXT
from confide.testing import LiveServer, ws_connect
from confide.web.routes.portal_leads import trade_in_text, vehicle_text
from tests.chat.helpers import Peer, client_id
from tests.conftest import ORIGIN_A, World
from tests.leads.helpers import Console

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
SAM = "Sam Example"
NORA = "Nora Noconsent"
FORMULA = '=HYPERLINK("https://evil.example")'
COMMENT = "Call after 5pm <script>alert('comment')</script>"


def visit_id() -> str:
    return secrets.token_urlsafe(16)[:22]


@dataclass
class Seeded:
    sam: str  # released, with a tracked visit, a rating and markup in the comments
    formula: str  # released, the visitor's browser sent GPC, a name that is a formula
    nora: str  # never released: the visitor was not asked for consent


@dataclass
class Site:
    """Where a test visitor chats: the server, the site's key and an origin it allows."""

    server: LiveServer
    key: str
    origin: str = ORIGIN_A


async def _visitor(site: Site, *, gpc: bool = False) -> Peer:
    url = f"{site.server.ws_url}/ws/widget?v=1&site={site.key}"
    peer = Peer(await ws_connect(url, origin=site.origin))
    await peer.send(type="hello", v=1, host=site.origin, signals={"gpc": gpc})
    await peer.expect("welcome")
    return peer


async def chat_to_lead(
    site: Site,
    op: Console,
    details: dict[str, str],
    lead: dict[str, Any],
    *,
    consent: bool = True,
    visit: str | None = None,
    gpc: bool = False,
    rating: int | None = None,
) -> str:
    """A chat on ``site`` that becomes a lead (released if the visitor consents); its id."""
    v = await _visitor(site, gpc=gpc)
    try:
        opened: dict[str, Any] = {"type": "open", "ref": "o1"}
        if visit:
            opened["visit"] = visit
        await v.send(**opened)
        conv = (await v.expect("conversation", ref="o1"))["conversation"]["id"]
        text = "Hello, is the Octavia <b>still</b> available?"
        await v.send(type="send", conversation=conv, client_id=client_id(), text=text, ref="m1")
        await v.expect("ack", ref="m1")
        put = op.put(f"/api/conversations/{conv}/person", json=details)
        assert put.status_code == 200, put.text
        created = op.post(f"/api/conversations/{conv}/leads", json=lead)
        assert created.status_code == 201, created.text
        if consent:
            asked = op.post(f"/api/conversations/{conv}/consent-request")
            assert asked.status_code == 200, asked.text
            request = (await v.expect("consent", conversation=conv))["request"]
            await v.send(
                type="consent", conversation=conv, request=request["id"], answer="granted", ref="c"
            )
            assert (await v.expect("consent", ref="c"))["answer"] == "granted"
        if rating is not None:
            await v.send(type="rate", conversation=conv, score=rating, comment="Quick", ref="r1")
            await v.expect("conversation", ref="r1")
        return str(created.json()["id"])
    finally:
        await v.close()


def track(site: Site, visit: str) -> None:
    """Two page views and a leave beacon, as the tracker sends them (docs/tracking.md)."""
    t0 = int(time.time() * 1000) - 90_000  # every event in the past
    events = [
        {"type": "pageview", "url": "/used-cars", "title": "Used cars", "ts": t0},
        {
            "type": "pageview",
            "url": "/used-cars/octavia",
            "title": "Skoda Octavia",
            "ts": t0 + 20_000,
        },
        {"type": "leave", "seq": 2, "seconds": 45, "ts": t0 + 65_000},
    ]
    response = httpx.post(
        site.server.url + "/api/t",
        content=orjson.dumps(
            {"site": site.key, "visit": visit, "visitor": visit_id(), "events": events}
        ),
        headers={"Origin": site.origin, "Content-Type": "text/plain", "User-Agent": CHROME},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(events), response.text


@pytest.fixture(scope="module")
def seeded(world: World) -> Seeded:
    server = world.server
    server.service(lambda ctx: ctx.sites.configure(world.site_a_id, consent_mode="notice"))
    visit = visit_id()
    site = Site(server, world.site_a)
    track(site, visit)
    op = Console(server, world.operator_a)
    try:
        sam = asyncio.run(
            chat_to_lead(
                site,
                op,
                {"name": SAM, "email": "sam@example.org", "phone": "07400 123456"},
                {
                    "purpose": "test_drive",
                    "vehicle": {
                        "make": "Skoda",
                        "model": "Octavia",
                        "year": "2021",
                        "stock": "UK123",
                    },
                    "trade_in": {"make": "Ford", "model": "Focus", "year": "2015"},
                    "comments": COMMENT,
                },
                visit=visit,
                rating=4,
            )
        )
        formula = asyncio.run(
            chat_to_lead(
                site,
                op,
                {"name": FORMULA, "email": "f@example.org"},
                {"purpose": "valuation"},
                gpc=True,
            )
        )
        nora = asyncio.run(
            chat_to_lead(
                site,
                op,
                {"name": NORA, "email": "nora@example.org"},
                {"purpose": "finance"},
                consent=False,
            )
        )
    finally:
        op.close()
    return Seeded(sam, formula, nora)


@pytest.fixture
def client_a(world: World) -> Iterator[httpx.Client]:
    http = world.server.login(world.client_a)
    yield http
    http.close()


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "the page has no form with a csrf_token"
    return match.group(1)


def _text(page: httpx.Response) -> str:
    """The page as text (tags dropped, entities decoded, whitespace collapsed)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())


# ---- the list ----------------------------------------------------------------------------------


def test_list_shows_released_leads_only(seeded: Seeded, client_a: httpx.Client) -> None:
    page = client_a.get("/portal/leads")
    assert page.status_code == 200, page.text[:500]
    assert page.headers["cache-control"] == "no-store"
    # The top bar marks Leads as the current section, not Reports.
    assert 'class="nav-extra" aria-current="page">Leads</a>' in page.text
    assert 'aria-current="page">Reports</a>' not in page.text
    text = _text(page)
    assert SAM in text and FORMULA in text
    assert NORA not in text and seeded.nora not in page.text
    for column in ("Received", "Site", "Purpose", "Name", "Contact", "Vehicle", "Status"):
        assert f'<th scope="col">{column}</th>' in page.text
    assert "sam@example.org" in text and "+447400123456" in text
    assert "2021 Skoda Octavia" in text and "Test drive" in text
    assert f'href="/portal/leads/{seeded.sam}"' in page.text
    assert text.count("GPC: do not sell/share") == 1  # the formula visitor's browser sent GPC
    assert 'href="/portal/leads"' in page.text and ">Leads</a>" in page.text  # the portal tab


def test_list_filters_and_empty_states(
    world: World, seeded: Seeded, client_a: httpx.Client
) -> None:
    closed = client_a.get("/portal/leads", params={"status": "closed", "site": world.site_a_id})
    assert closed.status_code == 200
    assert SAM not in _text(closed) and "No leads match these filters" in _text(closed)
    mine = client_a.get("/portal/leads", params={"site": world.site_a_id, "status": "new"})
    assert SAM in _text(mine) or "No leads match" in _text(mine)  # Sam's status may have moved
    bad = client_a.get("/portal/leads", params={"status": "won"})
    assert bad.status_code == 422 and "Status must be one of" in _text(bad)
    other_site = client_a.get("/portal/leads", params={"site": world.site_b_id})
    assert other_site.status_code == 404

    b = world.server.login(world.client_b)
    try:
        empty = b.get("/portal/leads")
        assert empty.status_code == 200
        text = _text(empty)
        assert "No leads yet" in text
        assert "once a visitor agrees in the chat to share their details" in text
        assert SAM not in text
    finally:
        b.close()


def test_operators_and_strangers_are_kept_out(world: World, seeded: Seeded) -> None:
    with httpx.Client(base_url=world.server.url, timeout=10) as anonymous:
        page = anonymous.get(f"/portal/leads/{seeded.sam}")
        assert page.status_code == 303
        assert page.headers["location"] == f"/console/login?next=%2Fportal%2Fleads%2F{seeded.sam}"
        csv_file = anonymous.get("/portal/leads.csv")
        assert csv_file.status_code == 303
    op = world.server.login(world.operator_a)
    try:
        assert op.get("/portal/leads").status_code == 403
    finally:
        op.close()


# ---- one lead ----------------------------------------------------------------------------------


def test_lead_page_shows_the_whole_story(seeded: Seeded, client_a: httpx.Client) -> None:
    page = client_a.get(f"/portal/leads/{seeded.sam}")
    assert page.status_code == 200, page.text[:500]
    text = _text(page)
    assert SAM in text and "sam@example.org" in text and 'href="tel:+447400123456"' in page.text
    assert "Test drive" in text and "2021 Skoda Octavia" in text and "UK123" in text
    assert "Part-exchange" in text and "2015 Ford Focus" in text
    # Markup typed by people is text: escaped, never run.
    assert "<script>alert('comment')" not in page.text
    assert "&lt;script&gt;alert(" in page.text and COMMENT in text
    assert "Hello, is the Octavia <b>still</b> available?" in text
    assert "<b>still</b>" not in page.text
    # The consent evidence: the answer, the exact text and its SHA-256.
    consent_text = DEFAULT_TEXT.replace("{site}", "Alpha Cars Leeds")
    assert "Granted" in text
    assert hashlib.sha256(consent_text.encode()).hexdigest() in text
    assert consent_text.split(" so they")[0] in text
    # The visit: pages in order with time on page, channel, and the rating.
    assert text.index("Used cars") < text.index("Skoda Octavia /used-cars/octavia")
    assert "Visit length" in text and "Direct" in text
    assert "4 out of 5" in text and "Quick" in text
    # The workflow: a new lead can be marked contacted or closed.
    assert 'value="contacted"' in page.text and 'value="closed"' in page.text
    assert "Forward at the visitor's request" in text
    assert "Change history" in text and "Deliveries" in text


def test_lead_without_a_visit_degrades(seeded: Seeded, client_a: httpx.Client) -> None:
    page = client_a.get(f"/portal/leads/{seeded.formula}")
    assert page.status_code == 200
    text = _text(page)
    assert "No visit is linked to this chat" in text
    assert "Global Privacy Control" in text
    assert "This lead has not been passed on to anyone else." in text


def test_other_organisations_lead_is_a_404(
    world: World, seeded: Seeded, client_a: httpx.Client
) -> None:
    b = world.server.login(world.client_b)
    try:
        page = b.get(f"/portal/leads/{seeded.sam}")
        assert page.status_code == 404 and "Lead not found" in _text(page)
        assert SAM not in page.text
        leads = b.get("/portal/leads")
        moved = b.post(
            f"/portal/leads/{seeded.sam}/status",
            data={"csrf_token": _csrf(leads), "status": "closed"},
        )
        assert moved.status_code == 404 and SAM not in moved.text
    finally:
        b.close()
    # The lead the client may not see yet (no consent) is a 404 for its own organisation too.
    assert client_a.get(f"/portal/leads/{seeded.nora}").status_code == 404
    assert client_a.get("/portal/leads/nonexistent").status_code == 404


def _status_of(client: httpx.Client, lead: str) -> str:
    page = client.get(f"/portal/leads/{lead}")
    match = re.search(r'class="lead-status status-(\w+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)


def test_status_moves_through_the_form(seeded: Seeded, client_a: httpx.Client) -> None:
    lead = seeded.formula
    page = client_a.get(f"/portal/leads/{lead}")
    token = _csrf(page)
    url = f"/portal/leads/{lead}/status"

    forged = client_a.post(url, data={"csrf_token": "forged", "status": "contacted"})
    assert forged.status_code == 403 and "form had expired" in _text(forged)
    assert _status_of(client_a, lead) == "new"

    moved = client_a.post(url, data={"csrf_token": token, "status": "contacted"})
    assert moved.status_code == 303
    assert moved.headers["location"] == f"/portal/leads/{lead}?done=contacted"
    after = client_a.get(moved.headers["location"])
    assert "Status changed to contacted." in _text(after)
    assert _status_of(client_a, lead) == "contacted"
    assert 'value="contacted"' not in after.text  # no button for where it is already

    closed = client_a.post(url, data={"csrf_token": token, "status": "closed"})
    assert closed.status_code == 303 and _status_of(client_a, lead) == "closed"

    illegal = client_a.post(url, data={"csrf_token": token, "status": "contacted"})
    assert illegal.status_code == 409
    assert "A closed lead cannot become contacted." in _text(illegal)
    assert 'role="alert"' in illegal.text
    assert _status_of(client_a, lead) == "closed"

    unknown = client_a.post(url, data={"csrf_token": token, "status": "won"})
    assert unknown.status_code == 422 and "Status must be one of" in _text(unknown)

    reopened = client_a.post(url, data={"csrf_token": token, "status": "new"})
    assert reopened.status_code == 303 and _status_of(client_a, lead) == "new"


def test_forward_records_a_transfer(seeded: Seeded, client_a: httpx.Client) -> None:
    page = client_a.get(f"/portal/leads/{seeded.sam}")
    token = _csrf(page)
    url = f"/portal/leads/{seeded.sam}/forward"
    typed = {
        "csrf_token": token,
        "recipient_name": "Alpha Finance Ltd",
        "recipient_contact": "deals@alpha-finance.example",
        "reason": "",
    }
    refused = client_a.post(url, data=typed)
    assert refused.status_code == 422
    text = _text(refused)
    assert "Say why" in text
    assert 'value="deals@alpha-finance.example"' in refused.text  # what was typed is kept
    assert '<details class="forward-box" open>' in refused.text

    typed["reason"] = "The visitor asked for a finance quote from <Alpha Finance>."
    done = client_a.post(url, data=typed)
    assert done.status_code == 303
    assert done.headers["location"] == f"/portal/leads/{seeded.sam}?done=forwarded#transfers"
    after = client_a.get(done.headers["location"])
    text = _text(after)
    assert "The transfer is recorded below." in text
    assert "Alpha Finance Ltd" in text and "deals@alpha-finance.example" in text
    assert "finance quote from <Alpha Finance>." in text
    assert "&lt;Alpha Finance&gt;" in after.text
    assert "Recorded by Cara Alpha" in text
    audit = _text(client_a.get("/portal/audit"))
    assert "Passed a lead on (at the visitor's request)" in audit and "lead.forward" in audit

    # A lead the visitor never agreed to pass on is not the client's to forward.
    never = client_a.post(f"/portal/leads/{seeded.nora}/forward", data=typed)
    assert never.status_code == 404


# ---- CSV and the report ------------------------------------------------------------------------


def test_csv_download(seeded: Seeded, client_a: httpx.Client) -> None:
    page = client_a.get("/portal/leads")
    assert 'href="/portal/leads.csv"' in page.text
    response = client_a.get("/portal/leads.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="leads-all-')
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:5] == ["id", "created_at", "site", "purpose", "status"]
    by_id = {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert set(by_id) == {seeded.sam, seeded.formula}  # never the unreleased lead
    assert by_id[seeded.sam]["name"] == SAM
    assert by_id[seeded.sam]["email"] == "sam@example.org"
    # Cells a spreadsheet would run as formulas start with a quote.
    assert by_id[seeded.formula]["name"] == "'" + FORMULA
    assert by_id[seeded.sam]["phone"] == "'+447400123456"
    assert by_id[seeded.formula]["sale_share_opt_out"] == "yes"
    typed_by_people = ("name", "email", "phone", "postcode", "vehicle")
    for row in by_id.values():
        assert all(row[k][:1] not in ("=", "+", "-", "@") for k in typed_by_people)

    filtered = client_a.get("/portal/leads", params={"status": "closed"})
    assert 'href="/portal/leads.csv?status=closed"' in filtered.text
    closed = client_a.get("/portal/leads.csv", params={"status": "closed"})
    assert closed.status_code == 200
    assert [r[0] for r in csv.reader(io.StringIO(closed.text))][1:] == []


def test_report_shows_chat_ratings(world: World, seeded: Seeded, client_a: httpx.Client) -> None:
    page = client_a.get(f"/portal/sites/{world.site_a_id}")
    assert page.status_code == 200
    text = _text(page)
    assert "Chat ratings" in text and "4.0 out of 5 from 1 rating" in text
    old = client_a.get(
        f"/portal/sites/{world.site_a_id}", params={"from": "2020-01-01", "to": "2020-01-31"}
    )
    assert "No chats were rated in this period." in _text(old)


def test_vehicle_text() -> None:
    assert vehicle_text(None) == ""
    assert vehicle_text({"year": "2021", "make": "Skoda", "model": "Octavia"}) == (
        "2021 Skoda Octavia"
    )
    assert vehicle_text({"make": "Ford", "status": "used"}) == "Ford (used)"
    assert vehicle_text({"status": "new"}) == "new"
    assert trade_in_text({"year": "2015", "make": "Ford", "model": "Fiesta"}) == (
        "Part-exchange: 2015 Ford Fiesta"
    )
    assert trade_in_text(None) == ""
