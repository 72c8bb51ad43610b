"""Privacy requests through the services, with a real SMTP server: access and deletion."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from confide.accounts.models import Role, User
from confide.accounts.principal import Principal
from confide.chat.models import Message
from confide.errors import InvalidState
from confide.leads.models import Person
from confide.privacy.models import ErasureTask
from confide.privacy.service import Intake
from confide.settings import Settings
from confide.storage.scope import Scope
from confide.web.context import AppContext
from tests.leads.helpers import SmtpSink

EMAIL = "rights.holder@example.org"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


def _code(smtp: SmtpSink, to: str) -> str:
    for message in reversed(smtp.messages):
        if message["To"] == to:
            found = re.search(r"Your code: (\d{6})", message.get_content())
            if found:
                return found.group(1)
    raise AssertionError("no code was emailed")


async def _setup(url: str, smtp: SmtpSink) -> tuple[AppContext, Principal, str, str]:
    settings = Settings(
        database_url=url,
        worker=False,
        rollup_interval_s=0,
        smtp_port=smtp.port,
        public_url="https://chat.example",
    )
    ctx = AppContext.build(settings)
    await ctx.start()
    org = await ctx.accounts.create_organisation("Rights Motors")
    site = await ctx.sites.create_site(
        organisation_id=org.id, name="Rights", origins=["https://rights.example"]
    )
    user = await ctx.accounts.create_user(
        email=f"boss-{secrets.token_hex(4)}@example.com",
        name="Boss",
        role=Role.CLIENT,
        password="correct horse battery",
        organisation_id=org.id,
    )
    async with ctx.db.session(Scope.system()) as s:
        loaded = await s.get(User, user.id)
        assert loaded is not None
        client = await ctx.accounts.principal_for(loaded)
    actor, view, _ = await ctx.chat.open_conversation(site, None, None)
    ref = await ctx.chat.authorise(actor, view.id)
    await ctx.chat.post(actor, ref, "rights-1", "Hello, my email is rights.holder@example.org")
    await ctx.leads.update_details(actor, view.id, {"name": "Rita Rights", "email": EMAIL})
    return ctx, client, org.id, view.id


def test_access_then_deletion(database_url: str, smtp: SmtpSink) -> None:
    async def go() -> None:
        ctx, client, org_id, conv = await _setup(database_url, smtp)
        try:
            svc = ctx.privacy
            req = await svc.submit(org_id, Intake("access", email=EMAIL))
            assert req.state == "identity_unverified"
            with pytest.raises(InvalidState):
                await svc.approve(client, req.id)  # never before verification
            await svc.verify(req.id, _code(smtp, EMAIL))
            done = await svc.approve(client, req.id)
            assert done.state == "complete"
            mail = smtp.messages[-1].get_content()
            token = re.search(r"token=([\w-]+)", mail)
            assert token
            package = await svc.export_package(req.id, token.group(1))
            texts = [m["text"] for c in package["data"]["conversations"] for m in c["messages"]]
            assert any("rights.holder@example.org" in t for t in texts)
            assert package["data"]["persons"][0]["name"] == "Rita Rights"

            gone = await svc.submit(org_id, Intake("deletion", email=EMAIL))
            await svc.verify(gone.id, _code(smtp, EMAIL))
            erased = await svc.approve(client, gone.id)
            assert erased.state == "complete" and not erased.partial
            async with ctx.db.session(Scope.system(), read_only=True) as s:
                assert (
                    await s.scalar(
                        select(func.count())
                        .select_from(Person)
                        .where(Person.organisation_id == org_id)
                    )
                    == 0
                )
                assert (
                    await s.scalar(
                        select(func.count())
                        .select_from(Message)
                        .where(Message.conversation_id == conv)
                    )
                    == 0
                )
                rows = list(
                    await s.scalars(select(ErasureTask).where(ErasureTask.request_id == gone.id))
                )
                tasks = {t.store: t.state for t in rows}
                reasons = {t.store: t.reason for t in rows}
            assert tasks["keys"] == "done" and tasks["conversations"] == "done"
            # The verifier tried the old ciphertexts after the keys were destroyed.
            assert (reasons["keys"] or "").startswith("verified: ")
            unknown = await svc.submit(org_id, Intake("access", email="nobody@example.org"))
            assert unknown.state == "identity_unverified"  # the same answer as for a known one
        finally:
            await ctx.stop()

    asyncio.run(go())


def test_recipients_receive_an_erasure_notice(database_url: str, smtp: SmtpSink) -> None:
    """A destination that received the lead is told to erase it (Art. 19), signed like a lead."""
    import orjson

    from confide.delivery.webhook import verify
    from tests.delivery.receiver import Receiver

    async def go(receiver: Receiver) -> None:
        ctx, client, org_id, conv = await _setup(database_url, smtp)
        try:
            created = await ctx.delivery_admin.add_destination(
                Scope.system(),
                organisation_id=org_id,
                kind="webhook",
                target=receiver.url("/hook"),
                region="UK",
            )
            lead = await ctx.leads.create_lead(client, conv, purpose="general")
            await ctx.leads.request_consent(client, conv)
            state = await ctx.leads.consent_state(conv)
            async with ctx.db.session(Scope.system(), read_only=True) as s:
                from confide.chat.models import Conversation

                c = await s.get(Conversation, conv)
                assert c is not None
            from confide.chat.service import VisitorActor

            visitor = VisitorActor(c.visitor_id, c.site_id, c.organisation_id, "v")
            assert state.request_id
            await ctx.leads.answer_consent(visitor, conv, state.request_id, "granted")
            await ctx.delivery.drain()
            req = await ctx.privacy.submit(org_id, Intake("deletion", email=EMAIL))
            await ctx.privacy.verify(req.id, _code(smtp, EMAIL))
            await ctx.privacy.approve(client, req.id)
            await ctx.delivery.drain()
            events = [orjson.loads(r.body) for r in receiver.stored()]
            assert [e["event"] for e in events] == ["lead.created", "lead.erased"]
            assert events[1]["lead_id"] == lead.id
            notice = receiver.stored()[-1]
            assert verify(created.secret or "", notice.signature, notice.body, now=notice.at)
        finally:
            await ctx.stop()

    with Receiver() as receiver:
        asyncio.run(go(receiver))
