"""Hostile text everywhere a person can put text, rendered by the real widget and console.

A corpus of XSS payloads is used as (a) visitor messages, (b) operator messages, (c) visitor names
(from the offline enquiry form, the enquiry API with the contact field too, and ``open{name}``),
(d) site names and greetings and (e) organisation names; the operator's own name is a payload as
well. Every surface that shows one of them must show it as literal text: no script runs
(``window.__xss`` stays undefined in the page and in every frame, no dialog opens, no script
error), and no element the payload spells (``img``, ``svg``, ``script``, ``iframe``, ``style``…)
appears in the containers that show it.

Surfaces: the widget (header, greeting, intro, transcript, status and typing lines, the enquiry
form's confirmation), the console's live page (waiting list, my chats, pane header and transcript,
tab labels, site filter), the history page (rows, site filter, the search query reflected back)
and the transcript page (heading, contact, messages, title).

One server for the module (SQLite), seeded before it starts with one organisation and one site
per payload, both named with it (the site's greeting is the payload too), and an operator, named
with a payload, who answers all of them and the demo site.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from confide.testing import Account, LiveServer
from tests.web.browser_support import (
    HOST,
    SITE,
    Demo,
    Watched,
    assert_clean,
    chat_frame,
    click_launcher,
    demo_server,
    require_chromium,
    send,
)

require_chromium()
expect = pytest.importorskip("playwright.sync_api").expect
websockets_sync = pytest.importorskip("websockets.sync.client")

pytestmark = pytest.mark.browser

PAYLOADS = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=1">',
    "<svg onload=window.__xss=1>",
    '"><iframe srcdoc="<script>parent.__xss=1</script>">',
    "javascript:window.__xss=1",
    "{{7*7}}",
    '<a href="javascript:window.__xss=1">x</a>',
    "</textarea><script>window.__xss=1</script>",
    "${window.__xss=1}",
    "<style>*{display:none}</style>",
    # More of the usual suspects: a dialog, attribute and title breakouts, event handlers that
    # need no user action, and mutation XSS through foreign content.
    "<img src=x onerror=alert(1)>",
    "'\"><svg/onload=alert(document.domain)>",
    "</title><script>window.__xss=1</script>",
    "<details open ontoggle=window.__xss=1>",
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=1>",
]
OPERATOR_NAME = '"><img src=x onerror=alert(2)> Olivia'
DASH = "\N{EN DASH}"
QUOTE = "\N{LEFT DOUBLE QUOTATION MARK}\N{RIGHT DOUBLE QUOTATION MARK}"
# The enquiry form checks that the contact looks like an email address or a phone number.
FORM_CONTACT = '"><img/src=x/onerror=window.__xss=1>@x.co'

# Elements none of the checked containers ever holds legitimately.
INJECTED = (
    "script, style, link, meta, img, svg, math, iframe, frame, object, embed, video, audio, "
    "details, form, input, textarea, select, a, [onerror], [onload], [ontoggle], [onclick], "
    "[srcdoc], [href]"
)
# Elements none of the pages checked has anywhere (their scripts and styles are all files).
PAGE_WIDE = (
    "script:not([src]), style, iframe, frame, img, object, embed, math, "
    "details:not(.lp-disclosure), "
    "[onerror], [onload], [ontoggle], [srcdoc], a[href^='javascript' i]"
)
WIDGET_TEXT = (
    "#site-name, #greeting, #intro, #msgs, #typing, #status, #notice, #enquiry-sent, .privacy-sub"
)
HISTORY_TEXT = ".history-row, .results-meta, .page-head, .account-who"
TRANSCRIPT_TEXT = ".transcript-head, .transcript, .account-who"
CONSOLE_TEXT = (
    "#waiting-list, #mine-list, #pane-tabs, #panes .pane-head, #panes .transcript, .account-who"
)


# ---- the world -----------------------------------------------------------------------------------


@dataclass
class PayloadSite:
    payload: str
    key: str
    id: str


@dataclass
class World:
    demo: Demo
    operator: Account  # named OPERATOR_NAME; answers every payload site and the demo site
    sites: list[PayloadSite]  # one per payload, in PAYLOADS order

    @property
    def server(self) -> LiveServer:
        return self.demo.server


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made: dict[str, Any] = {}

    def prepare(demo: Demo) -> None:
        server = demo.server
        sites = []
        for p in PAYLOADS:
            org = server.create_org(p)
            site = server.service(
                lambda ctx, org=org, p=p: ctx.sites.create_site(
                    organisation_id=org, name=p, origins=[HOST], greeting=p
                )
            )
            assert (site.name, site.greeting) == (p, p)
            sites.append(PayloadSite(p, site.key, site.id))
        made["sites"] = sites
        made["operator"] = server.create_user(
            "operator", sites=[demo.site_id, *(s.id for s in sites)], name=OPERATOR_NAME
        )

    with demo_server(tmp_path_factory.mktemp("xss"), prepare) as demo:
        yield World(demo, made["operator"], made["sites"])


@pytest.fixture(scope="module")
def demo(world: World) -> Demo:
    return world.demo


def host_page(server_url: str, key: str, n: int) -> str:
    """A client's page embedding one site's widget with the standard snippet."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Client page {n}</title></head><body><main><h1>Client page {n}</h1></main>"
        f'<script async src="{server_url}/widget.js" data-site="{key}"></script></body></html>'
    )


