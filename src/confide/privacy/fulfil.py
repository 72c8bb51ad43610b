"""Carrying out an approved request: export, erasure, correction and the flags (R50-R55).

Every function takes the subject as resolved from the persons on file and the chat visitors
matched (``resolve``) and works through the registry, so a new store of personal data is
exported and erased without touching this file.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from confide.audit import log as audit
from confide.chat.models import Conversation
from confide.chat.rewrite import replace_spans, rewrite_transcript
from confide.crypto.vault import Vault
from confide.delivery.models import Destination, OutboxJob
from confide.delivery.outbox import cancel_for_leads, pending_job
from confide.errors import InvalidInput
from confide.ids import new_id
from confide.leads import consent as consent_rules
from confide.leads import fields
from confide.leads.detect import find_details
from confide.leads.models import ConsentRecord, Lead, OnwardTransfer, Person, PersonChange
from confide.privacy.models import ErasureTask, LegalHold
from confide.privacy.registry import Subject, stores
from confide.sites.models import Site
from confide.storage.base import Base
from confide.tracking.models import Visit

CORRECTABLE = ("name", "email", "phone", "address", "city", "postcode", "country")
#: What a transcript shows where the visitor had typed a value they later corrected (R52).
CORRECTED = "[corrected]"


async def resolve(
    s: AsyncSession,
    organisation_id: str,
    person_ids: list[str],
    visitor_ids: list[str] | None = None,
) -> Subject:
    """The subject's ids in every store, from the persons matched on file and the chat visitors
    matched (visitors who typed the requester's email or phone in a chat, or, for the
    retention purge, anonymous visitors who never gave details): all their conversations."""
    subject = Subject(organisation_id, list(person_ids))
    if not person_ids and not visitor_ids:
        return subject
    persons = list(await s.scalars(select(Person).where(Person.id.in_(person_ids))))
    subject.visitor_ids = sorted(
        {p.visitor_id for p in persons if p.visitor_id} | set(visitor_ids or [])
    )
    subject.conversation_ids = list(
        await s.scalars(
            select(Conversation.id).where(
                or_(
                    Conversation.person_id.in_(person_ids),
                    Conversation.visitor_id.in_(subject.visitor_ids),
                )
            )
        )
    )
    subject.lead_ids = list(await s.scalars(select(Lead.id).where(Lead.person_id.in_(person_ids))))
    visits = (
        await s.execute(
            select(Visit.id, Visit.site_visitor_id).where(
                or_(
                    Visit.person_id.in_(person_ids),
                    Visit.conversation_id.in_(subject.conversation_ids),
                )
            )
        )
    ).all()
    subject.visit_ids = [v[0] for v in visits]
    subject.site_visitor_ids = sorted({v[1] for v in visits if v[1]})
    return subject


async def export(s: AsyncSession, subject: Subject) -> dict[str, Any]:
    """Every store's rows for the subject (the access package's data part)."""
    return {store.name: await store.export(s, subject) for store in stores()}


def categories_of(data: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per store: how many records, and the data categories (the data map's, R50) of the fields
    that hold a value in them: what a request for categories of data is answered with."""
    everywhere: dict[str, str] = {}
    own: dict[str, dict[str, str]] = {}
    for store in stores():
        keys = own.setdefault(store.name, {})
        for table in store.tables:
            for column in Base.metadata.tables[table].columns:
                category = str(column.info.get("data_category", "system"))
                keys.setdefault(column.key, category)
                everywhere.setdefault(column.key, category)
    out: dict[str, dict[str, Any]] = {}
    for name, rows in data.items():
        found: set[str] = set()
        _collect(rows, {**everywhere, **own.get(name, {})}, found)
        categories = sorted(c for c in found if not c.startswith("system"))
        out[name] = {"records": len(rows), "categories": categories}
    return out


def _collect(rows: list[dict[str, Any]], keys: dict[str, str], found: set[str]) -> None:
    """The categories of the keys holding a value, nested records (a chat's messages) too."""
    for row in rows:
        for key, value in row.items():
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                _collect(value, keys, found)
            elif value not in (None, "", [], {}):
                found.add(keys.get(key, "system"))


