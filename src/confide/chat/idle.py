"""Closing chats nobody is writing in any more.

Why: a visitor who closes the tab mid-chat never says goodbye, and without this the chat stays
"active" in the operator's list for ever, hiding the chats that need an answer. As in other
live-chat products, an accepted chat with no message (and no change of state) for
``chat_idle_close_minutes`` is closed, on every node's schedule. The close is one conditional
``UPDATE`` (still active, still idle), so a message that arrives meanwhile keeps the chat open and
two nodes cannot both close it. Waiting chats are left alone: a visitor who asked is still owed
an answer. Both sides are told as for any close; the transcript and any lead are untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import select, update

from confide.chat import queries
from confide.chat.lifecycle import State
from confide.chat.models import Conversation
from confide.chat.views import ConversationView
from confide.clock import utcnow
from confide.storage.engine import Database
from confide.storage.scope import Scope

log = logging.getLogger(__name__)

#: Conversations closed per run at most (the next run takes the rest).
BATCH = 200

Publish = Callable[[ConversationView], Awaitable[None]]


async def close_idle(db: Database, idle: timedelta, publish: Publish) -> int:
    """Close the active chats idle for ``idle``; ``publish`` tells both sides (the chat
    service's). Returns how many were closed."""
    cutoff = utcnow() - idle
    async with db.session(Scope.system(), read_only=True) as s:
        ids = list(
            await s.scalars(
                select(Conversation.id)
                .where(Conversation.state == State.ACTIVE.value, Conversation.updated_at < cutoff)
                .limit(BATCH)
            )
        )
    closed = 0
    for conversation_id in ids:
        now = utcnow()
        async with db.session(Scope.system()) as s:
            result = await s.execute(
                update(Conversation)
                .where(
                    Conversation.id == conversation_id,
                    Conversation.state == State.ACTIVE.value,
                    Conversation.updated_at < cutoff,
                )
                .values(state=State.CLOSED.value, closed_at=now, updated_at=now)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                continue  # a message or a close came first
            view = await queries.conversation_view(s, conversation_id)
        if view is not None:
            await publish(view)
            closed += 1
    return closed


class IdleChatCloser:
    """The schedule: every ``interval_s``, close what has been idle for ``idle`` (0: never)."""

    def __init__(
        self, db: Database, publish: Publish, *, idle: timedelta, interval_s: float = 60.0
    ) -> None:
        self._db = db
        self._publish = publish
        self.idle = idle
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.idle > timedelta(0) and self.interval_s > 0:
            self._task = asyncio.create_task(self._run(), name="confide-idle-chats")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self) -> int:
        return await close_idle(self._db, self.idle, self._publish)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                closed = await self.run_once()
                if closed:
                    log.info("closed %d idle chats", closed)
            except Exception:  # retried on the next tick
                log.exception("closing idle chats failed")
