"""Visit statistics in a real browser (docs/tracking.md): consent, DNT/GPC, per-site identity,
invitations, and what ends up in the database and the server log.

Two dealerships on one server, as ``confide demo`` seeds them: Main Street (consent mode
"opt-in", embedded at ``http://dealer.test/demo/...`` through Playwright routing and at
``http://localhost:PORT/demo/``) and Eastside (mode "notice", with an invitation rule, at
``http://127.0.0.1:PORT/demo/east``). The demo pages are fetched from the server and served with
``data-ping`` on the script tag, so that the widget pings every second instead of every 15.

Every browser context sends a distinctive, ordinary User-Agent: the server does not count
headless Chromium (a bot), and the test checks that the raw string is stored and logged nowhere.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from confide.testing import Account, session_cookie
from tests.web.browser_support import (
    DESKTOP,
    HOST,
    Demo,
    chat_frame,
    demo_server,
    require_chromium,
    send,
    wait_for,
)

require_chromium()
websockets_sync = pytest.importorskip("websockets.sync.client")

pytestmark = pytest.mark.browser

UA_MARK = "ConfideTestUA/9.9"
UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    f"Chrome/131.0.0.0 Safari/537.36 {UA_MARK}"
)
PING_MS = 1000
INVITE_SECONDS = 3
INVITE_TEXT = "Looking at part-exchange? We can value your car in minutes."
MAIN_NAME = "Demo Motors - Main Street"
EAST_NAME = "Demo Motors - Eastside"
OPERATOR_NAME = "Olivia Operator"
GPC_SCRIPT = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"
DNT_SCRIPT = "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})"
# Cookies and storage blocked (a browser setting or a privacy extension): in every frame.
BLOCKED_SCRIPT = """
const blocked = {get() { throw new DOMException('blocked', 'SecurityError'); }};
Object.defineProperty(window, 'sessionStorage', blocked);
Object.defineProperty(window, 'localStorage', blocked);
Object.defineProperty(Document.prototype, 'cookie', {get() { return ''; }, set(v) {}});
"""


@dataclass
class Dealers:
    demo: Demo
    main_key: str
    main_id: str
    east_key: str
    east_id: str
    operator: Account
    db_path: Path

    @property
    def url(self) -> str:
        return self.demo.server.url

    @property
    def port(self) -> int:
        return self.demo.server.port

    @property
    def local(self) -> str:  # Main Street, as a second host name
        return f"http://localhost:{self.port}"

    @property
    def east(self) -> str:
        return f"http://127.0.0.1:{self.port}/demo/east"

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(self.db_path, timeout=10)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def count(self, table: str, site_id: str) -> int:
        return int(self.rows(f"SELECT count(*) FROM {table} WHERE site_id = ?", site_id)[0][0])

    def db_bytes(self) -> bytes:
        """The database as stored, write-ahead log included."""
        return b"".join(p.read_bytes() for p in self.db_path.parent.glob(self.db_path.name + "*"))


@pytest.fixture(scope="module")
def dealers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dealers]:
    made: dict[str, Any] = {}

    def prepare(d: Demo) -> None:
        server, port = d.server, d.server.port
        org = server.create_org("Demo Motors Group")

        def create(name: str, origins: list[str], mode: str) -> Any:
            return server.service(
                lambda ctx: ctx.sites.create_site(
                    organisation_id=org, name=name, origins=origins, consent_mode=mode
                )
            )

        main = create(MAIN_NAME, [HOST, f"http://localhost:{port}"], "opt-in")
        # Eastside also on localhost: two sites of one group on one domain (the same-host test).
        east = create(EAST_NAME, [f"http://127.0.0.1:{port}", f"http://localhost:{port}"], "notice")
        rule = {"path": "/demo/east*", "seconds": INVITE_SECONDS, "text": INVITE_TEXT}
        server.service(lambda ctx: ctx.sites.configure(east.id, invite_rules=[rule]))
        operator = server.create_user("operator", sites=[main.id, east.id], name=OPERATOR_NAME)
        # The demo pages embed these two sites (demo_server passes d.key as the main site).
        d.key, d.site_id, d.operator = main.key, main.id, operator
        server.env["CONFIDE_DEMO_EAST_SITE_KEY"] = east.key
        made.update(main=main, east=east, operator=operator)

    workdir = tmp_path_factory.mktemp("tracking")
    with demo_server(workdir, prepare) as d:
        yield Dealers(
            d,
            made["main"].key,
            made["main"].id,
            made["east"].key,
            made["east"].id,
            made["operator"],
            workdir / "confide.db",
        )


@pytest.fixture(scope="module")
def demo(dealers: Dealers) -> Demo:
    """The shared browser fixtures (tests/web/conftest.py) use this module's server."""
    return dealers.demo


