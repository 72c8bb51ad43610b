"""How visitors rated their chats on a site: the report's "Chat ratings" figure.

A rating counts on the day it was given (``rated_at``), not the day the chat started: visitors
may rate a chat after it ended, and change their rating (the latest one counts). Days run
midnight to midnight UTC, like the rest of the report.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select

from confide.chat.models import Conversation
from confide.storage.engine import Database
from confide.storage.scope import Scope


async def rating_summary(
    db: Database, scope: Scope, site_id: str, start: date, end: date
) -> dict[str, Any]:
    """``{"count": n, "average": 4.5 | None}`` for ratings given from ``start`` to ``end``
    (both days included), read in the caller's scope."""
    since = datetime.combine(start, time.min, tzinfo=UTC)
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
    async with db.session(scope, read_only=True) as s:
        count, average = (
            await s.execute(
                select(func.count(Conversation.rating), func.avg(Conversation.rating)).where(
                    Conversation.site_id == site_id,
                    Conversation.rating.is_not(None),
                    Conversation.rated_at >= since,
                    Conversation.rated_at < until,
                )
            )
        ).one()
    return {"count": int(count), "average": float(average) if count else None}
