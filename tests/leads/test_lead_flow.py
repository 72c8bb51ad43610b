"""A chat becomes a lead: details captured, consent asked in the chat, delivered by email + ADF.

Runs a real server (SQLite and PostgreSQL) with its in-process worker against a real SMTP server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from confide.delivery.adf import validate_adf
from confide.testing import LiveServer
from tests.chat.helpers import client_id, open_chat, visitor
from tests.conftest import ORIGIN_A, World
from tests.leads.helpers import Console, SmtpSink


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="module")
def server_env(smtp: SmtpSink) -> dict[str, str]:
    return {
        "CONFIDE_SMTP_PORT": str(smtp.port),
        "CONFIDE_WORKER_POLL_S": "0.2",
        "CONFIDE_DELIVERY_BACKOFF_S": "0.2",
    }


def test_chat_to_delivered_lead(world: World, live_server: LiveServer, smtp: SmtpSink) -> None:
    client = Console(live_server, world.client_a)
    op = Console(live_server, world.operator_a)
    try:
        dest = client.post(
            "/api/destinations",
            json={"kind": "email", "target": "sales@alpha-cars.example", "region": "UK"},
        )
        assert dest.status_code == 201, dest.text
        asyncio.run(_walk(world, live_server, smtp, client, op))
    finally:
        client.close()
        op.close()


async def _walk(
    world: World, live_server: LiveServer, smtp: SmtpSink, client: Console, op: Console
) -> None:
    v, _ = await visitor(live_server, world.site_a, ORIGIN_A)
    try:
        conv, _token = await open_chat(v)
        await v.send(
            type="send",
            conversation=conv,
            client_id=client_id(),
            text="Hi, I'm Sam. sam.example@example.org, 07400 123456. Card 4111 1111 1111 1111",
            ref="m1",
        )
        ack = await v.expect("ack", ref="m1")
        assert ack["notice"] == "card_masked"
        assert "4111" not in str(ack["text"])

        # Personal data was given: the person exists (R23), beside the chat (the message was
        # acked first), with nothing in it until the operator confirms what was typed.
        deadline = time.monotonic() + 10
        while (panel := op.get(f"/api/conversations/{conv}/lead-panel").json())["person"] is None:
            assert time.monotonic() < deadline, "no person after details were typed"
            await asyncio.sleep(0.05)
        assert (panel["person"]["email"], panel["person"]["phone"]) == (None, None)
        found = {s["field"]: s["value"] for s in panel["suggestions"]}
        assert found == {"email": "sam.example@example.org", "phone": "+447400123456"}

        put = op.put(
            f"/api/conversations/{conv}/person",
            json={"name": "Sam Example", "email": found["email"], "phone": found["phone"]},
        )
        assert put.status_code == 200, put.text
        created = op.post(
            f"/api/conversations/{conv}/leads",
            json={
                "purpose": "test_drive",
                "vehicle": {"make": "Skoda", "model": "Octavia", "year": "2021", "stock": "UK123"},
            },
        )
        assert created.status_code == 201, created.text
        lead = created.json()
        assert lead["delivery_state"] == "awaiting_consent"
        refused = op.post(f"/api/leads/{lead['id']}/deliver")
        assert refused.status_code == 409
        assert refused.json()["code"] == "consent_required"
        assert client.get("/api/leads").json()["leads"] == []  # not released to the client

        asked = op.post(f"/api/conversations/{conv}/consent-request")
        assert asked.status_code == 200, asked.text
        frame = await v.expect("consent", conversation=conv)
        request = frame["request"]
        assert request["text"].startswith("May we pass your name")
        await v.send(
            type="consent", conversation=conv, request=request["id"], answer="granted", ref="c1"
        )
        answered = await v.expect("consent", ref="c1")
        assert answered["answer"] == "granted"
    finally:
        await v.close()

    def mine() -> list[EmailMessage]:
        return [m for m in smtp.messages if m["X-Confide-Lead"] == lead["id"]]

    deadline = time.monotonic() + 15
    while not mine() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert len(mine()) == 1
    mail = mine()[0]
    assert mail["To"] == "sales@alpha-cars.example"
    adf = next(
        p for p in mail.iter_attachments() if p.get_content_type() == "application/x-adf+xml"
    )
    document = adf.get_payload(decode=True)
    validate_adf(document)
    assert b"sam.example@example.org" in document and b"Octavia" in document
    assert b"4111" not in document
    # The mail is sent before the worker records it as done: wait for that commit.
    while (detail := client.get(f"/api/leads/{lead['id']}").json())[
        "delivery_state"
    ] != "delivered" and time.monotonic() < deadline + 10:
        await asyncio.sleep(0.05)
    assert detail["delivery_state"] == "delivered"
    assert detail["consent"][0]["answer"] == "granted"
    assert [d["state"] for d in detail["deliveries"]] == ["done"]