# ---- helpers -----------------------------------------------------------------------------------


class Visitor:
    """A page in its own context, with the demo pages served (``data-ping`` added) on every host
    name the tests use, and every request to our /api/t recorded."""

    def __init__(self, context: Any, dealers: Dealers, pages: dict[str, str] | None = None) -> None:
        self.context = context
        self.beacons: list[dict[str, Any]] = []
        self.errors: list[str] = []
        server = dealers.url

        def serve(route: Any) -> None:
            url = route.request.url
            target = server + url[len(HOST) :] if url.startswith(HOST) else url
            response = route.fetch(url=target)
            headers = {k: v for k, v in response.headers.items() if k != "content-length"}
            csp = headers.get("content-security-policy", "")
            for directive in ("script-src", "frame-src"):
                csp = csp.replace(directive, f"{directive} {server}")
            # The loader sends its beacons to our origin: a client's CSP must allow it.
            headers["content-security-policy"] = csp + f"; connect-src 'self' {server}"
            body = response.text().replace(" data-site=", f' data-ping="{PING_MS}" data-site=')
            route.fulfill(status=response.status, headers=headers, body=body)

        context.route(
            re.compile(r"^http://(dealer\.test|localhost:\d+|127\.0\.0\.1:\d+)/demo/"), serve
        )

        def serve_page(route: Any) -> None:  # a client's own page, embedding the widget
            route.fulfill(
                content_type="text/html; charset=utf-8",
                headers={
                    "content-security-policy": f"default-src 'self'; script-src 'self' "
                    f"'unsafe-inline' {server}; frame-src {server}; connect-src {server}"
                },
                body=(pages or {})[route.request.url[len(HOST) :]],
            )

        if pages:
            context.route(HOST + "/client/**", serve_page)
        self.page = context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", self._request)

    def _request(self, request: Any) -> None:
        if request.url.split("?")[0].endswith("/api/t"):
            self.beacons.append(json.loads(request.post_data or "null"))

    def goto(self, url: str) -> Any:
        """Open ``url``; returns the chat frame."""
        old = next((f for f in self.page.frames if "/widget/frame" in f.url), None)
        self.page.goto(url)
        self.page.wait_for_function("window.Confide && window.Confide._loaded === true")
        return chat_frame(self.page, not_this=old)

    def cookies(self) -> list[dict[str, Any]]:
        """The widget's visitor cookies (``_cfv_<site key>``, one per site)."""
        return [c for c in self.context.cookies() if c["name"].startswith("_cfv_")]

    def stored_visit(self, site_key: str | None = None) -> dict[str, Any] | None:
        """The visit the loader keeps (``_cfvisit_<site key>``): ``site_key``'s, or the only one."""
        raw = self.page.evaluate(
            "(key) => { const k = key ? '_cfvisit_' + key"
            " : Object.keys(sessionStorage).find(k => k.startsWith('_cfvisit_'));"
            " return k ? sessionStorage.getItem(k) : null; }",
            site_key,
        )
        return json.loads(raw) if raw else None

    def idle(self, seconds: float) -> None:
        self.page.wait_for_timeout(seconds * 1000)


