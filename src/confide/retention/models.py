"""What each purge run removed and why (the report an auditor asks for)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, String
from sqlalchemy.orm import Mapped

from confide.storage.base import Base, UTCDateTime, field

_OPS = {"category": "system.operations", "retention": "account"}


class RetentionRun(Base):
    __tablename__ = "retention_runs"

    id: Mapped[int] = field(
        Integer, primary_key=True, autoincrement=True, category="system.id", retention="account"
    )
    started_at: Mapped[datetime] = field(UTCDateTime, **_OPS)
    finished_at: Mapped[datetime | None] = field(UTCDateTime, nullable=True, **_OPS)
    #: The clock the run used ("now" for the rules), which tests move.
    as_of: Mapped[datetime] = field(UTCDateTime, **_OPS)
    dry_run: Mapped[bool] = field(Boolean, default=False, **_OPS)
    #: running, complete, interrupted.
    state: Mapped[str] = field(String(12), **_OPS)
    #: [{organisation, rule, store, rows, reason, held}] — ids and counts, no personal data.
    report: Mapped[list[dict[str, Any]]] = field(JSON, default=list, **_OPS)
