"""Destinations and the transactional outbox of deliveries.

The outbox row is written in the same transaction as the lead (or the consent that releases it):
either both exist or neither, so a crash can lose no delivery. It holds ids only, never personal
data: the payload is built when the job runs (see :mod:`confide.delivery.snapshot`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped

from confide.storage.base import Base, UTCDateTime, field
from confide.storage.scope import OrgScoped

_ID = {"category": "system.id", "retention": "contract"}
_OPS = {"category": "system.operations", "retention": "contract"}
_CFG = {"category": "system.configuration", "retention": "account"}


class Destination(OrgScoped, Base):
    """Where an organisation's leads go: an email inbox or an HTTPS webhook, with its region."""

    __tablename__ = "destinations"

    id: Mapped[str] = field(String(32), primary_key=True, category="system.id", retention="account")
    organisation_id: Mapped[str] = field(
        ForeignKey("organisations.id", ondelete="CASCADE"),
        index=True,
        category="system.id",
        retention="account",
    )
    #: None: every site of the organisation.
    site_id: Mapped[str | None] = field(
        ForeignKey("sites.id", ondelete="CASCADE"),
        nullable=True,
        category="system.id",
        retention="account",
    )
    name: Mapped[str] = field(String(120), **_CFG)
    #: email or webhook.
    kind: Mapped[str] = field(String(12), **_CFG)
    #: An email address or an https URL.
    target: Mapped[str] = field(Text, **_CFG)
    #: HMAC key for webhooks (shown once to the client when created).
    secret: Mapped[str | None] = field(
        String(64),
        nullable=True,
        category="system.credential",
        retention="account",
        info={"plaintext_reason": "a webhook signing key the worker must use as is"},
    )
    #: ISO-like region code: UK, EU, EEA, US, … (policy 4: personal data only to UK/EU/EEA).
    region: Mapped[str] = field(String(8), **_CFG)
    enabled: Mapped[bool] = field(Boolean, default=True, **_CFG)
    created_at: Mapped[datetime] = field(
        UTCDateTime, category="system.operations", retention="account"
    )


class OutboxJob(OrgScoped, Base):
    """One durable side effect: deliver lead X to destination Y (at least once)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_due", "state", "next_attempt_at"),)

    id: Mapped[int] = field(Integer, primary_key=True, autoincrement=True, **_ID)
    organisation_id: Mapped[str] = field(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True, **_ID
    )
    #: lead.created, lead.corrected, lead.erased (erasure notice to a destination),
    #: transfer.erased (erasure notice to an onward recipient, by email to ``recipient``).
    event: Mapped[str] = field(String(24), **_OPS)
    lead_id: Mapped[str | None] = field(
        ForeignKey("leads.id", ondelete="CASCADE"), nullable=True, index=True, **_ID
    )
    #: None for a notice to an onward recipient, who is an address, not a destination.
    destination_id: Mapped[str | None] = field(
        ForeignKey("destinations.id", ondelete="CASCADE"), nullable=True, **_ID
    )
    #: An onward recipient's email address, kept only until their notice is sent.
    recipient: Mapped[str | None] = field(
        String(320), nullable=True, category="system.configuration", retention="contract"
    )
    #: The lead a notice is about once the lead row itself is gone (erasure notices).
    subject_ref: Mapped[str | None] = field(String(32), nullable=True, **_ID)
    #: Receivers de-duplicate on this (sent as Idempotency-Key and as the payload id).
    idempotency_key: Mapped[str] = field(String(64), unique=True, **_ID)
    #: pending, running, done, dead, canceled.
    state: Mapped[str] = field(String(10), **_OPS)
    attempts: Mapped[int] = field(Integer, default=0, **_OPS)
    next_attempt_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    #: A running job whose lease expired (its worker died) is taken again.
    lease_until: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)
    last_error: Mapped[str | None] = field(String(300), nullable=True, **_OPS)
    created_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    updated_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    done_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)


class DeliveryAttempt(OrgScoped, Base):
    """The log of each attempt (no personal data: status codes and error classes only)."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = field(Integer, primary_key=True, autoincrement=True, **_ID)
    organisation_id: Mapped[str] = field(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True, **_ID
    )
    job_id: Mapped[int] = field(ForeignKey("outbox.id", ondelete="CASCADE"), index=True, **_ID)
    attempt: Mapped[int] = field(Integer, **_OPS)
    #: delivered, retry, dead.
    outcome: Mapped[str] = field(String(10), **_OPS)
    detail: Mapped[str | None] = field(String(300), nullable=True, **_OPS)
    at: Mapped[datetime] = field(UTCDateTime, **_OPS)