@pytest.fixture
def visitor(new_context: Callable[..., Any], dealers: Dealers) -> Callable[..., Visitor]:
    def make(
        viewport: dict[str, int] = DESKTOP, pages: dict[str, str] | None = None, **options: Any
    ) -> Visitor:
        return Visitor(new_context(viewport, user_agent=UA, **options), dealers, pages)

    return make


class Console:
    """An operator's console socket: keeps the sites online, receives chats, sends invitations."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.send(type="hello", v=1)
        self.expect("welcome")

    def send(self, **frame: Any) -> None:
        self.ws.send(json.dumps(frame))

    def expect(
        self,
        kind: str,
        pred: Callable[[dict[str, Any]], bool] = lambda f: True,
        timeout: float = 10,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame: dict[str, Any] = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                break
            if frame["type"] == kind and pred(frame):
                return frame
        raise AssertionError(f"no {kind} frame")


@pytest.fixture
def console(dealers: Dealers) -> Iterator[Console]:
    http = dealers.demo.server.login(dealers.operator)
    cookie = session_cookie(http)
    http.close()
    with websockets_sync.connect(
        dealers.demo.server.ws_url + "/ws/console?v=1",
        origin=dealers.url,
        additional_headers={"Cookie": f"confide_session={cookie}"},
    ) as ws:
        yield Console(ws)


def chat_works(v: Visitor, frame: Any, console: Console, text: str) -> str:
    """Open the panel, send ``text``, and see it reach the operator. Returns the conversation id."""
    v.page.evaluate("Confide.open()")
    frame.wait_for_selector("#status.on")  # an operator is online: the chat view, not the form
    send(frame, text)
    message = console.expect("message", lambda f: f.get("text") == text)  # the queue's preview
    frame.wait_for_selector("#msgs .visitor .tick.sent")
    return str(message["conversation"])


def privacy_panel(v: Visitor, frame: Any) -> str:
    """Open the chat and its privacy panel; returns the panel's text."""
    v.page.evaluate("Confide.open()")
    frame.click("#privacy-btn")
    frame.wait_for_selector("#privacy:not([hidden])")
    assert frame.evaluate("document.activeElement.id") == "privacy-title"
    return str(frame.inner_text("#privacy"))


def teaser_shown(frame: Any) -> bool:
    return bool(frame.evaluate("!document.getElementById('teaser').hidden"))


# ---- (a) opt-in: nothing before consent; then the path without its query ----------------------


