"""Shared infrastructure for the Playwright browser tests (fixtures live in ``conftest.py``).

The demo pages are served to the browser as ``http://dealer.test`` (Playwright routing; nothing
listens there) while the widget comes from the server at 127.0.0.1, so the host page and the chat
iframe are cross-site, as on a client's site.

Rules that every browser module follows:

* Chromium is the system one (``CONFIDE_CHROMIUM``, default /usr/bin/chromium); a module calls
  :func:`require_chromium` at import so it is skipped where there is none.
* One sync Playwright instance per module (the ``browser`` fixture is module-scoped): two
  instances cannot be alive at once in one thread.
* The seeding helpers of :class:`LiveServer` use ``asyncio.run``, which cannot run in a thread
  where the Playwright sync API (an event loop) is active: seed before the browser starts, or
  through :func:`off_loop`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from confide.storage.migrate import upgrade
from confide.testing import Account, LiveServer, free_port

CHROMIUM = os.environ.get("CONFIDE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    # dealer.test is served by Playwright, so Chrome deems it public; a public page may not reach
    # a loopback server. In production both ends are public and these checks never apply.
    "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests",
]
HOST = "http://dealer.test"  # the client's site, as the visitor's browser sees it
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}

ORG = "Demo Motors"
SITE = "Main Street"
OPERATOR_NAME = "Olivia Operator"

T = TypeVar("T")


def require_chromium() -> None:
    """Skip the calling module (call it at import) when there is no Chromium to drive."""
    pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)


def off_loop(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh thread: for seeding helpers (asyncio.run) while Playwright runs."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result()


# ---- the demo server ---------------------------------------------------------------------------


@dataclass
class Demo:
    """A server with the demo pages on, and the organisation, site and operator behind them."""

    server: LiveServer
    key: str  # the demo site's key (CONFIDE_DEMO_SITE_KEY)
    site_id: str
    operator: Account
    host: str = HOST

    org_name: str = ORG
    site_name: str = SITE


def seed_demo(server: LiveServer) -> Demo:
    """Create the demo organisation, site (allowed on HOST) and an operator for it."""
    org = server.create_org(ORG)
    key, site_id = server.create_site(org, SITE, [HOST])
    operator = server.create_user("operator", sites=[site_id], name=OPERATOR_NAME)
    return Demo(server, key, site_id, operator)


@contextmanager
def demo_server(workdir: Path, prepare: Callable[[Demo], None] | None = None) -> Iterator[Demo]:
    """A SQLite-backed server on a free port with the demo pages on. ``prepare(demo)`` may seed
    more (before the server starts, while no Playwright loop runs in this thread)."""
    url = f"sqlite:///{workdir / 'confide.db'}"
    upgrade(url)
    server = LiveServer(url, workdir)
    server.port = free_port()
    demo = seed_demo(server)
    if prepare is not None:
        prepare(demo)
    server.env["CONFIDE_DEMO_SITE_KEY"] = demo.key
    server.start()
    try:
        yield demo
    finally:
        server.stop()


# ---- browser, contexts, pages ------------------------------------------------------------------


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


class Watched:
    """A page that records script errors and dialogs: an XSS would show up in one of them."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.context = page.context
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))

        def on_dialog(d: Any) -> None:
            self.dialogs.append(f"{d.type}: {d.message}")
            d.dismiss()

        page.on("dialog", on_dialog)


def host_csp(server_url: str) -> str:
    """What a client with a CSP sends: our script and our iframe allowed, nothing else."""
    return (
        f"default-src 'self'; script-src 'self' {server_url}; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data:; frame-src 'self' {server_url}; frame-ancestors 'none'"
    )


def new_visitor(
    context: Any,
    server_url: str,
    *,
    host: str = HOST,
    pages: dict[str, str] | None = None,
) -> Watched:
    """A visitor's page in ``context``, with ``host`` served from the server's demo pages.

    ``pages`` maps extra paths on ``host`` to HTML served as they are (e.g. a client page that
    embeds another site's widget)."""
    extra = dict(pages or {})

    def serve(route: Any) -> None:
        path = route.request.url[len(host) :] or "/"
        if path in extra:
            route.fulfill(
                status=200,
                content_type="text/html; charset=utf-8",
                headers={"content-security-policy": host_csp(server_url)},
                body=extra[path],
            )
            return
        response = route.fetch(url=server_url + path)
        headers = dict(response.headers)
        csp = headers.get("content-security-policy", "")
        for directive in ("script-src", "frame-src"):
            csp = csp.replace(directive, f"{directive} {server_url}")
        headers["content-security-policy"] = csp
        route.fulfill(response=response, headers=headers)

    context.route(host + "/**", serve)
    return Watched(context.new_page())


