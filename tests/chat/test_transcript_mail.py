"""A copy of the chat by email when the visitor asks (over the real protocol, real SMTP)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.chat.helpers import agent, client_id, open_chat, visitor
from tests.conftest import ORIGIN_A, World
from tests.leads.helpers import SmtpSink


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="module")
def server_env(smtp: SmtpSink) -> dict[str, str]:
    return {"CONFIDE_SMTP_PORT": str(smtp.port)}


def test_the_visitor_gets_the_transcript_by_email(world: World, smtp: SmtpSink) -> None:
    async def scenario() -> None:
        op, _ = await agent(world.server, world.operator_a)
        v, _ = await visitor(world.server, world.site_a, ORIGIN_A)
        conv, _ = await open_chat(v)
        await op.send(type="accept", conversation=conv, ref="a")
        await op.expect("conversation", ref="a")
        await v.send(
            type="send", conversation=conv, client_id=client_id(), text="Is the Golf <b>free</b>?"
        )
        await v.expect("ack")
        await op.send(
            type="send", conversation=conv, client_id=client_id(), text="Yes, until Friday."
        )
        await op.expect("ack")

        await v.send(type="transcript", conversation=conv, email="not-an-address", ref="t0")
        refused = await v.expect("error", ref="t0")
        assert refused["code"] == "bad_frame" and "email address" in refused["message"]

        before = len(smtp.messages)
        await v.send(type="transcript", conversation=conv, email="Ann@Example.org", ref="t1")
        sent = await v.expect("transcript_sent", ref="t1")
        assert sent["conversation"] == conv
        mail = smtp.messages[before]
        assert mail["To"] == "Ann@example.org"
        assert mail["Subject"] == "Your chat with Alpha Cars Leeds"
        body = mail.get_content().replace("\r\n", "\n")
        assert "You:\n  Is the Golf <b>free</b>?" in body  # text, as typed
        assert "Otto Operator:\n  Yes, until Friday." in body
        assert not mail.is_multipart()  # plain text only: nothing typed becomes markup

        for n in range(2):
            await v.send(type="transcript", conversation=conv, email="ann@example.org", ref=f"r{n}")
            await v.expect("transcript_sent", ref=f"r{n}")
        await v.send(type="transcript", conversation=conv, email="ann@example.org", ref="r3")
        assert (await v.expect("error", ref="r3"))["code"] == "rate_limited"
        assert len(smtp.messages) == before + 3
        await v.close()
        await op.close()

    asyncio.run(scenario())


def test_the_audit_trail_records_the_copy_without_the_address(world: World) -> None:
    """Runs after the test above (same module): the copy left, and the entry says why."""

    async def entries(ctx):  # type: ignore[no-untyped-def]
        from sqlalchemy import select

        from confide.audit.models import AuditEntry
        from confide.storage.scope import Scope

        async with ctx.db.session(Scope.system(), read_only=True) as s:
            rows = await s.scalars(
                select(AuditEntry).where(AuditEntry.action == "transcript.emailed")
            )
            return [(e.subject_kind, e.actor_role, e.purpose, list(e.fields or [])) for e in rows]

    rows = world.server.service(entries)
    assert len(rows) == 3  # one per copy sent; none for the refused ones
    for kind, role, purpose, fields in rows:
        assert (kind, role, fields) == ("conversation", "visitor", ["messages"])
        assert "@" not in (purpose or "")
