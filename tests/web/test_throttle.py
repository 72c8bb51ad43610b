"""The public forms are limited per network: past the burst a 429 with a reason and a
Retry-After, nothing sent or created; other forms and other networks are unaffected."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from confide.errors import RateLimited
from confide.web.throttle import FormThrottle
from tests.conftest import ORIGIN_A, World

BURST = 3


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    return {"CONFIDE_PUBLIC_FORM_BURST": str(BURST), "CONFIDE_PUBLIC_FORM_PER_HOUR": "6"}


@pytest.fixture(scope="module")
def http(world: World) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=world.server.url, timeout=10) as client:
        yield client


def _privacy_request(http: httpx.Client, world: World, n: int) -> httpx.Response:
    return http.post(
        f"/api/privacy/{world.org_a}/requests",
        json={"kind": "access", "email": f"someone{n}@example.com"},
    )


def _count_requests(world: World) -> int:
    async def count(ctx):  # type: ignore[no-untyped-def]
        from sqlalchemy import func, select

        from confide.privacy.models import PrivacyRequest
        from confide.storage.scope import Scope

        async with ctx.db.session(Scope.system(), read_only=True) as s:
            return await s.scalar(select(func.count()).select_from(PrivacyRequest))

    return int(world.server.service(count))


def test_privacy_requests_past_the_burst_get_429_and_change_nothing(
    world: World, http: httpx.Client
) -> None:
    for n in range(BURST):
        assert _privacy_request(http, world, n).status_code == 202
    stored = _count_requests(world)
    refused = _privacy_request(http, world, 99)
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert "try again in 10 minutes" in refused.json()["detail"]
    assert refused.headers["retry-after"] == "600"
    assert _count_requests(world) == stored  # nothing was created for the refused one


def test_the_limit_is_per_form_and_an_html_form_gets_a_page(
    world: World, http: httpx.Client
) -> None:
    # the offline enquiry form has its own allowance
    enquiry = http.post(
        "/api/widget/enquiry",
        json={
            "site": world.site_a,
            "host": ORIGIN_A,
            "name": "Ann",
            "contact": "ann@example.com",
            "message": "Hi",
        },
        headers={"Origin": ORIGIN_A},
    )
    assert enquiry.status_code == 201, enquiry.text
    # the request page's form shares the privacy-request allowance spent above: a page, not JSON
    page = http.get(f"/privacy/{world.org_a}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    refused = http.post(
        f"/privacy/{world.org_a}",
        data={"csrf_token": token.group(1), "kind": "access", "email": "x@example.com"},
    )
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("text/html")
    assert "Too many requests from your network" in refused.text


def test_networks_have_their_own_buckets_and_are_forgotten_oldest_first() -> None:
    throttle = FormThrottle(per_hour=1, burst=1, max_keys=2)
    throttle.check("f", "203.0.113.7")
    with pytest.raises(RateLimited):
        throttle.check("f", "203.0.113.200")  # same /24: same allowance
    throttle.check("f", "198.51.100.1")  # another network
    throttle.check("g", "203.0.113.7")  # another form (evicts the oldest key)
    throttle.check("f", "203.0.113.7")  # forgotten: a fresh bucket
