"""The privacy-rights promise end to end, through the services, on SQLite and PostgreSQL.

A visitor browses (a tracked visit with pages), chats, gives their name, email and phone, consents
and becomes a lead that is delivered (an email destination, a real SMTP sink) and forwarded
onward. They ask for a copy of their data (R47, R50), then for its erasure (R34, R42, R51, R54):
afterwards nothing of them is readable in the database file or a dump, a backup taken before is
unreadable for them, the recipients are told, and another visitor is untouched.

The world builders here are shared with ``test_rights_rules.py``.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from confide.accounts.models import Role, User
from confide.accounts.principal import Principal
from confide.chat.models import Conversation, Message, Visitor
from confide.chat.service import ConversationRef, VisitorActor
from confide.clock import utcnow
from confide.crypto.vault import ERASED
from confide.delivery.models import OutboxJob
from confide.ids import new_id
from confide.leads.models import ConsentRecord, Lead, OnwardTransfer, Person, PersonChange
from confide.privacy.models import ErasureTask, PrivacyRequest
from confide.privacy.registry import stores
from confide.privacy.service import Intake
from confide.settings import Settings
from confide.sites.models import Site
from confide.storage.base import Base
from confide.storage.engine import Database
from confide.storage.scope import Scope
from confide.tracking.models import PageView, SiteVisitor, Visit
from confide.web.context import AppContext
from tests.leads.helpers import SmtpSink

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


# --- the world ---------------------------------------------------------------------------------


@dataclass
class World:
    ctx: AppContext
    smtp: SmtpSink
    org_id: str
    site: Site
    operator: Principal
    client: Principal
    #: The client's staff (who decide requests and get the reminders).
    client_emails: list[str]
    destination_ids: list[str]


async def build_world(
    url: str,
    smtp: SmtpSink,
    *,
    destinations: int = 1,
    clients: int = 1,
    sms: Any = None,
) -> World:
    """An organisation with a site, an operator, client staff and email destinations."""
    settings = Settings(
        database_url=url,
        worker=False,
        rollup_interval_s=0,
        smtp_port=smtp.port,
        public_url="https://chat.example",
    )
    ctx = AppContext.build(settings)
    if sms is not None:
        ctx.privacy.sms = sms
    await ctx.start()
    tag = secrets.token_hex(3)
    org = await ctx.accounts.create_organisation(f"Rights Motors {tag}")
    site = await ctx.sites.create_site(
        organisation_id=org.id, name=f"Rights {tag}", origins=["https://rights.example"]
    )

    async def principal(role: Role, org_id: str | None, email: str) -> Principal:
        user = await ctx.accounts.create_user(
            email=email,
            name=role.value.title(),
            role=role,
            password=PASSWORD,
            organisation_id=org_id,
            site_ids=[site.id],
        )
        async with ctx.db.session(Scope.system()) as s:
            loaded = await s.get(User, user.id)
            assert loaded is not None
            return await ctx.accounts.principal_for(loaded)

    operator = await principal(Role.OPERATOR, None, f"op-{tag}@example.com")
    client_emails = [f"boss{i}-{tag}@example.com" for i in range(clients)]
    staff = [await principal(Role.CLIENT, org.id, e) for e in client_emails]
    dest_ids = []
    for i in range(destinations):
        made = await ctx.delivery_admin.add_destination(
            Scope.system(),
            organisation_id=org.id,
            kind="email",
            target=f"crm{i}-{tag}@dealer.example",
            name=f"Dealer CRM {i}",
            region="UK",
        )
        dest_ids.append(made.destination["id"])
    return World(ctx, smtp, org.id, site, operator, staff[0], client_emails, dest_ids)


@dataclass
class Subject:
    """One visitor's identity and where it ended up."""

    name: str
    email: str
    phone_typed: str
    phone: str  # E.164, as stored
    old_phone_typed: str
    words: str  # something only they said
    actor: VisitorActor
    ref: ConversationRef
    person_id: str
    visit_id: str
    site_visitor_id: str
    paths: list[str]
    lead_id: str | None = None
    transfer_reason: str | None = None

    @property
    def conversation_id(self) -> str:
        return self.ref.id

    def needles(self) -> list[str]:
        """Every plaintext that must never be found at rest once they are erased."""
        return [
            self.name,
            self.email,
            self.phone,
            self.phone_typed,
            self.old_phone_typed,
            "+44" + self.old_phone_typed.replace(" ", "")[1:],
            self.words,
        ]