def test_opt_in_site_records_nothing_before_consent(
    visitor: Callable[..., Visitor], dealers: Dealers
) -> None:
    v = visitor()
    frame = v.goto(HOST + "/demo/used-cars?email=a@b.c&utm_source=x")
    page = v.page
    page.wait_for_function("!document.getElementById('consent').hidden")  # the dealer's banner
    v.idle(2.5)  # the config has long arrived, and pings would be due
    assert v.cookies() == []
    assert v.stored_visit() is None
    assert v.beacons == []
    assert "Visit statistics: off" in privacy_panel(v, frame)
    frame.click("#privacy-back")
    v.page.evaluate("Confide.close()")

    visits_before = dealers.count("visits", dealers.main_id)
    page.get_by_role("button", name="Accept cookies").click()
    wait_for(
        lambda: dealers.count("visits", dealers.main_id) > visits_before, what="a visit", page=page
    )
    [cookie] = v.cookies()
    assert re.fullmatch(r"[\w-]{22}", cookie["value"])
    assert cookie["domain"] == "dealer.test" and cookie["sameSite"] == "Lax"
    assert 390 * 86400 < cookie["expires"] - time.time() < 400 * 86400  # 13 months
    visit = v.stored_visit()
    assert visit is not None and visit["n"] == 1

    # The path without its query string; of the query only utm_* is kept. The loader and the
    # frame already dropped the email address: it never left the page.
    [(path, title)] = dealers.rows(
        "SELECT path, title FROM page_views WHERE visit_id = ?", visit["id"]
    )
    assert (path, title) == ("/demo/used-cars", "Used cars for sale · Demo Motors")
    [(campaign, channel)] = dealers.rows(
        "SELECT campaign, channel FROM visits WHERE id = ?", visit["id"]
    )
    assert json.loads(campaign) == {"utm_source": "x"} and channel == "campaign"
    assert all(b["consent"] == "granted" for b in v.beacons)
    assert "a@b.c" not in json.dumps(v.beacons)
    assert b"a@b.c" not in dealers.db_bytes()

    # Pings keep the visit live for the operators, with the page's visible seconds.
    wait_for(
        lambda: (
            dealers.rows("SELECT seconds FROM page_views WHERE visit_id = ?", visit["id"])[0][0]
            >= 2
        ),
        what="time on page",
        page=page,
    )
    http = dealers.demo.server.login(dealers.operator)
    live = http.get("/api/visitors/live").json()
    http.close()
    [mine] = [x for x in live if x["id"] == visit["id"]]
    assert mine["page"]["path"] == "/demo/used-cars" and mine["device"]["browser"] == "Chrome"

    # The next page is the same visit, the consent remembered by the dealer's banner.
    frame = v.goto(HOST + "/demo/contact")
    wait_for(
        lambda: dealers.rows(
            "SELECT path FROM page_views WHERE visit_id = ? AND seq = 2", visit["id"]
        ),
        what="the second page view",
        page=page,
    )
    assert v.stored_visit()["id"] == visit["id"]  # type: ignore[index]
    # The id starts with its time (base 36 milliseconds): new visits sort last in the indexes.
    started = int(visit["id"][:8], 36) / 1000
    assert abs(started - time.time()) < 600 and len(visit["id"]) == 22
    assert "Visit statistics: on" in privacy_panel(v, frame)
    v.page.evaluate("Confide.close()")

    # Withdrawal: the cookie and the visit go, and the beacons stop.
    page.get_by_role("link", name="Cookie settings").click()
    page.get_by_role("button", name="Reject cookies").click()
    wait_for(lambda: not v.cookies(), what="_cfv deleted", page=page)
    assert v.stored_visit() is None
    sent = len(v.beacons)
    v.idle(2.5)
    assert len(v.beacons) == sent
    assert v.errors == []


# ---- (b, c) GPC and DNT: nothing recorded, the chat as good as ever ---------------------------


@pytest.mark.parametrize("signal", ["gpc", "dnt"])
def test_privacy_signals_are_honoured_and_chat_still_works(
    visitor: Callable[..., Visitor], dealers: Dealers, console: Console, signal: str
) -> None:
    if signal == "gpc":
        v = visitor(extra_http_headers={"Sec-GPC": "1"})
        v.context.add_init_script(GPC_SCRIPT)
    else:
        v = visitor(extra_http_headers={"DNT": "1"})
        v.context.add_init_script(DNT_SCRIPT)
    opt_outs = dealers.count("opt_outs", dealers.east_id)
    visits = dealers.count("visits", dealers.east_id)
    # Eastside is in "notice" mode: without the signal this visit would be recorded.
    frame = v.goto(dealers.east)
    v.page.get_by_role("navigation").get_by_role("link", name="Eastside").click()  # a 2nd page
    frame = chat_frame(v.page, not_this=frame)
    v.page.reload()
    frame = chat_frame(v.page, not_this=frame)
    v.idle(2.5)

    assert v.cookies() == [] and v.stored_visit() is None
    assert dealers.count("visits", dealers.east_id) == visits
    if signal == "gpc":
        # One opt-out per browser session, and no identifier in it.
        assert v.beacons == [{"site": dealers.east_key, "events": [{"type": "optout"}]}]
        wait_for(lambda: dealers.count("opt_outs", dealers.east_id) == opt_outs + 1, page=v.page)
    else:
        assert v.beacons == []
        assert dealers.count("opt_outs", dealers.east_id) == opt_outs

    text = privacy_panel(v, frame)
    if signal == "gpc":
        assert frame.inner_text("#privacy-signal") == "Opt-out request honoured"
    else:
        assert frame.inner_text("#privacy-signal") == "Do Not Track is on"
        assert "tracking is off" in text
    assert "Visit statistics: off" in text
    frame.click("#privacy-back")
    assert frame.evaluate("document.activeElement.id") == "privacy-btn"

    cid = chat_works(v, frame, console, f"Hello with {signal.upper()} on")
    assert dealers.rows("SELECT visit_id FROM conversations WHERE id = ?", cid) == [(None,)]
    # GPC is also an opt-out for the chat visitor (and any person they become, R14)
    gpc = "SELECT v.gpc FROM visitors v JOIN conversations c ON c.visitor_id = v.id WHERE c.id = ?"
    assert dealers.rows(gpc, cid) == [(int(signal == "gpc"),)]
    assert v.cookies() == [] and v.stored_visit() is None
    assert dealers.count("visits", dealers.east_id) == visits
    assert v.errors == []


