"""Tenant isolation: the permission matrix over HTTP and WebSocket, on SQLite and PostgreSQL.

The rule (netbox style): another tenant's object is **404**, exactly like a missing one, never 403;
over the WebSocket it is ``error{code:"not_found"}``. Lists and searches never contain it, and its
events never reach a socket that may not see it.

The matrices are tables: a new endpoint or frame is one more line. ``test_every_api_path_with_an_id
_is_in_the_matrix`` fails when an ``/api`` route with a path parameter has no foreign-tenant row.

World (tests/conftest.py): organisation A (site A, plus site A2 created here, which ``operator_a``
is *not* assigned to) and organisation B (site B); ``admin``; ``operator_a`` (site A only);
``client_a`` (organisation A); ``client_b`` (organisation B).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from confide.privacy.service import Intake
from confide.testing import session_cookie, ws_connect
from tests.chat.helpers import Peer, client_id, open_chat, visitor
from tests.conftest import ORIGIN_A, ORIGIN_B, World

ORIGIN_A2 = "https://dealer-a-york.example"
EVIL = "https://evil.example"
SHARED_WORD = "zephyr"  # in both tenants' messages: a search for it must still only show your own


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --------------------------------------------------------------------------------------------
# Fixtures: real data in both organisations, one signed-in HTTP client per person
# --------------------------------------------------------------------------------------------


@dataclass
class Seed:
    site_a2_id: str
    site_a2_key: str
    conv_a: str  # waiting, site A, with visitor messages
    token_a: str
    conv_a2: str  # waiting, site A2 (organisation A, not operator_a's site)
    token_a2: str
    conv_b: str  # waiting, site B (organisation B), with visitor messages
    token_b: str
    marker_a: str
    marker_b: str
    visit_a: str = ""
    visit_b: str = ""
    lead_b: str = ""
    job_b: str = ""
    subprocessor: str = ""  # platform-wide: objecting to it names an organisation
    breach_b: str = ""  # a breach affecting organisation B only (not yet notified)
    privacy_b: str = ""  # a privacy request to organisation B

    def ids(self, world: World) -> dict[str, str]:
        return {
            "org_a": world.org_a,
            "org_b": world.org_b,
            "site_a_id": world.site_a_id,
            "site_b_id": world.site_b_id,
            "site_a2_id": self.site_a2_id,
            "conv_a": self.conv_a,
            "conv_a2": self.conv_a2,
            "conv_b": self.conv_b,
            "visit_a": self.visit_a,
            "visit_b": self.visit_b,
            "lead_b": self.lead_b,
            "job_b": self.job_b,
            "subprocessor": self.subprocessor,
            "breach_b": self.breach_b,
            "privacy_b": self.privacy_b,
            "missing": "x" * 22,  # a well-formed id that does not exist
            # The public privacy endpoints have no tenant to cross: an unknown id is their 404.
            "unknown": "u" * 22,
        }


@pytest.fixture(scope="module")
def seed(world: World) -> Seed:
    site_a2_key, site_a2_id = world.server.create_site(world.org_a, "Alpha Cars York", [ORIGIN_A2])
    marker_a, marker_b = "alpha" + secrets.token_hex(4), "beta" + secrets.token_hex(4)

    async def chat(site_key: str, origin: str, texts: list[str]) -> tuple[str, str]:
        v, _ = await visitor(world.server, site_key, origin)
        conv, token = await open_chat(v)
        for text in texts:
            await v.send(type="send", conversation=conv, client_id=client_id(), text=text)
            await v.expect("ack")
        await v.close()
        return conv, token

    def track(site_id: str, site_key: str, origin: str) -> str:
        """A tracked visit on the site (switched to notice mode so beacons are recorded)."""
        world.server.service(lambda ctx: ctx.sites.configure(site_id, consent_mode="notice"))
        visit = "visit" + secrets.token_hex(8)
        body = {
            "site": site_key,
            "visit": visit,
            "events": [{"type": "pageview", "url": "/", "ts": int(time.time() * 1000)}],
        }
        deadline = time.monotonic() + 15  # the server re-reads site settings within 5 s
        while True:
            response = httpx.post(
                world.server.url + "/api/t",
                content=json.dumps(body),
                headers={
                    "Origin": origin,
                    "Content-Type": "text/plain",
                    "User-Agent": "Mozilla/5.0",
                },
            )
            if response.json()["accepted"] == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert response.json()["accepted"] == 1, response.text
        return visit

    async def make() -> Seed:
        texts_b = [f"Beta secret {marker_b} {SHARED_WORD}", "my phone is 07700 900123"]
        conv_b, token_b = await chat(world.site_b, ORIGIN_B, texts_b)
        conv_a, token_a = await chat(
            world.site_a, ORIGIN_A, [f"Alpha question {marker_a} {SHARED_WORD}"]
        )
        conv_a2, token_a2 = await chat(site_a2_key, ORIGIN_A2, [f"York question {SHARED_WORD}"])
        return Seed(
            site_a2_id,
            site_a2_key,
            conv_a,
            token_a,
            conv_a2,
            token_a2,
            conv_b,
            token_b,
            marker_a,
            marker_b,
        )

    seeded: Seed = run(make())
    seeded.visit_a = track(world.site_a_id, world.site_a, ORIGIN_A)
    seeded.visit_b = track(world.site_b_id, world.site_b, ORIGIN_B)
    seeded.lead_b, seeded.job_b = world.server.service(
        lambda ctx: _lead_in_b(ctx, world, conv_b=seeded.conv_b)
    )
    seeded.privacy_b = world.server.service(
        lambda ctx: ctx.privacy.submit(world.org_b, Intake("access", email="x@example.org"))
    ).id
    seeded.subprocessor, seeded.breach_b = world.server.service(
        lambda ctx: _accountability_seed(ctx, world)
    )
    return seeded


async def _accountability_seed(ctx: Any, world: World) -> tuple[str, str]:
    """A sub-processor (announced to everyone) and a breach affecting organisation B."""
    from datetime import timedelta

    from confide.accountability.service import Accountability
    from confide.clock import utcnow

    acct = Accountability(ctx.db, ctx.settings)
    sp = await acct.subprocessors.add(
        None, name="Matrix Mail", region="UK", purpose="Email.", categories=["user.contact"]
    )
    breach = await acct.breaches.record(
        None,
        nature="Matrix test incident.",
        categories=["user.contact"],
        subjects_approx=1,
        records_approx=1,
        consequences="None expected.",
        measures="Contained at once.",
        contact_name="Dana Protection",
        contact_email="dpo@confide-example.com",
        discovered_at=utcnow() - timedelta(hours=1),
        organisation_ids=[world.org_b],
    )
    return str(sp.subprocessor["id"]), str(breach["id"])


async def _lead_in_b(ctx: Any, world: World, *, conv_b: str) -> tuple[str, str]:
    """A lead of organisation B with a (failed) delivery job, for the id-based endpoints."""
    from confide.accounts.models import User
    from confide.clock import utcnow
    from confide.delivery.models import OutboxJob
    from confide.storage.scope import Scope

    async with ctx.db.session(Scope.system()) as s:
        admin = await s.get(User, world.admin.user_id)
        principal = await ctx.accounts.principal_for(admin)
    dest = await ctx.delivery_admin.add_destination(
        Scope.system(),
        organisation_id=world.org_b,
        kind="webhook",
        target="http://127.0.0.1:9/hook",
        region="UK",
    )
    await ctx.leads.update_details(
        principal, conv_b, {"name": "Bea Beta", "email": "bea@example.org"}
    )
    lead = await ctx.leads.create_lead(principal, conv_b, purpose="general")
    now = utcnow()
    async with ctx.db.session(Scope.system()) as s:
        job = OutboxJob(
            organisation_id=world.org_b,
            event="lead.created",
            lead_id=lead.id,
            destination_id=dest.destination["id"],
            idempotency_key=f"matrix-{lead.id}",
            state="dead",
            attempts=1,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        s.add(job)
        await s.flush()
        return lead.id, str(job.id)


@dataclass
class Browser:
    """A signed-in console user: HTTP client (with the session cookie) and the CSRF token."""

    http: httpx.Client
    csrf: str
    cookie: str


def csrf_from_console(http: httpx.Client) -> str:
    page = http.get("/console")
    assert page.status_code == 200, page.text[:300]
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text) or re.search(
        r'name="csrf_token"\s+value="([^"]+)"', page.text
    )
    assert found, "the console page carries no CSRF token"
    return found.group(1)


ACTORS = ("admin", "operator_a", "client_a", "client_b")


@pytest.fixture(scope="module")
def browsers(world: World, seed: Seed) -> Iterator[dict[str, Browser]]:
    out: dict[str, Browser] = {}
    try:
        for name in ACTORS:
            http = world.server.login(getattr(world, name))
            out[name] = Browser(http, csrf_from_console(http), session_cookie(http))
        yield out
    finally:
        for b in out.values():
            b.http.close()


async def console(world: World, b: Browser) -> tuple[Peer, dict[str, Any]]:
    """A console socket on ``b``'s existing session (signing in again costs an argon2 hash)."""
    ws = await ws_connect(
        f"{world.server.ws_url}/ws/console?v=1", origin=world.server.url, cookie=b.cookie
    )
    peer = Peer(ws)
    await peer.send(type="hello", v=1)
    return peer, await peer.expect("welcome")


