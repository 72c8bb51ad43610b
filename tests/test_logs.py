"""Logs never carry personal data: a chat full of it, at DEBUG, leaves no trace in the server log.

Plus unit tests of :func:`confide.logs.redact`, the second barrier: emails and phone numbers are
masked, while what operators need to read a log (IPs, ports, dates, pids) is left alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

import httpx
import pytest

from confide.logs import RedactPersonalData, redact
from confide.testing import LiveServer
from tests.chat.helpers import agent, client_id, visitor

SHOP = "https://shop.example"
VISITOR_NAME = "Jane Doe"
VISITOR_EMAIL = "jane.doe@example.org"
PHONE_INTL = "+44 7700 900123"
PHONE_NATIONAL = "07700 900123"
OPERATOR_EMAIL = "sales.team@dealer-shop.example"
ENQUIRY_NAME = "Marigold Featherstonehaugh"
ENQUIRY_EMAIL = "marigold.f@example.net"
ENQUIRY_PHONE = "07700 900456"
SECRET_VALUES = [
    VISITOR_NAME,
    VISITOR_EMAIL,
    PHONE_INTL,
    PHONE_NATIONAL,
    "7700 900123",
    "900123",
    OPERATOR_EMAIL,
    ENQUIRY_NAME,
    ENQUIRY_EMAIL,
    ENQUIRY_PHONE,
    "900456",
    # Parts an elided or partially masked line could still show.
    "jane.doe",
    "marigold",
    "Featherstonehaugh",
]


@pytest.fixture(scope="module")
def debug_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    server = LiveServer(
        database_url, tmp_path_factory.mktemp("logs"), env={"CONFIDE_LOG_LEVEL": "DEBUG"}
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chat_log(debug_server: LiveServer) -> str:
    """Run a chat and an enquiry full of personal data; return the server's whole log."""
    s = debug_server
    org = s.create_org("Logtest Motors")
    site_key, site_id = s.create_site(org, "Logtest Motors Leeds", [SHOP])
    operator = s.create_user("operator", sites=[site_id], name="Oscar Operator")

    async def chat() -> None:
        op, _ = await agent(s, operator)
        v, _ = await visitor(s, site_key, SHOP)
        try:
            await v.send(type="open", ref="o", name=VISITOR_NAME)
            conv = (await v.expect("conversation", ref="o"))["conversation"]["id"]
            await op.send(type="accept", conversation=conv, ref="a")
            await op.expect("conversation", ref="a")
            for text in (
                f"Hi, I'm {VISITOR_NAME}, my email is {VISITOR_EMAIL}",
                f"or call me on {PHONE_INTL}",
                f"Call me on {PHONE_NATIONAL}.",  # a phone number ending a sentence
                f"My mobile: {PHONE_NATIONAL}, evenings please",
            ):
                await v.send(type="send", conversation=conv, client_id=client_id(), text=text)
                await v.expect("ack")
            await op.send(
                type="send",
                conversation=conv,
                client_id=client_id(),
                text=f"Thanks {VISITOR_NAME}! Please write to {OPERATOR_EMAIL}.",
            )
            await op.expect("ack")
            # Error paths: invalid JSON carrying personal data, and a frame whose text puts an
            # email exactly where a frame logger would cut a long payload short.
            await v.ws.send('{"type":"send","text":"mail me at ' + VISITOR_EMAIL + '"')
            assert (await v.expect("error"))["code"] == "bad_frame"
            await v.ws.send(
                '{"type":"send","text":"please email '
                + VISITOR_EMAIL
                + " "
                + "x" * 200
                + '","conversation":"'
                + conv
                + '","client_id":"'
                + client_id()
                + '"}'
            )
            await v.expect("ack")
            await v.send(
                type="send",
                conversation="x" * 22,
                client_id=client_id(),
                text=f"{VISITOR_EMAIL} {PHONE_INTL}",
            )
            assert (await v.expect("error"))["code"] == "not_found"
        finally:
            await v.close()
            await op.close()

    asyncio.run(chat())
    with httpx.Client(base_url=s.url, timeout=10) as http:
        created = http.post(
            "/api/widget/enquiry",
            headers={"Origin": SHOP},
            json={
                "site": site_key,
                "host": SHOP,
                "name": ENQUIRY_NAME,
                "contact": ENQUIRY_EMAIL,
                "message": f"Please ring {ENQUIRY_PHONE} or email {ENQUIRY_EMAIL}",
            },
        )
        assert created.status_code == 201, created.text
        refused = http.post(  # a refused enquiry (wrong origin) is logged too
            "/api/widget/enquiry",
            headers={"Origin": "https://evil.example"},
            json={
                "site": site_key,
                "host": SHOP,
                "name": ENQUIRY_NAME,
                "contact": ENQUIRY_EMAIL,
                "message": ENQUIRY_PHONE,
            },
        )
        assert refused.status_code == 403
        invalid = http.post(  # and a validation error echoing the input back
            "/api/widget/enquiry",
            headers={"Origin": SHOP},
            json={
                "site": site_key,
                "host": SHOP,
                "name": ENQUIRY_NAME * 10,
                "contact": ENQUIRY_EMAIL,
                "message": ENQUIRY_PHONE,
            },
        )
        assert invalid.status_code == 422
    # Operators search their history for a visitor's contact details: the terms travel in the
    # query string, which an access log would record (percent-encoded, past a naive redactor).
    http = s.login(operator)
    try:
        for term in (VISITOR_EMAIL, VISITOR_NAME, PHONE_INTL):
            assert http.get("/console/history", params={"q": term}).status_code == 200
            assert http.get("/api/conversations", params={"q": term}).status_code == 200
    finally:
        http.close()
    s.stop()  # flush everything, including the shutdown lines
    return s.logs()


