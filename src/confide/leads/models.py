"""People who gave personal details, their leads, consent evidence and onward transfers.

A :class:`Person` exists only once a visitor gives personal details (R23): before that a visitor
is a pseudonymous id on one site. Consent evidence is append-only: the database itself refuses an
``UPDATE`` on ``consent_records`` (a trigger created by migration 0003), so a record cannot be
rewritten after the fact, even by a bug in this code.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped

from confide.storage.base import Base, PersonalText, UTCDateTime, field
from confide.storage.scope import SiteScoped

_ID = {"category": "system.id", "retention": "contract"}
_OPS = {"category": "system.operations", "retention": "contract"}


def _org() -> Mapped[str]:
    return field(ForeignKey("organisations.id", ondelete="CASCADE"), index=True, **_ID)  # type: ignore[no-any-return]


def _site() -> Mapped[str]:
    return field(ForeignKey("sites.id", ondelete="CASCADE"), index=True, **_ID)  # type: ignore[no-any-return]


def _personal(category: str) -> Mapped[str | None]:
    return field(PersonalText, nullable=True, category=category, retention="contract")  # type: ignore[no-any-return]


#: The contact fields a person record holds, in display order.
CONTACT_FIELDS = ("name", "email", "phone", "address", "city", "postcode", "country")


class Person(SiteScoped, Base):
    """A data subject who gave personal details on one site (attributed to their visitor id)."""

    __tablename__ = "persons"

    id: Mapped[str] = field(String(32), primary_key=True, **_ID)
    organisation_id: Mapped[str] = _org()
    site_id: Mapped[str] = _site()
    visitor_id: Mapped[str | None] = field(
        ForeignKey("visitors.id", ondelete="SET NULL"), nullable=True, index=True, **_ID
    )
    name: Mapped[str | None] = _personal("user.name")
    email: Mapped[str | None] = _personal("user.contact.email")
    phone: Mapped[str | None] = _personal("user.contact.phone_number")
    address: Mapped[str | None] = _personal("user.contact.address.street")
    city: Mapped[str | None] = _personal("user.contact.address.city")
    postcode: Mapped[str | None] = _personal("user.contact.address.postal_code")
    country: Mapped[str | None] = _personal("user.contact.address.country")
    #: Keyed blind indexes (R35) of the normalised email and phone: look-ups for privacy requests.
    email_index: Mapped[str | None] = field(
        String(64),
        nullable=True,
        index=True,
        category="user.contact.email",
        retention="contract",
        info={"plaintext_reason": "keyed HMAC (blind index), not the value"},
    )
    phone_index: Mapped[str | None] = field(
        String(64),
        nullable=True,
        index=True,
        category="user.contact.phone_number",
        retention="contract",
        info={"plaintext_reason": "keyed HMAC (blind index), not the value"},
    )
    #: The browser sent Global Privacy Control at some point (R14): never sold or shared.
    sale_share_opt_out: Mapped[bool] = field(Boolean, default=False, **_OPS)
    #: Restriction of processing (Art. 18, R55): stored only; no hand-off, marketing or scoring.
    restricted: Mapped[bool] = field(Boolean, default=False, **_OPS)
    #: Objected to direct marketing (absolute, R30) / to automated decisions (R32).
    marketing_objection: Mapped[bool] = field(Boolean, default=False, **_OPS)
    automated_objection: Mapped[bool] = field(Boolean, default=False, **_OPS)
    #: Stated an age under the site's threshold (policy 7.3): no lead, details redacted.
    minor: Mapped[bool] = field(Boolean, default=False, **_OPS)
    created_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    updated_at: Mapped[datetime] = field(UTCDateTime, **_OPS)


class PersonChange(SiteScoped, Base):
    """History of captured details: every value a field had, who set it, from where."""

    __tablename__ = "person_changes"

    id: Mapped[int] = field(Integer, primary_key=True, autoincrement=True, **_ID)
    organisation_id: Mapped[str] = _org()
    site_id: Mapped[str] = field(ForeignKey("sites.id", ondelete="CASCADE"), **_ID)
    person_id: Mapped[str] = field(ForeignKey("persons.id", ondelete="CASCADE"), index=True, **_ID)
    lead_id: Mapped[str | None] = field(String(32), nullable=True, **_ID)
    conversation_id: Mapped[str | None] = field(String(32), nullable=True, **_ID)
    field_name: Mapped[str] = field(String(32), **_OPS)
    value: Mapped[str | None] = _personal("user.contact")
    #: operator, widget, form, detected (confirmed suggestion), redaction.
    source: Mapped[str] = field(String(16), **_OPS)
    actor_id: Mapped[str | None] = field(String(32), nullable=True, **_ID)
    at: Mapped[datetime] = field(UTCDateTime, **_OPS)


class Lead(SiteScoped, Base):
    """An enquiry for the client. Delivered only with granted, unwithdrawn consent (R26)."""

    __tablename__ = "leads"
    __table_args__ = (Index("ix_leads_org_created", "organisation_id", "created_at"),)

    id: Mapped[str] = field(String(32), primary_key=True, **_ID)
    organisation_id: Mapped[str] = field(ForeignKey("organisations.id", ondelete="CASCADE"), **_ID)
    site_id: Mapped[str] = _site()
    person_id: Mapped[str] = field(ForeignKey("persons.id", ondelete="CASCADE"), index=True, **_ID)
    conversation_id: Mapped[str | None] = field(
        ForeignKey("conversations.id", ondelete="SET NULL"), nullable=True, index=True, **_ID
    )
    visit_id: Mapped[str | None] = field(String(32), nullable=True, **_ID)
    #: test_drive, valuation, finance, service, purchase, general.
    purpose: Mapped[str] = field(String(20), **_OPS)
    #: JSON of :class:`confide.delivery.snapshot.Vehicle` fields (personal: tied to a person).
    vehicle: Mapped[str | None] = _personal("user.preference.vehicle")
    trade_in: Mapped[str | None] = _personal("user.preference.vehicle")
    comments: Mapped[str | None] = _personal("user.content.enquiry")
    #: new → contacted → closed (the client's workflow in the portal).
    status: Mapped[str] = field(String(12), default="new", **_OPS)
    #: awaiting_consent, queued, delivered, failed, withdrawn.
    delivery_state: Mapped[str] = field(String(20), default="awaiting_consent", **_OPS)
    consent_id: Mapped[str | None] = field(String(32), nullable=True, **_ID)
    sale_share_opt_out: Mapped[bool] = field(Boolean, default=False, **_OPS)
    #: How many corrections were sent (ADF status="resend").
    revision: Mapped[int] = field(Integer, default=0, **_OPS)
    created_by: Mapped[str | None] = field(String(32), nullable=True, **_ID)
    created_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    updated_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    delivered_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)


class ConsentRequest(SiteScoped, Base):
    """A consent question put to the visitor in a chat (the exact text they were shown)."""

    __tablename__ = "consent_requests"

    id: Mapped[str] = field(String(32), primary_key=True, **_ID)
    organisation_id: Mapped[str] = _org()
    site_id: Mapped[str] = field(ForeignKey("sites.id", ondelete="CASCADE"), **_ID)
    conversation_id: Mapped[str] = field(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True, **_ID
    )
    purpose: Mapped[str] = field(String(32), **_OPS)
    text: Mapped[str] = field(Text, category="system.configuration", retention="contract")
    policy_url: Mapped[str | None] = field(
        Text, nullable=True, category="system.configuration", retention="contract"
    )
    policy_version: Mapped[str] = field(String(40), **_OPS)
    requested_by: Mapped[str | None] = field(String(32), nullable=True, **_ID)
    requested_at: Mapped[datetime] = field(UTCDateTime, **_OPS)


class ConsentRecord(SiteScoped, Base):
    """Immutable consent evidence (R25): the text, its hash, the answer, when, how, under which
    policy version. Withdrawal is a new record, never an update."""

    __tablename__ = "consent_records"

    id: Mapped[str] = field(String(32), primary_key=True, **_ID)
    organisation_id: Mapped[str] = _org()
    site_id: Mapped[str] = field(ForeignKey("sites.id", ondelete="CASCADE"), **_ID)
    conversation_id: Mapped[str | None] = field(
        ForeignKey("conversations.id", ondelete="CASCADE"), nullable=True, index=True, **_ID
    )
    request_id: Mapped[str | None] = field(String(32), nullable=True, **_ID)
    visitor_id: Mapped[str | None] = field(String(32), nullable=True, index=True, **_ID)
    person_id: Mapped[str | None] = field(String(32), nullable=True, index=True, **_ID)
    #: share_with_dealer (the hand-off of a lead to the client).
    purpose: Mapped[str] = field(String(32), **_OPS)
    #: chat (answered in the widget) or form (the offline enquiry form's checkbox).
    channel: Mapped[str] = field(String(12), **_OPS)
    text: Mapped[str] = field(Text, category="system.configuration", retention="contract")
    text_sha256: Mapped[str] = field(String(64), **_OPS)
    #: granted, denied, withdrawn.
    answer: Mapped[str] = field(String(12), **_OPS)
    policy_version: Mapped[str] = field(String(40), **_OPS)
    language: Mapped[str] = field(String(16), **_OPS)
    #: The transcript message that shows the answer (conversation id + seq).
    message_seq: Mapped[int | None] = field(Integer, nullable=True, **_OPS)
    ip_truncated: Mapped[str | None] = field(
        String(48),
        nullable=True,
        category="user.device.ip_address",
        retention="contract",
        info={"plaintext_reason": "truncated to /24 or /48: a network, not a device"},
    )
    user_agent: Mapped[str | None] = field(
        String(80),
        nullable=True,
        category="user.device.browser",
        retention="contract",
        info={"plaintext_reason": "reduced to browser family, major version and OS"},
    )
    answered_at: Mapped[datetime] = field(UTCDateTime, **_OPS)


class OnwardTransfer(SiteScoped, Base):
    """A lead forwarded to another organisation at the visitor's request (policy 3.3, R29)."""

    __tablename__ = "onward_transfers"

    id: Mapped[str] = field(String(32), primary_key=True, **_ID)
    organisation_id: Mapped[str] = _org()
    site_id: Mapped[str] = field(ForeignKey("sites.id", ondelete="CASCADE"), **_ID)
    lead_id: Mapped[str] = field(ForeignKey("leads.id", ondelete="CASCADE"), index=True, **_ID)
    recipient_name: Mapped[str] = field(Text, category="system.configuration", retention="contract")
    recipient_contact: Mapped[str] = field(
        Text, category="system.configuration", retention="contract"
    )
    #: The visitor's request, in their words or as the client recorded it.
    reason: Mapped[str] = field(PersonalText, category="user.content.request", retention="contract")
    requested_by: Mapped[str | None] = field(String(32), nullable=True, **_ID)
    at: Mapped[datetime] = field(UTCDateTime, **_OPS)
