"""What the retention purge removes besides subjects' data: the records of finished privacy
requests after 24 months (R54), and the contract-end return bundle once the organisation's
data is gone (R07: copies go too).

Request records are kept apart from the subject's data, identity only as a blind index, for
compliance; 24 months after a request ended they have served that purpose. Their events,
verification codes and erasure tasks go with them (foreign keys ``ON DELETE CASCADE``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, func, select

from confide.privacy.deadlines import add_months
from confide.privacy.lifecycle import TERMINAL
from confide.privacy.models import PrivacyRequest
from confide.storage.engine import Database
from confide.storage.scope import Scope

#: CCPA §7101: records of requests and how they were answered, kept at least 24 months.
REQUEST_RECORD_MONTHS = 24


def _ended_before(cutoff: datetime) -> list[object]:
    ended = func.coalesce(
        PrivacyRequest.completed_at, PrivacyRequest.reviewed_at, PrivacyRequest.received_at
    )
    return [PrivacyRequest.state.in_([str(s) for s in TERMINAL]), ended < cutoff]


async def expired_request_records(db: Database, now: datetime, *, dry_run: bool) -> int:
    """Delete (or, dry, count) the requests that ended more than 24 months ago."""
    cutoff = add_months(now, -REQUEST_RECORD_MONTHS)
    where = _ended_before(cutoff)
    async with db.session(Scope.system(), read_only=dry_run) as s:
        if dry_run:
            counted = await s.scalar(
                select(func.count()).select_from(PrivacyRequest).where(*where)  # type: ignore[arg-type]
            )
            return int(counted or 0)
        result = await s.execute(delete(PrivacyRequest).where(*where))  # type: ignore[arg-type]
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def return_bundles(exports_dir: Path, organisation_id: str) -> list[Path]:
    """The contract-end export bundles written for this organisation."""
    digest = hashlib.sha256(organisation_id.encode()).hexdigest()[:12]
    return sorted(exports_dir.glob(f"return-{digest}-*.json"))
