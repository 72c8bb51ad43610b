"""A whole chat in two real browsers: a visitor on the demo site and an operator in the console.

Both ends are the shipped clients (the widget in its cross-site iframe, the console page), talking
to one live server. Beyond the happy path, the chat must survive what real people do mid-chat:
reload the page, or lose the network while the other side keeps writing. Afterwards every
transcript (the visitor's bubbles, the operator's pane, the server's record) must hold every
message exactly once, in seq order, and agree with the others.

Network loss comes in two kinds (see ``browser_support.Network``): ``offline`` is Playwright's
``set_offline`` alone (Chromium then holds open WebSockets rather than failing them), ``dropped``
also cuts the sockets, so the clients must reconnect, resend their outbox and sync.

Two bugs these tests found stay covered: a message refused by the rate limit must keep its place
(the server refuses every frame for 1 s after a refusal and clients resend in order after 2 s), and
a socket that died silently (a network change) is replaced as soon as the browser is online again.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.web.browser_support import (
    DESKTOP,
    Demo,
    Network,
    Watched,
    bubbles,
    chat_frame,
    click_launcher,
    new_visitor,
    require_chromium,
    send,
    session_cookie_of,
    sign_in,
    ticks,
)

require_chromium()
expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser

SETTLE = 45  # seconds for both ends to agree after a reload or reconnect (backoff is ≤ 15 s)


# ---- the two ends --------------------------------------------------------------------------------


@dataclass
class Chat:
    demo: Demo
    visitor: Watched
    operator: Watched
    cid: str
    frame: Any
    sent: list[str] = field(default_factory=list)  # every text either side sent, once each

    @property
    def pane(self) -> Any:
        return self.operator.page.locator(f"#pane-{self.cid}")

    def visitor_says(self, text: str) -> None:
        send(self.frame, text)
        self.sent.append(text)

    def operator_says(self, text: str) -> None:
        composer = self.operator.page.locator(f"#composer-{self.cid}")
        composer.fill(text)
        composer.press("Enter")
        self.sent.append(text)

    def refind_frame(self) -> Any:
        """The widget iframe after the visitor's page reloaded."""
        self.frame = chat_frame(self.visitor.page, timeout=20, not_this=self.frame)
        return self.frame


@pytest.fixture
def visitor(new_context: Callable[..., Any], demo: Demo) -> Watched:
    return new_visitor(new_context(DESKTOP), demo.server.url, host=demo.host)


@pytest.fixture
def operator(new_context: Callable[..., Any], demo: Demo) -> Watched:
    return sign_in(new_context(DESKTOP, is_mobile=False), demo.server.url, demo.operator)


def start_chat(demo: Demo, visitor: Watched, operator: Watched, tag: str) -> Chat:
    """The visitor writes from the demo page; the operator (already signed in) sees the chat
    arrive live, accepts and replies; the visitor sees the reply."""
    page = operator.page
    visitor.page.goto(demo.host + "/demo/")
    frame = chat_frame(visitor.page)
    click_launcher(visitor.page)
    frame.wait_for_selector("#status.on")  # the operator is online: the chat, not the form
    first = f"Hello, is the blue Golf still for sale? #{tag}"
    send(frame, first)

    item = page.locator("#waiting-list .conv-li", has_text=f"#{tag}")
    expect(item).to_be_visible()  # no reload: it arrived over the console socket
    expect(item.locator('[data-slot="preview"]')).to_have_text(first)
    item.locator(".conv-item").click()
    pane = page.locator(".pane:not([hidden])")
    expect(pane.locator(".msg-visitor .msg-bubble")).to_have_text([first])
    cid = pane.get_attribute("data-id")
    assert cid
    pane.get_by_role("button", name="Accept chat").click()
    expect(item).to_have_count(0)
    expect(page.locator("#mine-list .conv-li", has_text=f"#{tag}")).to_be_visible()

    chat = Chat(demo, visitor, operator, cid, frame, [first])
    reply = f"Yes, it is. Would you like a test drive? #{tag}"
    chat.operator_says(reply)
    expect(frame.locator("#msgs .bubble")).to_have_text([first, reply])
    expect(frame.locator("#status-text")).to_have_text("Olivia Operator is here to help")
    return chat