def test_gpc_sent_as_a_header_only_is_honoured_on_an_opt_in_site(
    visitor: Callable[..., Visitor], dealers: Dealers, console: Console
) -> None:
    """A browser that sends ``Sec-GPC: 1`` without ``navigator.globalPrivacyControl``: the
    frame learns it from its own request, so the opt-out is recorded and shown even before any
    consent (R13, R17), and the chat visitor is flagged."""
    v = visitor(extra_http_headers={"Sec-GPC": "1"})
    opt_outs = dealers.count("opt_outs", dealers.main_id)
    frame = v.goto(HOST + "/demo/")  # Main Street: opt-in, no consent given
    wait_for(lambda: v.beacons, page=v.page, what="the frame's opt-out beacon")
    v.idle(1.5)  # and nothing after it
    assert v.beacons == [{"site": dealers.main_key, "events": [{"type": "optout"}]}]
    wait_for(lambda: dealers.count("opt_outs", dealers.main_id) == opt_outs + 1, page=v.page)
    # A "yes" from the site's cookie banner does not outweigh the signal; the panel says so,
    # without blocking anything (R15).
    v.page.evaluate("Confide.consent('granted')")
    privacy_panel(v, frame)
    assert frame.inner_text("#privacy-signal") == "Opt-out request honoured"
    wait_for(  # the consent call reaches the frame by postMessage
        lambda: "takes precedence" in frame.inner_text("#privacy-signal-detail"),
        what="the note that the signal outweighs consent",
    )
    frame.click("#privacy-back")
    cid = chat_works(v, frame, console, "Hello with the GPC header only")
    gpc = "SELECT v.gpc FROM visitors v JOIN conversations c ON c.visitor_id = v.id WHERE c.id = ?"
    assert dealers.rows(gpc, cid) == [(1,)]
    assert v.cookies() == [] and v.stored_visit() is None
    assert v.errors == []


def test_blocked_storage_means_no_statistics_but_a_working_chat(
    visitor: Callable[..., Visitor], dealers: Dealers, console: Console
) -> None:
    v = visitor()
    v.context.add_init_script(BLOCKED_SCRIPT)
    frame = v.goto(dealers.east)
    v.idle(2.5)
    assert v.beacons == []
    chat_works(v, frame, console, "Hello without storage")
    assert v.errors == []


# ---- consent from the site's CMP -----------------------------------------------------------------

