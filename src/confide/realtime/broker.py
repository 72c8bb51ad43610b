"""Fan-out between nodes. The database is the source of truth; a broker only carries events.

- :class:`InProcessBroker` (the default, one node) hands each event straight to the local hub.
- :class:`RedisBroker` publishes every event on one Redis channel that every node subscribes to;
  each node's hub then delivers to its own sockets. A node that misses events (a Redis blip) is
  not a correctness problem: clients see a gap in sequence numbers and ``sync`` from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

log = logging.getLogger(__name__)

REDIS_CHANNEL = "confide:events"


@dataclass(slots=True, frozen=True)
class Event:
    """A frame for every socket subscribed to any of ``channels`` (once each), except ``origin``."""

    channels: tuple[str, ...]
    frame: dict[str, Any]
    origin: str | None = None


Deliver = Callable[[Event], None]


class Broker(Protocol):
    async def start(self, deliver: Deliver) -> None: ...
    async def publish(self, event: Event) -> None: ...
    async def stop(self) -> None: ...


class InProcessBroker:
    def __init__(self) -> None:
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def publish(self, event: Event) -> None:
        if self._deliver is not None:
            self._deliver(event)

    async def stop(self) -> None:
        self._deliver = None


class RedisBroker:
    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._task: asyncio.Task[None] | None = None

    async def start(self, deliver: Deliver) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(REDIS_CHANNEL)
        self._task = asyncio.create_task(self._listen(pubsub, deliver))

    async def _listen(self, pubsub: Any, deliver: Deliver) -> None:
        async for item in pubsub.listen():
            if item.get("type") != "message":
                continue
            try:
                data = orjson.loads(item["data"])
                deliver(Event(tuple(data["c"]), data["f"], data.get("o")))
            except Exception:  # one bad event must not stop the fan-out
                log.exception("dropping an undecodable broker event")

    async def publish(self, event: Event) -> None:
        payload = orjson.dumps({"c": event.channels, "f": event.frame, "o": event.origin})
        await self._redis.publish(REDIS_CHANNEL, payload)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._redis.aclose()


def make_broker(url: str | None) -> Broker:
    return RedisBroker(url) if url else InProcessBroker()