# ---- reading the three transcripts ---------------------------------------------------------------


def server_messages(chat: Chat) -> list[tuple[int, str, str]]:
    """(seq, author role, text) as the server stored them, read with the operator's session."""
    cookie = session_cookie_of(chat.operator.context)
    with httpx.Client(
        base_url=chat.demo.server.url, cookies={"confide_session": cookie}, timeout=10
    ) as http:
        response = http.get(f"/api/conversations/{chat.cid}")
    assert response.status_code == 200, response.text
    return [(m["seq"], m["author"]["role"], m["text"]) for m in response.json()["messages"]]


def pane_messages(chat: Chat) -> list[tuple[int, str]]:
    """(seq, text) of the confirmed messages in the operator's pane, in DOM order."""
    rows = chat.pane.locator("li.msg[data-seq]").evaluate_all(
        """els => els.map(e => [Number(e.dataset.seq),
                                (e.querySelector('.msg-bubble, .msg-system') || {}).textContent])"""
    )
    return [(seq, text) for seq, text in rows]


def pane_pending(chat: Chat) -> list[str]:
    return chat.pane.locator("li[data-pending] .msg-bubble").all_text_contents()


@dataclass
class Snapshot:
    server: list[tuple[int, str, str]]
    visitor: list[str]
    visitor_ticks: list[str]
    pane: list[tuple[int, str]]
    pending: list[str]

    def problems(self, expected: list[str]) -> list[str]:
        out = []
        seqs = [seq for seq, _, _ in self.server]
        texts = [text for _, _, text in self.server]
        if seqs != list(range(1, len(seqs) + 1)):
            out.append(f"server seqs are not 1..n: {seqs}")
        if sorted(texts) != sorted(expected):
            missing = [t for t in expected if texts.count(t) < expected.count(t)]
            extra = [t for t in texts if texts.count(t) > expected.count(t)]
            out.append(f"server holds the wrong messages: missing {missing}, extra {extra}")
        if self.visitor != texts:
            out.append(f"visitor shows {self.visitor}")
        if any(t != "Sent" and t != "Seen" for t in self.visitor_ticks):
            out.append(f"visitor ticks {self.visitor_ticks}")
        if self.pane != list(zip(seqs, texts, strict=True)):
            out.append(f"operator pane shows {self.pane}")
        if self.pending:
            out.append(f"operator pane still sending {self.pending}")
        return out


def snapshot(chat: Chat) -> Snapshot:
    return Snapshot(
        server_messages(chat),
        bubbles(chat.frame),
        ticks(chat.frame),
        pane_messages(chat),
        pane_pending(chat),
    )


def assert_all_agree(chat: Chat, timeout: float = SETTLE) -> Snapshot:
    """Wait until the server holds every sent message exactly once (seq 1..n) and the visitor's
    bubbles and the operator's pane show exactly that transcript, in seq order."""
    deadline = time.monotonic() + timeout
    while True:
        snap = snapshot(chat)
        problems = snap.problems(chat.sent)
        if not problems:
            return snap
        if time.monotonic() > deadline:
            server = [text for _, _, text in snap.server]
            raise AssertionError(
                "the transcripts never agreed:\n  "
                + "\n  ".join(problems)
                + f"\n  server: {server}\n  sent:   {chat.sent}"
            )
        chat.operator.page.wait_for_timeout(250)


def assert_no_errors(chat: Chat) -> None:
    for w in (chat.visitor, chat.operator):
        assert w.errors == [], w.errors
        assert w.dialogs == [], w.dialogs


