"""Live chat over the real WebSocket protocol, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.chat.helpers import agent, client_id, open_chat, visitor
from tests.conftest import ORIGIN_A, World


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_visitor_and_operator_chat_end_to_end(world: World) -> None:
    async def scenario() -> None:
        op, welcome = await agent(world.server, world.operator_a)
        assert welcome["role"] == "operator"
        assert [s["id"] for s in welcome["sites"]] == [world.site_a_id]
        v, vwelcome = await visitor(world.server, world.site_a, ORIGIN_A)
        assert vwelcome["site"] == {
            "name": "Alpha Cars Leeds",
            "greeting": vwelcome["site"]["greeting"],
            "online": True,
        }
        assert vwelcome["token"] is None  # no identifier before the chat is opened
        conv, token = await open_chat(v)
        assert token
        queued = await op.expect("conversation")
        assert queued["conversation"]["id"] == conv
        assert queued["conversation"]["state"] == "waiting"
        assert queued["conversation"]["organisation"]["name"] == "Alpha Cars"
        assert queued["conversation"]["site"]["name"] == "Alpha Cars Leeds"

        await v.send(
            type="send",
            conversation=conv,
            client_id=client_id(),
            text="Is the blue Golf still for sale?",
        )
        ack = await v.expect("ack")
        assert ack["seq"] == 1 and ack["duplicate"] is False
        preview = await op.expect("message", conversation=conv)
        assert preview["text"] == "Is the blue Golf still for sale?"

        await op.send(type="accept", conversation=conv, ref="a")
        accepted = await op.expect("conversation", ref="a")
        assert accepted["conversation"]["state"] == "active"
        seen_by_visitor = await v.expect("conversation")
        assert seen_by_visitor["conversation"]["operator"]["name"] == "Otto Operator"
        assert "organisation" not in seen_by_visitor["conversation"]  # visitors see only their chat

        await op.send(type="send", conversation=conv, client_id=client_id(), text="Yes it is!")
        await op.expect("ack")
        reply = await v.expect("message", conversation=conv)
        assert reply["seq"] == 2 and reply["author"] == {"role": "agent", "name": "Otto Operator"}

        await v.send(type="typing", conversation=conv, typing=True)
        typing = await op.expect("typing")
        assert typing == {"type": "typing", "conversation": conv, "role": "visitor", "typing": True}
        await v.send(type="seen", conversation=conv, seq=2)
        assert (await op.expect("seen"))["seq"] == 2

        await op.send(type="close", conversation=conv)
        closed = await v.expect("conversation")
        assert closed["conversation"]["state"] == "closed"
        await v.send(type="send", conversation=conv, client_id=client_id(), text="one more")
        assert (await v.expect("error"))["code"] == "invalid_state"
        await v.close()
        await op.close()

    run(scenario())


def test_resend_is_deduplicated_and_sequence_has_no_gaps(world: World) -> None:
    async def scenario() -> None:
        v, _ = await visitor(world.server, world.site_a, ORIGIN_A)
        conv, token = await open_chat(v)
        ids = [client_id() for _ in range(20)]
        for i, cid in enumerate(ids):
            await v.send(type="send", conversation=conv, client_id=cid, text=f"message {i}")
        acks = {}
        while len(acks) < 20:
            ack = await v.expect("ack")
            acks[ack["client_id"]] = ack["seq"]
        assert sorted(acks.values()) == list(range(1, 21))
        assert [acks[c] for c in ids] == list(range(1, 21))  # in the order sent
        await v.close()
        # Reconnect with the token: the conversation resumes; resending stores nothing.
        v2, welcome = await visitor(world.server, world.site_a, ORIGIN_A, token)
        assert welcome["conversation"]["id"] == conv
        for cid in ids:
            await v2.send(type="send", conversation=conv, client_id=cid, text="again")
            ack = await v2.expect("ack")
            assert ack["duplicate"] is True and ack["seq"] == acks[cid]
        await v2.send(type="sync", conversation=conv, after=15)
        history = await v2.expect("history")
        assert [m["seq"] for m in history["messages"]] == [16, 17, 18, 19, 20]
        assert history["last_seq"] == 20
        await v2.close()

    run(scenario())


def test_concurrent_senders_get_distinct_consecutive_seqs(world: World) -> None:
    async def scenario() -> None:
        op, _ = await agent(world.server, world.operator_a)
        v, _ = await visitor(world.server, world.site_a, ORIGIN_A)
        conv, _ = await open_chat(v)
        await op.send(type="accept", conversation=conv, ref="a")
        await op.expect("conversation", ref="a")

        async def burst(peer, n):  # type: ignore[no-untyped-def]
            for i in range(n):
                await peer.send(type="send", conversation=conv, client_id=client_id(), text=f"m{i}")

        await asyncio.gather(burst(v, 15), burst(op, 15))
        v_seqs = [(await v.expect("ack"))["seq"] for _ in range(15)]
        op_seqs = [(await op.expect("ack"))["seq"] for _ in range(15)]
        assert sorted(v_seqs + op_seqs) == list(range(1, 31))
        await v.close()
        await op.close()

    run(scenario())


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_frame"),
        ("[1,2]", "bad_frame"),
        ('{"type":"explode"}', "unknown_type"),
        (
            '{"type":"send","conversation":"xxxxxxxxxxxx","client_id":"short","text":"hi"}',
            "bad_frame",
        ),
        (
            '{"type":"send","conversation":"xxxxxxxxxxxx","client_id":"abcdefgh","text":"hi","extra":1}',
            "bad_frame",
        ),
        (
            '{"type":"send","conversation":"xxxxxxxxxxxx","client_id":"abcdefgh","text":"hi"}',
            "not_found",
        ),
        ('{"type":"accept","conversation":"xxxxxxxxxxxx"}', "unknown_type"),
    ],
)
def test_bad_frames_get_error_frames_and_connection_survives(
    world: World, frame: str, code: str
) -> None:
    async def scenario() -> None:
        v, _ = await visitor(world.server, world.site_a, ORIGIN_A)
        await v.ws.send(frame)
        assert (await v.expect("error"))["code"] == code
        await v.send(type="ping")
        await v.expect("pong")
        await v.close()

    run(scenario())


def test_limits_text_and_frame_size(world: World) -> None:
    async def scenario() -> None:
        v, _ = await visitor(world.server, world.site_a, ORIGIN_A)
        conv, _ = await open_chat(v)
        await v.send(type="send", conversation=conv, client_id=client_id(), text="x" * 4001)
        assert (await v.expect("error"))["code"] == "text_too_long"
        await v.send(type="send", conversation=conv, client_id=client_id(), text="   ")
        assert (await v.expect("error"))["code"] == "empty_text"
        await v.ws.send('{"type":"ping","pad":"' + "y" * 17000 + '"}')
        assert (await v.expect("error"))["code"] == "frame_too_large"
        await v.send(type="send", conversation=conv, client_id=client_id(), text="x" * 4000)
        assert (await v.expect("ack"))["seq"] == 1  # nothing refused was stored
        await v.close()

    run(scenario())


def test_rate_limit_refuses_with_error_frames_not_disconnect(world: World) -> None:
    async def scenario() -> None:
        v, _ = await visitor(world.server, world.site_a, ORIGIN_A)
        for _ in range(60):
            await v.send(type="ping")
        replies = [json.loads(await asyncio.wait_for(v.ws.recv(), 5)) for _ in range(60)]
        codes = [r.get("code", r["type"]) for r in replies]
        assert "rate_limited" in codes  # the burst past the limit is refused frame by frame
        assert "pong" in codes
        await asyncio.sleep(1.5)  # the bucket refills and the 1 s cool-down has passed
        await v.send(type="ping")
        await v.expect("pong")  # still connected, and served again once the bucket refills
        await v.close()

    run(scenario())


def test_frames_before_hello_are_refused(world: World) -> None:
    async def scenario() -> None:
        from confide.testing import ws_connect
        from tests.chat.helpers import Peer

        ws = await ws_connect(
            f"{world.server.ws_url}/ws/widget?v=1&site={world.site_a}", origin=ORIGIN_A
        )
        peer = Peer(ws)
        await peer.send(type="ping")
        assert (await peer.expect("error"))["code"] == "hello_required"
        await peer.send(type="hello", v=2)
        assert (await peer.expect("error"))["code"] == "unsupported_version"
        await peer.close()

    run(scenario())


def test_sender_gets_ack_as_its_copy_and_other_tabs_get_the_message(world: World) -> None:
    """The ack is the sending socket's copy; every other socket, the sender's own tabs
    included, gets the ``message`` (protocol: "send")."""

    async def scenario() -> None:
        op, _ = await agent(world.server, world.operator_a)
        op_tab2, _ = await agent(world.server, world.operator_a)
        v, _ = await visitor(world.server, world.site_a, ORIGIN_A)
        conv, token = await open_chat(v)
        await op.send(type="accept", conversation=conv, ref="a")
        await op.expect("conversation", ref="a")
        await op_tab2.send(type="join", conversation=conv, ref="j")
        await op_tab2.expect("history", ref="j")
        v_tab2, _ = await visitor(world.server, world.site_a, ORIGIN_A, token=token)
        await v_tab2.send(type="open", ref="o2")
        assert (await v_tab2.expect("conversation", ref="o2"))["conversation"]["id"] == conv

        mine = client_id()
        await op.send(type="send", conversation=conv, client_id=mine, text="Hello there")
        ack = await op.expect("ack", client_id=mine)
        assert ack["seq"] == 1
        for peer in (op_tab2, v, v_tab2):
            got = await peer.expect("message", client_id=mine)
            assert (got["seq"], got["text"]) == (1, "Hello there")
        with pytest.raises(TimeoutError):
            await op.expect("message", timeout=0.5, client_id=mine)
        for peer in (op, op_tab2, v, v_tab2):
            await peer.close()

    run(scenario())


def test_close_right_behind_a_send_acts_after_the_message_is_stored(world: World) -> None:
    """Acks come from the commit's callback while the socket reads on; a following frame
    still acts after the messages before it (no "closed" error for a message sent first)."""

    async def scenario() -> None:
        v, _ = await visitor(world.server, world.site_a, ORIGIN_A)
        conv, _ = await open_chat(v)
        ids = [client_id() for _ in range(3)]
        for cid in ids:
            await v.send(type="send", conversation=conv, client_id=cid, text=f"msg {cid}")
        await v.send(type="close", conversation=conv, ref="c")
        seqs = [(await v.expect("ack", client_id=cid))["seq"] for cid in ids]
        assert seqs == [1, 2, 3]
        closed = await v.expect("conversation", ref="c")
        assert closed["conversation"]["state"] == "closed"
        await v.close()

    run(scenario())


def test_history_carries_the_agents_seen_mark_read_with_its_messages(world: World) -> None:
    """A console counts unread from the history's own seen mark: a message that committed after
    the ``conversation`` frame but before the history read is still unread (console-store.js)."""

    async def scenario() -> None:
        op, _ = await agent(world.server, world.operator_a)
        v, _ = await visitor(world.server, world.site_a, ORIGIN_A)
        conv, _token = await open_chat(v)
        for n in (1, 2):
            await v.send(type="send", conversation=conv, client_id=client_id(), text=f"Q{n}")
            await v.expect("ack")
        await op.send(type="join", conversation=conv, ref="j1")
        first = await op.expect("history", ref="j1")
        assert (first["last_seq"], first["agent_seen_seq"]) == (2, 0)

        await op.send(type="seen", conversation=conv, seq=1)
        await v.expect("seen")
        await op.send(type="sync", conversation=conv, after=0, ref="s1")
        again = await op.expect("history", ref="s1")
        assert (again["last_seq"], again["agent_seen_seq"]) == (2, 1)

        await v.send(type="sync", conversation=conv, after=0, ref="s2")
        assert "agent_seen_seq" not in await v.expect("history", ref="s2")  # agents' business
        await v.close()
        await op.close()

    run(scenario())
