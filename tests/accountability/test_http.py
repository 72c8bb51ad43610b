"""Over HTTP against a live server (SQLite and PostgreSQL): the public newsletter pages (double
opt-in, and the one-click unsubscribe that works from the email alone), the API's tenant rule and
admin-only writes, the portal pages, and ``confide serve`` refusing a storage region outside the
EU/UK."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from confide.accountability.models import NewsletterSubscription, SubProcessorObjection
from confide.crypto.vault import ERASED
from confide.storage.scope import Scope
from confide.testing import free_port
from tests.conftest import World
from tests.leads.helpers import Console, SmtpSink

POLICY = "Confide's privacy policy, version three: what we process and why, in full.\n"


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as s:
        yield s


@pytest.fixture(scope="module")
def server_env(sink: SmtpSink) -> dict[str, str]:
    return {
        "CONFIDE_SMTP_HOST": "127.0.0.1",
        "CONFIDE_SMTP_PORT": str(sink.port),
        "CONFIDE_MAIL_FROM": "Confide <notices@confide-example.com>",
    }


@pytest.fixture(scope="module")
def admin(world: World) -> Iterator[Console]:
    c = Console(world.server, world.admin)
    yield c
    c.close()


@pytest.fixture(scope="module")
def client_a(world: World) -> Iterator[Console]:
    c = Console(world.server, world.client_a)
    yield c
    c.close()


def _subscription(world: World, email: str) -> dict[str, Any] | None:
    """The newest subscription row whose (decrypted) address is ``email``, or None."""

    async def find(ctx: Any) -> dict[str, Any] | None:
        async with ctx.db.session(Scope.system(), read_only=True) as s:
            rows = list(
                await s.scalars(
                    select(NewsletterSubscription).order_by(NewsletterSubscription.created_at)
                )
            )
        found = [r for r in rows if r.email == email]
        if not found:
            return None
        r = found[-1]
        return {"id": r.id, "state": r.state, "unsubscribed_at": r.unsubscribed_at}

    return world.server.service(find)  # type: ignore[no-any-return]


def _by_id(world: World, sub_id: str) -> dict[str, Any]:
    async def find(ctx: Any) -> dict[str, Any]:
        async with ctx.db.session(Scope.system(), read_only=True) as s:
            r = await s.get(NewsletterSubscription, sub_id)
            assert r is not None
            return {"state": r.state, "unsubscribed_at": r.unsubscribed_at, "email": r.email}

    return world.server.service(find)  # type: ignore[no-any-return]


def _mail_to(sink: SmtpSink, email: str, since: int) -> list[Any]:
    return [m for m in sink.messages[since:] if m["To"] == email]


def test_newsletter_double_opt_in_and_one_click_unsubscribe_from_the_email_alone(
    world: World, sink: SmtpSink, admin: Console
) -> None:
    email = "subscriber@example.com"
    since = len(sink.messages)
    with httpx.Client(base_url=world.server.url, timeout=10) as browser:
        form = browser.get("/newsletter")
        assert form.status_code == 200 and "Subscribe" in form.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        # A cross-site post (no cookie) is refused.
        with httpx.Client(base_url=world.server.url, timeout=10) as other:
            forged = other.post("/newsletter/subscribe", data={"email": email, "csrf_token": "x"})
            assert forged.status_code == 403
        done = browser.post(
            "/newsletter/subscribe", data={"email": email, "csrf_token": csrf.group(1)}
        )
        assert done.status_code == 200 and "Check your email" in done.text

    # Pending until the confirmation link.
    sub = _subscription(world, email)
    assert sub is not None and sub["state"] == "pending"
    [confirmation] = _mail_to(sink, email, since)
    assert confirmation["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = re.search(r"http://\S+/newsletter/confirm\?token=[\w-]+", confirmation.get_content())
    assert link is not None
    with httpx.Client(timeout=10) as fresh:  # the link alone, no cookies
        page = fresh.get(link.group())
        assert page.status_code == 200 and "Yes, subscribe me" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        assert _by_id(world, sub["id"])["state"] == "pending"  # a fetched link changes nothing
        confirmed = fresh.post(link.group())
        assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
    assert _by_id(world, sub["id"])["state"] == "subscribed"

    # Publishing a policy version emails the subscriber, with the one-click headers.
    since = len(sink.messages)
    published = admin.post("/api/policy-versions", json={"version": "v3", "text": POLICY})
    assert published.status_code == 201, published.text
    assert published.json()["subscribers"] >= 1
    [notice] = _mail_to(sink, email, since)
    header = notice["List-Unsubscribe"]
    assert notice["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = re.fullmatch(r"<(http://\S+/newsletter/unsubscribe\?token=[\w-]+)>", header)
    assert url is not None, header
    assert url.group(1) in notice.get_content()

    # The mail client's one-click POST: no session, no cookie, just the URL from the header.
    with httpx.Client(timeout=10) as mail_client:
        page = mail_client.get(url.group(1))
        assert page.status_code == 200 and 'name="List-Unsubscribe" value="One-Click"' in page.text
        assert _by_id(world, sub["id"])["state"] == "subscribed"  # GET only shows the page
        response = mail_client.post(
            url.group(1),
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200 and "You are unsubscribed" in response.text
        again = mail_client.post(url.group(1), content="List-Unsubscribe=One-Click")
        assert again.status_code == 200  # idempotent
        assert mail_client.get(url.group(1).replace("token=", "token=x")).status_code == 404
    after = _by_id(world, sub["id"])
    assert after["state"] == "unsubscribed" and after["unsubscribed_at"] is not None
    assert after["email"] == ERASED  # the address is forgotten

    # The next version no longer reaches them.
    since = len(sink.messages)
    assert (
        admin.post("/api/policy-versions", json={"version": "v4", "text": POLICY}).status_code
        == 201
    )
    assert _mail_to(sink, email, since) == []
    latest = httpx.get(world.server.url + "/api/policy-versions").json()  # public
    assert latest["latest"]["version"] == "v4"
    assert [v["version"] for v in latest["versions"]][:2] == ["v4", "v3"]
    page = httpx.get(world.server.url + "/policy")
    assert page.status_code == 200 and "Version v4" in page.text


def test_the_api_keeps_tenants_apart_and_writes_for_our_admins(
    world: World, sink: SmtpSink, admin: Console, client_a: Console
) -> None:
    assert client_a.get(f"/api/ropa/{world.org_a}").status_code == 200
    foreign = client_a.get(f"/api/ropa/{world.org_b}")
    missing = client_a.get("/api/ropa/" + "x" * 22)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert "Beta" not in foreign.text

    refused = admin.post(
        "/api/subprocessors",
        json={
            "name": "US Mail",
            "region": "US",
            "purpose": "Email.",
            "categories": ["user.contact"],
        },
    )
    assert refused.status_code == 422
    assert "outside the EU/UK" in refused.json()["detail"]
    body = {
        "name": "Postmark",
        "region": "EU",
        "purpose": "Sends notification emails.",
        "categories": ["user.contact.email"],
    }
    assert client_a.post("/api/subprocessors", json=body).status_code == 403
    since = len(sink.messages)
    added = admin.post("/api/subprocessors", json=body)
    assert added.status_code == 201, added.text
    sp = added.json()["subprocessor"]
    to = {m["To"] for m in sink.messages[since:]}
    assert {world.client_a.email, world.client_b.email} <= to

    # The portal: the record of processing and the inbox, and an objection through the form.
    page = client_a.get("/portal/ropa")
    assert page.status_code == 200 and "Record of processing" in page.text
    assert "Postmark" in page.text and "Announced: from" in page.text
    inbox = client_a.get("/portal/inbox")
    assert inbox.status_code == 200 and "New sub-processor: Postmark" in inbox.text
    api_inbox = client_a.get("/api/inbox").json()
    assert any(m["ref"] == sp["id"] for m in api_inbox)
    assert client_a.get("/api/inbox", params={"organisation_id": world.org_b}).status_code == 404
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    posted = client_a.post(
        "/portal/ropa/objections",
        data={
            "csrf_token": csrf.group(1),
            "subprocessor_id": sp["id"],
            "reason": "We need to review their security first.",
        },
        follow_redirects=False,
    )
    assert posted.status_code == 303, posted.text[:300]
    assert "objected on" in client_a.get("/portal/ropa").text

    async def objections(ctx: Any) -> list[str]:
        async with ctx.db.session(Scope.system(), read_only=True) as s:
            return list(
                await s.scalars(
                    select(SubProcessorObjection.user_id).where(
                        SubProcessorObjection.subprocessor_id == sp["id"]
                    )
                )
            )

    assert world.server.service(objections) == [world.client_a.user_id]
    listed = {s["id"]: s for s in admin.get("/api/subprocessors").json()}
    assert listed[sp["id"]]["objections"][0]["user_email"] == world.client_a.email

    # A breach of organisation B: recorded and notified by our admin, invisible to A.
    breach = admin.post(
        "/api/breaches",
        json={
            "nature": "Lost laptop with an unencrypted export.",
            "categories": ["user.contact"],
            "subjects_approx": 12,
            "records_approx": 12,
            "consequences": "Possible misuse of contact details.",
            "measures": "Remote wipe; passwords rotated.",
            "contact_name": "Dana Protection",
            "contact_email": "dpo@confide-example.com",
            "discovered_at": "2026-01-05T09:00:00+00:00",
            "organisation_ids": [world.org_b],
        },
    )
    assert breach.status_code == 201, breach.text
    breach_id = breach.json()["id"]
    since = len(sink.messages)
    notified = admin.post(f"/api/breaches/{breach_id}/notify")
    assert notified.status_code == 200, notified.text
    assert {m["To"] for m in sink.messages[since:]} == {world.client_b.email}
    assert client_a.get(f"/api/breaches/{breach_id}").status_code == 404
    assert client_a.post(f"/api/breaches/{breach_id}/notify").status_code == 404
    assert breach_id not in {b["id"] for b in client_a.get("/api/breaches").json()}


def test_serve_refuses_a_storage_region_outside_the_eu_uk(world: World) -> None:
    env = {
        **os.environ,
        "CONFIDE_DATABASE_URL": world.server.database_url,
        "CONFIDE_STORAGE_REGION": "US",
    }
    result = subprocess.run(
        [sys.executable, "-m", "confide", "serve", "--no-migrate", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "CONFIDE_STORAGE_REGION is 'US'" in result.stderr
    assert "EU/UK" in result.stderr and "Traceback" not in result.stderr