async def holds(s: AsyncSession, subject: Subject, now: datetime) -> dict[str, str]:
    """Active legal holds on the subject: {hold kind: reason}."""
    active = await s.scalars(
        select(LegalHold).where(
            LegalHold.released_at.is_(None),
            or_(
                LegalHold.target_kind == "organisation",
                LegalHold.target_id.in_(subject.person_ids + subject.lead_ids),
            ),
            LegalHold.organisation_id == subject.organisation_id,
        )
    )
    out: dict[str, str] = {}
    for hold in active:
        if hold.target_kind != "organisation" or hold.target_id == subject.organisation_id:
            out.setdefault(hold.target_kind, f"legal hold ({hold.owner}): {hold.reason}")
    return out


async def erase(
    s: AsyncSession,
    subject: Subject,
    request_id: str,
    vault: Vault,
    now: datetime,
) -> bool:
    """Erase the subject store by store, recording one task each; True if anything was held.

    Recipients are told only about what is actually erased: a lead kept under a legal hold is
    not announced as erased.
    """
    held = await holds(s, subject, now)
    if not any(k in held for k in ("person", "lead", "organisation")):
        await _erasure_notices(s, subject, request_id, now)
    samples = await _ciphertext_samples(s, subject)
    partial = False
    for store in stores():
        reason = next((held[k] for k in store.held_by if k in held), None)
        task = ErasureTask(
            organisation_id=subject.organisation_id,
            request_id=request_id,
            store=store.name,
            method=store.method,
            state="skipped" if reason else "done",
            reason=reason,
            rows=0 if reason else await store.erase(s, subject),
            finished_at=now,
        )
        partial |= reason is not None
        s.add(task)
    key_reason = held.get("person") or held.get("organisation") or held.get("lead")
    shredded = 0
    if not key_reason:
        for visitor_id in subject.visitor_ids:
            if vault.destroy_subject(visitor_id):
                shredded += 1
                await audit.append(
                    s,
                    audit.SYSTEM,
                    "key.destroyed",
                    organisation_id=subject.organisation_id,
                    subject_kind="subject_key",
                    subject_ref=hashlib.sha256(visitor_id.encode()).hexdigest()[:32],
                    purpose=f"erasure request {request_id} (crypto-shredding)",
                )
    verified = None if key_reason else _verify_shredded(vault, samples)
    s.add(
        ErasureTask(
            organisation_id=subject.organisation_id,
            request_id=request_id,
            store="keys",
            method="crypto-shred",
            state="skipped" if key_reason else ("done" if verified is not False else "failed"),
            reason=key_reason
            or (
                f"verified: {len(samples)} sample ciphertext(s) taken before the erasure no "
                "longer decrypt"
                if verified
                else "no ciphertext to verify"
                if verified is None
                else "a sample still decrypts: the key was not destroyed"
            ),
            rows=shredded,
            finished_at=now,
        )
    )
    return partial or key_reason is not None


async def _ciphertext_samples(s: AsyncSession, subject: Subject) -> list[str]:
    """A few of the subject's sealed values as stored (raw SQL: no decryption), kept in memory
    only, so the verifier can try them once the keys are gone (§4.4 of the requirements)."""
    if not subject.conversation_ids:
        return []
    marks = ",".join(f":c{i}" for i in range(len(subject.conversation_ids[:50])))
    params = {f"c{i}": c for i, c in enumerate(subject.conversation_ids[:50])}
    rows = await s.execute(
        text(f"SELECT text FROM messages WHERE conversation_id IN ({marks}) LIMIT 5"), params
    )
    return [r[0] for r in rows.all() if isinstance(r[0], str) and r[0].startswith("c1:")]


def _verify_shredded(vault: Vault, samples: list[str]) -> bool | None:
    """True when no sample decrypts any more; None when there was nothing to try."""
    if not samples:
        return None
    vault.forget_cache()
    return not any(_still_opens(vault, token) for token in samples)


def _still_opens(vault: Vault, token: str) -> bool:
    try:
        vault.open(token)
    except Exception:  # KeyDestroyed, InvalidTag: unreadable, as it must be
        return False
    return True


