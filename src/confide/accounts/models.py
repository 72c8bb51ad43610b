"""Organisations (the clients, our data owners), users, site assignments and console sessions."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, synonym

from confide.storage.base import Base, UTCDateTime, field
from confide.storage.scope import OrgScoped


class Role(enum.StrEnum):
    ADMIN = "admin"  # the processor's staff: everything
    OPERATOR = "operator"  # the managed team: the sites assigned to them, across organisations
    CLIENT = "client"  # a client organisation's staff: their own organisation only


class Organisation(OrgScoped, Base):
    __tablename__ = "organisations"

    id: Mapped[str] = field(String(32), primary_key=True, category="system.id", retention="account")
    name: Mapped[str] = field(
        String(200),
        category="account.organisation.name",
        retention="account",
        info={"plaintext_reason": "a company's name, not a person's; shown on every chat"},
    )
    #: The client's contract (policy 5.3): personal data goes at the latest 3 months after its end.
    contract_start: Mapped[date | None] = field(
        Date, nullable=True, category="system.configuration", retention="account"
    )
    contract_end: Mapped[date | None] = field(
        Date, nullable=True, category="system.configuration", retention="account"
    )
    #: A shorter retention the client chose for personal data (months, at least 3; None: max).
    retention_months: Mapped[int | None] = field(
        Integer, nullable=True, category="system.configuration", retention="account"
    )
    #: Raw usage and behavioural events, once rolled up (days; default about 13 months).
    behaviour_retention_days: Mapped[int] = field(
        Integer, default=395, category="system.configuration", retention="account"
    )
    #: At contract end: "delete", or "return_then_delete" (an export bundle first).
    end_of_contract: Mapped[str] = field(
        String(20), default="delete", category="system.configuration", retention="account"
    )
    #: When the return bundle was produced, and when the organisation's data was removed.
    returned_at: Mapped[datetime | None] = field(
        UTCDateTime, nullable=True, category="system.operations", retention="account"
    )
    purged_at: Mapped[datetime | None] = field(
        UTCDateTime, nullable=True, category="system.operations", retention="account"
    )
    #: Privacy requests of this client are approved without a manual review once verified.
    privacy_auto_approve: Mapped[bool] = field(
        Boolean, default=False, category="system.configuration", retention="account"
    )
    created_at: Mapped[datetime] = field(
        UTCDateTime, category="system.operations", retention="account"
    )
    #: The organisation *is* the tenant: scoping filters on its own id.
    organisation_id = synonym("id")


class User(OrgScoped, Base):
    """A person who signs in. Client users belong to one organisation; our staff to none, so a
    restricted scope (a client's) never sees staff accounts or another client's users."""

    __tablename__ = "users"
    #: Our staff (no organisation) answer every client's chats: their names show in transcripts.
    __shared_when_no_organisation__ = True

    id: Mapped[str] = field(String(32), primary_key=True, category="system.id", retention="account")
    #: None for the processor's staff (admins, operators); set for client users.
    organisation_id: Mapped[str | None] = field(
        ForeignKey("organisations.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
        category="system.id",
        retention="account",
    )
    email: Mapped[str] = field(
        String(320),
        unique=True,
        category="account.contact.email",
        retention="account",
        info={"plaintext_reason": "sign-in finds the account by exact email (blind index: #5)"},
    )
    name: Mapped[str] = field(
        Text,
        category="account.name",
        retention="account",
        info={"plaintext_reason": "client staff's own display name, shown to colleagues"},
    )
    role: Mapped[str] = field(String(16), category="system.authorisation", retention="account")
    password_hash: Mapped[str] = field(
        String(200), category="system.authentication", retention="account"
    )
    failed_logins: Mapped[int] = field(
        Integer, default=0, category="system.authentication", retention="account"
    )
    locked_until: Mapped[datetime | None] = field(
        UTCDateTime, nullable=True, category="system.authentication", retention="account"
    )
    created_at: Mapped[datetime] = field(
        UTCDateTime, category="system.operations", retention="account"
    )


class SiteAssignment(Base):
    """An operator (or client user) assigned to answer a site's chats."""

    __tablename__ = "site_assignments"
    __table_args__ = (UniqueConstraint("user_id", "site_id"),)

    id: Mapped[int] = field(
        Integer, primary_key=True, autoincrement=True, category="system.id", retention="account"
    )
    user_id: Mapped[str] = field(
        ForeignKey("users.id", ondelete="CASCADE"), category="system.id", retention="account"
    )
    site_id: Mapped[str] = field(
        ForeignKey("sites.id", ondelete="CASCADE"),
        index=True,
        category="system.id",
        retention="account",
    )


class ConsoleSession(Base):
    """A signed-in console session. The cookie holds the secret; we keep only its hash."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = field(
        String(64), primary_key=True, category="system.authentication", retention="session"
    )
    user_id: Mapped[str] = field(
        ForeignKey("users.id", ondelete="CASCADE"),
        index=True,
        category="system.id",
        retention="session",
    )
    csrf_token: Mapped[str] = field(
        String(64), category="system.authentication", retention="session"
    )
    created_at: Mapped[datetime] = field(
        UTCDateTime, category="system.operations", retention="session"
    )
    expires_at: Mapped[datetime] = field(
        UTCDateTime, category="system.operations", retention="session"
    )
