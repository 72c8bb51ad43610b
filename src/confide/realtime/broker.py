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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from confide.ids import new_id

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

    async def set_presence(self, site_id: str, online: bool) -> None:
        """Record whether this node has an agent for ``site_id``."""

    async def remote_online(self, site_id: str) -> bool:
        """Whether another node has an agent for ``site_id``."""


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

    async def set_presence(self, site_id: str, online: bool) -> None:
        return None  # one node: the hub's own counts are the whole truth

    async def remote_online(self, site_id: str) -> bool:
        return False


#: A node re-announces its presence this often; entries older than PRESENCE_STALE are ignored,
#: so a crashed node stops counting as "online" within a minute.
PRESENCE_HEARTBEAT_S = 20
PRESENCE_STALE_S = 60


class RedisBroker:
    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._node = new_id()
        self._online_sites: set[str] = set()

    async def start(self, deliver: Deliver) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(REDIS_CHANNEL)
        self._task = asyncio.create_task(self._listen(pubsub, deliver))
        self._heartbeat = asyncio.create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(PRESENCE_HEARTBEAT_S)
            for site_id in tuple(self._online_sites):
                with contextlib.suppress(Exception):
                    await self._announce(site_id)

    async def _announce(self, site_id: str) -> None:
        await self._redis.hset(f"confide:presence:{site_id}", self._node, str(time.time()))

    async def set_presence(self, site_id: str, online: bool) -> None:
        if online:
            self._online_sites.add(site_id)
            await self._announce(site_id)
        else:
            self._online_sites.discard(site_id)
            await self._redis.hdel(f"confide:presence:{site_id}", self._node)

    async def remote_online(self, site_id: str) -> bool:
        entries = await self._redis.hgetall(f"confide:presence:{site_id}")
        fresh = time.time() - PRESENCE_STALE_S
        return any(
            _text(node) != self._node and float(stamp) > fresh for node, stamp in entries.items()
        )

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
        for task in (self._task, self._heartbeat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for site_id in tuple(self._online_sites):
            with contextlib.suppress(Exception):
                await self.set_presence(site_id, False)
        await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def make_broker(url: str | None) -> Broker:
    return RedisBroker(url) if url else InProcessBroker()
