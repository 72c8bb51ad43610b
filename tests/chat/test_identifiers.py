"""The emails and phones visitors type are indexed with their message (chat/identifiers.py).

The cheap checks in front of the parsers, then the rows the writer stores in the message's
transaction on SQLite (the sqlite3 writer) and PostgreSQL (the SQLAlchemy writer), and that the
rows go with their conversation (ON DELETE CASCADE, foreign keys on).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, select

from confide.chat.identifiers import may_hold_email, may_hold_phone
from confide.chat.models import ChatIdentifier, Conversation, Message
from confide.storage.scope import Scope
from tests.leads.helpers import SmtpSink
from tests.privacy.test_rights_e2e import World, build_world, count, run


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("call me on 07700 900123", True),
        ("+44 (0)20 7946 0958 please", True),
        ("(212) 555-1234", True),
        ("tel:07700900123", True),
        ("The Octavia is £12,995 with 45,000 miles, 2019", False),
        ("ref ab1234567cd", False),  # glued to letters: never a phone to phonenumbers either
        # bench/chat_load.py's message: hex stamps, digit runs glued to letters.
        ("00000123g000000001f3ag000000001f3bgxxxxxxxxxxxxxxxxxxxxxxxx", False),
        ("no digits at all", False),
    ],
)
def test_only_likely_phones_reach_the_parser(text: str, phone: bool) -> None:
    assert may_hold_phone(text) is phone


def test_only_an_at_sign_reaches_the_email_parser() -> None:
    assert may_hold_email("me@example.org") and not may_hold_email("me at example dot org")


async def _rows(w: World, conversation_id: str) -> list[Any]:
    async with w.ctx.db.session(Scope.system(), read_only=True) as s:
        return list(
            await s.scalars(
                select(ChatIdentifier)
                .where(ChatIdentifier.conversation_id == conversation_id)
                .order_by(ChatIdentifier.id)
            )
        )


def test_a_visitors_email_and_phone_are_indexed_with_the_message(
    database_url: str, smtp: SmtpSink
) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            ctx, tag = w.ctx, secrets.token_hex(4)
            vault = ctx.db.vault
            actor, view, _ = await ctx.chat.open_conversation(w.site, None, None, None)
            ref = await ctx.chat.authorise(actor, view.id)
            await ctx.chat.accept(w.operator, ref)
            await ctx.chat.post(actor, ref, f"v1-{tag}", "Is the Octavia still for sale?")
            text = "jane.typed@example.org or 07400 123456 (jane.typed@example.org, again)"
            stored = await ctx.chat.post(actor, ref, f"v2-{tag}", text)
            again = await ctx.chat.post(actor, ref, f"v2-{tag}", text)  # a resend
            assert again.duplicate
            # An agent's message is not the visitor's data (the dealer's own number, say).
            await ctx.chat.post(w.operator, ref, f"a1-{tag}", "Or call us on 07400 654321")

            rows = await _rows(w, view.id)
            assert [(r.kind, r.blind_index, r.seq) for r in rows] == [
                ("email", vault.blind_index("email", "jane.typed@example.org"), stored.seq),
                ("phone", vault.blind_index("phone", "+447400123456"), stored.seq),
            ]
            assert {(r.organisation_id, r.visitor_id) for r in rows} == {
                (w.org_id, actor.visitor_id)
            }
        finally:
            await w.ctx.stop()

    run(go())


def test_an_offline_enquirys_contact_and_text_are_indexed(
    database_url: str, smtp: SmtpSink
) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            vault = w.ctx.db.vault
            view = await w.ctx.chat.enquiry(
                w.site, "Jane", "jane.form@example.org", "Or text 07400 123457 please"
            )
            rows = await _rows(w, view.id)
            assert sorted((r.kind, r.blind_index, r.seq) for r in rows) == sorted(
                [
                    ("email", vault.blind_index("email", "jane.form@example.org"), 1),
                    ("phone", vault.blind_index("phone", "+447400123457"), 1),
                ]
            )
        finally:
            await w.ctx.stop()

    run(go())


def test_the_rows_go_with_their_conversation(database_url: str, smtp: SmtpSink) -> None:
    """Deleted by SQL with the conversation (as a purge or an organisation's end deletes it)."""

    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            ctx = w.ctx
            actor, view, _ = await ctx.chat.open_conversation(w.site, None, None, None)
            ref = await ctx.chat.authorise(actor, view.id)
            await ctx.chat.post(actor, ref, f"v-{view.id}", "mail me: gone.soon@example.org")
            where = ChatIdentifier.conversation_id == view.id
            assert await count(w, ChatIdentifier, where) == 1
            async with ctx.db.session(Scope.system()) as s:
                await s.execute(delete(Message).where(Message.conversation_id == view.id))
                await s.execute(delete(Conversation).where(Conversation.id == view.id))
            assert await count(w, ChatIdentifier, where) == 0
        finally:
            await w.ctx.stop()

    run(go())
