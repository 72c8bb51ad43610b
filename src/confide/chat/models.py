"""Visitors (per site), conversations and messages."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped

from confide.storage.base import Base, PersonalText, UTCDateTime, field
from confide.storage.scope import OrgScoped, SiteScoped


class Visitor(SiteScoped, Base):
    """A browser on ONE site. The same browser on another site is another, unrelated visitor."""

    __tablename__ = "visitors"

    id: Mapped[str] = field(
        String(32), primary_key=True, category="system.id", retention="contract"
    )
    organisation_id: Mapped[str] = field(
        ForeignKey("organisations.id", ondelete="CASCADE"),
        index=True,
        category="system.id",
        retention="contract",
    )
    site_id: Mapped[str] = field(
        ForeignKey("sites.id", ondelete="CASCADE"),
        index=True,
        category="system.id",
        retention="contract",
    )
    #: SHA-256 of the bearer token the widget holds for the session; never the token itself.
    token_hash: Mapped[str | None] = field(
        String(64),
        unique=True,
        nullable=True,
        category="user.device.token",
        retention="contract",
        info={"plaintext_reason": "SHA-256 of a random 256-bit token, looked up by exact match"},
    )
    #: A pseudonymous label shown to agents ("Visitor 4F2A"), derived from the random id.
    label: Mapped[str] = field(
        Text,
        category="user.pseudonym",
        retention="contract",
        info={"plaintext_reason": "a pseudonym derived from the random visitor id"},
    )
    #: The browser sent Global Privacy Control (R14): a person it becomes is opted out of sale.
    gpc: Mapped[bool] = field(
        Boolean, default=False, category="system.operations", retention="contract"
    )
    created_at: Mapped[datetime] = field(
        UTCDateTime, category="system.operations", retention="contract"
    )
    last_seen_at: Mapped[datetime] = field(
        UTCDateTime, category="system.operations", retention="contract"
    )


class Conversation(SiteScoped, Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_site_state", "site_id", "state"),)

    id: Mapped[str] = field(
        String(32), primary_key=True, category="system.id", retention="contract"
    )
    organisation_id: Mapped[str] = field(
        ForeignKey("organisations.id", ondelete="CASCADE"),
        index=True,
        category="system.id",
        retention="contract",
    )
    site_id: Mapped[str] = field(
        ForeignKey("sites.id", ondelete="CASCADE"),
        category="system.id",
        retention="contract",
    )
    visitor_id: Mapped[str] = field(
        ForeignKey("visitors.id", ondelete="CASCADE"),
        index=True,
        category="system.id",
        retention="contract",
    )
    #: "chat" (live) or "enquiry" (the offline form).
    source: Mapped[str] = field(String(16), category="system.operations", retention="contract")
    state: Mapped[str] = field(String(16), category="system.operations", retention="contract")
    operator_id: Mapped[str | None] = field(
        ForeignKey("users.id", ondelete="SET NULL"),
        nullable=True,
        index=True,
        category="system.id",
        retention="contract",
    )
    #: Name and contact the visitor typed into the offline form or gave as display name.
    visitor_name: Mapped[str | None] = field(
        PersonalText, nullable=True, category="user.name", retention="contract"
    )
    visitor_contact: Mapped[str | None] = field(
        PersonalText, nullable=True, category="user.contact", retention="contract"
    )
    #: The visit (usage and behavioural data) during which the chat started, when tracked.
    visit_id: Mapped[str | None] = field(
        String(32), nullable=True, category="system.id", retention="contract"
    )
    #: The person the visitor became by giving details (R23); attached again on a later chat (R24).
    person_id: Mapped[str | None] = field(
        ForeignKey("persons.id", ondelete="SET NULL"),
        nullable=True,
        index=True,
        category="system.id",
        retention="contract",
    )
    #: The visitor's rating of the chat, 1-5, and their comment (the policy's "customer reviews").
    rating: Mapped[int | None] = field(
        Integer,
        nullable=True,
        category="user.content.review",
        retention="contract",
        info={"plaintext_reason": "a number from 1 to 5"},
    )
    rating_comment: Mapped[str | None] = field(
        PersonalText, nullable=True, category="user.content.review", retention="contract"
    )
    rated_at: Mapped[datetime | None] = field(
        UTCDateTime, nullable=True, category="system.operations", retention="contract"
    )
    last_seq: Mapped[int] = field(
        Integer, default=0, category="system.operations", retention="contract"
    )
    visitor_seen_seq: Mapped[int] = field(
        Integer, default=0, category="system.operations", retention="contract"
    )
    agent_seen_seq: Mapped[int] = field(
        Integer, default=0, category="system.operations", retention="contract"
    )
    created_at: Mapped[datetime] = field(
        UTCDateTime, category="system.operations", retention="contract"
    )
    updated_at: Mapped[datetime] = field(
        UTCDateTime, category="system.operations", retention="contract"
    )
    closed_at: Mapped[datetime | None] = field(
        UTCDateTime, nullable=True, category="system.operations", retention="contract"
    )


class Message(SiteScoped, Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq"),
        # client_id first: the writer's duplicate check probes ``client_id IN (…)`` on this index.
        UniqueConstraint("client_id", "conversation_id"),
    )

    id: Mapped[int] = field(
        Integer, primary_key=True, autoincrement=True, category="system.id", retention="contract"
    )
    organisation_id: Mapped[str] = field(
        ForeignKey("organisations.id", ondelete="CASCADE"),
        category="system.id",
        retention="contract",
    )
    site_id: Mapped[str] = field(
        ForeignKey("sites.id", ondelete="CASCADE"), category="system.id", retention="contract"
    )
    conversation_id: Mapped[str] = field(
        ForeignKey("conversations.id", ondelete="CASCADE"),
        category="system.id",
        retention="contract",
    )
    seq: Mapped[int] = field(Integer, category="system.operations", retention="contract")
    client_id: Mapped[str] = field(String(64), category="system.id", retention="contract")
    #: "visitor", "agent" or "system".
    author_role: Mapped[str] = field(String(16), category="system.operations", retention="contract")
    author_id: Mapped[str | None] = field(
        String(32), nullable=True, category="system.id", retention="contract"
    )
    text: Mapped[str] = field(PersonalText, category="user.content.message", retention="contract")
    created_at: Mapped[datetime] = field(
        UTCDateTime, category="system.operations", retention="contract"
    )


class ChatIdentifier(OrgScoped, Base):
    """An email address or phone number a visitor typed in a chat, kept as a blind index only.

    Why: a rights request by that email or phone must reach the chat even when nobody captured
    the detail into a person (R23, R51); the index finds the visitor, never shows the value.
    Written with the message, in the same transaction (chat/identifiers.py).
    """

    __tablename__ = "chat_identifiers"
    __table_args__ = (Index("ix_chat_identifiers_org_index", "organisation_id", "blind_index"),)

    id: Mapped[int] = field(
        Integer, primary_key=True, autoincrement=True, category="system.id", retention="contract"
    )
    organisation_id: Mapped[str] = field(
        ForeignKey("organisations.id", ondelete="CASCADE"),
        category="system.id",
        retention="contract",
    )
    #: Deleted with the conversation, by SQL too (the retention purge, an organisation's end).
    conversation_id: Mapped[str] = field(
        ForeignKey("conversations.id", ondelete="CASCADE"),
        index=True,
        category="system.id",
        retention="contract",
    )
    visitor_id: Mapped[str] = field(
        ForeignKey("visitors.id", ondelete="CASCADE"),
        index=True,
        category="system.id",
        retention="contract",
    )
    #: The message it was typed in (its ``seq``); an offline enquiry's contact field counts as
    #: part of its one message (1).
    seq: Mapped[int] = field(Integer, category="system.operations", retention="contract")
    #: "email" or "phone".
    kind: Mapped[str] = field(String(8), category="system.operations", retention="contract")
    blind_index: Mapped[str] = field(
        String(64),
        category="user.contact",
        retention="contract",
        info={"plaintext_reason": "keyed HMAC (blind index), not the value"},
    )
    created_at: Mapped[datetime] = field(
        UTCDateTime, category="system.operations", retention="contract"
    )