@pytest.fixture
def anonymous(world: World) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=world.server.url, timeout=10) as http:
        yield http


def admin_view(browsers: dict[str, Browser], conv: str) -> dict[str, Any]:
    """The conversation as the admin sees it (the unchanged-state oracle)."""
    r = browsers["admin"].http.get(f"/api/conversations/{conv}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


#: Valid bodies for endpoints that need one: a 404 must come from the tenant rule, not a 422.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "person"): {"name": "Mallory"},
    ("POST", "age"): {"age": 30},
    ("POST", "leads"): {"purpose": "general"},
    ("PATCH", "lead"): {"status": "contacted"},
    ("POST", "objections"): {"reason": "We object to this sub-processor."},
    ("POST", "forward"): {
        "recipient_name": "Other Org",
        "recipient_contact": "other@example.org",
        "reason": "Visitor asked us to",
    },
    ("POST", "requests"): {"kind": "access", "email": "x@example.org"},
    ("POST", "verify"): {"code": "123456"},
    ("POST", "identity"): {"name": "Mallory"},
    ("POST", "deny"): {"reason": "Not a customer of ours", "basis": "identity_not_verified"},
    ("POST", "extend"): {"reason": "A complex request"},
}


def _body(method: str, path: str) -> dict[str, Any] | None:
    last = path.rstrip("/").rsplit("/", 1)[-1]
    key = "lead" if re.fullmatch(r"/api/leads/[^/]+", path) else last
    return BODIES.get((method, key))


def call(b: Browser, method: str, path: str, *, csrf: str | None = "own") -> httpx.Response:
    headers = {}
    if csrf == "own":
        headers["X-CSRF-Token"] = b.csrf
    elif csrf is not None:
        headers["X-CSRF-Token"] = csrf
    return b.http.request(method, path, headers=headers, json=_body(method, path))


# --------------------------------------------------------------------------------------------
# HTTP: the permission matrix
# --------------------------------------------------------------------------------------------

