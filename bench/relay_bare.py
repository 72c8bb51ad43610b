"""Bare Starlette WebSocket relay: the Python ceiling that Confide is measured against.

In-memory rooms, no persistence, no authentication, no origin checks, no rate limits and no
validation.  It speaks just enough of protocol v1 (docs/protocol.md) for ``bench/chat_load.py`` and
``bench/idle_connections.py`` to drive it exactly as they drive ``confide serve``:

* ``/ws/widget``  -- ``hello`` -> ``welcome``; ``open`` -> ``conversation`` (a new room with the
  visitor in it); ``send`` -> ``ack`` to the sender, then ``message`` to every socket in the room
  (the visitor included, as Confide does); ``ping`` -> ``pong``.
* ``/ws/console`` -- ``hello`` -> ``welcome``; ``accept`` / ``join`` subscribe the socket to the
  room and reply ``conversation`` / ``history``; ``send`` as above; ``leave``; ``ping``.

This mirrors baseline peer (a) of /work/shared/bench/baselines.md (Starlette on uvicorn, one
worker, uvloop + httptools; uvicorn's default WebSocket implementation, which in
uvicorn 0.54 is ``websockets-sansio`` -- the one ``confide serve`` gets; ``--ws websockets``
selects the legacy one peer (a) used).  Frames are JSON
(stdlib ``json``, as peer (a)); ``--orjson`` switches to orjson.

Run:  .venv/bin/python bench/relay_bare.py --port 8765
"""

from __future__ import annotations

import argparse
import itertools
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

_loads: Any = json.loads


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Room:
    __slots__ = ("id", "members", "seq", "state")

    def __init__(self, room_id: str) -> None:
        self.id = room_id
        self.members: set[WebSocket] = set()
        self.seq = 0
        self.state = "waiting"

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "last_seq": self.seq, "operator": None}


ROOMS: dict[str, Room] = {}
_counter = itertools.count(1)
#: --sender-task: give every socket an outbox + its own sender task, as Confide's Connection
#: does, to measure what that design costs (memory per idle socket, CPU per frame).
SENDER_TASK = False


class Outbox:
    """Confide-style per-socket outbox: push() appends; a sender task writes."""

    __slots__ = ("_task", "_wake", "box", "ws")

    def __init__(self, ws: WebSocket) -> None:
        import asyncio
        from collections import deque

        self.ws = ws
        self.box: deque[str] = deque()
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def send_text(self, text: str) -> None:
        self.box.append(text)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.box:
                await self.ws.send_text(self.box.popleft())

    def stop(self) -> None:
        self._task.cancel()


def _wrap(ws: WebSocket) -> Any:
    return Outbox(ws) if SENDER_TASK else ws


async def _broadcast(room: Room, data: str) -> None:
    for member in list(room.members):
        try:
            await member.send_text(data)
        except Exception:  # the member went away; its own handler cleans up
            room.members.discard(member)


async def _send(ws: WebSocket, frame: dict[str, Any], role: str) -> None:
    room = ROOMS.get(frame.get("conversation", ""))
    if room is None:
        await ws.send_text(
            _dumps({"type": "error", "code": "not_found", "message": "no such room"})
        )
        return
    room.seq += 1
    at = _now()
    ack: dict[str, Any] = {
        "type": "ack",
        "conversation": room.id,
        "client_id": frame.get("client_id"),
        "seq": room.seq,
        "at": at,
        "duplicate": False,
    }
    if "ref" in frame:
        ack["ref"] = frame["ref"]
    await ws.send_text(_dumps(ack))
    message = {
        "type": "message",
        "conversation": room.id,
        "seq": room.seq,
        "client_id": frame.get("client_id"),
        "author": {"role": role, "name": None},
        "text": frame.get("text", ""),
        "at": at,
    }
    await _broadcast(room, _dumps(message))


