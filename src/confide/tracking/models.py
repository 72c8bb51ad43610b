"""Usage and behavioural data (policy 2.2): pseudonymous, per site, never joined across sites.

Nothing here is personal data in clear: a visitor is a random id scoped to one site (the
browser's cookie holds a random value; we keep only its hash), a visit holds reduced usage data
(country, browser family + major, OS, device class, referrer origin and channel), and page views
hold paths without query strings. Raw events have their own, shorter retention (``behaviour``).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped

from confide.storage.base import Base, UTCDateTime, field
from confide.storage.scope import SiteScoped

_ID = {"category": "system.id", "retention": "behaviour"}
_OPS = {"category": "system.operations", "retention": "behaviour"}


def _org() -> Mapped[str]:
    return field(ForeignKey("organisations.id", ondelete="CASCADE"), index=True, **_ID)  # type: ignore[no-any-return]


class SiteVisitor(SiteScoped, Base):
    """A browser on one site, recognised as returning by a random first-party cookie."""

    __tablename__ = "site_visitors"

    id: Mapped[str] = field(String(32), primary_key=True, **_ID)
    organisation_id: Mapped[str] = _org()
    site_id: Mapped[str] = field(ForeignKey("sites.id", ondelete="CASCADE"), **_ID)
    cookie_hash: Mapped[str] = field(
        String(64),
        unique=True,
        category="user.device.cookie_id",
        retention="behaviour",
        info={"plaintext_reason": "SHA-256 of a random cookie value, looked up by exact match"},
    )
    first_seen_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    last_seen_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    visit_count: Mapped[int] = field(Integer, default=0, **_OPS)


class Visit(SiteScoped, Base):
    __tablename__ = "visits"
    __table_args__ = (
        Index("ix_visits_site_last_seen", "site_id", "last_seen_at"),
        # The roll-up reads a day of visits by start time; without this it scans the table.
        Index("ix_visits_site_started", "site_id", "started_at"),
    )

    id: Mapped[str] = field(String(32), primary_key=True, **_ID)
    organisation_id: Mapped[str] = _org()
    site_id: Mapped[str] = field(ForeignKey("sites.id", ondelete="CASCADE"), **_ID)
    site_visitor_id: Mapped[str | None] = field(
        ForeignKey("site_visitors.id", ondelete="SET NULL"), nullable=True, index=True, **_ID
    )
    #: Set once the visitor gives personal details in a chat during this visit (R23).
    person_id: Mapped[str | None] = field(String(32), nullable=True, index=True, **_ID)
    started_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    last_seen_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    pageviews: Mapped[int] = field(Integer, default=0, **_OPS)
    #: The first event's time on the visitor's clock: visit length is measured on that clock.
    first_ts: Mapped[datetime] = field(UTCDateTime, **_OPS)
    #: Visit length so far (last beacon - start), kept so reports need no date arithmetic.
    seconds: Mapped[int] = field(Integer, default=0, **_OPS)
    is_returning: Mapped[bool] = field(Boolean, default=False, **_OPS)
    country: Mapped[str | None] = field(
        String(2),
        nullable=True,
        category="user.location.country",
        retention="behaviour",
        info={"plaintext_reason": "a country code, derived from a truncated address"},
    )
    region: Mapped[str | None] = field(
        String(80),
        nullable=True,
        category="user.location.region",
        retention="behaviour",
        info={"plaintext_reason": "coarse location, only with a city-level database configured"},
    )
    city: Mapped[str | None] = field(
        String(80),
        nullable=True,
        category="user.location.city",
        retention="behaviour",
        info={"plaintext_reason": "coarse location, only with a city-level database configured"},
    )
    browser: Mapped[str | None] = field(
        String(40), nullable=True, category="system.device.browser", retention="behaviour"
    )
    browser_major: Mapped[str | None] = field(
        String(10), nullable=True, category="system.device.browser", retention="behaviour"
    )
    os: Mapped[str | None] = field(
        String(40), nullable=True, category="system.device.os", retention="behaviour"
    )
    device: Mapped[str | None] = field(
        String(10), nullable=True, category="system.device.class", retention="behaviour"
    )
    referrer: Mapped[str | None] = field(
        String(200), nullable=True, category="system.behaviour.referrer", retention="behaviour"
    )
    channel: Mapped[str] = field(
        String(12), category="system.behaviour.channel", retention="behaviour"
    )
    campaign: Mapped[dict[str, str]] = field(
        JSON, category="system.behaviour.campaign", retention="behaviour"
    )
    conversation_id: Mapped[str | None] = field(String(32), nullable=True, index=True, **_ID)
    #: The page the visitor is on now, kept on the visit so the live list needs no join.
    last_path: Mapped[str | None] = field(
        String(512), nullable=True, category="system.behaviour.page", retention="behaviour"
    )
    last_title: Mapped[str | None] = field(
        String(200), nullable=True, category="system.behaviour.page", retention="behaviour"
    )


class PageView(SiteScoped, Base):
    __tablename__ = "page_views"
    __table_args__ = (
        UniqueConstraint("visit_id", "seq"),
        Index("ix_page_views_site_at", "site_id", "at"),
    )

    id: Mapped[int] = field(Integer, primary_key=True, autoincrement=True, **_ID)
    organisation_id: Mapped[str] = field(ForeignKey("organisations.id", ondelete="CASCADE"), **_ID)
    site_id: Mapped[str] = field(ForeignKey("sites.id", ondelete="CASCADE"), **_ID)
    visit_id: Mapped[str] = field(ForeignKey("visits.id", ondelete="CASCADE"), **_ID)
    seq: Mapped[int] = field(Integer, **_OPS)
    path: Mapped[str] = field(String(512), category="system.behaviour.page", retention="behaviour")
    title: Mapped[str | None] = field(
        String(200), nullable=True, category="system.behaviour.page", retention="behaviour"
    )
    at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    seconds: Mapped[int] = field(Integer, default=0, **_OPS)


class OptOut(SiteScoped, Base):
    """A Global Privacy Control signal honoured as an opt-out of sale/sharing (CCPA §7025)."""

    __tablename__ = "opt_outs"

    id: Mapped[int] = field(Integer, primary_key=True, autoincrement=True, **_ID)
    organisation_id: Mapped[str] = _org()
    site_id: Mapped[str] = field(ForeignKey("sites.id", ondelete="CASCADE"), **_ID)
    method: Mapped[str] = field(String(16), **_OPS)
    received_at: Mapped[datetime] = field(UTCDateTime, **_OPS)


class DailyStat(SiteScoped, Base):
    """Rolled-up counts per site, day and dimension value: what reports read (fast on big data)."""

    __tablename__ = "daily_stats"
    __table_args__ = (UniqueConstraint("site_id", "day", "dimension", "key"),)

    id: Mapped[int] = field(Integer, primary_key=True, autoincrement=True, **_ID)
    organisation_id: Mapped[str] = _org()
    site_id: Mapped[str] = field(ForeignKey("sites.id", ondelete="CASCADE"), **_ID)
    day: Mapped[date] = field(Date, **_OPS)
    dimension: Mapped[str] = field(String(16), **_OPS)
    key: Mapped[str] = field(
        String(512), category="system.behaviour.aggregate", retention="operational"
    )
    visits: Mapped[int] = field(Integer, default=0, **_OPS)
    visitors: Mapped[int] = field(Integer, default=0, **_OPS)
    pageviews: Mapped[int] = field(Integer, default=0, **_OPS)
    seconds: Mapped[int] = field(Integer, default=0, **_OPS)
    chats: Mapped[int] = field(Integer, default=0, **_OPS)


class Invitation(SiteScoped, Base):
    """An operator's proactive invitation to a browsing visitor, handed over on the next beacon."""

    __tablename__ = "invitations"
    __table_args__ = (Index("ix_invitations_visit", "visit_id", "delivered_at"),)

    id: Mapped[int] = field(Integer, primary_key=True, autoincrement=True, **_ID)
    organisation_id: Mapped[str] = field(ForeignKey("organisations.id", ondelete="CASCADE"), **_ID)
    site_id: Mapped[str] = field(ForeignKey("sites.id", ondelete="CASCADE"), **_ID)
    visit_id: Mapped[str] = field(ForeignKey("visits.id", ondelete="CASCADE"), **_ID)
    text: Mapped[str] = field(String(500), category="system.invitation", retention="behaviour")
    from_name: Mapped[str] = field(String(100), category="system.operations", retention="behaviour")
    created_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    delivered_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)