def sign_in(context: Any, server_url: str, account: Account) -> Watched:
    """A new page in ``context`` with the console open, signed in through the real login form."""
    from playwright.sync_api import expect

    w = Watched(context.new_page())
    page = w.page
    page.goto(server_url + "/console")
    expect(page).to_have_url(re.compile(r"/console/login$"))
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill(account.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/console$"))
    expect(page.locator("#conn-status")).to_have_text("Connected")
    return w


def session_cookie_of(context: Any) -> str:
    """The console session cookie a signed-in browser context holds."""
    for c in context.cookies():
        if c["name"] == "confide_session":
            return str(c["value"])
    raise AssertionError("the context holds no console session")


class Network:
    """Switches a browser context's network off and on, WebSockets included.

    ``set_offline`` alone fails new requests, but Chromium keeps open WebSockets alive (their
    frames wait until the network is back: microsoft/playwright#4910). With ``cut_sockets`` every
    WebSocket of the context is routed through Playwright, so that going offline also drops the
    open ones, and new ones are refused until the network is back: a real connection loss, which
    makes the clients reconnect, resend and sync. ``go_offline(silently=True)`` drops them the way
    a network change often does: nobody is told, frames just vanish (a half-open connection).

    Create it before the context's pages open their sockets.
    """

    def __init__(self, context: Any, *, cut_sockets: bool) -> None:
        self.context = context
        self.up = True
        self.opened = 0  # sockets connected through the route
        self.refused = 0  # sockets refused while offline
        self._live: list[dict[str, Any]] = []
        if cut_sockets:
            context.route_web_socket(re.compile(r"^wss?://"), self._route)

    def _route(self, ws: Any) -> None:
        if not self.up:
            self.refused += 1
            ws.close()
            return
        server = ws.connect_to_server()
        link = {"page": ws, "dead": False}
        ws.on_message(lambda m: None if link["dead"] else server.send(m))
        server.on_message(lambda m: None if link["dead"] else ws.send(m))
        self._live.append(link)
        self.opened += 1

    def go_offline(self, *, silently: bool = False) -> None:
        self.up = False
        self.context.set_offline(True)
        for link in self._live:
            if silently:
                link["dead"] = True
            else:
                link["page"].close()  # closes the page's end and, by default, the server's
        self._live.clear()

    def go_online(self) -> None:
        self.up = True
        self.context.set_offline(False)


# ---- the widget ------------------------------------------------------------------------------


def chat_frame(page: Any, timeout: float = 10, *, not_this: Any = None) -> Any:
    """The widget iframe (inside a closed shadow root, so found through the frame tree).

    After a reload or a navigation, pass the previous frame as ``not_this``: until the old
    document is gone it may still be listed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for f in page.frames:
            if "/widget/frame" in f.url and f is not not_this and not f.is_detached():
                try:
                    f.wait_for_selector("body[data-site]", state="attached")
                except Exception:  # detached while we waited: look again
                    if f.is_detached():
                        continue
                    raise
                return f
        page.wait_for_timeout(50)
    raise AssertionError("the widget iframe never appeared")


def click_launcher(page: Any) -> None:
    vp = page.viewport_size
    page.mouse.click(vp["width"] - 48, vp["height"] - 48)  # the 56 px button, 20 px from the corner


def panel_box(frame: Any) -> dict[str, float] | None:
    return frame.frame_element().bounding_box()


def bubbles(frame: Any) -> list[str]:
    return frame.eval_on_selector_all("#msgs .bubble", "els => els.map(e => e.textContent)")


def ticks(frame: Any) -> list[str]:
    return frame.eval_on_selector_all("#msgs .visitor .tick", "els => els.map(e => e.textContent)")


def send(frame: Any, text: str) -> None:
    frame.fill("#text", text)
    frame.press("#text", "Enter")


def wait_for(
    check: Callable[[], Any], timeout: float = 10, what: str = "condition", page: Any = None
) -> Any:
    """Poll ``check`` until it is truthy. Pass ``page`` when it reads Playwright events: the
    sync API dispatches them only while a Playwright call runs, so then we wait through the page."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if page is None:
            time.sleep(0.05)
        else:
            page.wait_for_timeout(50)
    raise AssertionError(f"timed out waiting for {what} (last value: {value!r})")


# ---- XSS checks --------------------------------------------------------------------------------


def assert_clean(*pages: Watched) -> None:
    """No script error, no dialog and no ``window.__xss`` in any page or any of its frames."""
    for w in pages:
        assert w.errors == [], w.errors
        assert w.dialogs == [], w.dialogs
        for frame in w.page.frames:
            if not frame.is_detached():
                assert frame.evaluate("typeof window.__xss") == "undefined", frame.url