async def _erasure_notices(
    s: AsyncSession,
    subject: Subject,
    request_id: str,
    now: datetime,
) -> None:
    """Recipients of the subject's data are told to erase it too (Art. 19, R29), through the
    outbox: destinations that received the lead, and onward recipients with an email address."""
    delivered = (
        await s.execute(
            select(OutboxJob.lead_id, OutboxJob.destination_id, OutboxJob.organisation_id)
            .where(OutboxJob.lead_id.in_(subject.lead_ids), OutboxJob.state == "done")
            .distinct()
        )
    ).all()
    for lead_id, destination_id, org_id in delivered:
        key = f"{lead_id}.{destination_id}.lead.erased"
        s.add(
            pending_job(
                organisation_id=org_id,
                event="lead.erased",
                key=key,
                now=now,
                subject_ref=lead_id,
                destination_id=destination_id,
            )
        )
        s.add(
            ErasureTask(
                organisation_id=org_id,
                request_id=request_id,
                store=f"recipient:{destination_id}",
                method="notice",
                state="pending",
                reason=f"{QUEUED} to the destination that received the lead",
                rows=1,
                outbox_key=key,
            )
        )
    transfers = list(
        await s.scalars(select(OnwardTransfer).where(OnwardTransfer.lead_id.in_(subject.lead_ids)))
    )
    for t in transfers:
        emailed = "@" in t.recipient_contact
        emailed_key = f"{t.id}.transfer.erased" if emailed else None
        if emailed_key:
            # Through the outbox, committed with the erasure: sent after it, retried until it
            # goes, never sent for an erasure that rolled back.
            s.add(
                pending_job(
                    organisation_id=t.organisation_id,
                    event="transfer.erased",
                    key=emailed_key,
                    now=now,
                    subject_ref=t.lead_id,
                    recipient=t.recipient_contact,
                )
            )
        s.add(
            ErasureTask(
                organisation_id=t.organisation_id,
                request_id=request_id,
                store="recipient_notification",
                method="notice",
                state="pending" if emailed else "skipped",
                reason=(
                    f"{QUEUED} by email to {t.recipient_name}"
                    if emailed
                    else f"no email address for {t.recipient_name}: the client notifies them "
                    f"at {t.recipient_contact}"
                ),
                rows=1,
                finished_at=None if emailed else now,
                outbox_key=emailed_key,
            )
        )


async def settle_notices(s: AsyncSession, request_id: str, now: datetime) -> None:
    """Bring the request's notice tasks up to date with their outbox jobs: ``done`` once the
    worker delivered the notice, ``failed`` (with the last error) when it was dead-lettered or
    canceled, ``pending`` again while a job retried from the console is queued."""
    tasks = list(
        await s.scalars(
            select(ErasureTask).where(
                ErasureTask.request_id == request_id,
                ErasureTask.outbox_key.is_not(None),
                ErasureTask.state.in_(("pending", "failed")),
            )
        )
    )
    for task in tasks:
        job = await s.scalar(select(OutboxJob).where(OutboxJob.idempotency_key == task.outbox_key))
        whom = _whom(task.reason)
        if job is None:
            task.state, task.finished_at = "failed", now
            task.reason = f"{NOT_SENT} {whom}; the queued notice is no longer in the outbox"
        elif job.state == "done":
            task.state, task.finished_at = "done", job.done_at or now
            task.reason = f"{SENT} {whom}"
        elif job.state in ("dead", "canceled"):
            task.state, task.finished_at = "failed", job.updated_at
            task.reason = f"{NOT_SENT} {whom}; {LAST_ERROR} {job.last_error or job.state}"
        else:
            task.state, task.finished_at = "pending", None
            task.reason = f"{QUEUED} {whom}"


#: How a notice task's reason starts, by outcome; what follows names the recipient.
QUEUED = "erasure notice queued"
SENT = "erasure notice sent"
NOT_SENT = "erasure notice not sent"
LAST_ERROR = "last error:"