# (actor, method, path, expected status). Unsafe calls carry the caller's own valid CSRF token, so a
# 404 here is the tenant rule, not a CSRF refusal. Foreign objects first, then the controls that
# prove the same calls succeed for someone who may see the object.
HTTP_MATRIX: list[tuple[str, str, str, int]] = [
    # client of organisation A → everything of organisation B is 404
    ("client_a", "GET", "/api/sites/{site_b_id}", 404),
    ("client_a", "GET", "/api/organisations/{org_b}", 404),
    ("client_a", "GET", "/api/conversations/{conv_b}", 404),
    ("client_a", "POST", "/api/conversations/{conv_b}/close", 404),
    ("client_a", "POST", "/api/conversations/{conv_b}/accept", 404),
    ("client_a", "GET", "/console/conversations/{conv_b}", 404),
    ("client_a", "GET", "/api/visits/{visit_b}", 404),
    ("client_a", "GET", "/api/sites/{site_b_id}/stats", 404),
    ("client_a", "GET", "/api/conversations/{conv_b}/lead-panel", 404),
    ("client_a", "PUT", "/api/conversations/{conv_b}/person", 404),
    ("client_a", "POST", "/api/conversations/{conv_b}/age", 404),
    ("client_a", "POST", "/api/conversations/{conv_b}/consent-request", 404),
    ("client_a", "POST", "/api/conversations/{conv_b}/leads", 404),
    ("client_a", "POST", "/api/leads/{lead_b}/deliver", 404),
    ("client_a", "GET", "/api/leads/{lead_b}", 404),
    ("client_a", "PATCH", "/api/leads/{lead_b}", 404),
    ("client_a", "POST", "/api/leads/{lead_b}/forward", 404),
    ("client_a", "POST", "/api/deliveries/{job_b}/retry", 404),
    ("client_a", "GET", "/api/ropa/{org_b}", 404),
    ("client_a", "POST", "/api/organisations/{org_b}/subprocessors/{subprocessor}/objections", 404),
    ("client_a", "GET", "/api/breaches/{breach_b}", 404),
    ("client_a", "POST", "/api/breaches/{breach_b}/notify", 404),
    ("client_b", "GET", "/api/ropa/{org_a}", 404),
    ("operator_a", "GET", "/api/ropa/{org_b}", 404),
    ("client_b", "GET", "/api/breaches/{breach_b}", 404),  # affected, but not notified yet
    ("client_b", "GET", "/api/ropa/{org_b}", 200),
    ("admin", "GET", "/api/ropa/{org_a}", 200),
    ("admin", "GET", "/api/breaches/{breach_b}", 200),
    ("client_a", "GET", "/api/privacy/requests/{privacy_b}", 404),
    ("client_a", "POST", "/api/privacy/requests/{privacy_b}/approve", 404),
    ("client_a", "POST", "/api/privacy/requests/{privacy_b}/deny", 404),
    ("client_a", "POST", "/api/privacy/requests/{privacy_b}/extend", 404),
    ("client_a", "GET", "/portal/privacy/{privacy_b}", 404),
    ("client_a", "POST", "/api/privacy/{unknown}/requests", 404),  # public
    ("client_a", "POST", "/api/privacy/requests/{unknown}/verify", 404),  # public
    ("client_a", "POST", "/api/privacy/requests/{unknown}/identity", 404),  # public
    ("client_a", "POST", "/api/privacy/requests/{unknown}/cancel", 404),  # public
    ("operator_a", "GET", "/api/privacy/requests/{privacy_b}", 403),  # operators never decide
    ("operator_a", "GET", "/api/conversations/{conv_b}/lead-panel", 404),
    ("operator_a", "GET", "/api/leads/{lead_b}", 404),
    ("operator_a", "POST", "/api/leads/{lead_b}/deliver", 404),
    ("operator_a", "POST", "/api/deliveries/{job_b}/retry", 404),
    # client of organisation B → everything of organisation A is 404
    ("client_b", "GET", "/api/sites/{site_a_id}", 404),
    ("client_b", "GET", "/api/organisations/{org_a}", 404),
    ("client_b", "GET", "/api/conversations/{conv_a}", 404),
    ("client_b", "POST", "/api/conversations/{conv_a}/close", 404),
    ("client_b", "POST", "/api/conversations/{conv_a}/accept", 404),
    ("client_b", "GET", "/console/conversations/{conv_a}", 404),
    ("client_b", "GET", "/api/visits/{visit_a}", 404),
    ("client_b", "GET", "/api/sites/{site_a_id}/stats", 404),
    # operator of site A → organisation B, and site A2 of organisation A, are 404
    ("operator_a", "GET", "/api/sites/{site_b_id}", 404),
    ("operator_a", "GET", "/api/organisations/{org_b}", 404),
    ("operator_a", "GET", "/api/conversations/{conv_b}", 404),
    ("operator_a", "POST", "/api/conversations/{conv_b}/close", 404),
    ("operator_a", "POST", "/api/conversations/{conv_b}/accept", 404),
    ("operator_a", "GET", "/console/conversations/{conv_b}", 404),
    ("operator_a", "GET", "/api/visits/{visit_b}", 404),
    ("operator_a", "GET", "/api/sites/{site_b_id}/stats", 404),
    ("operator_a", "GET", "/api/sites/{site_a2_id}", 404),
    ("operator_a", "GET", "/api/conversations/{conv_a2}", 404),
    ("operator_a", "POST", "/api/conversations/{conv_a2}/close", 404),
    ("operator_a", "POST", "/api/conversations/{conv_a2}/accept", 404),
    ("operator_a", "GET", "/console/conversations/{conv_a2}", 404),
    # a missing id looks exactly the same
    ("client_a", "GET", "/api/sites/{missing}", 404),
    ("client_a", "GET", "/api/organisations/{missing}", 404),
    ("client_a", "GET", "/api/conversations/{missing}", 404),
    ("client_a", "POST", "/api/conversations/{missing}/close", 404),
    ("client_a", "POST", "/api/conversations/{missing}/accept", 404),
    ("client_a", "GET", "/console/conversations/{missing}", 404),
    # controls: your own objects are there
    ("client_a", "GET", "/api/sites/{site_a_id}", 200),
    ("client_a", "GET", "/api/sites/{site_a2_id}", 200),
    ("client_a", "GET", "/api/organisations/{org_a}", 200),
    ("client_a", "GET", "/api/conversations/{conv_a}", 200),
    ("client_a", "GET", "/api/conversations/{conv_a2}", 200),
    ("client_a", "GET", "/console/conversations/{conv_a}", 200),
    ("client_b", "GET", "/api/sites/{site_b_id}", 200),
    ("client_b", "GET", "/api/organisations/{org_b}", 200),
    ("client_b", "GET", "/api/conversations/{conv_b}", 200),
    ("client_b", "GET", "/console/conversations/{conv_b}", 200),
    ("operator_a", "GET", "/api/sites/{site_a_id}", 200),
    ("operator_a", "GET", "/api/organisations/{org_a}", 200),
    ("operator_a", "GET", "/api/conversations/{conv_a}", 200),
    ("operator_a", "GET", "/console/conversations/{conv_a}", 200),
    # the processor's admin sees both tenants
    ("admin", "GET", "/api/sites/{site_a_id}", 200),
    ("admin", "GET", "/api/sites/{site_b_id}", 200),
    ("admin", "GET", "/api/organisations/{org_a}", 200),
    ("admin", "GET", "/api/organisations/{org_b}", 200),
    ("admin", "GET", "/api/conversations/{conv_a}", 200),
    ("admin", "GET", "/api/conversations/{conv_b}", 200),
    ("admin", "GET", "/console/conversations/{conv_b}", 200),
    ("admin", "GET", "/api/conversations/{conv_b}/lead-panel", 200),
    ("admin", "GET", "/api/leads/{lead_b}", 200),
    ("client_b", "GET", "/api/conversations/{conv_b}/lead-panel", 200),
    ("client_b", "GET", "/api/privacy/requests/{privacy_b}", 200),
    ("client_b", "GET", "/portal/privacy/{privacy_b}", 200),
    ("admin", "GET", "/api/privacy/requests/{privacy_b}", 200),
]