# ---- other ways in -------------------------------------------------------------------------------


def open_named_chat(server: LiveServer, key: str, name: str, text: str) -> str:
    """A visitor (a raw widget socket) opens a chat as ``name`` and writes ``text``."""
    with websockets_sync.connect(
        f"{server.ws_url}/ws/widget?v=1&site={key}", origin=HOST, open_timeout=10
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
        ws.send(json.dumps({"type": "open", "name": name}))
        cid = str(recv("conversation")["conversation"]["id"])
        client_id = "xss-" + secrets.token_hex(8)
        ws.send(
            json.dumps({"type": "send", "conversation": cid, "client_id": client_id, "text": text})
        )
        recv("ack")
    return cid


def enquire(server: LiveServer, key: str, name: str, contact: str, message: str) -> str:
    """The offline form's request, as the widget sends it from a page on HOST."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        response = http.post(
            "/api/widget/enquiry",
            json={"site": key, "host": HOST, "name": name, "contact": contact, "message": message},
            headers={"Origin": HOST},
        )
    assert response.status_code == 201, response.text
    return str(response.json()["conversation"])


# ---- checks --------------------------------------------------------------------------------------


def injected(scope: Any, roots: str) -> list[str]:
    """Elements inside ``roots`` (in a page or frame) that only markup from text could make."""
    found: list[str] = (
        scope.locator(roots)
        .locator(INJECTED)
        .evaluate_all("els => els.map(e => e.outerHTML.slice(0, 200))")
    )
    return found


def page_wide(scope: Any) -> list[str]:
    found: list[str] = scope.evaluate(
        "sel => [...document.querySelectorAll(sel)].map(e => e.outerHTML.slice(0, 200))",
        PAGE_WIDE,
    )
    return found


def assert_inert(w: Watched, *scopes: tuple[Any, str]) -> None:
    """Nothing ran and nothing was parsed: see the module docstring."""
    for scope, roots in scopes:
        assert injected(scope, roots) == [], f"markup in {roots}"
        assert page_wide(scope) == []
    assert_clean(w)


def frame_title(frame: Any) -> str:
    return str(frame.evaluate("document.title"))


# ---- console checks shared by the tests ------------------------------------------------------


@dataclass
class Conv:
    id: str
    site: PayloadSite
    name: str  # the visitor's name
    contact: str | None  # set for enquiries
    message: str


def check_console_conversation(page: Any, c: Conv) -> None:
    """The waiting-list entry, then the pane it opens, show every field as text."""
    p = c.site.payload
    item = page.locator(f'#waiting-list li[data-id="{c.id}"]')
    expect(item).to_be_visible()  # (also: no injected style hid the page)
    expect(item.locator('[data-slot="visitor"]')).to_have_text(c.name)
    expect(item.locator('[data-slot="org"]')).to_have_text(p)
    expect(item.locator('[data-slot="site"]')).to_have_text(p)
    expect(item.locator('[data-slot="preview"]')).to_have_text(c.message)
    expect(item.locator('[data-slot="source"]')).to_be_visible(visible=c.contact is not None)

    item.locator(".conv-item").click()
    pane = page.locator(f"#pane-{c.id}")
    expect(pane).to_be_visible()
    expect(pane.locator('.pane-head [data-slot="visitor"]')).to_have_text(c.name)
    expect(pane.locator('.pane-head [data-slot="org"]')).to_have_text(p)
    expect(pane.locator('.pane-head [data-slot="site"]')).to_have_text(p)
    if c.contact is not None:
        expect(pane.locator('[data-slot="contact"]')).to_have_text(c.contact)
    expect(pane.locator(".msg-visitor .msg-author")).to_have_text([c.name])
    expect(pane.locator(".msg-visitor .msg-bubble")).to_have_text([c.message])
    expect(page.locator(f'#tab-{c.id} [data-slot="label"]')).to_have_text(f"{c.name} · {p}")
    assert page.get_attribute(f"#tab-{c.id}", "title") == f"{c.name} · {p} {DASH} {p}"
    expect(pane.locator('[data-slot="label"]')).to_have_text(f"Reply to {c.name}")


def check_transcript_page(w: Watched, server: LiveServer, c: Conv) -> None:
    page = w.page
    p = c.site.payload
    page.goto(f"{server.url}/console/conversations/{c.id}")
    head = page.locator(".transcript-head")
    badge = " Enquiry" if c.contact is not None else ""
    expect(head.locator("h1")).to_have_text(c.name + badge)
    expect(head.locator(".org-name")).to_have_text(p)
    expect(head.locator(".site-name")).to_have_text(p)
    assert head.locator(".site-name").get_attribute("title") == p
    if c.contact is not None:
        expect(head.locator("dd.contact")).to_have_text(c.contact)
    expect(page.locator(".transcript .msg-author")).to_have_text([c.name])
    expect(page.locator(".transcript .msg-bubble")).to_have_text([c.message])
    assert page.title() == f"{c.name} {DASH} {p} · Confide"
    assert_inert(w, (page, TRANSCRIPT_TEXT))


def check_history_rows(page: Any, convs: list[Conv]) -> None:
    for c in convs:
        p = c.site.payload
        row = page.locator(f'a.history-row[href="/console/conversations/{c.id}"]')
        expect(row).to_be_visible()
        expect(row.locator(".org-name")).to_have_text(p)
        expect(row.locator(".site-name")).to_have_text(p)
        assert row.locator(".site-name").get_attribute("title") == p
        badge = " Enquiry" if c.contact is not None else ""
        expect(row.locator(".history-who")).to_have_text(c.name + badge)


def check_history_for_site(
    w: Watched, server: LiveServer, site: PayloadSite, convs: list[Conv]
) -> None:
    page = w.page
    p = site.payload
    page.goto(f"{server.url}/console/history?" + urlencode({"site": site.id}))
    check_history_rows(page, convs)
    # The site filter: one group per organisation, named with it; this site chosen.
    group = page.locator("#history-site optgroup").filter(
        has=page.locator(f'option[value="{site.id}"]')
    )
    assert group.get_attribute("label") == p
    expect(group.locator(f'option[value="{site.id}"]')).to_have_text(p)
    assert page.locator("#history-site").input_value() == site.id
    assert_inert(w, (page, HISTORY_TEXT))


# ---- tests ---------------------------------------------------------------------------------------


def test_site_names_and_greetings_in_the_widget_and_names_from_the_enquiry_form(
    world: World,
    visitor_page: Callable[..., Watched],
    operator_page: Callable[..., Watched],
) -> None:
    """(d) in the widget, and (c) through the offline form: nobody is signed in yet, so every
    payload site is offline and its widget offers the form."""
    pages = {f"/xss/{i}": host_page(world.server.url, s.key, i) for i, s in enumerate(world.sites)}
    visitor = visitor_page(pages=pages)
    page = visitor.page
    convs: list[Conv] = []
    for i, site in enumerate(world.sites):
        p = site.payload
        page.goto(f"{HOST}/xss/{i}")
        frame = chat_frame(page)
        # As the server rendered the frame...
        expect(frame.locator("#site-name")).to_have_text(p)
        expect(frame.locator("#greeting")).to_have_text(p)
        expect(frame.locator("#intro .intro-text")).to_contain_text(f"only to the {p} team.")
        privacy = frame.locator(
            "#privacy .privacy-sub"
        ).first  # the privacy panel, where there is one
        if privacy.count():
            expect(privacy).to_have_text(f"What {p} records")
        assert frame_title(frame) == f"Chat with {p}"
        # ...and once more from the socket's welcome, which the app renders itself.
        click_launcher(page)
        frame.wait_for_selector("#offline-view:not([hidden])", timeout=15_000)
        expect(frame.locator("#status-text")).to_have_text("Offline")
        expect(frame.locator("#site-name")).to_be_visible()
        expect(frame.locator("#site-name")).to_have_text(p)
        expect(frame.locator("#greeting")).to_have_text(p)
        assert frame_title(frame) == f"Chat with {p}"

        frame.fill("#q-name", p)
        frame.fill("#q-contact", FORM_CONTACT)
        frame.fill("#q-message", p)
        with page.expect_response(lambda r: r.url.endswith("/api/widget/enquiry")) as sent:
            frame.click("#q-submit")
        assert sent.value.status == 201, sent.value.text()
        convs.append(Conv(sent.value.json()["conversation"], site, p, FORM_CONTACT, p))
        frame.wait_for_selector("#enquiry-sent:not([hidden])")
        expect(frame.locator("#enquiry-sent .done-text")).to_have_text(
            f"Your message is on its way to the {p} team."
        )
        assert page.title() == f"Client page {i}"  # the host page never sees the site's name
        assert_inert(visitor, (frame, WIDGET_TEXT), (page, "main"))

    op = operator_page(account=world.operator)
    for c in convs:
        check_console_conversation(op.page, c)
    assert_inert(op, (op.page, CONSOLE_TEXT))
    op.page.goto(f"{world.server.url}/console/history")  # the newest first: these are
    check_history_rows(op.page, convs)
    assert_inert(op, (op.page, HISTORY_TEXT))
    for c in convs:
        check_transcript_page(op, world.server, c)


def test_visitor_names_organisations_and_sites_in_the_console(
    world: World, operator_page: Callable[..., Watched]
) -> None:
    """(c) through ``open{name}`` and the enquiry API (contact too), (d) and (e) in the console:
    the live page, the history page and the transcript page."""
    convs: list[Conv] = []
    for site in world.sites:
        p = site.payload
        cid = open_named_chat(world.server, site.key, p, p)
        convs.append(Conv(cid, site, p, None, p))
        eid = enquire(world.server, site.key, p, p, p)
        convs.append(Conv(eid, site, p, p, p))

    op = operator_page(account=world.operator)
    page = op.page
    expect(page.locator(".account-who .account-name")).to_have_text(OPERATOR_NAME)
    for c in convs:
        check_console_conversation(page, c)
    # The live page's site filter: organisations as groups, sites as options.
    groups = page.locator("#site-filter optgroup").evaluate_all("els => els.map(e => e.label)")
    options = page.locator("#site-filter option").all_text_contents()
    for p in PAYLOADS:
        assert p in groups
        assert p in options
    assert_inert(op, (page, CONSOLE_TEXT + ", #site-filter"))

    for site in world.sites:
        mine = [c for c in convs if c.site is site]
        check_history_for_site(op, world.server, site, mine)
    for c in convs:
        check_transcript_page(op, world.server, c)


def test_messages_from_visitor_and_operator(
    world: World,
    visitor_page: Callable[..., Watched],
    operator_page: Callable[..., Watched],
) -> None:
    """(a) and (b), on the demo site, with an operator whose name is a payload too."""
    op = operator_page(account=world.operator)
    page = op.page
    visitor = visitor_page()
    visitor.page.goto(HOST + "/demo/")
    frame = chat_frame(visitor.page)
    click_launcher(visitor.page)
    frame.wait_for_selector("#status.on")
    sending = frame.locator("#msgs .visitor .tick").filter(has_text="Sending…")
    for p in PAYLOADS:
        send(frame, p)
        # One at a time: a burst may hit the rate limit, which can reorder messages (see
        # test_chat_e2e_browser.py::test_visitor_message_refused_by_the_rate_limit_keeps_its_place).
        expect(sending).to_have_count(0, timeout=20_000)
    expect(frame.locator("#msgs .visitor .bubble")).to_have_text(PAYLOADS)
    cid = frame.evaluate(
        "JSON.parse(sessionStorage.getItem('confide:' + document.body.dataset.site)).conv.id"
    )

    item = page.locator(f'#waiting-list li[data-id="{cid}"]')
    expect(item.locator('[data-slot="site"]')).to_have_text(SITE)
    expect(item.locator('[data-slot="preview"]')).to_have_text(PAYLOADS[-1])
    item.locator(".conv-item").click()
    pane = page.locator(f"#pane-{cid}")
    expect(pane.locator(".msg-visitor .msg-bubble")).to_have_text(PAYLOADS)
    pane.get_by_role("button", name="Accept chat").click()
    expect(frame.locator("#status-text")).to_have_text(f"{OPERATOR_NAME} is here to help")

    composer = pane.locator(f"#composer-{cid}")
    composer.press_sequentially("typing")
    expect(frame.locator("#typing-text")).to_have_text(f"{OPERATOR_NAME} is typing…")
    for p in PAYLOADS:
        composer.fill(p)
        composer.press("Enter")
    expect(pane.locator(".msg-agent:not(.msg-pending) .msg-bubble")).to_have_text(PAYLOADS)
    expect(pane.locator("li[data-pending]")).to_have_count(0)
    expect(frame.locator("#msgs .agent .bubble")).to_have_text(PAYLOADS)
    expect(frame.locator("#msgs .agent .name").first).to_have_text(OPERATOR_NAME)
    mine = page.locator(f'#mine-list li[data-id="{cid}"]')
    expect(mine.locator('[data-slot="preview"]')).to_have_text("You: " + PAYLOADS[-1])
    expect(visitor.page.locator("body")).to_be_visible()  # no injected style hid the page
    page.wait_for_timeout(300)  # give any injected handler a chance to fire
    assert_inert(visitor, (frame, WIDGET_TEXT))
    assert_inert(op, (page, CONSOLE_TEXT))

    # The transcript page, then history searches for each payload (reflected in the page).
    page.goto(f"{world.server.url}/console/conversations/{cid}")
    expect(page.locator(".transcript .msg-bubble")).to_have_text(PAYLOADS + PAYLOADS)
    agents = page.locator(".transcript .msg-agent .msg-author")
    expect(agents).to_have_text([OPERATOR_NAME] * len(PAYLOADS))
    assert_inert(op, (page, TRANSCRIPT_TEXT))
    for p in PAYLOADS:
        page.goto(f"{world.server.url}/console/history?" + urlencode({"q": p}))
        assert page.title() == f"{QUOTE[0]}{p}{QUOTE[1]} {DASH} History · Confide"
        assert page.locator("#history-q").input_value() == p
        expect(page.locator(".results-meta strong")).to_have_text(p)
        row = page.locator(f'a.history-row[href="/console/conversations/{cid}"]')
        expect(row.locator(".history-snippet")).to_contain_text(p)
        assert_inert(op, (page, HISTORY_TEXT))
