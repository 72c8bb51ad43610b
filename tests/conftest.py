"""Shared fixtures: a live server per backend (SQLite file, PostgreSQL database) and a small world.

``backend`` parametrises integration tests over both storage engines; each PostgreSQL test
module gets its own freshly created database, so tests are parallel-safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from confide.storage.migrate import upgrade
from confide.testing import Account, LiveServer, postgres_database

ORIGIN_A = "https://dealer-a.example"
ORIGIN_B = "https://dealer-b.example"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "confide.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url
    else:
        with postgres_database() as url:
            upgrade(url)
            yield url


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    """Extra environment for the module's server; override in a module to change settings."""
    return {}


@pytest.fixture(scope="module")
def live_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, server_env: dict[str, str]
) -> Iterator[LiveServer]:
    server = LiveServer(database_url, tmp_path_factory.mktemp("server"), env=server_env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class World:
    """Two client organisations with a site each, and people in every role."""

    server: LiveServer
    org_a: str
    org_b: str
    site_a: str  # key
    site_a_id: str
    site_b: str
    site_b_id: str
    admin: Account
    operator_a: Account  # assigned to site A only
    client_a: Account  # staff of organisation A
    client_b: Account


@pytest.fixture(scope="module")
def world(live_server: LiveServer) -> World:
    s = live_server
    org_a, org_b = s.create_org("Alpha Cars"), s.create_org("Beta Motors")
    site_a, site_a_id = s.create_site(org_a, "Alpha Cars Leeds", [ORIGIN_A])
    site_b, site_b_id = s.create_site(org_b, "Beta Motors York", [ORIGIN_B])
    return World(
        server=s,
        org_a=org_a,
        org_b=org_b,
        site_a=site_a,
        site_a_id=site_a_id,
        site_b=site_b,
        site_b_id=site_b_id,
        admin=s.create_user("admin", name="Ada Admin"),
        operator_a=s.create_user("operator", sites=[site_a_id], name="Otto Operator"),
        client_a=s.create_user("client", org=org_a, sites=[site_a_id], name="Cara Alpha"),
        client_b=s.create_user("client", org=org_b, sites=[site_b_id], name="Bob Beta"),
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