@pytest.mark.parametrize(
    ("actor", "method", "path", "expected"),
    HTTP_MATRIX,
    ids=[f"{a}-{m}-{p}" for a, m, p, _ in HTTP_MATRIX],
)
def test_http_matrix(
    world: World,
    seed: Seed,
    browsers: dict[str, Browser],
    actor: str,
    method: str,
    path: str,
    expected: int,
) -> None:
    ids = seed.ids(world)
    target = re.search(r"\{(\w+)\}", path)
    assert target is not None
    before = (
        admin_view(browsers, ids[target.group(1)]) if target.group(1).startswith("conv") else None
    )
    response = call(browsers[actor], method, path.format(**ids))
    assert response.status_code == expected, f"{actor} {method} {path}: {response.text[:300]}"
    if expected == 404:
        # The error carries no tenant data at all, and the call changed nothing.
        for secret in (seed.marker_a, seed.marker_b, "Alpha Cars", "Beta Motors", "07700"):
            assert secret not in response.text, f"{actor} {method} {path}: 404 shows {secret!r}"
        if path.startswith("/api"):
            assert response.json()["code"] == "not_found"
        else:
            assert "text/html" in response.headers["content-type"]
        if before is not None:
            after = admin_view(browsers, ids[target.group(1)])
            assert after == before, f"{actor} {method} {path} changed a conversation it cannot see"


def test_a_foreign_object_is_indistinguishable_from_a_missing_one(
    world: World, seed: Seed, browsers: dict[str, Browser]
) -> None:
    ids = seed.ids(world)
    b = browsers["client_a"]
    for template in ("/api/sites/{}", "/api/organisations/{}", "/api/conversations/{}"):
        foreign_id = {"/api/sites/{}": ids["site_b_id"], "/api/organisations/{}": ids["org_b"]}.get(
            template, ids["conv_b"]
        )
        foreign = b.http.get(template.format(foreign_id))
        missing = b.http.get(template.format(ids["missing"]))
        assert (foreign.status_code, foreign.json()) == (missing.status_code, missing.json()), (
            template
        )
    for action in ("close", "accept"):
        foreign = call(b, "POST", f"/api/conversations/{ids['conv_b']}/{action}")
        missing = call(b, "POST", f"/api/conversations/{ids['missing']}/{action}")
        assert (foreign.status_code, foreign.json()) == (missing.status_code, missing.json()), (
            action
        )


def test_every_api_path_with_an_id_is_in_the_matrix(world: World) -> None:
    """A new ``/api`` endpoint that takes an id must get a foreign-tenant 404 row above."""
    with httpx.Client(base_url=world.server.url, timeout=10) as http:
        spec = http.get("/openapi.json").json()
    covered = {
        (method, re.sub(r"\{\w+\}", "{}", path))
        for actor, method, path, expected in HTTP_MATRIX
        if actor == "client_a" and expected == 404 and "{missing}" not in path
    }
    missing = [
        f"{method.upper()} {path}"
        for path, operations in spec["paths"].items()
        if "{" in path
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
        and (method.upper(), re.sub(r"\{\w+\}", "{}", path)) not in covered
    ]
    assert not missing, f"no client_a → organisation B 404 row in HTTP_MATRIX for: {missing}"


# --------------------------------------------------------------------------------------------
# HTTP: lists and search never contain what you may not see
# --------------------------------------------------------------------------------------------

# (actor, sites they see) for /api/sites and /api/me; admin: at least these.
SITE_VISIBILITY = [
    ("admin", {"site_a_id", "site_a2_id", "site_b_id"}),
    ("operator_a", {"site_a_id"}),
    ("client_a", {"site_a_id", "site_a2_id"}),
    ("client_b", {"site_b_id"}),
]


@pytest.mark.parametrize(
    ("actor", "expected"), SITE_VISIBILITY, ids=[a for a, _ in SITE_VISIBILITY]
)
def test_site_and_organisation_lists(
    world: World, seed: Seed, browsers: dict[str, Browser], actor: str, expected: set[str]
) -> None:
    ids = seed.ids(world)
    http = browsers[actor].http
    want = {ids[k] for k in expected}
    want_orgs = {
        "admin": {world.org_a, world.org_b},
        "operator_a": {world.org_a},
        "client_a": {world.org_a},
        "client_b": {world.org_b},
    }[actor]
    sites = {s["id"] for s in http.get("/api/sites").json()}
    me = set(http.get("/api/me").json()["site_ids"])
    orgs = {o["id"] for o in http.get("/api/organisations").json()}
    if actor == "admin":
        assert want <= sites and want <= me and want_orgs <= orgs
    else:
        assert (sites, me, orgs) == (want, want, want_orgs)