def _mobile() -> tuple[str, str]:
    digits = f"{secrets.randbelow(900_000) + 100_000}"
    return f"07400 {digits}", f"+447400{digits}"


async def _visit(w: World, paths: list[str]) -> tuple[str, str]:
    """A tracked visit with its page views, as the tracking writer leaves them."""
    now = utcnow()
    sv_id, visit_id = new_id(), new_id()
    async with w.ctx.db.session(Scope.system()) as s:
        s.add(
            SiteVisitor(
                id=sv_id,
                organisation_id=w.org_id,
                site_id=w.site.id,
                cookie_hash=secrets.token_hex(32),
                first_seen_at=now,
                last_seen_at=now,
                visit_count=1,
            )
        )
        await s.flush()
        s.add(
            Visit(
                id=visit_id,
                organisation_id=w.org_id,
                site_id=w.site.id,
                site_visitor_id=sv_id,
                started_at=now - timedelta(minutes=5),
                last_seen_at=now,
                pageviews=len(paths),
                first_ts=now - timedelta(minutes=5),
                seconds=300,
                is_returning=False,
                country="GB",
                channel="search",
                campaign={},
                last_path=paths[-1],
            )
        )
        await s.flush()
        for seq, path in enumerate(paths, start=1):
            s.add(
                PageView(
                    organisation_id=w.org_id,
                    site_id=w.site.id,
                    visit_id=visit_id,
                    seq=seq,
                    path=path,
                    title=f"Page {seq}",
                    at=now - timedelta(minutes=5 - seq),
                    seconds=60,
                )
            )
    return visit_id, sv_id


async def seed_subject(
    w: World,
    *,
    consent: bool = True,
    lead: bool = True,
    deliver: bool = True,
    forward: bool = False,
) -> Subject:
    """A visitor who browsed, chatted, gave details (one changed later) and (optionally) became a
    lead, consented, was delivered and forwarded onward."""
    tag = secrets.token_hex(4)
    name = f"Rita Q{tag}"
    email = f"rita.{tag}@example.org"
    old_phone, _ = _mobile()
    phone_typed, phone = _mobile()
    words = f"part-exchange-plan-{tag}"
    paths = [f"/used-cars/octavia-{tag}", f"/finance/{tag}"]
    visit_id, sv_id = await _visit(w, paths)
    ctx = w.ctx
    actor, view, _ = await ctx.chat.open_conversation(w.site, None, name, visit_id)
    ref = await ctx.chat.authorise(actor, view.id)
    await ctx.chat.post(actor, ref, f"v1-{tag}", f"Hi, I'm {name}. Mail {email}. {words}")
    await ctx.chat.accept(w.operator, ref)
    await ctx.chat.post(w.operator, ref, f"a1-{tag}", f"Thanks {name}, noted.")
    await ctx.leads.update_details(
        w.operator, view.id, {"name": name, "email": email, "phone": old_phone}
    )
    person = await ctx.leads.update_details(w.operator, view.id, {"phone": phone_typed})
    subject = Subject(
        name=name,
        email=email,
        phone_typed=phone_typed,
        phone=phone,
        old_phone_typed=old_phone,
        words=words,
        actor=actor,
        ref=ref,
        person_id=person.id,
        visit_id=visit_id,
        site_visitor_id=sv_id,
        paths=paths,
    )
    if consent:
        await ctx.leads.request_consent(w.operator, view.id)
        state = await ctx.leads.consent_state(view.id)
        assert state.request_id is not None
        await ctx.leads.answer_consent(
            actor,
            view.id,
            state.request_id,
            "granted",
            ip_truncated="203.0.113.0",
            user_agent="Firefox 128 / Linux",
        )
    if lead:
        made = await ctx.leads.create_lead(
            w.operator, view.id, purpose="test_drive", comments=f"Wants {words}"
        )
        subject.lead_id = made.id
        if deliver and consent:
            await ctx.delivery.drain()
            async with ctx.db.session(Scope.system(), read_only=True) as s:
                stored = await s.get(Lead, made.id)
            assert stored is not None and stored.delivery_state == "delivered"
        if forward:
            subject.transfer_reason = f"The visitor asked for a finance quote {tag}"
            recorded = await ctx.lead_records.forward(
                w.client,
                made.id,
                recipient_name="Northern Finance Ltd",
                recipient_contact="deals@northern-finance.example",
                reason=subject.transfer_reason,
            )
            assert recorded["reason"] == subject.transfer_reason  # shown as typed, not sealed
    return subject