def until(check: Callable[[], Any], page: Any, what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        page.wait_for_timeout(100)
    raise AssertionError(f"timed out waiting for {what}")


# ---- tests ---------------------------------------------------------------------------------------


def test_visitor_and_operator_chat_live(demo: Demo, visitor: Watched, operator: Watched) -> None:
    chat = start_chat(demo, visitor, operator, "live")
    # The visitor answers; it appears in the operator's pane without a reload, and the other way.
    chat.visitor_says("Yes please, on Saturday morning #live")
    expect(chat.pane.locator(".msg-visitor .msg-bubble").last).to_have_text(
        "Yes please, on Saturday morning #live"
    )
    chat.operator_says("Saturday at 10 is booked for you #live")
    expect(chat.frame.locator("#msgs .bubble").last).to_have_text(
        "Saturday at 10 is booked for you #live"
    )
    snap = assert_all_agree(chat, timeout=15)
    assert [role for _, role, _ in snap.server] == ["visitor", "agent", "visitor", "agent"]
    assert_no_errors(chat)


def test_visitor_reload_mid_chat_shows_every_message_once(
    demo: Demo, visitor: Watched, operator: Watched
) -> None:
    chat = start_chat(demo, visitor, operator, "vreload")
    page = visitor.page
    chat.operator_says("Operator 1 #vreload")
    chat.operator_says("Operator 2 #vreload")
    # The visitor writes and reloads at once: that message may or may not have left the page.
    chat.visitor_says("Sent just before the reload #vreload")
    page.reload(wait_until="commit")
    # The operator keeps writing while the visitor's page loads.
    chat.operator_says("Operator 3, during the reload #vreload")
    chat.operator_says("Operator 4, during the reload #vreload")
    frame = chat.refind_frame()
    frame.wait_for_selector("#status.on")  # the panel came back by itself (an active chat)
    # Nothing more is sent until both ends agree: what was missed must come from the resync.
    assert_all_agree(chat)
    chat.operator_says("Operator 5, after the reload #vreload")
    chat.visitor_says("Visitor, after the reload #vreload")
    assert_all_agree(chat)

    # A second reload, with nothing in flight, restores the same transcript once more.
    page.reload()
    chat.refind_frame()
    expect(chat.frame.locator("#msgs .bubble")).to_have_count(len(chat.sent), timeout=20_000)
    assert_all_agree(chat, timeout=15)
    assert_no_errors(chat)


def test_operator_reload_mid_chat_shows_every_message_once(
    demo: Demo, visitor: Watched, operator: Watched
) -> None:
    chat = start_chat(demo, visitor, operator, "oreload")
    page = operator.page
    chat.visitor_says("Visitor 1 #oreload")
    chat.visitor_says("Visitor 2 #oreload")
    # The operator writes and reloads at once: the outbox survives in sessionStorage.
    chat.operator_says("Sent just before the reload #oreload")
    page.reload(wait_until="commit")
    chat.visitor_says("Visitor 3, during the reload #oreload")
    chat.visitor_says("Visitor 4, during the reload #oreload")
    expect(page.locator("#conn-status")).to_have_text("Connected", timeout=20_000)
    expect(chat.pane).to_be_visible()  # the open pane came back and re-joined
    assert_all_agree(chat)  # before anything else is sent: the re-join alone must fill the pane
    chat.visitor_says("Visitor 5, after the reload #oreload")
    chat.operator_says("Operator, after the reload #oreload")
    assert_all_agree(chat)

    page.reload()
    expect(page.locator("#conn-status")).to_have_text("Connected", timeout=20_000)
    expect(chat.pane.locator("li.msg[data-seq]")).to_have_count(len(chat.sent), timeout=20_000)
    assert_all_agree(chat, timeout=15)
    assert_no_errors(chat)


@pytest.mark.parametrize("mode", ["offline", "dropped"])
def test_visitor_loses_the_network_mid_chat(
    demo: Demo, new_context: Callable[..., Any], operator: Watched, mode: str
) -> None:
    context = new_context(DESKTOP)
    net = Network(context, cut_sockets=mode == "dropped")
    visitor = new_visitor(context, demo.server.url, host=demo.host)
    tag = f"voff-{mode}"
    chat = start_chat(demo, visitor, operator, tag)
    before = len(chat.sent)

    net.go_offline()
    mine = [f"Visitor offline {i} #{tag}" for i in (1, 2, 3)]
    for text in mine:
        chat.visitor_says(text)
    expect(chat.frame.locator("#msgs .visitor .tick").filter(has_text="Sending…")).to_have_count(3)
    theirs = [f"Operator meanwhile {i} #{tag}" for i in (1, 2)]
    for text in theirs:
        chat.operator_says(text)
    # The operator's messages are committed (acked in the pane); the visitor's are not.
    expect(chat.pane.locator("li[data-pending]")).to_have_count(0)
    expect(chat.pane.locator("li.msg[data-seq]")).to_have_count(before + 2)
    stored = [text for _, _, text in server_messages(chat)]
    assert not set(mine) & set(stored), "the visitor's messages left a browser that is offline"
    assert ticks(chat.frame)[-3:] == ["Sending…"] * 3
    if mode == "dropped":
        until(lambda: net.refused, visitor.page, "the widget to try to reconnect")

    net.go_online()
    snap = assert_all_agree(chat)
    assert len(snap.server) == before + 5
    assert_no_errors(chat)


@pytest.mark.parametrize("mode", ["offline", "dropped"])
def test_operator_loses_the_network_mid_chat(
    demo: Demo, new_context: Callable[..., Any], visitor: Watched, mode: str
) -> None:
    context = new_context(DESKTOP, is_mobile=False)
    net = Network(context, cut_sockets=mode == "dropped")
    operator = sign_in(context, demo.server.url, demo.operator)
    tag = f"ooff-{mode}"
    chat = start_chat(demo, visitor, operator, tag)
    before = len(chat.sent)

    net.go_offline()
    mine = [f"Operator offline {i} #{tag}" for i in (1, 2, 3)]
    for text in mine:
        chat.operator_says(text)
    expect(chat.pane.locator("li[data-pending]")).to_have_count(3)
    theirs = [f"Visitor meanwhile {i} #{tag}" for i in (1, 2)]
    for text in theirs:
        chat.visitor_says(text)
    # The visitor's messages are committed (ticked); the operator's are not.
    expect(chat.frame.locator("#msgs .visitor .tick").filter(has_text="Sending…")).to_have_count(0)
    expect(chat.frame.locator("#msgs .bubble")).to_have_count(before + 2)
    stored = [text for _, _, text in server_messages(chat)]
    assert not set(mine) & set(stored), "the operator's messages left a browser that is offline"
    expect(chat.pane.locator("li[data-pending]")).to_have_count(3)
    if mode == "dropped":
        expect(operator.page.locator("#conn-status")).not_to_have_text("Connected")

    net.go_online()
    snap = assert_all_agree(chat)
    assert len(snap.server) == before + 5
    expect(operator.page.locator("#conn-status")).to_have_text("Connected")
    assert_no_errors(chat)


class Drain:
    """Routes a context's ``path`` sockets so that, once armed, the next ``send`` frame the page
    writes is preceded by ``pings`` pings on the same socket. They use up the connection's rate
    allowance, so the real server refuses that send with ``rate_limited``.

    The server answers a connection's frames in order (a pong or an error per ping, then an ack or
    an error for the send), so the answer to the send is the first one after the pings'."""

    def __init__(self, context: Any, path: str, pings: int) -> None:
        self.pings = pings
        self.armed = False
        self.answers: list[dict[str, Any]] | None = None  # after the drain started
        context.route_web_socket(re.compile(re.escape(path)), self._route)

    def _route(self, ws: Any) -> None:
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            if self.armed and json.loads(message).get("type") == "send":
                self.armed = False
                self.answers = []
                for _ in range(self.pings):
                    server.send('{"type": "ping"}')
            server.send(message)

        def from_server(message: str | bytes) -> None:
            if self.answers is not None:
                frame = json.loads(message)
                if frame.get("type") in ("pong", "error", "ack"):
                    self.answers.append(frame)
            ws.send(message)

        ws.on_message(from_page)
        server.on_message(from_server)

    def send_was_refused(self, page: Any) -> bool:
        until(
            lambda: self.answers is not None and len(self.answers) > self.pings,
            page,
            "the server to answer the pings and the send",
        )
        assert self.answers is not None
        answer = self.answers[self.pings]
        return answer.get("type") == "error" and answer.get("code") == "rate_limited"


def first_send_refused(drain: Drain, page: Any, say: Callable[[str], None], tag: str) -> None:
    """Arm the drain and send; on a loaded machine the server may still find a token for the
    send (the frames arrive spread out), so try a few times: an accepted one is just a message."""
    for attempt in range(1, 4):
        drain.armed = True
        say(f"Typed first, refused by the rate limit ({attempt}) #{tag}")
        if drain.send_was_refused(page):
            return
    pytest.fail("premise: the server never refused the message sent after the pings")


def submit_at_once(chat: Chat, text: str) -> None:
    """The visitor sends ``text`` in one step (a fill and a key press are two round trips)."""
    chat.frame.evaluate(
        """text => {
            const box = document.getElementById('text');
            box.value = text;
            box.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}));
        }""",
        text,
    )
    chat.sent.append(text)


class OutOfOrder(AssertionError):
    """The server stored a side's messages in another order than they were typed."""


def assert_typing_order(chat: Chat) -> None:
    stored = [text for _, _, text in server_messages(chat)]
    if stored != chat.sent:
        raise OutOfOrder(f"typed {chat.sent}\nstored {stored}")


def test_visitor_message_refused_by_the_rate_limit_keeps_its_place(
    demo: Demo, new_context: Callable[..., Any], operator: Watched
) -> None:
    context = new_context(DESKTOP)
    drain = Drain(context, "/ws/widget", pings=100)  # 30 burst, 10/s
    visitor = new_visitor(context, demo.server.url, host=demo.host)
    chat = start_chat(demo, visitor, operator, "vrate")
    first_send_refused(drain, visitor.page, chat.visitor_says, "vrate")
    # Setup, not an assertion: tokens refill at 10/s, and the widget resends the refused message
    # about 2 s after the refusal; the next message goes out in between.
    visitor.page.wait_for_timeout(300)
    submit_at_once(chat, "Typed second #vrate")
    assert_all_agree(chat)
    assert_typing_order(chat)


def test_operator_message_refused_by_the_rate_limit_keeps_its_place(
    demo: Demo, new_context: Callable[..., Any], visitor: Watched
) -> None:
    context = new_context(DESKTOP, is_mobile=False)
    drain = Drain(context, "/ws/console", pings=400)  # 150 burst, 50/s
    operator = sign_in(context, demo.server.url, demo.operator)
    chat = start_chat(demo, visitor, operator, "orate")
    first_send_refused(drain, operator.page, chat.operator_says, "orate")
    operator.page.wait_for_timeout(300)  # setup: tokens refill at 50/s; the resend is after 2 s
    chat.operator_says("Typed second #orate")
    assert_all_agree(chat)
    assert_typing_order(chat)


RECOVERY = 9  # seconds after the network returns (the heartbeat-only floor is 10 s)


class SlowRecovery(AssertionError):
    """The client kept writing into a dead socket after the network came back."""


@pytest.mark.parametrize("side", ["visitor", "operator"])
def test_a_silently_dead_connection_is_replaced_when_the_network_returns(
    demo: Demo, new_context: Callable[..., Any], side: str
) -> None:
    visitor_context = new_context(DESKTOP)
    operator_context = new_context(DESKTOP, is_mobile=False)
    net = Network(visitor_context if side == "visitor" else operator_context, cut_sockets=True)
    visitor = new_visitor(visitor_context, demo.server.url, host=demo.host)
    operator = sign_in(operator_context, demo.server.url, demo.operator)
    tag = f"half-{side}"
    chat = start_chat(demo, visitor, operator, tag)
    page = (visitor if side == "visitor" else operator).page
    opened = net.opened

    net.go_offline(silently=True)  # e.g. the laptop moves to another Wi-Fi network
    page.wait_for_timeout(1000)  # setup: the outage
    net.go_online()
    started = time.monotonic()
    if side == "visitor":
        chat.visitor_says(f"Written once the network is back #{tag}")
    else:
        chat.operator_says(f"Written once the network is back #{tag}")
    try:
        until(lambda: net.opened > opened, page, "a new socket", timeout=RECOVERY)
    except AssertionError:
        raise SlowRecovery(f"no new socket {RECOVERY} s after the network returned") from None
    assert_all_agree(chat)
    assert time.monotonic() - started < RECOVERY + 10
