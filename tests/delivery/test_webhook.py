"""Webhooks: the signature scheme, the payload, and real POSTs to a loopback receiver."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import orjson
import pytest

from confide.delivery.webhook import (
    WebhookError,
    lead_payload,
    post_webhook,
    sign,
    verify,
)
from confide.testing import free_port
from tests.delivery.test_adf import TRANSCRIPT_TEXT, make_snapshot

SECRET = "whsec_test_0123456789"
NOW = 1_741_947_725
KEY = "dlv_01HQ-attempt-key"

#: What the receiver answers per path.
STATUSES = {"/ok": 200, "/accepted": 202, "/fail": 500, "/busy": 429, "/bad": 400, "/moved": 302}


# -- signature ------------------------------------------------------------------------------


def test_sign_and_verify_round_trip() -> None:
    body = b'{"event":"lead.created"}'
    header = sign(SECRET, NOW, body)
    assert header.startswith(f"t={NOW},v1=")
    assert len(header.split("v1=")[1]) == 64
    assert verify(SECRET, header, body, now=NOW)
    assert verify(SECRET, header, body, now=NOW + 300)


def test_tampered_body_or_wrong_secret_fails() -> None:
    header = sign(SECRET, NOW, b'{"a":1}')
    assert not verify(SECRET, header, b'{"a":2}', now=NOW)
    assert not verify("another-secret", header, b'{"a":1}', now=NOW)


def test_stale_or_future_timestamp_fails() -> None:
    body = b"{}"
    assert not verify(SECRET, sign(SECRET, NOW, body), body, now=NOW + 301)
    assert not verify(SECRET, sign(SECRET, NOW + 301, body), body, now=NOW)
    assert not verify(SECRET, sign(SECRET, NOW, body), body, now=NOW + 10, tolerance_s=5)


def test_timestamp_is_covered_by_the_mac() -> None:
    body = b"{}"
    forged = sign(SECRET, NOW, body).replace(f"t={NOW}", f"t={NOW + 1000}")
    assert not verify(SECRET, forged, body, now=NOW + 1000)


@pytest.mark.parametrize("header", ["", "garbage", "t=abc,v1=00", f"t={NOW}", "v1=00", "t=²,v1=0"])
def test_malformed_headers_fail(header: str) -> None:
    assert not verify(SECRET, header, b"{}", now=NOW)


def test_any_of_several_signatures_may_match_during_rotation() -> None:
    body = b"{}"
    old = sign("old-secret", NOW, body).split(",")[1]
    header = f"{sign(SECRET, NOW, body)},{old}"
    assert verify(SECRET, header, body, now=NOW)
    assert verify("old-secret", header, body, now=NOW)


# -- payload --------------------------------------------------------------------------------


def test_payload_holds_every_snapshot_field_as_compact_json() -> None:
    body = lead_payload(make_snapshot(sale_share_opt_out=True), idempotency_key=KEY)
    document = orjson.loads(body)
    assert body == orjson.dumps(document)  # compact: no whitespace between tokens
    assert document["event"] == "lead.created"
    assert document["id"] == KEY
    lead = document["lead"]
    assert lead["lead_id"] == "lead_7f3c2a"
    assert lead["created_at"] == "2025-03-14T10:22:05+00:00"
    assert lead["consent"]["given_at"] == "2025-03-14T10:21:40+00:00"
    assert lead["sale_share_opt_out"] is True
    assert lead["personal_data_removed"] is False
    assert lead["contact"]["email"] == "sam@example.org"
    assert lead["vehicle"]["stock"] == "UK12345"
    assert lead["transcript"][0]["text"] == TRANSCRIPT_TEXT
    assert lead["transcript"][0]["at"] == "2025-03-14T10:22:05+00:00"


def test_payload_without_personal_data() -> None:
    snapshot = make_snapshot().without_personal_data()
    lead = orjson.loads(lead_payload(snapshot, event="lead.corrected", idempotency_key=KEY))
    assert lead["event"] == "lead.corrected"
    assert lead["lead"]["contact"] is None
    assert lead["lead"]["transcript"] == []
    assert lead["lead"]["personal_data_removed"] is True


# -- delivery to a real receiver ------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server: one request per connection, status chosen by path."""

    requests: list[Received] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            _, path, _ = (await reader.readline()).decode().split(" ", 2)
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(path, headers, body))
            status = STATUSES.get(path, 404)
            location = "Location: /ok\r\n" if status == 302 else ""
            writer.write(
                f"HTTP/1.1 {status} Status\r\nContent-Length: 2\r\nConnection: close\r\n"
                f"{location}\r\nno".encode()
            )
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()