def mailed_code(smtp: SmtpSink, to: str) -> str:
    """The one-time code in the latest email to ``to`` that carries one."""
    for message in reversed(smtp.messages):
        if message["To"] == to:
            found = re.search(r"Your code: (\d{6})", message.get_content())
            if found:
                return found.group(1)
    raise AssertionError(f"no code was emailed to {to}")


def mails_to(smtp: SmtpSink, to: str) -> list[str]:
    return [m.get_content() for m in smtp.messages if m["To"] == to]


async def verified_and_approved(w: World, intake: Intake) -> PrivacyRequest:
    """Submit, verify with the emailed code, approve as the client."""
    assert intake.email is not None
    req = await w.ctx.privacy.submit(w.org_id, intake)
    assert req.state == "identity_unverified"
    await w.ctx.privacy.verify(req.id, mailed_code(w.smtp, intake.email))
    return await w.ctx.privacy.approve(w.client, req.id)


async def count(w: World, model: type[Base], *where: Any) -> int:
    async with w.ctx.db.session(Scope.system(), read_only=True) as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def raw_at_rest(url: str) -> bytes:
    """Every byte the database holds: the SQLite file and its WAL, or a PostgreSQL data dump."""
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump not installed")
    return subprocess.run(
        [pg_dump, "--data-only", "--inserts", url], capture_output=True, timeout=60, check=True
    ).stdout


def sqlite_backup(url: str, to: Path) -> str:
    """An online backup (sqlite3 ``backup()``), as an operator's nightly job takes it."""
    with sqlite3.connect(url.split("///", 1)[1]) as live, sqlite3.connect(to) as copy:
        live.backup(copy)
    return f"sqlite:///{to}"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --- access ------------------------------------------------------------------------------------