def _whom(reason: str | None) -> str:
    """The recipient part of a notice task's reason ("to the destination …", "by email to …")."""
    text = (reason or "").split(f"; {LAST_ERROR} ", 1)[0]
    for prefix in (NOT_SENT, QUEUED, SENT):
        if text.startswith(prefix + " "):
            return text[len(prefix) + 1 :]
    return text


def parse_correction(details: str) -> tuple[str, str]:
    """``field: new value`` (e.g. ``phone: 07400 123456``)."""
    key, sep, value = details.partition(":")
    key = key.strip().lower()
    if not sep or key not in CORRECTABLE or not value.strip():
        raise InvalidInput(f"Say what to correct as 'field: new value' ({', '.join(CORRECTABLE)}).")
    return key, value.strip()


async def correct(
    s: AsyncSession, subject: Subject, details: str, vault: Vault, now: datetime
) -> int:
    """Apply the correction and send corrected leads to recipients (R52).

    The inaccurate values go: earlier values of the field in the change history keep their
    record (when, by whom) but read ``[corrected]``, and so does the transcript wherever the
    visitor typed one in a chat: the old value can be neither read nor found.
    """
    key, raw = parse_correction(details)
    persons = list(await s.scalars(select(Person).where(Person.id.in_(subject.person_ids))))
    for p in persons:
        site = await s.get(Site, p.site_id)
        region = (site.country if site is not None else None) or "GB"
        value = fields.contact({key: raw}, region)[key]
        subject_key = p.visitor_id or p.id
        earlier = {v for v in await _values_of(s, p, key) if v and v not in (value, CORRECTED)}
        setattr(p, key, vault.seal(subject_key, p.organisation_id, value))
        if key in ("email", "phone"):
            setattr(p, f"{key}_index", vault.blind_index(key, value))
        p.updated_at = now
        await s.execute(
            update(PersonChange)
            .where(PersonChange.person_id == p.id, PersonChange.field_name == key)
            .values(value=vault.seal(subject_key, p.organisation_id, CORRECTED))
        )
        s.add(
            PersonChange(
                organisation_id=p.organisation_id,
                site_id=p.site_id,
                person_id=p.id,
                conversation_id=None,
                field_name=key,
                value=vault.seal(subject_key, p.organisation_id, value),
                source="request",
                actor_id=None,
                at=now,
            )
        )
        if earlier:
            await _scrub_transcripts(s, p, key, earlier, region, vault)
    return await _resend(s, subject, now)


async def _values_of(s: AsyncSession, person: Person, key: str) -> list[str | None]:
    """Every value the field has had: now, and in the change history."""
    history = await s.scalars(
        select(PersonChange.value).where(
            PersonChange.person_id == person.id, PersonChange.field_name == key
        )
    )
    return [getattr(person, key), *history]


async def _scrub_transcripts(
    s: AsyncSession, person: Person, key: str, wrong: set[str], region: str, vault: Vault
) -> None:
    """Replace the inaccurate values where the visitor typed them in their chats."""
    conversations = list(
        await s.scalars(
            select(Conversation).where(
                or_(
                    Conversation.person_id == person.id,
                    Conversation.visitor_id == (person.visitor_id or ""),
                )
            )
        )
    )
    for conv in conversations:
        for attr in ("visitor_name", "visitor_contact"):
            if getattr(conv, attr) in wrong:
                setattr(conv, attr, vault.seal(conv.visitor_id, conv.organisation_id, CORRECTED))
        await rewrite_transcript(
            s, conv, vault.seal, lambda text: _without(text, key, wrong, region)
        )


def _without(text: str, key: str, wrong: set[str], region: str) -> str:
    """``text`` with every occurrence of a wrong value replaced: contact details as detected
    (however they were typed: "07700 900123" is "+447700900123"), other fields as written."""
    spans: list[tuple[int, int]] = []
    if key in ("email", "phone", "postcode"):
        spans = [
            (d.start, d.end)
            for d in find_details(text, region)
            if d.kind == key and d.normalised in wrong
        ]
    lowered = text.lower()
    for value in (v.lower() for v in wrong if len(v) >= 3):
        start = lowered.find(value)
        while start != -1:
            spans.append((start, start + len(value)))
            start = lowered.find(value, start + len(value))
    return replace_spans(text, spans, CORRECTED)


