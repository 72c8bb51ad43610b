"""Tables of the processor's accountability records.

Platform-wide records (sub-processors, breaches, policy versions, newsletter subscriptions,
notices) belong to no client, and only our staff change them. What concerns one client is
tenant-scoped (:class:`~confide.storage.scope.OrgScoped`): its objections, which breaches it was
told about, its inbox. No table here holds a visitor's personal data (no ``user.*`` column): the
newsletter keeps client notification data (policy 2.6), sealed like everything personal.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped

from confide.storage.base import Base, PersonalText, UTCDateTime, field
from confide.storage.scope import OrgScoped

_ID = {"category": "system.id", "retention": "account"}
_OPS = {"category": "system.operations", "retention": "account"}
_CFG = {"category": "system.configuration", "retention": "account"}
_INCIDENT = {"category": "system.incident", "retention": "account"}


def _org() -> Mapped[str]:
    return field(ForeignKey("organisations.id", ondelete="CASCADE"), index=True, **_ID)  # type: ignore[no-any-return]


class SubProcessor(Base):
    """A sub-processor we engage (art. 28(2)): in effect from ``effective_at``, announced before."""

    __tablename__ = "subprocessors"

    id: Mapped[str] = field(String(32), primary_key=True, **_ID)
    name: Mapped[str] = field(String(120), **_CFG)
    #: A region code (UK, EU, EEA, US, …): personal data only with UK/EU/EEA (policy 4).
    region: Mapped[str] = field(String(8), **_CFG)
    purpose: Mapped[str] = field(Text, **_CFG)
    #: Data categories it handles (``user.contact``, ``system.operations``, …).
    categories: Mapped[list[str]] = field(JSON, default=list, **_CFG)
    announced_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    effective_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    announced_by: Mapped[str | None] = field(String(32), nullable=True, **_ID)


class SubProcessorObjection(OrgScoped, Base):
    """A client's objection to a sub-processor (art. 28(2)): who, when, why. Never edited."""

    __tablename__ = "subprocessor_objections"
    __table_args__ = (UniqueConstraint("subprocessor_id", "organisation_id"),)

    id: Mapped[str] = field(String(32), primary_key=True, **_ID)
    subprocessor_id: Mapped[str] = field(
        ForeignKey("subprocessors.id", ondelete="CASCADE"), index=True, **_ID
    )
    organisation_id: Mapped[str] = _org()
    user_id: Mapped[str | None] = field(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True, **_ID
    )
    #: Written by the client's staff for our staff; sealed under the organisation's keys.
    reason: Mapped[str] = field(
        PersonalText, category="account.content.objection", retention="account"
    )
    created_at: Mapped[datetime] = field(UTCDateTime, **_OPS)


class Breach(Base):
    """A personal data breach (art. 33(5)): the facts, effects and remedial action."""

    __tablename__ = "breaches"

    id: Mapped[str] = field(String(32), primary_key=True, **_ID)
    #: The nature of the breach (art. 33(3)(a)): what happened, how, to which systems.
    nature: Mapped[str] = field(Text, **_INCIDENT)
    #: Categories of personal data concerned (data-map categories, e.g. ``user.contact``).
    categories: Mapped[list[str]] = field(JSON, default=list, **_INCIDENT)
    subjects_approx: Mapped[int] = field(Integer, **_INCIDENT)
    records_approx: Mapped[int] = field(Integer, **_INCIDENT)
    consequences: Mapped[str] = field(Text, **_INCIDENT)
    measures: Mapped[str] = field(Text, **_INCIDENT)
    #: Our contact point for the incident (art. 33(3)(b)), sent to every affected controller.
    contact_name: Mapped[str] = field(
        String(200),
        category="account.name",
        retention="account",
        info={"plaintext_reason": "our published contact point, sent to each affected client"},
    )
    contact_email: Mapped[str] = field(
        String(320),
        category="account.contact.email",
        retention="account",
        info={"plaintext_reason": "our published contact point, sent to each affected client"},
    )
    discovered_at: Mapped[datetime] = field(UTCDateTime, **_INCIDENT)
    recorded_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    recorded_by: Mapped[str | None] = field(String(32), nullable=True, **_ID)


class BreachOrganisation(OrgScoped, Base):
    """An organisation affected by a breach, and when it was notified (art. 33(2))."""

    __tablename__ = "breach_organisations"
    __table_args__ = (UniqueConstraint("breach_id", "organisation_id"),)

    id: Mapped[int] = field(Integer, primary_key=True, autoincrement=True, **_ID)
    breach_id: Mapped[str] = field(ForeignKey("breaches.id", ondelete="CASCADE"), index=True, **_ID)
    organisation_id: Mapped[str] = _org()
    notified_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)
    emails_sent: Mapped[int] = field(Integer, default=0, **_OPS)