async def widget_endpoint(raw_ws: WebSocket) -> None:
    await raw_ws.accept()
    ws = _wrap(raw_ws)
    mine: list[Room] = []
    try:
        while True:
            frame = _loads(await raw_ws.receive_text())
            kind = frame.get("type")
            if kind == "send":
                await _send(ws, frame, "visitor")
            elif kind == "hello":
                await ws.send_text(
                    _dumps(
                        {
                            "type": "welcome",
                            "v": 1,
                            "role": "visitor",
                            "token": secrets.token_urlsafe(16),
                            "site": {"name": "Bare", "greeting": "", "online": True},
                            "conversation": None,
                        }
                    )
                )
            elif kind == "open":
                room = Room(f"r{next(_counter):021d}")
                room.members.add(ws)
                ROOMS[room.id] = room
                mine.append(room)
                await ws.send_text(_dumps({"type": "conversation", "conversation": room.view()}))
            elif kind == "ping":
                await ws.send_text(_dumps({"type": "pong", "at": _now()}))
    except WebSocketDisconnect:
        pass
    finally:
        if ws is not raw_ws:
            ws.stop()
        for room in mine:
            room.members.discard(ws)
            if not room.members:
                ROOMS.pop(room.id, None)


async def console_endpoint(raw_ws: WebSocket) -> None:
    await raw_ws.accept()
    ws = _wrap(raw_ws)
    joined: list[Room] = []
    try:
        while True:
            frame = _loads(await raw_ws.receive_text())
            kind = frame.get("type")
            if kind == "send":
                await _send(ws, frame, "agent")
            elif kind in ("accept", "join"):
                room = ROOMS.get(frame.get("conversation", ""))
                if room is None:
                    reply: dict[str, Any] = {"type": "error", "code": "not_found", "message": "?"}
                else:
                    room.members.add(ws)
                    joined.append(room)
                    if kind == "accept":
                        room.state = "active"
                        reply = {"type": "conversation", "conversation": room.view()}
                    else:
                        reply = {
                            "type": "history",
                            "conversation": room.id,
                            "messages": [],
                            "last_seq": room.seq,
                        }
                if "ref" in frame:
                    reply["ref"] = frame["ref"]
                await ws.send_text(_dumps(reply))
            elif kind == "leave":
                room = ROOMS.get(frame.get("conversation", ""))
                if room is not None:
                    room.members.discard(ws)
            elif kind == "hello":
                await ws.send_text(
                    _dumps(
                        {
                            "type": "welcome",
                            "v": 1,
                            "role": "operator",
                            "user": {"id": "u1", "name": "Op", "role": "operator"},
                            "sites": [],
                            "conversations": [],
                        }
                    )
                )
            elif kind == "ping":
                await ws.send_text(_dumps({"type": "pong", "at": _now()}))
    except WebSocketDisconnect:
        pass
    finally:
        if ws is not raw_ws:
            ws.stop()
        for room in joined:
            room.members.discard(ws)


app = Starlette(
    routes=[
        WebSocketRoute("/ws/widget", widget_endpoint),
        WebSocketRoute("/ws/console", console_endpoint),
    ]
)


def main() -> None:
    global _loads, _dumps, SENDER_TASK
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument(
        "--ws",
        default="auto",
        help="uvicorn ws implementation (auto = websockets-sansio, what confide gets)",
    )
    p.add_argument("--orjson", action="store_true", help="use orjson instead of stdlib json")
    p.add_argument(
        "--sender-task",
        action="store_true",
        help="per-socket outbox + sender task, like Confide's Connection",
    )
    a = p.parse_args()
    SENDER_TASK = a.sender_task
    if a.orjson:
        import orjson

        _loads = orjson.loads

        def _od(obj: Any) -> str:
            return orjson.dumps(obj).decode()

        _dumps = _od  # type: ignore[assignment]

    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    import uvicorn

    uvicorn.run(
        app,
        host=a.host,
        port=a.port,
        loop="uvloop",
        http="httptools",
        ws=a.ws,
        ws_per_message_deflate=False,  # as `confide serve`
        ws_max_size=64 * 1024,
        lifespan="off",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
