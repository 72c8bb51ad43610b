"""The audit log: append-only, each entry chained by hash to the one before (tamper-evident).

Entries hold ids, field names and reasons, never personal data, so they outlive the erasure of
the people they mention. The database refuses UPDATE and DELETE on the table (triggers, migration
0005); ``confide audit verify`` detects a changed, removed or reordered entry.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped

from confide.storage.base import Base, UTCDateTime, field
from confide.storage.scope import OrgScoped

_OPS = {"category": "system.operations", "retention": "account"}
_ID = {"category": "system.id", "retention": "account"}


class AuditEntry(OrgScoped, Base):
    __tablename__ = "audit_log"

    seq: Mapped[int] = field(Integer, primary_key=True, autoincrement=False, **_ID)
    at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    #: None for the system itself (the worker, the purge, a visitor's own action).
    actor_id: Mapped[str | None] = field(String(32), nullable=True, **_ID)
    actor_role: Mapped[str] = field(String(16), **_OPS)
    #: The client organisation whose data it concerns (None: platform-wide).
    organisation_id: Mapped[str | None] = field(String(32), nullable=True, index=True, **_ID)
    #: e.g. personal_data.view, lead.export, privacy_request.approved, config.destination.add.
    action: Mapped[str] = field(String(48), index=True, **_OPS)
    #: Whose data: person, lead, conversation, request, destination… and its id.
    subject_kind: Mapped[str | None] = field(String(20), nullable=True, **_OPS)
    subject_ref: Mapped[str | None] = field(String(64), nullable=True, **_ID)
    #: Which fields were seen or changed (names only).
    fields: Mapped[list[str]] = field(JSON, default=list, **_OPS)
    #: Why (the purpose of the access or the reason for the change).
    purpose: Mapped[str | None] = field(Text, nullable=True, **_OPS)
    prev_hash: Mapped[str] = field(String(64), **_OPS)
    hash: Mapped[str] = field(String(64), **_OPS)
