"""Privacy requests (policy 7), their verification codes, event log and erasure records.

A request keeps personal data only while it is worked (the requester's contact, an agent's
designation, the detail to correct), sealed under a key of the request itself; when it ends they
are cleared and the record is kept (24 months, R54) with blind indexes only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped

from confide.storage.base import Base, PersonalText, UTCDateTime, field
from confide.storage.scope import OrgScoped

_ID = {"category": "system.id", "retention": "account"}
_OPS = {"category": "system.operations", "retention": "account"}


def _org() -> Mapped[str]:
    return field(ForeignKey("organisations.id", ondelete="CASCADE"), index=True, **_ID)  # type: ignore[no-any-return]


def _personal(category: str) -> Mapped[str | None]:
    return field(PersonalText, nullable=True, category=category, retention="session")  # type: ignore[no-any-return]


def _blind(category: str) -> Mapped[str | None]:
    return field(  # type: ignore[no-any-return]
        String(64),
        nullable=True,
        index=True,
        category=category,
        retention="account",
        info={"plaintext_reason": "keyed HMAC (blind index), not the value"},
    )


class PrivacyRequest(OrgScoped, Base):
    __tablename__ = "privacy_requests"
    __table_args__ = (Index("ix_privacy_requests_org_state", "organisation_id", "state"),)

    id: Mapped[str] = field(String(32), primary_key=True, **_ID)
    organisation_id: Mapped[str] = _org()
    #: access, deletion, correction, opt_out, withdraw_consent, object_marketing,
    #: object_automated, restriction.
    kind: Mapped[str] = field(String(20), **_OPS)
    #: gdpr (EU/UK GDPR: one month) or ccpa (45 days).
    regime: Mapped[str] = field(String(8), **_OPS)
    state: Mapped[str] = field(String(20), **_OPS)
    #: form, api, email, agent.
    channel: Mapped[str] = field(String(12), **_OPS)
    email_index: Mapped[str | None] = _blind("user.contact.email")
    phone_index: Mapped[str | None] = _blind("user.contact.phone_number")
    #: Where we answer (the address given); cleared when the request ends.
    contact: Mapped[str | None] = _personal("user.contact")
    #: The detail to correct ("field: new value") or the specific data asked for.
    details: Mapped[str | None] = _personal("user.content.request")
    #: An authorised agent's written designation: name and full contact details.
    agent_designation: Mapped[str | None] = _personal("user.content.request")
    power_of_attorney: Mapped[bool] = field(Boolean, default=False, **_OPS)
    #: Persons on file this request is about (ids only; empty when nobody matched).
    person_ids: Mapped[list[str]] = field(JSON, default=list, **_ID)
    #: Visitors who typed the email or phone in a chat (``chat_identifiers``), ids only: their
    #: conversations are the subject's too, with or without a person on file.
    visitor_ids: Mapped[list[str]] = field(JSON, default=list, server_default="[]", **_ID)
    received_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    acknowledged_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)
    identity_verified_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)
    due_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    extended_due_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)
    extension_reason: Mapped[str | None] = field(Text, nullable=True, **_OPS)
    reviewed_by: Mapped[str | None] = field(String(32), nullable=True, **_ID)
    reviewed_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)
    #: A denial's or partial refusal's reason (no personal data: a reason code and text).
    decision_reason: Mapped[str | None] = field(Text, nullable=True, **_OPS)
    #: The reason code of a refusal or a partial erasure (``DENIAL_BASES``; R41, R53).
    denial_basis: Mapped[str | None] = field(String(32), nullable=True, **_OPS)
    completed_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)
    partial: Mapped[bool] = field(Boolean, default=False, **_OPS)
    #: Access requests: SHA-256 of the download token sent to the person.
    export_token_hash: Mapped[str | None] = field(String(64), nullable=True, **_OPS)
    export_expires_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)
    reminded_50_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)
    reminded_80_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)
    #: Access requests: ``specific`` (a copy of the pieces held) or ``categories`` (what kinds
    #: of data, no values). Under CCPA they need different degrees of certainty (certainty.py).
    access_scope: Mapped[str] = field(
        String(12), default="specific", server_default="specific", **_OPS
    )
    #: The extra details given to prove identity (name, postcode), as JSON; cleared at the end.
    identity_facts: Mapped[str | None] = _personal("user.content.request")
    #: When the requester signed the declaration that they are the person (CCPA §7062).
    declared_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)
    #: How many details matched what we hold, once the code was right (no values).
    data_points: Mapped[int | None] = field(Integer, nullable=True, **_OPS)


class VerificationCode(OrgScoped, Base):
    """A one-time code sent to an address or number already on file (short expiry)."""

    __tablename__ = "verification_codes"

    id: Mapped[int] = field(Integer, primary_key=True, autoincrement=True, **_ID)
    organisation_id: Mapped[str] = _org()
    request_id: Mapped[str] = field(
        ForeignKey("privacy_requests.id", ondelete="CASCADE"), index=True, **_ID
    )
    code_hash: Mapped[str] = field(
        String(64), category="system.authentication", retention="session"
    )
    #: email or phone.
    channel: Mapped[str] = field(String(8), **_OPS)
    expires_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    attempts: Mapped[int] = field(Integer, default=0, **_OPS)
    used_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)


class RequestEvent(OrgScoped, Base):
    """What happened to a request, when and by whom (no personal data)."""

    __tablename__ = "privacy_request_events"

    id: Mapped[int] = field(Integer, primary_key=True, autoincrement=True, **_ID)
    organisation_id: Mapped[str] = _org()
    request_id: Mapped[str] = field(
        ForeignKey("privacy_requests.id", ondelete="CASCADE"), index=True, **_ID
    )
    at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    from_state: Mapped[str | None] = field(String(20), nullable=True, **_OPS)
    to_state: Mapped[str] = field(String(20), **_OPS)
    actor_id: Mapped[str | None] = field(String(32), nullable=True, **_ID)
    note: Mapped[str | None] = field(Text, nullable=True, **_OPS)


class ErasureTask(OrgScoped, Base):
    """One store's part of an erasure: done, or skipped with a reason (R51).

    A notice to a recipient is ``pending`` until the worker delivered its outbox job
    (``outbox_key``), and ``failed`` if the job was dead-lettered or canceled.
    """

    __tablename__ = "erasure_tasks"

    id: Mapped[int] = field(Integer, primary_key=True, autoincrement=True, **_ID)
    organisation_id: Mapped[str] = _org()
    request_id: Mapped[str] = field(
        ForeignKey("privacy_requests.id", ondelete="CASCADE"), index=True, **_ID
    )
    store: Mapped[str] = field(String(40), **_OPS)
    #: pending, done, skipped, failed.
    state: Mapped[str] = field(String(10), **_OPS)
    #: hard delete, crypto-shred, notice (to a recipient).
    method: Mapped[str] = field(String(16), **_OPS)
    rows: Mapped[int] = field(Integer, default=0, **_OPS)
    reason: Mapped[str | None] = field(Text, nullable=True, **_OPS)
    finished_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)
    #: The idempotency key of the notice's outbox job (notices only).
    outbox_key: Mapped[str | None] = field(String(64), nullable=True, index=True, **_ID)


class LegalHold(OrgScoped, Base):
    """A hold on a person, a lead or a whole organisation: suspends purges and erasure (5.4)."""

    __tablename__ = "legal_holds"

    id: Mapped[str] = field(String(32), primary_key=True, **_ID)
    organisation_id: Mapped[str] = _org()
    #: person, lead or organisation.
    target_kind: Mapped[str] = field(String(12), **_OPS)
    target_id: Mapped[str] = field(String(32), index=True, **_ID)
    owner: Mapped[str] = field(
        String(200),
        category="account.name",
        retention="account",
        info={"plaintext_reason": "the staff member accountable for the hold, shown to auditors"},
    )
    reason: Mapped[str] = field(Text, **_OPS)
    review_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    created_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    released_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)