def test_access_export_contains_every_item(database_url: str, smtp: SmtpSink) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, forward=True)
            await seed_subject(w)  # someone else, who must not appear in the package
            req = await w.ctx.privacy.submit(w.org_id, Intake("access", email=sub.email))
            assert req.state == "identity_unverified"
            await w.ctx.privacy.verify(req.id, mailed_code(smtp, sub.email))
            done = await w.ctx.privacy.approve(w.client, req.id)
            assert done.state == "complete"
            token = re.search(r"token=([\w-]+)", mails_to(smtp, sub.email)[-1])
            assert token, "the result email carries the download link"
            package = await w.ctx.privacy.export_package(req.id, token.group(1))
        finally:
            await w.ctx.stop()
        assert json.loads(json.dumps(package)) == package  # one machine-readable package
        data, manifest = package["data"], package["manifest"]
        assert manifest["stores"] == {name: len(rows) for name, rows in data.items()}
        assert set(data) == {s.name for s in stores()}

        (conv,) = data["conversations"]
        assert conv["id"] == sub.conversation_id and conv["visit_id"] == sub.visit_id
        texts = [m["text"] for m in conv["messages"]]
        assert any(sub.words in t for t in texts) and any(t.startswith("Thanks") for t in texts)
        assert [m["author_role"] for m in conv["messages"]][:2] == ["visitor", "agent"]

        (person,) = data["persons"]
        assert (person["name"], person["email"], person["phone"]) == (
            sub.name,
            sub.email,
            sub.phone,
        )
        assert "email_index" not in person  # keyed look-up values are not the person's data
        phones = [h["value"] for h in person["history"] if h["field_name"] == "phone"]
        assert phones == ["+44" + sub.old_phone_typed.replace(" ", "")[1:], sub.phone]

        (lead,) = data["leads"]
        assert lead["id"] == sub.lead_id and lead["delivery_state"] == "delivered"
        assert sub.words in lead["comments"]
        (transfer,) = lead["onward_transfers"]
        assert transfer["recipient_name"] == "Northern Finance Ltd"
        assert transfer["reason"] == sub.transfer_reason

        granted = [c for c in data["consent_records"] if c["answer"] == "granted"]
        assert len(granted) == 1 and granted[0]["ip_truncated"] == "203.0.113.0"
        assert granted[0]["text"] and granted[0]["text_sha256"]

        (visit,) = data["behaviour"]
        assert visit["id"] == sub.visit_id and visit["country"] == "GB"
        assert [p["path"] for p in visit["pages"]] == sub.paths
        assert [b["id"] for b in data["browsers"]] == [sub.site_visitor_id]
        assert "cookie_hash" not in data["browsers"][0]
        assert [v["id"] for v in data["visitors"]] == [sub.actor.visitor_id]

        (disclosure,) = data["outbox"]
        assert disclosure["lead_id"] == sub.lead_id and disclosure["destination"] == "Dealer CRM 0"
        assert disclosure["event"] == "lead.created" and disclosure["state"] == "done"
        assert disclosure["delivered_at"] is not None

    run(go())


# --- deletion ----------------------------------------------------------------------------------


