"""The HTTP surface: probes, OpenAPI, security headers, the widget's pages and the enquiry form.

Runs against the shared ``live_server`` (SQLite and PostgreSQL); the /readyz-503 test starts its
own server on a PostgreSQL database that it drops while the server runs.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from confide.storage.migrate import upgrade
from confide.testing import LiveServer, postgres_database
from tests.chat.helpers import agent
from tests.conftest import ORIGIN_A, ORIGIN_B, World


@pytest.fixture(scope="module")
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        yield client


def _csp(response: httpx.Response) -> dict[str, str]:
    """The Content-Security-Policy as {directive: value}."""
    policy = response.headers.get("content-security-policy", "")
    out: dict[str, str] = {}
    for part in policy.split(";"):
        name, _, value = part.strip().partition(" ")
        if name:
            out[name.lower()] = value.strip()
    return out


def _enquiry(world: World, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "site": world.site_a,
        "host": ORIGIN_A,
        "name": "Petra Prospect",
        "contact": "petra@example.net",
        "message": "Is the red Fiesta still available?",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


# --- probes ---------------------------------------------------------------------------------


def test_healthz(http: httpx.Client) -> None:
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz(http: httpx.Client) -> None:
    response = http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.pg
def test_readyz_is_503_when_the_database_goes_away(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Drop the server's PostgreSQL database under it: /readyz turns 503, /healthz stays 200."""
    import asyncpg  # type: ignore[import-untyped]

    from confide.testing import PG_ADMIN_URL

    with postgres_database() as url:
        upgrade(url)
        server = LiveServer(url, tmp_path_factory.mktemp("readyz")).start()
        try:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                assert client.get("/readyz").status_code == 200
                name = url.rsplit("/", 1)[1]

                async def drop() -> None:
                    conn = await asyncpg.connect(
                        PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
                    )
                    try:
                        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                    finally:
                        await conn.close()

                asyncio.run(drop())
                deadline = time.monotonic() + 10
                response = client.get("/readyz")
                while response.status_code != 503 and time.monotonic() < deadline:
                    time.sleep(0.1)
                    response = client.get("/readyz")
                assert response.status_code == 503
                assert response.json() == {"status": "unavailable", "database": "unreachable"}
                assert client.get("/healthz").status_code == 200  # the process itself is fine
        finally:
            server.stop()


# --- OpenAPI ----------------------------------------------------------------------------------


def test_api_docs_list_every_operation_without_scripts(http: httpx.Client) -> None:
    """/api/docs works offline and under our CSP: rendered on the server from the spec."""
    page = http.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text
    spec = http.get("/openapi.json").json()
    operations = sum(
        1
        for item in spec["paths"].values()
        for m in item
        if m in ("get", "post", "delete", "put", "patch")
    )
    assert page.text.count('class="ad-op"') == operations
    assert '<span class="ad-path">/api/conversations/{conversation_id}</span>' in page.text


