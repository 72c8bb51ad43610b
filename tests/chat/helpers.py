"""Small protocol clients for tests: a visitor and an agent speaking protocol v1."""

from __future__ import annotations

import itertools
import json
from typing import Any

from confide.testing import LiveServer, recv_until, session_cookie, ws_connect

_ids = itertools.count(1)


def client_id() -> str:
    return f"test-{next(_ids):06d}-msg"


class Peer:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def expect(self, kind: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        return await recv_until(self.ws, kind, timeout, **match)

    async def close(self) -> None:
        await self.ws.close()


async def visitor(
    server: LiveServer, site_key: str, origin: str, token: str | None = None
) -> tuple[Peer, dict[str, Any]]:
    ws = await ws_connect(f"{server.ws_url}/ws/widget?v=1&site={site_key}", origin=origin)
    peer = Peer(ws)
    hello: dict[str, Any] = {"type": "hello", "v": 1, "host": origin}
    if token:
        hello["token"] = token
    await peer.send(**hello)
    return peer, await peer.expect("welcome")


async def agent(server: LiveServer, account: Any) -> tuple[Peer, dict[str, Any]]:
    http = server.login(account)
    try:
        cookie = session_cookie(http)
    finally:
        http.close()
    ws = await ws_connect(f"{server.ws_url}/ws/console?v=1", origin=server.url, cookie=cookie)
    peer = Peer(ws)
    await peer.send(type="hello", v=1)
    return peer, await peer.expect("welcome")


async def open_chat(peer: Peer) -> tuple[str, str]:
    """Open a conversation; returns (conversation id, visitor token)."""
    await peer.send(type="open", ref="o1")
    frame = await peer.expect("conversation", ref="o1")
    return frame["conversation"]["id"], frame.get("token", "")
