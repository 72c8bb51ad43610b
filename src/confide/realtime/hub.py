"""This node's sockets and their subscriptions; delivers broker events to local sockets.

Channels are opaque names built by ``confide.chat.recipients``; the hub knows nothing about
conversations. Each frame is encoded once per event, however many sockets receive it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

from confide.realtime.broker import Event
from confide.realtime.protocol import encode


class Socket(Protocol):
    id: str

    def push(self, text: str) -> None: ...


class Hub:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[Socket]] = defaultdict(set)
        self._channels: dict[str, set[str]] = defaultdict(set)  # socket id -> channels
        self._agents_per_site: dict[str, int] = defaultdict(int)

    def subscribe(self, socket: Socket, channel: str) -> None:
        self._subscribers[channel].add(socket)
        self._channels[socket.id].add(channel)

    def unsubscribe(self, socket: Socket, channel: str) -> None:
        subs = self._subscribers.get(channel)
        if subs is not None:
            subs.discard(socket)
            if not subs:
                del self._subscribers[channel]
        self._channels[socket.id].discard(channel)

    def drop(self, socket: Socket) -> None:
        for channel in self._channels.pop(socket.id, set()):
            subs = self._subscribers.get(channel)
            if subs is not None:
                subs.discard(socket)
                if not subs:
                    del self._subscribers[channel]

    def deliver(self, event: Event) -> None:
        if len(event.channels) == 1:
            targets: set[Socket] = self._subscribers.get(event.channels[0], set())
        else:
            targets = set()
            for channel in event.channels:
                targets.update(self._subscribers.get(channel, ()))
        if not targets:
            return
        text = encode(event.frame)
        for socket in tuple(targets):
            if socket.id != event.origin:
                socket.push(text)

    # Presence: whether an agent for a site is connected to this node.
    def agent_arrived(self, site_ids: frozenset[str]) -> list[str]:
        """Count an agent in; return the sites that just came online."""
        came_online = []
        for site_id in site_ids:
            self._agents_per_site[site_id] += 1
            if self._agents_per_site[site_id] == 1:
                came_online.append(site_id)
        return came_online

    def agent_left(self, site_ids: frozenset[str]) -> list[str]:
        """Count an agent out; return the sites that just went offline."""
        went_offline = []
        for site_id in site_ids:
            self._agents_per_site[site_id] -= 1
            if self._agents_per_site[site_id] <= 0:
                del self._agents_per_site[site_id]
                went_offline.append(site_id)
        return went_offline

    def site_online(self, site_id: str) -> bool:
        return self._agents_per_site.get(site_id, 0) > 0

    @property
    def socket_count(self) -> int:
        return len(self._channels)