def test_deletion_leaves_no_trace_but_the_request_record(
    database_url: str, smtp: SmtpSink, tmp_path: Path
) -> None:
    sqlite = database_url.startswith("sqlite")

    async def go() -> tuple[Subject, Subject, str | None, str]:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, forward=True)
            other = await seed_subject(w)
            access = await verified_and_approved(w, Intake("access", email=sub.email))
            backup = sqlite_backup(database_url, tmp_path / "before.db") if sqlite else None

            mailed = len(smtp.messages)
            gone = await verified_and_approved(w, Intake("deletion", email=sub.email))
            # Erased, but not complete until the recipients were told (R51).
            assert gone.state == "in_processing" and not gone.partial
            assert gone.completed_at is None
            assert not [b for b in mails_to(smtp, sub.email) if "carried out" in b]

            # Their rows are gone from every store.
            assert await count(w, Person, Person.id == sub.person_id) == 0
            assert await count(w, PersonChange, PersonChange.person_id == sub.person_id) == 0
            assert await count(w, Conversation, Conversation.id == sub.conversation_id) == 0
            assert await count(w, Message, Message.conversation_id == sub.conversation_id) == 0
            assert await count(w, Visitor, Visitor.id == sub.actor.visitor_id) == 0
            assert await count(w, Lead, Lead.id == sub.lead_id) == 0
            assert await count(w, OnwardTransfer, OnwardTransfer.lead_id == sub.lead_id) == 0
            assert (
                await count(w, ConsentRecord, ConsentRecord.conversation_id == sub.conversation_id)
                == 0
            )
            assert await count(w, Visit, Visit.id == sub.visit_id) == 0
            assert await count(w, PageView, PageView.visit_id == sub.visit_id) == 0
            assert await count(w, SiteVisitor, SiteVisitor.id == sub.site_visitor_id) == 0
            assert w.ctx.db.vault.store.subject_key(sub.actor.visitor_id) is None

            async with w.ctx.db.session(Scope.system(), read_only=True) as s:
                tasks = list(
                    await s.scalars(select(ErasureTask).where(ErasureTask.request_id == gone.id))
                )
                notices = list(
                    await s.scalars(
                        select(OutboxJob).where(
                            OutboxJob.organisation_id == w.org_id,
                            OutboxJob.event == "lead.erased",
                        )
                    )
                )
                records = {
                    r.id: r
                    for r in await s.scalars(
                        select(PrivacyRequest).where(PrivacyRequest.id.in_([access.id, gone.id]))
                    )
                }
            by_store = {t.store: t for t in tasks}
            for store in [*(s.name for s in stores()), "keys"]:
                assert by_store[store].state == "done", store
            assert by_store["keys"].rows >= 1 and by_store["keys"].method == "crypto-shred"
            assert by_store["conversations"].rows > 0 and by_store["persons"].rows > 0
            # Each store counts its own rows: the browser's identifier too, not 0 (it went).
            assert by_store["browsers"].rows == 1 and by_store["behaviour"].rows > 0

            # The destination that received the lead is told to erase it too (Art. 19).
            dest = w.destination_ids[0]
            assert [(n.destination_id, n.subject_ref, n.state) for n in notices] == [
                (dest, sub.lead_id, "pending")
            ]
            notice_task = by_store[f"recipient:{dest}"]
            assert notice_task.state == "pending" and notice_task.finished_at is None
            assert notice_task.outbox_key == notices[0].idempotency_key
            # And so is the organisation it was forwarded to at the visitor's request: through
            # the outbox, committed with the erasure, sent by the worker, address then dropped.
            assert by_store["recipient_notification"].state == "pending"
            assert records[gone.id].state == "in_processing"
            onward_to = "deals@northern-finance.example"
            assert not [m for m in smtp.messages[mailed:] if m["To"] == onward_to]
            async with w.ctx.db.session(Scope.system(), read_only=True) as s:
                (queued,) = list(
                    await s.scalars(select(OutboxJob).where(OutboxJob.event == "transfer.erased"))
                )
            assert (queued.recipient, queued.subject_ref, queued.state) == (
                onward_to,
                sub.lead_id,
                "pending",
            )
            await w.ctx.delivery.drain()
            (notice,) = [m for m in smtp.messages[mailed:] if m["To"] == onward_to]
            assert "must now be erased" in notice.get_content()
            assert "at the person's request" in notice.get_content()
            async with w.ctx.db.session(Scope.system(), read_only=True) as s:
                sent = await s.get(OutboxJob, queued.id)
            assert sent is not None and (sent.state, sent.recipient) == ("done", None)
            # Both notices are listed with the client's deliveries, though their lead is gone.
            listed = {
                (j["event"], j["state"], j["destination"]["kind"], j["lead_id"])
                for j in await w.ctx.delivery_admin.jobs(w.client)
            }
            assert ("transfer.erased", "done", "email", sub.lead_id) in listed
            assert ("lead.erased", "done", "email", sub.lead_id) in listed

            # Delivered: the notice tasks are done, and so the request is complete (R51).
            async with w.ctx.db.session(Scope.system(), read_only=True) as s:
                tasks = list(
                    await s.scalars(select(ErasureTask).where(ErasureTask.request_id == gone.id))
                )
                records = {
                    r.id: r
                    for r in await s.scalars(
                        select(PrivacyRequest).where(PrivacyRequest.id.in_([access.id, gone.id]))
                    )
                }
            assert all(t.state == "done" or (t.state == "skipped" and t.reason) for t in tasks)
            notice_reasons = sorted(t.reason or "" for t in tasks if t.method == "notice")
            assert notice_reasons == [
                "erasure notice sent by email to Northern Finance Ltd",
                "erasure notice sent to the destination that received the lead",
            ]
            assert records[gone.id].completed_at is not None
            (told,) = [b for b in mails_to(smtp, sub.email) if "carried out" in b]
            assert "legal hold" not in told

            # The request records stay (R54): blind indexes, no personal fields.
            vault = w.ctx.db.vault
            assert set(records) == {access.id, gone.id}
            for r in records.values():
                assert r.state == "complete"
                assert r.email_index == vault.blind_index("email", sub.email)
                assert (r.contact, r.details, r.agent_designation) == (None, None, None)

            # Another visitor of the same site is untouched and readable through the services.
            panel = await w.ctx.lead_records.panel(w.operator, other.conversation_id)
            assert panel["person"]["email"] == other.email
            assert panel["person"]["phone"] == other.phone
            history = (await w.ctx.chat.history(w.operator, other.ref, 0)).messages
            assert any(other.words in m.text for m in history)
            assert other.lead_id is not None
            detail = await w.ctx.lead_records.detail(w.client, other.lead_id)
            assert detail["id"] == other.lead_id
            keystore = vault.store.url
        finally:
            await w.ctx.stop()
        return sub, other, backup, keystore

    sub, other, backup, keystore = run(go())

    raw = raw_at_rest(database_url)
    assert other.email.encode() not in raw  # sealed at rest: nobody's email is readable
    assert b"Rights Motors" in raw  # but we are reading the data
    for needle in sub.needles():
        assert needle.encode() not in raw, f"{needle!r} is readable at rest after erasure"

    if backup is None:
        return

    async def read_backup() -> dict[str, Any]:
        db = Database(backup, keystore_url=keystore)
        try:
            async with db.session(Scope.system(), read_only=True) as s:
                persons = {p.id: p for p in await s.scalars(select(Person))}
                texts = {
                    m.conversation_id: m.text
                    for m in await s.scalars(select(Message).where(Message.seq == 1))
                }
            return {"persons": persons, "texts": texts}
        finally:
            await db.dispose()

    copy = run(read_backup())
    theirs = copy["persons"][sub.person_id]
    assert (theirs.name, theirs.email, theirs.phone) == (ERASED, ERASED, ERASED)
    assert copy["texts"][sub.conversation_id] == ERASED
    mine = copy["persons"][other.person_id]
    assert (mine.name, mine.email, mine.phone) == (other.name, other.email, other.phone)
    assert other.words in copy["texts"][other.conversation_id]


