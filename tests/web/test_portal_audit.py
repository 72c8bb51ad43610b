"""The client portal's audit trail (issue 6): a client user sees their own organisation's trail,
with who, whose, which fields and why, and nothing of another organisation; operators may not."""

from __future__ import annotations

import asyncio

from confide.testing import LiveServer
from tests.chat.helpers import client_id, open_chat, visitor
from tests.conftest import ORIGIN_A, ORIGIN_B, World
from tests.leads.helpers import Console


async def _chat(server: LiveServer, key: str, origin: str, text: str) -> str:
    v, _ = await visitor(server, key, origin)
    try:
        conv, _token = await open_chat(v)
        await v.send(type="send", conversation=conv, client_id=client_id(), text=text, ref="m")
        await v.expect("ack", ref="m")
        return conv
    finally:
        await v.close()


def test_clients_see_their_own_trail_only(world: World, live_server: LiveServer) -> None:
    conv_a = asyncio.run(_chat(live_server, world.site_a, ORIGIN_A, "hello from A"))
    conv_b = asyncio.run(_chat(live_server, world.site_b, ORIGIN_B, "hello from B"))
    admin = Console(live_server, world.admin)
    client_a = Console(live_server, world.client_a)
    operator = Console(live_server, world.operator_a)
    try:
        assert admin.get(f"/api/conversations/{conv_a}/lead-panel").status_code == 200
        assert admin.get(f"/api/conversations/{conv_b}/lead-panel").status_code == 200
        page = client_a.get("/portal/audit")
        assert page.status_code == 200
        assert "Audit trail" in page.text
        assert conv_a in page.text and "Viewed contact details in a chat" in page.text
        assert conv_b not in page.text  # another organisation's entry is not theirs to see
        assert "Ada Admin" in page.text  # who looked
        assert operator.get("/portal/audit").status_code == 403
    finally:
        for c in (admin, client_a, operator):
            c.close()


def test_a_forged_non_ascii_csrf_token_is_refused_not_a_crash(
    world: World, live_server: LiveServer
) -> None:
    """Bad input gets a clear error: a token that is not ASCII is a 403, never a 500."""
    client = Console(live_server, world.client_a)
    try:
        client.http.headers["X-CSRF-Token"] = "forgé"
        api = client.post(
            "/api/destinations", json={"kind": "email", "target": "a@b.example", "region": "UK"}
        )
        assert api.status_code == 403
        form = client.post("/console/logout", data={"csrf_token": "forgé"})
        assert form.status_code in (303, 403) and form.status_code != 500
    finally:
        client.close()