def test_debug_log_is_written(chat_log: str) -> None:
    """Guard against a vacuous pass: the log exists and saw the traffic."""
    assert '"POST /api/widget/enquiry HTTP/1.1" 201' in chat_log
    assert '"POST /api/widget/enquiry HTTP/1.1" 403' in chat_log
    assert "/ws/widget" in chat_log and "/ws/console" in chat_log


@pytest.mark.parametrize("value", SECRET_VALUES)
def test_server_log_carries_no_personal_data(chat_log: str, value: str) -> None:
    leaked = _leaked_lines(chat_log, value)
    assert not leaked, f"{value!r} is in the server log:\n" + "\n".join(leaked)


def test_server_log_carries_no_message_text(chat_log: str) -> None:
    """Services log ids and counts, never what people wrote."""
    for fragment in ("my email is", "or call me on", "evenings please", "Please ring"):
        leaked = _leaked_lines(chat_log, fragment)
        assert not leaked, f"{fragment!r} is in the server log:\n" + "\n".join(leaked)


def test_access_log_carries_no_search_terms(chat_log: str) -> None:
    """Even at the default level: the access log records the path and query of every request."""
    access = "\n".join(line for line in chat_log.splitlines() if "confide.access" in line)
    assert "GET /console/history" in access  # the searches were logged...
    for term in (VISITOR_EMAIL, VISITOR_NAME, PHONE_INTL):
        leaked = _leaked_lines(access, term)
        assert not leaked, f"{term!r} is in the access log:\n" + "\n".join(leaked)


def _leaked_lines(log: str, value: str) -> list[str]:
    """The log lines containing ``value`` as typed or URL-encoded (case-insensitive)."""
    needles = {value.lower(), quote(value).lower(), quote_plus(value).lower()}
    hits = [line for line in log.splitlines() if any(n in line.lower() for n in needles)]
    return [line[:400] for line in hits[:5]]


# --- redact() ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "jane.doe@example.org",
        "Jane.Doe+tag@mail.example.co.uk",
        "JANE@EXAMPLE.ORG",
        "x_y-z%1@sub-domain.example.museum",
        "jane%40example.com",  # in an access-log request path
        "jane%2Edoe%40example%2Ecom",
    ],
)
def test_redact_masks_emails(text: str) -> None:
    line = f"visitor said <{text}>, then left"
    assert redact(line) == "visitor said <[email]>, then left"