# --- the request record ------------------------------------------------------------------------


def test_an_erased_requesters_email_cannot_be_read_from_a_backup_of_their_request(
    database_url: str, smtp: SmtpSink, tmp_path: Path
) -> None:
    """A finished request keeps blind indexes only, and its own key is destroyed: a backup taken
    while it was open (or an old row version) no longer names the requester (R42, R54)."""

    async def go() -> tuple[str, str | None, str, bool]:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, lead=False)
            req = await w.ctx.privacy.submit(w.org_id, Intake("deletion", email=sub.email))
            backup = (
                sqlite_backup(database_url, tmp_path / "open.db")
                if database_url.startswith("sqlite")
                else None
            )
            await w.ctx.privacy.verify(req.id, mailed_code(smtp, sub.email))
            gone = await w.ctx.privacy.approve(w.client, req.id)
            assert gone.state == "complete"
            key_left = w.ctx.db.vault.store.subject_key(req.id) is not None
            return req.id, backup, w.ctx.db.vault.store.url, key_left
        finally:
            await w.ctx.stop()

    request_id, backup, keystore, key_left = run(go())

    async def read(url: str) -> str | None:
        db = Database(url, keystore_url=keystore)
        try:
            async with db.session(Scope.system(), read_only=True) as s:
                row = await s.get(PrivacyRequest, request_id)
                assert row is not None
                return row.contact
        finally:
            await db.dispose()

    if backup is not None:
        assert run(read(backup)) in (None, ERASED), "the backup still names the erased requester"
    assert not key_left, "the request's own data key outlives the request"