def _all_conversations(http: httpx.Client, **params: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in range(20):
        body = http.get("/api/conversations", params={**params, "page": str(page)}).json()
        out.extend(body["conversations"])
        if not body["has_next"]:
            return out
    raise AssertionError("more than 20 pages of conversations")


# (actor, query params, conversations that must appear, conversations that must not)
SEARCH_MATRIX: list[tuple[str, dict[str, str], set[str], set[str]]] = [
    ("client_a", {}, {"conv_a", "conv_a2"}, {"conv_b"}),
    ("client_a", {"q": SHARED_WORD}, {"conv_a", "conv_a2"}, {"conv_b"}),
    ("client_a", {"q": "{marker_b}"}, set(), {"conv_b"}),
    ("client_a", {"q": "07700"}, set(), {"conv_b"}),
    ("client_a", {"site": "{site_b_id}"}, set(), {"conv_b", "conv_a"}),
    ("client_a", {"site": "{site_b_id}", "q": SHARED_WORD}, set(), {"conv_b", "conv_a"}),
    ("operator_a", {}, {"conv_a"}, {"conv_b", "conv_a2"}),
    ("operator_a", {"q": SHARED_WORD}, {"conv_a"}, {"conv_b", "conv_a2"}),
    ("operator_a", {"q": "{marker_b}"}, set(), {"conv_b"}),
    ("operator_a", {"site": "{site_a2_id}"}, set(), {"conv_a2", "conv_a"}),
    ("client_b", {"q": SHARED_WORD}, {"conv_b"}, {"conv_a", "conv_a2"}),
    ("client_b", {"q": "{marker_a}"}, set(), {"conv_a"}),
    ("admin", {"q": SHARED_WORD}, {"conv_a", "conv_a2", "conv_b"}, set()),
    ("admin", {"q": "{marker_b}"}, {"conv_b"}, {"conv_a", "conv_a2"}),
]


@pytest.mark.parametrize(
    ("actor", "params", "present", "absent"),
    SEARCH_MATRIX,
    ids=[
        f"{a}-{'&'.join(f'{k}={v}' for k, v in p.items()) or 'all'}" for a, p, _, _ in SEARCH_MATRIX
    ],
)
def test_conversation_lists_and_search(
    world: World,
    seed: Seed,
    browsers: dict[str, Browser],
    actor: str,
    params: dict[str, str],
    present: set[str],
    absent: set[str],
) -> None:
    ids = {**seed.ids(world), "marker_a": seed.marker_a, "marker_b": seed.marker_b}
    params = {k: v.format(**ids) for k, v in params.items()}
    found = _all_conversations(browsers[actor].http, **params)
    found_ids = {c["id"] for c in found}
    assert {ids[c] for c in present} <= found_ids, f"{actor} {params}: own conversations missing"
    assert not {ids[c] for c in absent} & found_ids, (
        f"{actor} {params}: sees a foreign conversation"
    )
    visible_sites = {s["id"] for s in browsers[actor].http.get("/api/sites").json()}
    assert {c["site"]["id"] for c in found} <= visible_sites
    text = json.dumps(found)
    for secret in ("marker_a", "marker_b"):
        if {"marker_a": "conv_a", "marker_b": "conv_b"}[secret] in absent:
            assert ids[secret] not in text  # not even as a preview or snippet


@pytest.mark.parametrize("actor", ["client_a", "operator_a"])
def test_console_history_page_shows_no_foreign_conversation(
    world: World, seed: Seed, browsers: dict[str, Browser], actor: str
) -> None:
    http = browsers[actor].http
    for params in ({}, {"q": SHARED_WORD}, {"q": seed.marker_b}, {"site": world.site_b_id}):
        page = http.get("/console/history", params=params)
        assert page.status_code == 200
        for secret in (seed.conv_b, seed.marker_b, "Beta Motors", world.site_b_id, "07700"):
            if secret not in params.values():  # the page may echo what was asked for
                assert secret not in page.text, (
                    f"{actor} /console/history?{params} shows {secret!r}"
                )
    page = http.get("/console")
    assert seed.conv_b not in page.text and "Beta Motors" not in page.text


# --------------------------------------------------------------------------------------------
# HTTP: authentication and CSRF
# --------------------------------------------------------------------------------------------

# Every API call without a session is 401 (before any object look-up: nothing to probe).
UNAUTHENTICATED: list[tuple[str, str]] = [
    ("GET", "/api/me"),
    ("GET", "/api/sites"),
    ("GET", "/api/sites/{site_a_id}"),
    ("GET", "/api/organisations"),
    ("GET", "/api/organisations/{org_a}"),
    ("GET", "/api/conversations"),
    ("GET", "/api/conversations?q=" + SHARED_WORD),
    ("GET", "/api/conversations/{conv_a}"),
    ("GET", "/api/conversations/{missing}"),
    ("POST", "/api/conversations/{conv_a}/close"),
    ("POST", "/api/conversations/{conv_a}/accept"),
]


@pytest.mark.parametrize(
    ("method", "path"), UNAUTHENTICATED, ids=[f"{m}-{p}" for m, p in UNAUTHENTICATED]
)
@pytest.mark.parametrize("cookie", [None, "not-a-session"])
def test_unauthenticated_api_calls_get_401(
    world: World,
    seed: Seed,
    browsers: dict[str, Browser],
    anonymous: httpx.Client,
    method: str,
    path: str,
    cookie: str | None,
) -> None:
    ids = seed.ids(world)
    before = admin_view(browsers, seed.conv_a)
    headers = {
        "X-CSRF-Token": browsers["client_a"].csrf
    }  # a real token is useless without its session
    if cookie:
        headers["Cookie"] = f"confide_session={cookie}"
    response = anonymous.request(method, path.format(**ids), headers=headers)
    assert response.status_code == 401, response.text[:300]
    assert response.json()["code"] == "unauthorised"
    assert "Alpha" not in response.text
    assert admin_view(browsers, seed.conv_a) == before


def test_unauthenticated_console_pages_redirect_to_sign_in(
    world: World, seed: Seed, anonymous: httpx.Client
) -> None:
    for path in ("/console", "/console/history", f"/console/conversations/{seed.conv_a}"):
        response = anonymous.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].split("?")[0] == "/console/login", path