@pytest.mark.parametrize(
    "text",
    [
        "+44 7700 900123",
        "07700 900123",
        "07700900123",
        "+447700900123",
        "0044 7700 900123",
        "+44 (0)20 7946 0958",
        "+1-202-555-0143",
        "(202) 555-0143",
        "020 7946 0958",
        "0113/496-0000",
    ],
)
def test_redact_masks_phone_numbers(text: str) -> None:
    out = redact(f"call {text} today")
    assert "[phone]" in out
    digits = "".join(ch for ch in out if ch.isdigit())
    assert len(digits) <= 3, out  # at most a stray area-code bracket survives


@pytest.mark.parametrize(
    "line",
    [
        "Call me on 07700 900123.",
        "Call me on +44 7700 900123.",
        "My number is 07700 900123. Thanks",
        "phone:07700900123",
    ],
)
def test_redact_masks_phone_numbers_next_to_punctuation(line: str) -> None:
    """Sentence-final and ``label:number`` phone numbers: the commonest ways people write them."""
    out = redact(line)
    assert "900123" not in out, out
    assert "[phone]" in out


def test_redact_masks_several_values_on_one_line() -> None:
    line = "a@example.com wrote to b@example.org from +44 7700 900123 and 07700 900456"
    assert redact(line) == "[email] wrote to [email] from [phone] and [phone]"


def test_redact_masks_internationalised_emails() -> None:
    for text in ("jäne@example.org", "jane@exämple.org", "用户@例子.广告"):
        out = redact(f"from {text} ok")
        assert out == "from [email] ok", out


@pytest.mark.parametrize(
    "line",
    [
        "127.0.0.1:8000",
        "10.20.30.40",
        "192.168.100.200:65535",
        "[2001:db8::1]:8080",
        "::1",
        'client 127.0.0.1:35742 - "GET /readyz HTTP/1.1" 200',
        "[Errno 98] error while attempting to bind on address ('127.0.0.1', 55619)",
        "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)",
        "2026-11-25",
        "2026-11-25 20:13:54,111 INFO uvicorn.error: Application startup complete.",
        "2026-11-25T20:15:03.670218Z",
        "2026-11-25 20:15:03.670218+00:00",
        "created 2026-11-25, closed 2026-11-26",
        "Started server process [30333]",
        "Started server process [4194303]",  # pid_max on current systemd hosts is 4194304
        "pid=123456 port=8000",
        "Finished server process [12]",
        "message batch failed (256 messages); nothing was committed",
        "version 1.2.3, build 2024.06.01",
        "conversation r_hWOFmAAUdbVWCNWPzHWw seq 1234",
        "took 15.3 ms",
    ],
)
def test_redact_leaves_operational_values_alone(line: str) -> None:
    assert redact(line) == line


def test_redact_filter_cleans_message_args_and_tracebacks() -> None:
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    logger = logging.getLogger("confide.test_logs")
    handler = Collect()
    handler.addFilter(RedactPersonalData())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("visitor %s left a number %s", VISITOR_EMAIL, PHONE_INTL)
        try:
            raise ValueError(f"bad contact {VISITOR_EMAIL} / {PHONE_NATIONAL}")
        except ValueError:
            logger.exception("failed for %s", OPERATOR_EMAIL)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    text = "\n".join(records)
    assert "visitor [email] left a number [phone]" in text
    assert "failed for [email]" in text
    assert "ValueError: bad contact [email] / [phone]" in text
    for value in (VISITOR_EMAIL, PHONE_INTL, PHONE_NATIONAL, OPERATOR_EMAIL):
        assert value not in text


def test_websocket_handshake_lines_carry_no_address_or_query(chat_log: str) -> None:
    """uvicorn logs each WebSocket handshake with the client's address and the query string."""
    lines = [line for line in chat_log.splitlines() if '"WebSocket /ws/' in line]
    assert lines  # the widget and the console connected
    for line in lines:
        assert "127.0.0.1" not in line and "?" not in line, line


def test_websocket_handshake_record_is_scrubbed() -> None:
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("203.0.113.77:51234", "/ws/widget?site=site_x&resume=secret"),
        None,
    )
    assert RedactPersonalData().filter(record)
    assert record.getMessage() == '- - "WebSocket /ws/widget" [accepted]'
