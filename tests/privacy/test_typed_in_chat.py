"""Rights requests reach what a visitor typed in a chat, though nobody captured it (R23, R51).

A visitor writes their email (or phone) in a message and no person holds it (the operator never
captured it, and the person R23 makes from typed details is switched off here). A verified
request by that email still finds the chat: deletion erases the conversation and its messages,
access exports them, and another email matches nothing. On SQLite (the sqlite3 writer) and
PostgreSQL (the SQLAlchemy writer). Worlds are built as in ``test_rights_e2e.py``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from confide.chat.models import ChatIdentifier, Conversation, Message, Visitor
from confide.chat.service import ConversationRef, VisitorActor
from confide.leads.models import Person
from confide.privacy.models import ErasureTask, VerificationCode
from confide.privacy.service import Intake
from confide.storage.scope import Scope
from tests.leads.helpers import SmtpSink
from tests.privacy.test_rights_e2e import (
    World,
    build_world,
    count,
    mails_to,
    run,
    verified_and_approved,
)

TYPED = "jane.typed@example.org"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@dataclass
class Chat:
    actor: VisitorActor
    ref: ConversationRef

    @property
    def id(self) -> str:
        return self.ref.id


async def chat(w: World, *lines: str) -> Chat:
    """A visitor who writes ``lines``; an operator accepts and answers; no details captured.

    Details typed in a chat now make a person too (R23); that is switched off here, so these
    tests show the chat index reaching the chat on its own (chats stored before that, or where
    making the person failed)."""
    ctx, tag = w.ctx, secrets.token_hex(4)
    ctx.chat.on_visitor_details = None
    actor, view, _ = await ctx.chat.open_conversation(w.site, None, None, None)
    ref = await ctx.chat.authorise(actor, view.id)
    await ctx.chat.accept(w.operator, ref)
    for n, line in enumerate(lines):
        await ctx.chat.post(actor, ref, f"v{n}-{tag}", line)
    await ctx.chat.post(w.operator, ref, f"a-{tag}", "Thanks, someone will be in touch.")
    return Chat(actor, ref)


def test_a_deletion_by_an_email_typed_in_chat_erases_the_chat(
    database_url: str, smtp: SmtpSink
) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            jane = await chat(w, "Hello", f"you can reach me at {TYPED}")
            other = await chat(w, "you can reach me at someone.else@example.org")
            assert await count(w, Person, Person.organisation_id == w.org_id) == 0

            done = await verified_and_approved(w, Intake("deletion", email=TYPED))
            assert done.state == "complete" and not done.partial
            assert done.person_ids == [] and done.visitor_ids == [jane.actor.visitor_id]

            assert await count(w, Conversation, Conversation.id == jane.id) == 0
            assert await count(w, Message, Message.conversation_id == jane.id) == 0
            assert await count(w, ChatIdentifier, ChatIdentifier.conversation_id == jane.id) == 0
            assert await count(w, Visitor, Visitor.id == jane.actor.visitor_id) == 0
            assert w.ctx.db.vault.store.subject_key(jane.actor.visitor_id) is None
            tasks = {
                t.store: t
                for t in await _tasks(w, done.id)
                if t.store in ("conversations", "chat_identifiers")
            }
            assert tasks["conversations"].rows > 0 and tasks["chat_identifiers"].rows == 1

            # Someone else, who typed another address, is untouched.
            assert await count(w, Message, Message.conversation_id == other.id) == 2
            assert await count(w, ChatIdentifier, ChatIdentifier.conversation_id == other.id) == 1
        finally:
            await w.ctx.stop()

    run(go())


def test_an_access_request_by_an_email_typed_in_chat_exports_the_chat(
    database_url: str, smtp: SmtpSink
) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            jane = await chat(w, "Hello", f"you can reach me at {TYPED}")
            await chat(w, "I am somebody else, at someone.else@example.org")
            req = await verified_and_approved(w, Intake("access", email=TYPED))
            assert req.state == "complete"
            token = re.search(r"token=([\w-]+)", mails_to(smtp, TYPED)[-1])
            assert token, "the result email carries the download link"
            package = await w.ctx.privacy.export_package(req.id, token.group(1))
        finally:
            await w.ctx.stop()
        data = package["data"]
        (conv,) = data["conversations"]
        assert conv["id"] == jane.id
        texts = [m["text"] for m in conv["messages"]]
        assert texts == ["Hello", f"you can reach me at {TYPED}", texts[-1]]
        assert [m["author_role"] for m in conv["messages"]] == ["visitor", "visitor", "agent"]
        assert [v["id"] for v in data["visitors"]] == [jane.actor.visitor_id]
        (typed,) = data["chat_identifiers"]
        assert (typed["conversation_id"], typed["seq"], typed["kind"]) == (jane.id, 2, "email")
        assert "blind_index" not in typed  # a keyed look-up value, not the person's data
        assert data["persons"] == []

    run(go())


def test_a_request_for_another_email_matches_nothing(database_url: str, smtp: SmtpSink) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            await chat(w, f"you can reach me at {TYPED}")
            stranger = f"not.jane.{secrets.token_hex(3)}@example.org"
            req = await w.ctx.privacy.submit(w.org_id, Intake("deletion", email=stranger))
            assert req.state == "identity_unverified"
            assert req.person_ids == [] and req.visitor_ids == []
            assert await count(w, VerificationCode, VerificationCode.request_id == req.id) == 0
            assert not any("Your code" in body for body in mails_to(smtp, stranger))
            # Another organisation's visitor who typed the same address is not ours either.
            elsewhere = await build_world(database_url, smtp)
            try:
                mine = await w.ctx.privacy.submit(w.org_id, Intake("access", email=TYPED))
                theirs = await elsewhere.ctx.privacy.submit(
                    elsewhere.org_id, Intake("access", email=TYPED)
                )
            finally:
                await elsewhere.ctx.stop()
            assert len(mine.visitor_ids) == 1 and theirs.visitor_ids == []
        finally:
            await w.ctx.stop()

    run(go())


def test_a_phone_typed_in_chat_is_verified_by_a_text_to_it(
    database_url: str, smtp: SmtpSink
) -> None:
    texts: list[tuple[str, str]] = []

    async def go() -> None:
        w = await build_world(database_url, smtp, sms=lambda to, text: texts.append((to, text)))
        try:
            digits = f"{secrets.randbelow(900_000) + 100_000}"
            jane = await chat(w, f"or ring me on 07400 {digits} after six")
            req = await w.ctx.privacy.submit(
                w.org_id, Intake("deletion", phone=f"+44 7400 {digits}")
            )
            assert req.visitor_ids == [jane.actor.visitor_id]
            ((to, text),) = texts
            assert to == f"+447400{digits}"
            code = re.search(r"\d{6}", text)
            assert code
            await w.ctx.privacy.verify(req.id, code.group(0))
            done = await w.ctx.privacy.approve(w.client, req.id)
            assert done.state == "complete"
            assert await count(w, Message, Message.conversation_id == jane.id) == 0
        finally:
            await w.ctx.stop()

    run(go())


async def _tasks(w: World, request_id: str) -> list[ErasureTask]:
    async with w.ctx.db.session(Scope.system(), read_only=True) as s:
        rows = await s.scalars(select(ErasureTask).where(ErasureTask.request_id == request_id))
        return list(rows)


def test_the_person_made_from_a_typed_email_is_erased_with_the_chat(
    database_url: str, smtp: SmtpSink
) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            ctx = w.ctx
            actor, view, _ = await ctx.chat.open_conversation(w.site, None, None, None)
            ref = await ctx.chat.authorise(actor, view.id)
            await ctx.chat.post(actor, ref, f"p-{secrets.token_hex(4)}", f"mail me: {TYPED}")
            await ctx.chat.settle()
            assert await count(w, Person, Person.visitor_id == actor.visitor_id) == 1  # R23

            done = await verified_and_approved(w, Intake("deletion", email=TYPED))
            assert done.state == "complete" and len(done.person_ids) == 1
            assert await count(w, Person, Person.visitor_id == actor.visitor_id) == 0
            assert await count(w, Conversation, Conversation.id == view.id) == 0
        finally:
            await w.ctx.stop()

    run(go())