# Stand-ins with the APIs the loader reads: Klaro's consent manager, CookieConsent v3, and gtag's
# Consent Mode commands in dataLayer.
CMPS = {
    "klaro": """
      window.__km = {confirmed: true, consents: {confide: true}, watchers: [],
        getService(n) { return n === 'confide' ? {name: n} : undefined; },
        getConsent(n) { return !!this.consents[n]; },
        watch(w) { this.watchers.push(w); }};
      window.klaro = {getManager() { return window.__km; }};
      window.withdraw = () => {
        __km.consents.confide = false;
        __km.watchers.forEach((w) => w.update(__km, 'saveConsents', {}));
      };""",
    "cookieconsent": """
      window.CookieConsent = {analytics: true, validConsent() { return true; },
        acceptedCategory(c) { return c === 'analytics' && this.analytics; }};
      window.withdraw = () => {
        CookieConsent.analytics = false;
        window.dispatchEvent(new CustomEvent('cc:onChange'));
      };""",
    "gcm": """
      window.dataLayer = window.dataLayer || [];
      function gtag() { dataLayer.push(arguments); }
      gtag('consent', 'default', {analytics_storage: 'denied', ad_storage: 'denied'});
      gtag('js', new Date());
      gtag('consent', 'update', {analytics_storage: 'granted'});
      window.withdraw = () => gtag('consent', 'update', {analytics_storage: 'denied'});""",
}


@pytest.mark.parametrize("cmp", sorted(CMPS))
def test_consent_comes_from_the_sites_cmp(
    visitor: Callable[..., Visitor], dealers: Dealers, cmp: str
) -> None:
    html = (
        f"<!doctype html><html><head><title>Client page</title><script>{CMPS[cmp]}</script>"
        f'</head><body><h1>Welcome</h1><script async src="{dealers.url}/widget.js" '
        f'data-ping="{PING_MS}" data-site="{dealers.main_key}"></script></body></html>'
    )
    v = visitor(pages={"/client/": html})
    v.goto(HOST + "/client/")  # Main Street: opt-in, and this CMP says yes
    visit = wait_for(lambda: v.stored_visit(), what="a visit", page=v.page)
    assert v.cookies() and all(b["consent"] == "granted" for b in v.beacons)
    wait_for(lambda: dealers.rows("SELECT id FROM visits WHERE id = ?", visit["id"]), page=v.page)
    if cmp == "gcm":  # read, never written to
        assert v.page.evaluate("dataLayer.length") == 3

    v.page.evaluate("withdraw()")
    wait_for(lambda: not v.cookies() and v.stored_visit() is None, what="deleted", page=v.page)
    sent = len(v.beacons)
    v.idle(2.5)
    assert len(v.beacons) == sent
    if cmp == "gcm":
        assert v.page.evaluate("dataLayer.length") == 4
    assert v.errors == []


# ---- (d) one browser, two sites: two unrelated visitors ---------------------------------------


def test_two_sites_get_unrelated_identifiers(
    visitor: Callable[..., Visitor], dealers: Dealers
) -> None:
    v = visitor()
    v.goto(dealers.local + "/demo/")
    v.page.get_by_role("button", name="Accept cookies").click()
    wait_for(lambda: v.stored_visit(), what="the Main Street visit", page=v.page)
    main_visit = v.stored_visit()
    v.goto(dealers.east)  # notice mode: recorded without a banner
    wait_for(lambda: v.stored_visit(), what="the Eastside visit", page=v.page)
    east_visit = v.stored_visit()
    assert main_visit and east_visit and main_visit["id"] != east_visit["id"]

    cookies = {c["domain"]: c for c in v.context.cookies()}
    assert set(cookies) == {"localhost", "127.0.0.1"}  # host-only cookies, one per site
    assert {c["name"] for c in cookies.values()} == {
        f"_cfv_{dealers.main_key}",
        f"_cfv_{dealers.east_key}",
    }
    main_cookie, east_cookie = cookies["localhost"]["value"], cookies["127.0.0.1"]["value"]
    assert main_cookie != east_cookie
    # Nothing else: our server sets no cookie, the loader sets _cfv_<site> on the client's domain.
    assert len(v.context.cookies()) == 2

    def visitor_row(visit_id: str) -> tuple[Any, ...]:
        rows = dealers.rows(
            "SELECT sv.id, sv.site_id, sv.cookie_hash FROM visits v"
            " JOIN site_visitors sv ON sv.id = v.site_visitor_id WHERE v.id = ?",
            visit_id,
        )
        return rows[0] if rows else ()

    main_row = wait_for(lambda: visitor_row(main_visit["id"]), page=v.page)
    east_row = wait_for(lambda: visitor_row(east_visit["id"]), page=v.page)
    assert main_row[0] != east_row[0]
    assert (main_row[1], east_row[1]) == (dealers.main_id, dealers.east_id)
    # Only a per-site hash of the cookie is kept: nothing joins the two.
    assert main_row[2] == hashlib.sha256(f"{dealers.main_id}:{main_cookie}".encode()).hexdigest()
    assert east_row[2] == hashlib.sha256(f"{dealers.east_id}:{east_cookie}".encode()).hexdigest()
    stored = dealers.db_bytes()
    assert main_cookie.encode() not in stored and east_cookie.encode() not in stored
    assert v.errors == []