def with_receiver(scenario: Callable[[str, Receiver, httpx.AsyncClient], Awaitable[None]]) -> None:
    """Run ``scenario(base_url, receiver, client)`` against a receiver on a loopback port."""

    async def main() -> None:
        receiver = Receiver()
        server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with httpx.AsyncClient(trust_env=False) as client:
                await scenario(f"http://127.0.0.1:{port}", receiver, client)
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(main())


def test_success_is_signed_and_verifiable_by_the_receiver() -> None:
    body = lead_payload(make_snapshot(), idempotency_key=KEY)

    async def scenario(base: str, receiver: Receiver, client: httpx.AsyncClient) -> None:
        assert await post_webhook(f"{base}/ok", SECRET, body, KEY, client=client, now=NOW) == 200
        assert (
            await post_webhook(f"{base}/accepted", SECRET, body, KEY, client=client, now=NOW) == 202
        )
        got = receiver.requests[0]
        assert got.body == body
        assert got.headers["content-type"] == "application/json"
        assert got.headers["user-agent"] == "Confide-Webhooks/1"
        assert got.headers["idempotency-key"] == KEY
        assert got.headers["confide-timestamp"] == str(NOW)
        assert verify(SECRET, got.headers["confide-signature"], got.body, now=NOW + 5)
        assert not verify(SECRET, got.headers["confide-signature"], got.body + b" ", now=NOW)

    with_receiver(scenario)


@pytest.mark.parametrize(
    ("path", "status", "retryable"),
    [("/fail", 500, True), ("/busy", 429, True), ("/bad", 400, False), ("/nowhere", 404, False)],
)
def test_error_statuses_raise_with_retryable_set(path: str, status: int, retryable: bool) -> None:
    async def scenario(base: str, receiver: Receiver, client: httpx.AsyncClient) -> None:
        with pytest.raises(WebhookError) as caught:
            await post_webhook(f"{base}{path}", SECRET, b"{}", KEY, client=client, now=NOW)
        assert caught.value.retryable is retryable
        assert caught.value.status == status

    with_receiver(scenario)


def test_redirects_are_not_followed() -> None:
    async def scenario(base: str, receiver: Receiver, client: httpx.AsyncClient) -> None:
        with pytest.raises(WebhookError) as caught:
            await post_webhook(f"{base}/moved", SECRET, b"{}", KEY, client=client, now=NOW)
        assert caught.value.retryable is False
        assert [r.path for r in receiver.requests] == ["/moved"]

    with_receiver(scenario)


def test_refused_connection_is_retryable() -> None:
    url = f"http://127.0.0.1:{free_port()}/ok"

    async def scenario(base: str, receiver: Receiver, client: httpx.AsyncClient) -> None:
        with pytest.raises(WebhookError) as caught:
            await post_webhook(url, SECRET, b"{}", KEY, client=client, now=NOW)
        assert caught.value.retryable is True
        assert caught.value.status is None

    with_receiver(scenario)


def test_unusable_url_is_not_retryable() -> None:
    async def scenario(base: str, receiver: Receiver, client: httpx.AsyncClient) -> None:
        with pytest.raises(WebhookError) as caught:
            await post_webhook("ftp://127.0.0.1/x", SECRET, b"{}", KEY, client=client, now=NOW)
        assert caught.value.retryable is False

    with_receiver(scenario)


def test_the_marketing_objection_is_in_the_payload() -> None:
    body = lead_payload(make_snapshot(marketing_objection=True), idempotency_key=KEY)
    assert orjson.loads(body)["lead"]["marketing_objection"] is True