def test_unsafe_api_calls_without_csrf_get_403_and_change_nothing(
    world: World, seed: Seed, browsers: dict[str, Browser]
) -> None:
    async def fresh_conversation() -> str:
        v, _ = await visitor(world.server, world.site_a, ORIGIN_A)
        conv, _ = await open_chat(v)
        await v.close()
        return conv

    conv = run(fresh_conversation())
    b = browsers["client_a"]
    wrong = [None, "", "forged-" + secrets.token_hex(16), browsers["admin"].csrf, b.cookie]
    for action in ("accept", "close"):
        for token in wrong:
            response = call(b, "POST", f"/api/conversations/{conv}/{action}", csrf=token)
            assert response.status_code == 403, (
                f"{action} with csrf={token!r}: {response.text[:200]}"
            )
            assert response.json()["code"] == "forbidden"
        # a cross-site form post carries no header at all
        form = b.http.post(f"/api/conversations/{conv}/{action}", data={"csrf_token": b.csrf})
        assert form.status_code == 403
        assert admin_view(browsers, conv)["conversation"]["state"] == "waiting"
    # Control: the same calls with the session's own token work (so the 403s were the CSRF check).
    accepted = call(b, "POST", f"/api/conversations/{conv}/accept")
    assert accepted.status_code == 200 and accepted.json()["state"] == "active"
    closed = call(b, "POST", f"/api/conversations/{conv}/close")
    assert closed.status_code == 200 and closed.json()["state"] == "closed"


def test_csrf_comes_before_the_object_lookup(
    world: World, seed: Seed, browsers: dict[str, Browser]
) -> None:
    """Without a CSRF token a foreign conversation is 403, like your own: no existence oracle."""
    b = browsers["client_a"]
    foreign = call(b, "POST", f"/api/conversations/{seed.conv_b}/close", csrf=None)
    missing = call(b, "POST", f"/api/conversations/{'y' * 22}/close", csrf=None)
    assert foreign.status_code == missing.status_code == 403
    assert admin_view(browsers, seed.conv_b)["conversation"]["state"] == "waiting"


# --------------------------------------------------------------------------------------------
# WebSocket: handshakes
# --------------------------------------------------------------------------------------------


async def handshake(
    url: str, origin: str | None, cookie: str | None, hello: dict[str, Any]
) -> tuple[str, Any]:
    """('closed', code) if the server closes the socket, ('open', first frame) if it talks."""
    headers = {"Cookie": f"confide_session={cookie}"} if cookie else None
    async with websockets.connect(url, origin=origin, additional_headers=headers) as ws:  # type: ignore[arg-type]
        try:
            await ws.send(json.dumps(hello))
            return "open", json.loads(await asyncio.wait_for(ws.recv(), 5))
        except ConnectionClosed as exc:
            return "closed", exc.rcvd.code if exc.rcvd else ws.close_code


# (name, socket, query, Origin header, session cookie, expected close code or "welcome")
HANDSHAKES: list[tuple[str, str, str, str | None, str | None, int | str]] = [
    ("widget-allowed-origin", "widget", "site={site_a}", ORIGIN_A, None, "welcome"),
    ("widget-other-tenants-origin", "widget", "site={site_a}", ORIGIN_B, None, 4403),
    ("widget-evil-origin", "widget", "site={site_a}", EVIL, None, 4403),
    ("widget-no-origin", "widget", "site={site_a}", None, None, 4403),
    ("widget-null-origin", "widget", "site={site_a}", "null", None, 4403),
    ("widget-origin-other-port", "widget", "site={site_a}", ORIGIN_A + ":8443", None, 4403),
    (
        "widget-origin-other-scheme",
        "widget",
        "site={site_a}",
        ORIGIN_A.replace("https", "http"),
        None,
        4403,
    ),
    ("widget-origin-suffix", "widget", "site={site_a}", ORIGIN_A + ".evil.example", None, 4403),
    ("widget-b-from-a-origin", "widget", "site={site_b}", ORIGIN_A, None, 4403),
    ("widget-unknown-site", "widget", "site=site_doesnotexist000", ORIGIN_A, None, 4404),
    ("widget-no-site", "widget", "", ORIGIN_A, None, 4404),
    ("widget-bad-version", "widget", "site={site_a}&v=2", ORIGIN_A, None, 4400),
    ("console-session-own-origin", "console", "", "{own}", "{cookie}", "welcome"),
    ("console-no-session", "console", "", "{own}", None, 4401),
    ("console-bogus-session", "console", "", "{own}", "not-a-session", 4401),
    ("console-foreign-origin", "console", "", ORIGIN_A, "{cookie}", 4403),
    ("console-evil-origin", "console", "", EVIL, "{cookie}", 4403),
    ("console-no-origin", "console", "", None, "{cookie}", 4403),
    ("console-bad-version", "console", "v=2", "{own}", "{cookie}", 4400),
]


@pytest.mark.parametrize(
    ("socket", "query", "origin", "cookie", "expected"),
    [h[1:] for h in HANDSHAKES],
    ids=[h[0] for h in HANDSHAKES],
)
def test_websocket_handshakes(
    world: World,
    browsers: dict[str, Browser],
    socket: str,
    query: str,
    origin: str | None,
    cookie: str | None,
    expected: int | str,
) -> None:
    fill = {
        "site_a": world.site_a,
        "site_b": world.site_b,
        "own": world.server.url,
        "cookie": browsers["client_a"].cookie,
    }
    query = query.format(**fill)
    if "v=" not in query:
        query = "v=1&" + query
    url = f"{world.server.ws_url}/ws/{socket}?{query}"
    origin = origin and origin.format(**fill)
    hello: dict[str, Any] = {"type": "hello", "v": 1}
    if socket == "widget" and origin:
        hello["host"] = origin
    outcome, detail = run(handshake(url, origin, cookie and cookie.format(**fill), hello))
    if expected == "welcome":
        assert (outcome, detail.get("type")) == ("open", "welcome"), detail
    else:
        assert (outcome, detail) == ("closed", expected)