def test_two_sites_on_one_domain_keep_separate_identifiers(
    visitor: Callable[..., Visitor], dealers: Dealers
) -> None:
    """Both sites' widgets on one host: each keeps its own cookie and visit, so the browser
    never holds one identifier for two sites, and refusing on one leaves the other alone."""
    v = visitor()
    v.goto(dealers.local + "/demo/")
    v.page.get_by_role("button", name="Accept cookies").click()
    wait_for(lambda: v.cookies(), what="Main Street's cookie", page=v.page)
    v.goto(dealers.local + "/demo/east")
    wait_for(lambda: len(v.cookies()) == 2, what="Eastside's own cookie", page=v.page)
    by_name = {c["name"]: c["value"] for c in v.cookies()}
    main, east = by_name[f"_cfv_{dealers.main_key}"], by_name[f"_cfv_{dealers.east_key}"]
    assert main != east
    east_visit = v.stored_visit(dealers.east_key)
    assert east_visit and east_visit != v.stored_visit(dealers.main_key)

    v.goto(dealers.local + "/demo/")
    v.page.evaluate("Confide.consent('denied')")  # the banner's choice, withdrawn
    wait_for(lambda: len(v.cookies()) == 1, what="Main Street's cookie deleted", page=v.page)
    assert {c["name"]: c["value"] for c in v.cookies()} == {f"_cfv_{dealers.east_key}": east}
    v.goto(dealers.local + "/demo/east")
    going_on = wait_for(
        lambda: v.stored_visit(dealers.east_key), what="Eastside's visit", page=v.page
    )
    assert going_on["id"] == east_visit["id"]  # the same Eastside visit goes on
    assert v.stored_visit(dealers.main_key) is None
    assert v.errors == []


# ---- (e, f) invitations ------------------------------------------------------------------------


