"""The visitor widget in a real browser: loader, iframe app and demo pages against a live server.

The demo pages are served to the browser as ``http://dealer.test`` (Playwright routing) while the
widget comes from the server at 127.0.0.1, so the host page and the chat iframe are cross-site, as
on a client's site. An operator is played by a console WebSocket client.

The server, browser and page factories are the shared ones (tests/web/conftest.py): a SQLite demo
server with ``CONFIDE_DEMO_SITE_KEY`` set, seeded before it starts.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from confide.testing import session_cookie
from tests.web.browser_support import (
    DESKTOP,
    PHONE,
    Demo,
    Watched,
    bubbles,
    chat_frame,
    click_launcher,
    panel_box,
    require_chromium,
    send,
    ticks,
    wait_for,
)

require_chromium()
websockets_sync = pytest.importorskip("websockets.sync.client")

pytestmark = pytest.mark.browser


class Operator:
    """A console client over the real console socket."""

    def __init__(self, demo: Demo) -> None:
        http = demo.server.login(demo.operator)
        cookie = session_cookie(http)
        http.close()
        self.ws = websockets_sync.connect(
            demo.server.ws_url + "/ws/console?v=1",
            origin=demo.server.url,
            additional_headers={"Cookie": f"confide_session={cookie}"},
        )
        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.send(type="hello", v=1)
        self.expect("welcome")

    def _read(self) -> None:
        try:
            for raw in self.ws:
                self.frames.put(json.loads(raw))
        except Exception:  # the socket closed: the test decides whether that matters
            return

    def send(self, **frame: Any) -> None:
        self.ws.send(json.dumps(frame))

    def expect(
        self,
        kind: str,
        pred: Callable[[dict[str, Any]], bool] = lambda f: True,
        timeout: float = 10,
    ) -> dict[str, Any]:
        """The first frame of ``kind`` matching ``pred``, including ones that arrived earlier."""
        for i, f in enumerate(self.seen):
            if f["type"] == kind and pred(f):
                return self.seen.pop(i)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                f = self.frames.get(timeout=left)
            except queue.Empty:
                break
            if f["type"] == kind and pred(f):
                return f
            self.seen.append(f)
        raise AssertionError(f"no {kind} frame; had {[f['type'] for f in self.seen[-10:]]}")

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def operator(demo: Demo) -> Iterator[Operator]:
    op = Operator(demo)
    yield op
    op.close()


# ---- helpers -----------------------------------------------------------------------------------


def start_chat(page: Any, host: str, op: Operator, text: str) -> tuple[Any, str]:
    """Open the panel, send ``text``, have the operator accept. Returns (frame, conversation id)."""
    page.goto(host + "/demo/used-cars")
    frame = chat_frame(page)
    click_launcher(page)
    frame.wait_for_selector("#status.on")
    send(frame, text)
    conv = op.expect("conversation", lambda f: f["conversation"]["state"] == "waiting")
    cid = conv["conversation"]["id"]
    op.send(type="accept", conversation=cid)
    op.expect("conversation", lambda f: f["conversation"]["state"] == "active")
    return frame, cid


# ---- tests -------------------------------------------------------------------------------------


def test_launcher_and_panel_ignore_hostile_host_css(
    visitor_page: Callable[..., Watched], demo: Demo
) -> None:
    visitor = visitor_page()
    page = visitor.page
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(demo.host + "/demo/")
    frame = chat_frame(page)
    host = page.evaluate_handle("document.body.lastElementChild")
    # The demo's hostile rules select our host element (display:none, rotate, blur)... and lose.
    assert host.evaluate("e => e.matches('body > div:not(.site)')")
    style = host.evaluate(
        "e => { const s = getComputedStyle(e); return [s.display, s.transform, s.filter] }"
    )
    assert style == ["block", "none", "none"]
    assert panel_box(frame) is None  # loaded eagerly, but hidden
    page.wait_for_timeout(1500)  # longer than the app waits for the loader's init
    assert sockets == []  # a page view alone tells the server nothing

    click_launcher(page)
    box = wait_for(lambda: panel_box(frame), what="the panel to open")
    wait_for(lambda: sockets, what="the socket to open with the panel", page=page)
    assert (box["width"], box["height"]) == (380, 600)
    assert box["x"] + box["width"] == DESKTOP["width"] - 20
    border = frame.frame_element().evaluate("e => getComputedStyle(e).borderTopWidth")
    assert border == "0px"  # the page says 10px solid red for every iframe
    font = frame.evaluate("getComputedStyle(document.body).fontFamily")
    assert "Comic" not in font

    page.evaluate("Confide.close()")
    wait_for(lambda: panel_box(frame) is None, what="Confide.close() to hide the panel")
    assert visitor.errors == []


def test_phone_panel_fills_the_screen_and_minimises(
    visitor_page: Callable[..., Watched], demo: Demo
) -> None:
    visitor = visitor_page(PHONE)
    page = visitor.page
    page.goto(demo.host + "/demo/")
    frame = chat_frame(page)
    click_launcher(page)
    box = wait_for(lambda: panel_box(frame), what="the panel to open")
    assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 360, 740)
    frame.click("#minimise")
    wait_for(lambda: panel_box(frame) is None, what="minimise to close the panel")


def test_offline_visitor_gets_the_enquiry_form(
    visitor_page: Callable[..., Watched], demo: Demo
) -> None:
    visitor = visitor_page()
    page = visitor.page
    page.goto(demo.host + "/demo/contact")
    frame = chat_frame(page)
    page.click("#chat-now")  # the demo page's own button, through the queued Confide API
    frame.wait_for_selector("#offline-view:not([hidden])")
    frame.click("#q-submit")
    assert frame.get_attribute("#q-name", "aria-invalid") == "true"
    assert frame.is_visible("#q-contact-error")
    frame.fill("#q-name", "Alex Driver")
    frame.fill("#q-contact", "not a contact")
    frame.fill("#q-message", "Is the Tesla still available?")
    frame.click("#q-submit")
    assert "email or phone" in frame.text_content("#q-contact-error")
    frame.fill("#q-contact", "alex@example.com")
    frame.click("#q-submit")
    frame.wait_for_selector("#enquiry-sent:not([hidden])")
    assert "Thanks — we'll get back to you" in frame.text_content("#enquiry-sent")


def test_chat_round_trip_survives_navigation_and_leaks_nothing_to_the_host(
    visitor_page: Callable[..., Watched], demo: Demo, operator: Operator
) -> None:
    visitor = visitor_page()
    page = visitor.page
    page.goto(demo.host + "/demo/")
    globals_before = set(page.evaluate("Object.keys(window)"))
    frame, cid = start_chat(page, demo.host, operator, "Is the <b>Golf</b> still available?")
    page.evaluate("window.events = []; Confide.on('message', e => events.push(e))")

    visitor_msg = operator.expect("message", lambda f: f["author"]["role"] == "visitor")
    assert visitor_msg["text"] == "Is the <b>Golf</b> still available?"
    wait_for(lambda: ticks(frame) == ["Sent"], what="the ack")
    operator.send(type="seen", conversation=cid, seq=visitor_msg["seq"])
    wait_for(lambda: ticks(frame) == ["Seen"], what="the seen tick")

    operator.send(type="typing", conversation=cid, typing=True)
    frame.wait_for_selector("#typing:not([hidden])")
    assert "is typing" in frame.text_content("#typing")
    evil = '<img src=x onerror="parent.pwned=1">Yes, it is!'
    operator.send(type="send", conversation=cid, client_id="op-reply-0001", text=evil)
    wait_for(lambda: evil in bubbles(frame), what="the operator's reply")
    # The sender's copy is its ack; the `message` broadcast goes to the other sockets only.
    reply = operator.expect("ack", lambda f: f["client_id"] == "op-reply-0001")
    seen = operator.expect("seen", lambda f: f["role"] == "visitor")
    assert seen["seq"] == reply["seq"]  # the panel is open, so the visitor has seen it
    assert frame.query_selector("#msgs img") is None  # shown as text, never parsed
    assert frame.is_hidden("#typing")
    wait_for(lambda: any(e["from"] == "agent" for e in page.evaluate("events")), what="event")
    for event in page.evaluate("events"):
        assert set(event) == {"from", "at"}  # the host page never sees the text

    # Navigate mid-chat: the panel reopens by itself with the transcript, and new messages arrive.
    page.click("nav >> text=Contact")
    page.wait_for_url(demo.host + "/demo/contact")
    frame = chat_frame(page)
    wait_for(lambda: panel_box(frame), what="the panel to reopen on the next page")
    wait_for(lambda: len(bubbles(frame)) == 2, what="the restored transcript")
    operator.send(type="send", conversation=cid, client_id="op-reply-0002", text="See you soon")
    wait_for(lambda: bubbles(frame)[-1:] == ["See you soon"], what="a message after navigating")
    assert len(bubbles(frame)) == 3  # nothing twice

    # The host page holds nothing of ours but window.Confide.
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    added = set(page.evaluate("Object.keys(window)")) - globals_before
    assert added <= {"Confide", "events"}
    assert page.evaluate("'pwned' in window") is False
    assert visitor.errors == []


def test_message_typed_while_server_is_down_is_delivered_once(
    visitor_page: Callable[..., Watched], demo: Demo, operator: Operator
) -> None:
    visitor = visitor_page()
    page = visitor.page
    frame, cid = start_chat(page, demo.host, operator, "First message")
    wait_for(lambda: ticks(frame) == ["Sent"], what="the first ack")
    operator.close()

    demo.server.stop()
    send(frame, "Typed while offline")
    wait_for(lambda: ticks(frame) == ["Sent", "Sending…"], what="the pending tick")
    demo.server.start()

    wait_for(lambda: ticks(frame) == ["Sent", "Sent"], timeout=30, what="the outbox to flush")
    op = Operator(demo)
    try:
        op.send(type="join", conversation=cid)
        history = op.expect("history", lambda f: f["conversation"] == cid)
        texts = [m["text"] for m in history["messages"]]
        assert texts == ["First message", "Typed while offline"]
    finally:
        op.close()
    assert bubbles(frame) == ["First message", "Typed while offline"]


def test_visitor_ends_the_chat_and_starts_a_new_one(
    visitor_page: Callable[..., Watched], demo: Demo, operator: Operator
) -> None:
    visitor = visitor_page()
    page = visitor.page
    frame, _cid = start_chat(page, demo.host, operator, "Just browsing, thanks")
    frame.click("#end")
    frame.wait_for_selector("#confirm:not([hidden])")
    frame.click("#confirm-yes")
    frame.wait_for_selector("#ended:not([hidden])")
    assert frame.text_content("#ended p") == "This chat has ended"
    assert frame.is_hidden("#composer")
    frame.click("#restart")
    frame.wait_for_selector("#composer:not([hidden])")
    assert bubbles(frame) == []


def hello_frames(page: Any) -> list[dict[str, Any]]:
    """Every hello the widget sends, recorded from the page's WebSockets."""
    sent: list[dict[str, Any]] = []

    def watch(ws: Any) -> None:
        def on_frame(payload: Any) -> None:
            frame = json.loads(payload)
            if frame.get("type") == "hello":
                sent.append(frame)

        ws.on("framesent", on_frame)

    page.on("websocket", watch)
    return sent


@pytest.mark.parametrize("gpc", [False, True])
def test_hello_carries_the_page_unless_the_visitor_opted_out(
    visitor_page: Callable[..., Watched], demo: Demo, gpc: bool
) -> None:
    visitor = visitor_page()
    page = visitor.page
    if gpc:  # Global Privacy Control, as a browser or extension sets it on the host page
        page.add_init_script(
            "Object.defineProperty(navigator, 'globalPrivacyControl', {value: true})"
        )
    hellos = hello_frames(page)
    page.goto(demo.host + "/demo/used-cars")
    chat_frame(page)
    click_launcher(page)
    wait_for(lambda: hellos, what="hello", page=page)
    assert hellos[0]["host"] == demo.host
    assert "token" not in hellos[0]  # a first visit has none
    if gpc:
        assert "page" not in hellos[0]
    else:
        assert hellos[0]["page"] == {
            "path": "/demo/used-cars",
            "title": "Used cars for sale · Demo Motors",
        }