def test_widget_served_from_our_origin_checks_the_host_page(world: World) -> None:
    """The iframe connects with our own Origin; ``hello.host`` must then be an allowed origin,
    and a refused hello leaves the socket un-greeted (no way around it)."""

    async def scenario() -> None:
        url = f"{world.server.ws_url}/ws/widget?v=1&site={world.site_a}"
        async with websockets.connect(url, origin=world.server.url) as ws:  # type: ignore[arg-type]
            peer = Peer(ws)
            for host in (ORIGIN_B, EVIL, None):
                frame = {"type": "hello", "v": 1, **({"host": host} if host else {})}
                await peer.send(**frame)
                assert (await peer.expect("error"))["code"] == "origin_not_allowed", host
            await peer.send(type="open")
            assert (await peer.expect("error"))["code"] == "hello_required"
            await peer.send(type="hello", v=1, host=ORIGIN_A)
            assert (await peer.expect("welcome"))["site"]["name"] == "Alpha Cars Leeds"

    run(scenario())


# --------------------------------------------------------------------------------------------
# WebSocket: frames on a conversation you may not see
# --------------------------------------------------------------------------------------------

# Every console frame that names a conversation. One line per frame type.
CONSOLE_FRAMES: list[dict[str, Any]] = [
    {"type": "join"},
    {"type": "join", "after": 1},
    {"type": "leave"},
    {"type": "sync", "after": 0},
    {"type": "send", "client_id": "intruder-000001", "text": "intrusion attempt"},
    {"type": "accept"},
    {"type": "close"},
    {"type": "seen", "seq": 1},
    {"type": "typing", "typing": True},
]
WIDGET_FRAMES: list[dict[str, Any]] = [
    {"type": "sync", "after": 0},
    {"type": "send", "client_id": "intruder-000002", "text": "intrusion attempt"},
    {"type": "close"},
    {"type": "seen", "seq": 1},
    {"type": "typing", "typing": True},
]