def test_invitation_rule_fires_after_the_dwell_time_once_per_visit(
    visitor: Callable[..., Visitor], dealers: Dealers, console: Console
) -> None:
    # The rule fires only while the team is online (the operator's console is connected).
    v = visitor()
    frame = v.goto(dealers.east)
    started = time.monotonic()
    wait_for(lambda: teaser_shown(frame), timeout=INVITE_SECONDS + 8, what="teaser", page=v.page)
    assert time.monotonic() - started >= INVITE_SECONDS - 1  # not before the dwell time
    assert frame.inner_text("#teaser-from") == EAST_NAME
    assert frame.inner_text("#teaser-text") == INVITE_TEXT
    assert frame.inner_text("#teaser-live") == f"{EAST_NAME}: {INVITE_TEXT}"
    box = frame.frame_element().bounding_box()  # above the launcher, sized to the teaser
    assert box is not None and box["height"] < 250
    assert box["y"] + box["height"] <= DESKTOP["height"] - 76
    assert frame.evaluate("getComputedStyle(document.getElementById('app')).display") == "none"

    frame.click("#teaser-open")  # taking it up opens the chat, the invitation on top
    frame.wait_for_selector("#invite:not([hidden])")
    assert frame.inner_text("#invite-text") == INVITE_TEXT
    assert frame.frame_element().bounding_box()["height"] > 400  # type: ignore[index]
    assert v.stored_visit()["inv"] == 1  # type: ignore[index]

    # Another page of the same visit: no second invitation.
    frame.click("#minimise")
    frame = v.goto(dealers.east)
    v.idle(INVITE_SECONDS + 1.5)
    assert not teaser_shown(frame)

    # Dismissed in another browser: the teaser and the frame go, the launcher has the focus.
    w = visitor()
    frame = w.goto(dealers.east)
    wait_for(lambda: teaser_shown(frame), timeout=INVITE_SECONDS + 8, what="teaser", page=w.page)
    frame.focus("#teaser-close")
    frame.press("#teaser-close", "Enter")
    wait_for(lambda: frame.frame_element().bounding_box() is None, what="hidden", page=w.page)
    assert w.page.evaluate("document.activeElement.tagName") == "DIV"  # the launcher's host
    assert v.errors == [] and w.errors == []


def test_operator_invitation_arrives_with_the_next_ping(
    visitor: Callable[..., Visitor], dealers: Dealers, console: Console
) -> None:
    v = visitor()
    v.context.add_init_script("localStorage.setItem('demo-cookie-consent', 'granted')")
    frame = v.goto(HOST + "/demo/used-cars")  # Main Street has no automatic invitation
    visit = wait_for(lambda: v.stored_visit(), what="a visit", page=v.page)
    console.expect("visitor", lambda f: f["visitor"]["id"] == visit["id"])
    console.send(type="invite", visit=visit["id"], text="Can I help you with finance?")
    console.expect("invited", lambda f: f["visit"] == visit["id"])
    wait_for(lambda: teaser_shown(frame), timeout=5, what="the invitation", page=v.page)
    assert frame.inner_text("#teaser-text") == "Can I help you with finance?"
    assert frame.inner_text("#teaser-from") == OPERATOR_NAME
    assert frame.evaluate("document.getElementById('invite').hidden")

    # Accepting it starts a chat linked to the visit: the operator sees its path.
    cid = chat_works(v, frame, console, "Yes please, about the Golf")
    assert frame.inner_text("#invite-text") == "Can I help you with finance?"
    assert dealers.rows("SELECT visit_id FROM conversations WHERE id = ?", cid) == [(visit["id"],)]
    assert v.errors == []


# ---- (g) what the server keeps of the request ---------------------------------------------------


def test_no_raw_user_agent_or_address_is_kept(
    visitor: Callable[..., Visitor], dealers: Dealers
) -> None:
    v = visitor()
    v.goto(dealers.east)
    visit = wait_for(lambda: v.stored_visit(), what="a visit", page=v.page)
    [usage] = wait_for(
        lambda: dealers.rows(
            "SELECT browser, browser_major, os, device FROM visits WHERE id = ?", visit["id"]
        ),
        page=v.page,
    )
    assert usage == ("Chrome", "131", "Linux", "desktop")  # reduced, at most
    columns = {r[1] for r in dealers.rows("PRAGMA table_info(visits)")}
    assert not {c for c in columns if re.search(r"ip|addr|agent|ua$", c)}
    for row in dealers.rows("SELECT * FROM visits"):
        assert not any(isinstance(x, str) and ("Mozilla/" in x or x == "127.0.0.1") for x in row)
    assert UA_MARK.encode() not in dealers.db_bytes()
    assert "Mozilla/" not in dealers.db_bytes().decode("latin-1")
    logs = dealers.demo.server.logs()
    assert "POST /api/t" in logs  # the log is there, and it is the one we read
    assert UA_MARK not in logs and "AppleWebKit" not in logs