async def _resend(s: AsyncSession, subject: Subject, now: datetime) -> int:
    leads = list(
        await s.scalars(
            select(Lead).where(Lead.id.in_(subject.lead_ids), Lead.delivery_state == "delivered")
        )
    )
    n = 0
    for lead in leads:
        lead.revision += 1
        lead.updated_at = now
        dests = await s.scalars(
            select(OutboxJob.destination_id)
            .where(OutboxJob.lead_id == lead.id, OutboxJob.state == "done")
            .distinct()
        )
        for destination_id in dests:
            if await s.get(Destination, destination_id) is None:
                continue
            s.add(
                pending_job(
                    organisation_id=lead.organisation_id,
                    event="lead.corrected",
                    key=f"{lead.id}.{destination_id}.lead.corrected.{lead.revision}",
                    now=now,
                    lead_id=lead.id,
                    destination_id=destination_id,
                )
            )
            n += 1
    return n


async def set_flag(s: AsyncSession, subject: Subject, kind: str, now: datetime) -> None:
    """Opt-out, objections and restriction: flags that delivery, marketing and scoring obey."""
    column = {
        "opt_out": "sale_share_opt_out",
        "object_marketing": "marketing_objection",
        "object_automated": "automated_objection",
        "restriction": "restricted",
    }[kind]
    await s.execute(
        update(Person)
        .where(Person.id.in_(subject.person_ids))
        .values({column: True, "updated_at": now})
    )
    if kind == "opt_out":
        await s.execute(
            update(Lead).where(Lead.id.in_(subject.lead_ids)).values(sale_share_opt_out=True)
        )
    if kind == "restriction":
        await cancel_for_leads(s, subject.lead_ids, "processing restricted", now)
        await s.execute(
            update(Lead)
            .where(
                Lead.id.in_(subject.lead_ids),
                Lead.delivery_state.in_(("queued", "awaiting_consent")),
            )
            .values(delivery_state="withdrawn", updated_at=now)
        )


async def withdraw_consent(s: AsyncSession, subject: Subject, now: datetime) -> int:
    """A withdrawal for every conversation with granted consent; undelivered leads stop."""
    n = 0
    for conv_id in subject.conversation_ids:
        state = await consent_rules_state(s, conv_id)
        if state is None:
            continue
        text, version, org, site, visitor = state
        s.add(
            ConsentRecord(
                id=new_id(),
                organisation_id=org,
                site_id=site,
                conversation_id=conv_id,
                request_id=None,
                visitor_id=visitor,
                person_id=subject.person_ids[0] if subject.person_ids else None,
                purpose=consent_rules.PURPOSE,
                channel="request",
                text=text,
                text_sha256=consent_rules.sha256(text),
                answer="withdrawn",
                policy_version=version,
                language="en",
                message_seq=None,
                ip_truncated=None,
                user_agent=None,
                answered_at=now,
            )
        )
        n += 1
    undelivered = list(
        await s.scalars(
            select(Lead.id).where(Lead.id.in_(subject.lead_ids), Lead.delivery_state != "delivered")
        )
    )
    await cancel_for_leads(s, undelivered, "consent withdrawn", now)
    if undelivered:
        await s.execute(
            update(Lead).where(Lead.id.in_(undelivered)).values(delivery_state="withdrawn")
        )
    return n


async def consent_rules_state(
    s: AsyncSession, conversation_id: str
) -> tuple[str, str, str, str, str | None] | None:
    """The latest granted (and not since withdrawn) consent of a conversation, if any."""
    latest = await s.scalar(
        select(ConsentRecord)
        .where(ConsentRecord.conversation_id == conversation_id)
        .order_by(ConsentRecord.answered_at.desc(), ConsentRecord.id.desc())
        .limit(1)
    )
    if latest is None or latest.answer != "granted":
        return None
    return (
        latest.text,
        latest.policy_version,
        latest.organisation_id,
        latest.site_id,
        latest.visitor_id,
    )
