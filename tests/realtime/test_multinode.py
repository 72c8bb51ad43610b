"""Two server processes on one PostgreSQL database, fanned out through Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from confide.storage.migrate import upgrade
from confide.testing import LiveServer, postgres_database
from tests.chat.helpers import agent, client_id, open_chat, visitor

pytestmark = pytest.mark.pg
ORIGIN = "https://multi.example"
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    with postgres_database() as url:
        upgrade(url)
        env = {"CONFIDE_BROKER_URL": REDIS}
        one = LiveServer(url, Path(tmp_path_factory.mktemp("node1")), env=env).start()
        two = LiveServer(url, Path(tmp_path_factory.mktemp("node2")), env=env).start()
        try:
            yield one, two
        finally:
            one.stop()
            two.stop()


def test_visitor_on_one_node_chats_with_operator_on_another(
    nodes: tuple[LiveServer, LiveServer],
) -> None:
    one, two = nodes
    org = one.create_org("Multi Node Motors")
    key, site_id = one.create_site(org, "Multi", [ORIGIN])
    operator = one.create_user("operator", sites=[site_id], name="Nora Node")

    async def scenario() -> None:
        op, _ = await agent(two, operator)
        v, welcome = await visitor(one, key, ORIGIN)
        assert welcome["site"]["online"] is True  # presence is shared through Redis
        conv, _ = await open_chat(v)
        queued = await op.expect("conversation")
        assert queued["conversation"]["id"] == conv
        await op.send(type="accept", conversation=conv, ref="a")
        await op.expect("conversation", ref="a")
        for i in range(10):
            await v.send(type="send", conversation=conv, client_id=client_id(), text=f"hello {i}")
        seqs = [(await op.expect("message", conversation=conv))["seq"] for _ in range(10)]
        assert seqs == list(range(1, 11))
        await op.send(
            type="send", conversation=conv, client_id=client_id(), text="hi from node two"
        )
        reply = await v.expect("message", conversation=conv, seq=11)
        assert reply["text"] == "hi from node two"
        await op.close()
        # The one that matters: a `presence: true` from the operator's arrival may come first.
        presence = await v.expect("presence", online=False)
        assert presence["online"] is False
        await v.close()

    asyncio.run(scenario())