async def frames_until(
    peer: Peer, done: Callable[[dict[str, Any]], bool], timeout: float = 5.0
) -> list[dict[str, Any]]:
    """Every frame received up to and including the first for which ``done`` is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    frames: list[dict[str, Any]] = []
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"gave up waiting; received {frames}")
        frames.append(json.loads(await asyncio.wait_for(peer.ws.recv(), remaining)))
        if done(frames[-1]):
            return frames


async def drain(peer: Peer) -> list[dict[str, Any]]:
    """Everything queued for ``peer`` so far (a ping's pong comes after it)."""
    await peer.send(type="ping", ref="drain")
    return await frames_until(peer, lambda f: f.get("type") == "pong")


def _has_ref(ref: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame.get("ref") == ref


async def refused_frames(peer: Peer, conversation: str, frames: list[dict[str, Any]]) -> list[str]:
    """Send each frame on ``conversation``; return a description of every reply that is not
    ``error{not_found}`` (empty when all were refused)."""
    problems = []
    for i, frame in enumerate(frames):
        ref = f"probe-{i}"
        await peer.send(**frame, conversation=conversation, ref=ref)
        replies = await frames_until(peer, _has_ref(ref))
        reply = replies[-1]
        if reply.get("type") != "error" or reply.get("code") != "not_found":
            problems.append(f"{frame['type']}: {reply}")
        leaked = [f for f in replies[:-1] if conversation in json.dumps(f)]
        if leaked:
            problems.append(f"{frame['type']}: leaked {leaked}")
    return problems


# (agent, a conversation they may not see)
FOREIGN_FOR_AGENT = [
    ("client_a", "conv_b"),
    ("operator_a", "conv_b"),
    ("operator_a", "conv_a2"),  # same organisation, site not assigned
    ("client_b", "conv_a"),
]


@pytest.mark.parametrize(
    ("actor", "target"), FOREIGN_FOR_AGENT, ids=[f"{a}-{t}" for a, t in FOREIGN_FOR_AGENT]
)
def test_console_frames_on_a_foreign_conversation_are_not_found(
    world: World, seed: Seed, browsers: dict[str, Browser], actor: str, target: str
) -> None:
    conv = getattr(seed, target)
    site_key, origin, token = {
        "conv_a": (world.site_a, ORIGIN_A, seed.token_a),
        "conv_a2": (seed.site_a2_key, ORIGIN_A2, seed.token_a2),
        "conv_b": (world.site_b, ORIGIN_B, seed.token_b),
    }[target]
    before = admin_view(browsers, conv)

    async def scenario() -> None:
        owner, welcome = await visitor(
            world.server, site_key, origin, token
        )  # the victim is online
        assert welcome["conversation"]["id"] == conv
        intruder, iwelcome = await console(world, browsers[actor])
        try:
            assert conv not in json.dumps(iwelcome)
            problems = await refused_frames(intruder, conv, CONSOLE_FRAMES)
            assert not problems, f"{actor} on {target}:\n" + "\n".join(problems)
            # The reply for a foreign id is the reply for a missing one, word for word.
            for frame in CONSOLE_FRAMES:
                await intruder.send(**frame, conversation=conv, ref="f")
                foreign = await intruder.expect("error", ref="f")
                await intruder.send(**frame, conversation="z" * 22, ref="m")
                missing = await intruder.expect("error", ref="m")
                assert {k: v for k, v in foreign.items() if k != "ref"} == {
                    k: v for k, v in missing.items() if k != "ref"
                }
            # Nothing reached the visitor (no typing, seen, message or state change)...
            reached = [f for f in await drain(owner) if f["type"] not in ("pong", "presence")]
            assert not reached, f"{actor}'s frames reached the other tenant's visitor: {reached}"
            # ...and the intruder still gets nothing about it afterwards (no subscription stuck).
            await owner.send(
                type="send", conversation=conv, client_id=client_id(), text="after probe"
            )
            await owner.expect("ack")
            assert not [f for f in await drain(intruder) if conv in json.dumps(f)]
        finally:
            await intruder.close()
            await owner.close()

    run(scenario())
    after = admin_view(browsers, conv)
    assert after["conversation"]["state"] == before["conversation"]["state"] == "waiting"
    assert after["conversation"]["operator"] is None
    assert "intrusion" not in json.dumps(after["messages"])
    assert [m["author"]["role"] for m in after["messages"]] == ["visitor"] * len(after["messages"])


def test_queue_events_reach_only_the_agents_who_may_see_them(
    world: World, seed: Seed, browsers: dict[str, Browser]
) -> None:
    async def scenario() -> None:
        agents: dict[str, Peer] = {}
        try:
            for name in ACTORS:
                peer, welcome = await console(world, browsers[name])
                agents[name] = peer
                sites = {s["id"] for s in welcome["sites"]}
                queue = {c["id"] for c in welcome["conversations"]}
                queue_sites = {c["site"]["id"] for c in welcome["conversations"]}
                if name == "operator_a":
                    assert sites == {world.site_a_id} and queue_sites <= {world.site_a_id}
                    assert seed.conv_a in queue and not {seed.conv_b, seed.conv_a2} & queue
                elif name == "client_a":
                    assert sites == {world.site_a_id, seed.site_a2_id}
                    assert seed.conv_b not in queue and {seed.conv_a, seed.conv_a2} <= queue
                elif name == "client_b":
                    assert sites == {world.site_b_id} and queue_sites == {world.site_b_id}
                else:
                    assert {world.site_a_id, world.site_b_id, seed.site_a2_id} <= sites
                    assert {seed.conv_a, seed.conv_b} <= queue

            # Organisation B's activity first...
            vb, _ = await visitor(world.server, world.site_b, ORIGIN_B)
            conv_b, _ = await open_chat(vb)
            secret = "beta-queue-" + secrets.token_hex(4)
            await vb.send(type="send", conversation=conv_b, client_id=client_id(), text=secret)
            await vb.expect("ack")  # published to every subscribed socket before the ack
            await vb.send(type="typing", conversation=conv_b, typing=True)
            for name in ("client_b", "admin"):  # controls: B's agents do get it
                await frames_until(
                    agents[name], lambda f: f.get("type") == "message" and f.get("text") == secret
                )
            # ...then organisation A's (a socket delivers in order: a B frame would come first).
            va, _ = await visitor(world.server, world.site_a, ORIGIN_A)
            conv_a, _ = await open_chat(va)
            await va.send(
                type="send", conversation=conv_a, client_id=client_id(), text="alpha queue"
            )
            await va.expect("ack")
            for name in ("client_a", "operator_a"):
                received = await frames_until(
                    agents[name],
                    lambda f: f.get("type") == "message" and f.get("conversation") == conv_a,
                )
                received += await drain(agents[name])
                assert any(
                    f["type"] == "conversation" and f["conversation"]["id"] == conv_a
                    for f in received
                ), f"{name} did not get its own queue event"
                text = json.dumps(received)
                for leak in (conv_b, secret, world.site_b_id, "Beta Motors"):
                    assert leak not in text, f"{name} received organisation B's event ({leak})"
            b_frames = json.dumps(await drain(agents["client_b"]))
            assert conv_a not in b_frames and "alpha queue" not in b_frames
            await va.close()
            await vb.close()
        finally:
            for peer in agents.values():
                await peer.close()

    run(scenario())


# --------------------------------------------------------------------------------------------
# WebSocket: visitors
# --------------------------------------------------------------------------------------------


def test_a_visitor_token_from_site_a_does_not_resume_on_site_b(
    world: World, seed: Seed, browsers: dict[str, Browser]
) -> None:
    before = admin_view(browsers, seed.conv_a)

    async def scenario() -> None:
        v, welcome = await visitor(world.server, world.site_b, ORIGIN_B, seed.token_a)
        try:
            assert welcome["conversation"] is None
            assert welcome["token"] is None  # the token means nothing here; it is not echoed
            assert not await refused_frames(v, seed.conv_a, WIDGET_FRAMES)
            conv, token = await open_chat(v)  # a new, unrelated visitor of site B
            assert conv != seed.conv_a and token and token != seed.token_a
        finally:
            await v.close()
        # The token still works where it belongs.
        home, welcome = await visitor(world.server, world.site_a, ORIGIN_A, seed.token_a)
        assert welcome["conversation"]["id"] == seed.conv_a
        await home.close()

    run(scenario())
    assert admin_view(browsers, seed.conv_a) == before


@pytest.mark.parametrize("target", ["conv_a", "conv_b"])
@pytest.mark.parametrize("with_own_chat", [False, True], ids=["no-chat", "own-chat"])
def test_a_visitor_cannot_touch_another_visitors_conversation(
    world: World, seed: Seed, browsers: dict[str, Browser], target: str, with_own_chat: bool
) -> None:
    conv = getattr(seed, target)
    before = admin_view(browsers, conv)

    async def scenario() -> None:
        v, _ = await visitor(world.server, world.site_a, ORIGIN_A)
        try:
            if with_own_chat:
                await open_chat(v)
            problems = await refused_frames(v, conv, WIDGET_FRAMES)
            assert not problems, "\n".join(problems)
            for kind in ("accept", "join", "leave"):  # console-only frames
                await v.send(type=kind, conversation=conv, ref=kind)
                assert (await v.expect("error", ref=kind))["code"] == "unknown_type"
        finally:
            await v.close()

    run(scenario())
    assert admin_view(browsers, conv) == before
