"""Nothing acked is lost: a killed server, resends and resyncs leave no gaps nor duplicates."""

from __future__ import annotations

import asyncio
import json

import pytest

from confide.testing import LiveServer
from tests.chat.helpers import agent, client_id, open_chat, visitor
from tests.conftest import ORIGIN_A, World


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    # This module replays 200-message bursts; the per-connection rate limit has its own tests.
    return {"CONFIDE_WIDGET_RATE": "1000", "CONFIDE_WIDGET_BURST": "1000"}


async def _send_all(peer, conv: str, ids: list[str], texts: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    for cid in ids:
        await peer.send(type="send", conversation=conv, client_id=cid, text=texts[cid])
        await asyncio.sleep(0.002)


async def _drain_acks(peer, acks: dict[str, int], timeout: float) -> None:  # type: ignore[no-untyped-def]
    """Collect acks until the socket dies or goes quiet."""
    try:
        while True:
            frame = json.loads(await asyncio.wait_for(peer.ws.recv(), timeout))
            if frame["type"] == "ack":
                acks[frame["client_id"]] = frame["seq"]
    except Exception:
        return


def test_server_killed_mid_stream_loses_and_duplicates_nothing(world: World) -> None:
    server: LiveServer = world.server
    texts = {}

    async def before_kill() -> tuple[str, str, dict[str, int], list[str]]:
        v, _ = await visitor(server, world.site_a, ORIGIN_A)
        conv, token = await open_chat(v)
        ids = [client_id() for _ in range(200)]
        for i, cid in enumerate(ids):
            texts[cid] = f"message {i}"
        sender = asyncio.create_task(_send_all(v, conv, ids, texts))
        acks: dict[str, int] = {}
        while len(acks) < 20:
            frame = await v.expect("ack")
            acks[frame["client_id"]] = frame["seq"]
        # Kill the server while acks are still coming back.
        killer = asyncio.get_running_loop().run_in_executor(None, lambda: server.stop(kill=True))
        await _drain_acks(v, acks, timeout=3)
        await killer
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        return conv, token, acks, ids

    conv, token, acked_before, ids = asyncio.run(before_kill())
    server.start()

    async def after_restart() -> None:
        v, welcome = await visitor(server, world.site_a, ORIGIN_A, token)
        assert welcome["conversation"]["id"] == conv  # the visitor resumes their conversation
        unacked = [cid for cid in ids if cid not in acked_before]
        # The client resends what it never saw acked (and, to be thorough, everything).
        for cid in ids:
            await v.send(type="send", conversation=conv, client_id=cid, text=texts[cid])
        acks: dict[str, int] = {}
        while len(acks) < len(ids):
            frame = await v.expect("ack", timeout=10)
            acks[frame["client_id"]] = frame["seq"]
        for cid, seq in acked_before.items():
            assert acks[cid] == seq, "an acknowledged message changed its position"
        await v.send(type="sync", conversation=conv, after=0)
        history = await v.expect("history")
        seqs = [m["seq"] for m in history["messages"]]
        assert seqs == list(range(1, len(ids) + 1)), "gap or duplicate in the transcript"
        assert sorted(m["client_id"] for m in history["messages"]) == sorted(ids)
        assert {m["client_id"]: m["text"] for m in history["messages"]} == texts
        assert len(unacked) + len(acked_before) == len(ids)
        await v.close()

    asyncio.run(after_restart())


def test_operator_resumes_after_reconnect_with_sync(world: World) -> None:
    async def scenario() -> None:
        op, _ = await agent(world.server, world.operator_a)
        v, _ = await visitor(world.server, world.site_a, ORIGIN_A)
        conv, _ = await open_chat(v)
        await op.send(type="accept", conversation=conv, ref="a")
        await op.expect("conversation", ref="a")
        await op.close()  # the operator's network drops
        for i in range(5):
            await v.send(
                type="send", conversation=conv, client_id=client_id(), text=f"while away {i}"
            )
            await v.expect("ack")
        op2, welcome = await agent(world.server, world.operator_a)
        mine = [c for c in welcome["conversations"] if c["id"] == conv]
        assert mine and mine[0]["state"] == "active" and mine[0]["unread"] == 5
        await op2.send(type="sync", conversation=conv, after=0)
        history = await op2.expect("history")
        assert [m["text"] for m in history["messages"]] == [f"while away {i}" for i in range(5)]
        await v.send(type="send", conversation=conv, client_id=client_id(), text="live again")
        live = await op2.expect("message", conversation=conv)
        assert live["seq"] == 6
        await op2.close()
        await v.close()

    asyncio.run(scenario())
