"""The lead email through a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from confide.delivery.adf import MARKETING_OBJECTION_SENTENCE, render_adf, validate_adf
from confide.delivery.email import (
    OPT_OUT_SENTENCE,
    WITHHELD_SENTENCE,
    compose_lead_email,
    send_email,
)
from confide.testing import free_port
from tests.delivery.test_adf import TRANSCRIPT_TEXT, make_snapshot

SENDER = "Confide <leads@confide.example>"
RECIPIENT = "sales@mainstreet.example"


class Collector:
    """An aiosmtpd handler that keeps every envelope it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Collector]]:
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, collector
    finally:
        controller.stop()


def compose(**changes: Any) -> EmailMessage:
    snapshot = make_snapshot(**changes)
    return compose_lead_email(
        snapshot, sender=SENDER, recipient=RECIPIENT, adf=render_adf(snapshot)
    )


def deliver(message: EmailMessage, smtp: tuple[Controller, Collector]) -> EmailMessage:
    """Send through the server and return the message as the recipient's mailbox parses it."""
    controller, collector = smtp
    asyncio.run(send_email(message, host=controller.hostname, port=controller.port))
    (envelope,) = collector.envelopes
    assert envelope.rcpt_tos == [RECIPIENT]
    received = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert isinstance(received, EmailMessage)
    return received


def adf_attachment(message: EmailMessage) -> tuple[str | None, bytes]:
    (part,) = [p for p in message.iter_attachments() if p.get_content_type() != "text/html"]
    assert part.get_content_type() == "application/x-adf+xml"
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return part.get_filename(), payload


def bodies(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    assert plain is not None and rich is not None
    return plain.get_content(), rich.get_content()


def test_lead_email_arrives_with_summary_transcript_and_valid_adf(
    smtp: tuple[Controller, Collector],
) -> None:
    received = deliver(compose(sale_share_opt_out=True), smtp)
    assert received["Subject"] == "New lead: Test drive — Main Street Motors"
    assert received["X-Confide-Lead"] == "lead_7f3c2a"
    assert received["Message-ID"].startswith("<lead-lead_7f3c2a.")
    assert received["Message-ID"].endswith("@confide.example>")
    filename, adf = adf_attachment(received)
    assert filename == "lead-lead_7f3c2a.xml"
    validate_adf(adf)
    plain, rich = bodies(received)
    for body in (plain, rich):
        assert OPT_OUT_SENTENCE in body
        assert "Test drive" in body
        assert "sam@example.org" in body and "+44 7700 900123" in body
        assert "2021 Skoda Octavia Estate" in body and "UK12345" in body
        assert "2015 Ford Focus" in body
        assert "1 High Street, Flat 2, Leeds, LS1 1AA, GB" in body
        assert "cr_91ab" in body
        assert "Alex (agent)" in body and "Of course." in body
    assert TRANSCRIPT_TEXT in plain
    assert "Could I come on Saturday morning to drive it?" in rich
    assert WITHHELD_SENTENCE not in plain


def test_no_opt_out_sentence_unless_flagged() -> None:
    plain, rich = bodies(compose(sale_share_opt_out=False))
    assert OPT_OUT_SENTENCE not in plain and OPT_OUT_SENTENCE not in rich
    assert MARKETING_OBJECTION_SENTENCE not in plain


def test_a_marketing_objection_is_in_the_privacy_section() -> None:
    message = compose(marketing_objection=True)
    plain = message.get_body(("plain",))
    assert plain is not None and MARKETING_OBJECTION_SENTENCE in plain.get_content()


def test_correction_and_withheld_personal_data(smtp: tuple[Controller, Collector]) -> None:
    snapshot = make_snapshot(status="resend").without_personal_data()
    message = compose_lead_email(
        snapshot, sender=SENDER, recipient=RECIPIENT, adf=render_adf(snapshot)
    )
    received = deliver(message, smtp)
    assert received["Subject"] == "Corrected lead: Test drive — Main Street Motors"
    plain, _ = bodies(received)
    assert WITHHELD_SENTENCE in plain
    assert "sam@example.org" not in plain and TRANSCRIPT_TEXT not in plain
    validate_adf(adf_attachment(received)[1])


def test_html_body_escapes_what_people_typed() -> None:
    _, rich = bodies(compose(comments="<img src=x onerror=alert(1)> & more"))
    assert "<img" not in rich
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; more" in rich


def test_site_name_cannot_inject_headers() -> None:
    message = compose(site_name="Motors\r\nBcc: victim@example.org")
    assert message["Subject"] == "New lead: Test drive — Motors Bcc: victim@example.org"
    assert message["Bcc"] is None


def test_message_id_is_stable_for_a_retry_and_new_for_a_correction() -> None:
    first, retry = compose(), compose()
    corrected = compose(status="resend", contact=None)
    assert first["Message-ID"] == retry["Message-ID"]
    assert corrected["Message-ID"] != first["Message-ID"]


def test_refused_connection_raises() -> None:
    message = compose()
    with pytest.raises(OSError):
        asyncio.run(send_email(message, host="127.0.0.1", port=free_port(), timeout=5.0))
