"""Fixtures for the browser tests (helpers in ``browser_support.py``).

A browser module gets, by default, a SQLite-backed demo server (``demo``), one Chromium for the
module (``browser``) and factories for visitors on the demo site and signed-in operators. A module
overrides ``demo`` to seed more or to run on another database (see test_console_browser.py).

Playwright is imported lazily so that the non-browser tests in this directory never need it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from confide.testing import Account
from tests.web.browser_support import DESKTOP, Demo, Watched, demo_server, launch, new_visitor
from tests.web.browser_support import sign_in as _sign_in


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with demo_server(tmp_path_factory.mktemp("demo")) as d:
        yield d


@pytest.fixture(scope="module")
def browser(demo: Demo) -> Iterator[Any]:
    # Depends on ``demo`` so that seeding (asyncio.run) happens before Playwright's loop exists.
    # Module-scoped on purpose: closed when the module ends, so the next module can start its own.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def new_context(browser: Any) -> Iterator[Callable[..., Any]]:
    """Browser contexts for one test, all closed after it."""
    made: list[Any] = []

    def make(viewport: dict[str, int] = DESKTOP, **options: Any) -> Any:
        options.setdefault("is_mobile", viewport["width"] < 500)
        ctx = browser.new_context(viewport=viewport, **options)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


@pytest.fixture
def visitor_page(new_context: Callable[..., Any], demo: Demo) -> Callable[..., Watched]:
    """A new visitor (a fresh context) on the demo pages, served as ``demo.host``."""

    def make(viewport: dict[str, int] = DESKTOP, pages: dict[str, str] | None = None) -> Watched:
        return new_visitor(new_context(viewport), demo.server.url, host=demo.host, pages=pages)

    return make


@pytest.fixture
def operator_page(new_context: Callable[..., Any], demo: Demo) -> Callable[..., Watched]:
    """A console signed in through the login form (the demo operator unless told otherwise)."""

    def make(viewport: dict[str, int] = DESKTOP, account: Account | None = None) -> Watched:
        ctx = new_context(viewport, is_mobile=False)  # a desktop browser, however narrow
        return _sign_in(ctx, demo.server.url, account or demo.operator)

    return make
