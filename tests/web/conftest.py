"""Browser fixtures: Debian's Chromium driven by Playwright, and a demo server to point it at."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from confide.storage.migrate import upgrade
from confide.testing import Account, LiveServer, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run scripts/setup-browser (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Demo:
    """A server with the demo pages on, one site embedded in them, and an operator for it."""

    server: LiveServer
    site_key: str
    site_id: str
    org_id: str
    operator: Account

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    workdir = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{workdir / 'demo.db'}"
    upgrade(url)
    port = free_port()
    server = LiveServer(url, workdir, port=port)
    org = server.create_org("Demo Motors")
    key, site_id = server.create_site(
        org, "Demo Motors - Main Street", [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
    )
    operator = server.create_user("operator", sites=[site_id], name="Olivia Operator")
    server.env = {"CONFIDE_DEMO_SITE_KEY": key}
    server.start()
    try:
        yield Demo(server, key, site_id, org, operator)
    finally:
        server.stop()


def sign_in(page: object, demo: Demo, account: Account | None = None) -> None:
    """Sign ``page`` into the console as ``account`` (the demo operator by default)."""
    account = account or demo.operator
    page.goto(f"{demo.url}/console/login")  # type: ignore[attr-defined]
    page.fill("input[name=email]", account.email)  # type: ignore[attr-defined]
    page.fill("input[name=password]", account.password)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url(f"{demo.url}/console")  # type: ignore[attr-defined]