class TrackingSalt(Base):
    """The secret of one rotation period for cookieless visitor keys (R21).

    Not tenant data: one salt per rotation scope and period serves every site (the site id is
    part of what is hashed, so keys still differ per site). A past period's salt is deleted as
    soon as its period ends (``tracking/salts.py``): then nobody can recompute that period's
    keys from an address and a browser.
    """

    __tablename__ = "tracking_salts"
    __table_args__ = (UniqueConstraint("rotation", "period_start"),)

    id: Mapped[int] = field(Integer, primary_key=True, autoincrement=True, **_ID)
    rotation: Mapped[str] = field(String(8), category="system.configuration", retention="session")
    period_start: Mapped[date] = field(Date, category="system.operations", retention="session")
    #: 32 random bytes, hex.
    salt: Mapped[str] = field(String(64), category="system.security.salt", retention="session")
    created_at: Mapped[datetime] = field(
        UTCDateTime, category="system.operations", retention="session"
    )


class AnonymousCount(SiteScoped, Base):
    """Page views counted under the UK statistics exception (R12): per site, day and path,
    nothing else. No visit, visitor, address or browser is behind a count."""

    __tablename__ = "anonymous_counts"
    __table_args__ = (UniqueConstraint("site_id", "day", "path"),)

    id: Mapped[int] = field(Integer, primary_key=True, autoincrement=True, **_ID)
    organisation_id: Mapped[str] = _org()
    site_id: Mapped[str] = field(ForeignKey("sites.id", ondelete="CASCADE"), **_ID)
    day: Mapped[date] = field(Date, **_OPS)
    path: Mapped[str] = field(
        String(512), category="system.behaviour.aggregate", retention="operational"
    )
    pageviews: Mapped[int] = field(Integer, default=0, **_OPS)