def test_openapi_is_valid_and_lists_the_api(http: httpx.Client) -> None:
    response = http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "Confide"
    paths = spec["paths"]
    for path in (
        "/api/me",
        "/api/sites",
        "/api/sites/{site_id}",
        "/api/organisations",
        "/api/conversations",
        "/api/conversations/{conversation_id}",
        "/api/conversations/{conversation_id}/close",
        "/api/conversations/{conversation_id}/accept",
        "/api/widget/enquiry",
        "/api/widget/config",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
    assert "post" in paths["/api/widget/enquiry"]
    # Pages are not API: the console, the widget frame and the demo are kept out of the schema.
    assert not [p for p in paths if p.startswith(("/console", "/widget", "/demo", "/ws"))]
    # Every $ref resolves inside the document.
    schemas = spec.get("components", {}).get("schemas", {})

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for item in node:
                yield from refs(item)

    for ref in refs(spec):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref


# --- security headers -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/console/login", "/healthz", "/api/widget/config?site=nope"])
def test_security_headers_everywhere(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert response.headers["x-frame-options"] == "DENY"
    csp = _csp(response)
    assert csp["frame-ancestors"] == "'none'"
    assert csp["default-src"] == "'self'"
    assert csp["base-uri"] == "'none'"


def test_console_pages_are_not_frameable(world: World) -> None:
    client = world.server.login(world.operator_a)
    try:
        for path in ("/console", "/console/history", "/console/login"):
            response = client.get(path, follow_redirects=False)
            assert response.headers["x-frame-options"] == "DENY", path
            assert _csp(response)["frame-ancestors"] == "'none'", path
            assert response.headers["x-content-type-options"] == "nosniff", path
        page = client.get("/console")
        assert page.status_code == 200
        nonce = _csp(page)["script-src"].split("'nonce-")[1].rstrip("'")
        # Scripts are same-origin files; any inline one must carry this response's nonce.
        for tag in re.findall(r"<script\b[^>]*>", page.text):
            assert "src=" in tag or f'nonce="{nonce}"' in tag, tag
    finally:
        client.close()


def test_csp_nonce_is_fresh_per_response(http: httpx.Client) -> None:
    one = _csp(http.get("/console/login"))["script-src"]
    two = _csp(http.get("/console/login"))["script-src"]
    assert "'nonce-" in one and one != two


def test_widget_frame_may_be_framed_only_by_the_sites_origins(
    http: httpx.Client, world: World
) -> None:
    response = http.get("/widget/frame", params={"site": world.site_a})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "x-frame-options" not in response.headers
    ancestors = _csp(response)["frame-ancestors"].split()
    assert ORIGIN_A in ancestors
    assert ORIGIN_B not in ancestors  # another tenant's origin may not embed site A's widget
    assert set(ancestors) <= {"'self'", ORIGIN_A}
    assert "*" not in ancestors
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers.get("cache-control") == "no-store"
    # The frame connects its socket to this site only.
    assert f"site={world.site_a}" in response.text


def test_widget_frame_for_an_unknown_site_is_404(http: httpx.Client) -> None:
    response = http.get("/widget/frame", params={"site": "site_doesnotexist0000"})
    assert response.status_code == 404
    assert "Unknown site key" in response.text
    assert response.headers["x-frame-options"] == "DENY"


def test_widget_frame_without_a_site_is_refused(http: httpx.Client) -> None:
    assert http.get("/widget/frame").status_code == 422


def test_widget_loader_is_javascript(http: httpx.Client) -> None:
    response = http.get("/widget.js")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0].strip() in (
        "text/javascript",
        "application/javascript",
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers.get("access-control-allow-origin") == "*"  # loaded by any host page
    assert "data-site" in response.text or "dataset" in response.text
    assert "/widget/frame" in response.text


def test_widget_config(http: httpx.Client, world: World) -> None:
    response = http.get("/api/widget/config", params={"site": world.site_a})
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Alpha Cars Leeds"
    assert isinstance(body["online"], bool) and body["greeting"]
    missing = http.get("/api/widget/config", params={"site": "site_doesnotexist0000"})
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


# --- the enquiry (offline) form ---------------------------------------------------------------


def test_enquiry_from_an_allowed_host_page_is_201(http: httpx.Client, world: World) -> None:
    response = http.post("/api/widget/enquiry", json=_enquiry(world), headers={"Origin": ORIGIN_A})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["state"] == "waiting"
    assert len(body["conversation"]) == 22


def test_enquiry_from_our_own_frame_is_201(http: httpx.Client, world: World) -> None:
    """The iframe is served from our origin, so the browser sends ours; ``host`` must be allowed."""
    response = http.post(
        "/api/widget/enquiry", json=_enquiry(world), headers={"Origin": world.server.url}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("https://evil.example", ORIGIN_A),  # a foreign page posting directly
        (ORIGIN_B, ORIGIN_A),  # another tenant's origin
        (ORIGIN_A, "https://evil.example"),  # allowed Origin, but the host page is not allowed
        (None, ORIGIN_A),  # no Origin at all (a script, not a browser)
        ("null", ORIGIN_A),  # sandboxed / file:// pages
    ],
)
def test_enquiry_from_a_foreign_origin_is_403(
    http: httpx.Client, world: World, origin: str | None, host: str
) -> None:
    headers = {"Origin": origin} if origin is not None else {}
    response = http.post("/api/widget/enquiry", json=_enquiry(world, host=host), headers=headers)
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "forbidden"


def test_enquiry_for_an_unknown_site_is_404(http: httpx.Client, world: World) -> None:
    response = http.post(
        "/api/widget/enquiry",
        json=_enquiry(world, site="site_doesnotexist0000"),
        headers={"Origin": ORIGIN_A},
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"name": None}, "name"),
        ({"contact": None}, "contact"),
        ({"message": None}, "message"),
        ({"host": None}, "host"),
        ({"name": "N" * 101}, "name"),
        ({"contact": "c" * 201}, "contact"),
        ({"message": "m" * 4001}, "message"),
        ({"name": "   "}, "name"),
        ({"contact": "x"}, "email address or phone"),
        ({"message": "   "}, ""),
    ],
)
def test_enquiry_with_missing_or_oversized_fields_is_422(
    http: httpx.Client, world: World, overrides: dict[str, Any], reason: str
) -> None:
    response = http.post(
        "/api/widget/enquiry", json=_enquiry(world, **overrides), headers={"Origin": ORIGIN_A}
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    assert reason.lower() in detail.lower(), detail


def test_enquiry_that_is_not_json_is_422(http: httpx.Client) -> None:
    response = http.post(
        "/api/widget/enquiry",
        content=b"name=x",
        headers={"Origin": ORIGIN_A, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("The body is not valid JSON")
    assert response.json()["code"] == "bad_request"
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        form = http.post(
            "/api/widget/enquiry",
            content=b"name=x",
            headers={"Origin": ORIGIN_A, "Content-Type": content_type},
        )
        assert form.status_code == 422
        assert form.json()["detail"] == (
            "The body must be a JSON object (Content-Type: application/json)."
        )


def test_enquiry_appears_in_the_operators_queue(http: httpx.Client, world: World) -> None:
    async def scenario() -> None:
        # An operator already online sees it arrive...
        live, _ = await agent(world.server, world.operator_a)
        try:
            response = http.post(
                "/api/widget/enquiry",
                json=_enquiry(
                    world,
                    name="Quentin Queue",
                    contact="+44 113 496 0000",
                    message="Please call me about finance.",
                ),
                headers={"Origin": ORIGIN_A},
            )
            assert response.status_code == 201, response.text
            conv_id = response.json()["conversation"]
            pushed = await live.expect("conversation")
            while pushed["conversation"]["id"] != conv_id:
                pushed = await live.expect("conversation")
            assert pushed["conversation"]["source"] == "enquiry"
        finally:
            await live.close()
        # ...and an operator who connects later finds it waiting in the welcome queue.
        op, welcome = await agent(world.server, world.operator_a)
        try:
            queued = {c["id"]: c for c in welcome["conversations"]}
            assert conv_id in queued
            conv = queued[conv_id]
            assert conv["source"] == "enquiry"
            assert conv["state"] == "waiting"
            assert conv["site"]["id"] == world.site_a_id
            assert conv["visitor"]["name"] == "Quentin Queue"
            assert conv["visitor"]["contact"] == "+44 113 496 0000"
            assert conv["last_seq"] == 1
            await op.send(type="join", conversation=conv_id, ref="j")
            history = await op.expect("history", ref="j")
            assert [m["text"] for m in history["messages"]] == ["Please call me about finance."]
        finally:
            await op.close()
        # Another tenant's staff never see it.
        other, other_welcome = await agent(world.server, world.client_b)
        try:
            assert conv_id not in {c["id"] for c in other_welcome["conversations"]}
        finally:
            await other.close()

    asyncio.run(scenario())


def test_readyz_is_503_when_the_sqlite_file_is_deleted(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Delete the server's SQLite file under it: /readyz turns 503 (open connections would
    still answer SELECT 1 from the unlinked file), /healthz stays 200."""
    path = tmp_path_factory.mktemp("readyz-sqlite") / "gone.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    server = LiveServer(url, tmp_path_factory.mktemp("readyz-sqlite-server")).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/readyz").status_code == 200
            path.unlink()
            response = client.get("/readyz")
            assert response.status_code == 503
            assert response.json()["database"] == "unreachable"
            assert client.get("/healthz").status_code == 200
    finally:
        server.stop()