class PolicyVersion(Base):
    """A published version of the platform's privacy policy. The database refuses UPDATE and
    DELETE (migration 0007): a version, once published, is what it was."""

    __tablename__ = "policy_versions"

    #: Publication order (two versions may share a timestamp on a frozen test clock).
    id: Mapped[int] = field(Integer, primary_key=True, autoincrement=True, **_ID)
    #: As consent evidence names it (``Site.policy_version`` is as long).
    version: Mapped[str] = field(String(40), unique=True, **_CFG)
    title: Mapped[str] = field(String(200), **_CFG)
    text: Mapped[str] = field(Text, **_CFG)
    text_sha256: Mapped[str] = field(String(64), **_CFG)
    #: What changed since the previous version, as announced (None: not said).
    summary: Mapped[str | None] = field(Text, nullable=True, **_CFG)
    published_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    published_by: Mapped[str | None] = field(String(32), nullable=True, **_ID)


class InboxMessage(OrgScoped, Base):
    """A message in an organisation's portal inbox (notices from us, never personal data)."""

    __tablename__ = "inbox_messages"
    __table_args__ = (Index("ix_inbox_messages_org_created", "organisation_id", "created_at"),)

    id: Mapped[str] = field(String(32), primary_key=True, **_ID)
    organisation_id: Mapped[str] = field(ForeignKey("organisations.id", ondelete="CASCADE"), **_ID)
    #: subprocessor, breach, policy.
    kind: Mapped[str] = field(String(20), **_OPS)
    #: The id of what it is about (a sub-processor, a breach, a policy version).
    ref: Mapped[str | None] = field(String(40), nullable=True, **_ID)
    title: Mapped[str] = field(String(200), category="system.notice", retention="account")
    body: Mapped[str] = field(Text, category="system.notice", retention="account")
    created_at: Mapped[datetime] = field(UTCDateTime, **_OPS)


class InboxRead(OrgScoped, Base):
    """When a user first saw an inbox message."""

    __tablename__ = "inbox_reads"
    __table_args__ = (UniqueConstraint("message_id", "user_id"),)

    id: Mapped[int] = field(Integer, primary_key=True, autoincrement=True, **_ID)
    message_id: Mapped[str] = field(ForeignKey("inbox_messages.id", ondelete="CASCADE"), **_ID)
    organisation_id: Mapped[str] = _org()
    user_id: Mapped[str] = field(ForeignKey("users.id", ondelete="CASCADE"), index=True, **_ID)
    read_at: Mapped[datetime] = field(UTCDateTime, **_OPS)


class NewsletterSubscription(Base):
    """Notification and newsletter subscriptions (policy 2.6), apart from client accounts (R58).

    The address is sealed under a key of the subscription itself and found by a blind index; on
    unsubscribing the key is destroyed and the index cleared, so only the dates remain.
    """

    __tablename__ = "newsletter_subscriptions"

    id: Mapped[str] = field(String(32), primary_key=True, **_ID)
    email: Mapped[str] = field(PersonalText, category="account.contact.email", retention="account")
    email_index: Mapped[str | None] = field(
        String(64),
        nullable=True,
        unique=True,
        category="account.contact.email",
        retention="account",
        info={"plaintext_reason": "keyed HMAC (blind index), not the value"},
    )
    #: pending (until the confirmation link), subscribed, unsubscribed.
    state: Mapped[str] = field(String(12), **_OPS)
    #: SHA-256 of the confirmation token (sent once, in the confirmation email).
    confirm_hash: Mapped[str | None] = field(String(64), nullable=True, unique=True, **_OPS)
    confirm_expires_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)
    #: In every email's List-Unsubscribe link, which must work for as long as the subscription.
    unsubscribe_token: Mapped[str] = field(
        String(64),
        unique=True,
        category="system.credential",
        retention="account",
        info={"plaintext_reason": "put in every email's unsubscribe link; it can only unsubscribe"},
    )
    created_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    confirmed_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)
    unsubscribed_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)


class Notice(Base):
    """Evidence that a notice went to one recipient (ids only, never an address). Read by our
    staff only: it is not tenant-scoped."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_kind_ref", "kind", "ref"),)

    id: Mapped[int] = field(Integer, primary_key=True, autoincrement=True, **_ID)
    #: subprocessor.announced, breach.notified, policy.published, newsletter.confirm.
    kind: Mapped[str] = field(String(32), **_OPS)
    ref: Mapped[str] = field(String(40), **_ID)
    #: The client organisation of a user recipient (None for a newsletter subscriber).
    organisation_id: Mapped[str | None] = field(String(32), nullable=True, **_ID)
    #: user or subscriber, and its id.
    recipient_kind: Mapped[str] = field(String(12), **_OPS)
    recipient_id: Mapped[str] = field(String(32), **_ID)
    sent_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)
    error: Mapped[str | None] = field(String(120), nullable=True, **_OPS)
    created_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
