"""Accepted chats nobody writes in any more are closed on a schedule (chat/idle.py).

On SQLite and PostgreSQL, on a clock the test moves: an active chat idle past the limit is
closed and both sides are told; one with a recent message, a waiting one, and one already
closed are left as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from confide.chat.idle import close_idle
from confide.chat.models import Conversation
from confide.clock import FrozenClock, frozen_at
from confide.realtime import broker as broker_module
from confide.storage.scope import Scope
from tests.leads.test_lead_rules import World, _chat, run

IDLE = timedelta(minutes=30)


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    with frozen_at(datetime.now(UTC)) as clock:
        yield clock


def test_idle_active_chats_are_closed_and_the_rest_kept(
    database_url: str, frozen: FrozenClock
) -> None:
    async def body(w: World) -> None:
        chat = w.ctx.chat
        _idle_actor, idle = await _chat(w)  # accepted, then nobody writes
        talking_actor, talking = await _chat(w)
        _waiting, waiting_view, _ = await chat.open_conversation(w.site, None, None)
        published: list[tuple[str, str]] = []
        real_publish = w.ctx.broker.publish

        async def spy(event: broker_module.Event) -> None:
            frame = event.frame
            if frame.get("type") == "conversation":
                published.append((frame["conversation"]["id"], frame["conversation"]["state"]))
            await real_publish(event)

        w.ctx.broker.publish = spy  # type: ignore[method-assign]
        frozen.advance(IDLE - timedelta(minutes=5))
        ref = await chat.authorise(talking_actor, talking)
        await chat.post(talking_actor, ref, "still-here", "Still there?")
        frozen.advance(timedelta(minutes=6))  # idle: 31 min; talking: 6 min

        assert await close_idle(w.ctx.db, IDLE, chat.publish_change) == 1
        states = {c: await _state(w, c) for c in (idle, talking, waiting_view.id)}
        assert states == {idle: "closed", talking: "active", waiting_view.id: "waiting"}
        assert (idle, "closed") in published
        assert await close_idle(w.ctx.db, IDLE, chat.publish_change) == 0  # nothing more to do

    run(database_url, body)


async def _state(w: World, conversation_id: str) -> str:
    async with w.ctx.db.session(Scope.system(), read_only=True) as s:
        return str(
            await s.scalar(select(Conversation.state).where(Conversation.id == conversation_id))
        )
