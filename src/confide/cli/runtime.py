"""Running services and the server from the CLI, with errors turned into clean exits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import typer
from sqlalchemy.exc import DBAPIError

from confide.errors import ConfideError
from confide.settings import Settings

T = TypeVar("T")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def check_database_url(database_url: str) -> None:
    """A malformed or unsupported URL is the user's mistake: say so first, before anything that
    depends on the machine (a busy port) could hide it."""
    from confide.storage.engine import normalise_url

    try:
        normalise_url(database_url)
    except ValueError as exc:
        fail(f"Invalid database URL: {exc}")


def migrate_db(database_url: str) -> None:
    from confide.storage.migrate import upgrade

    try:
        upgrade(database_url)
    except ValueError as exc:
        fail(f"Invalid database URL: {exc}")
    except (OSError, DBAPIError) as exc:
        fail(_database_problem(exc))
    except Exception as exc:
        fail(f"Could not migrate the database: {exc.__class__.__name__}: {exc}")


def run_service(database_url: str, call: Callable[..., Awaitable[T]]) -> T:
    """Build the application context, run ``call(ctx)`` once, and dispose of it."""
    from confide.web.context import AppContext

    async def go() -> T:
        try:
            ctx = AppContext.build(Settings(database_url=database_url))
        except ValueError as exc:
            fail(str(exc))
        try:
            return await call(ctx)
        finally:
            await ctx.db.dispose()

    try:
        return asyncio.run(go())
    except ConfideError as exc:
        fail(exc.message)
    except (OSError, DBAPIError) as exc:
        fail(_database_problem(exc))


def _database_problem(exc: BaseException) -> str:
    """A one-line reason for a database failure, without the traceback or credentials."""
    if isinstance(exc, OSError):
        return f"Cannot reach the database ({exc.strerror or exc.__class__.__name__})."
    text = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
    if text.startswith("role ") and "does not exist" in text:
        return f"The database refused the login: {text} (check the user in the URL)."
    if "password authentication failed" in text:
        return "The database refused the login: wrong password for that user."
    if text.startswith("database ") and "does not exist" in text:
        return f"The {text}: create it first (createdb …)."
    if "no such table" in text or "does not exist" in text:
        return f"The database has no Confide schema yet; run `confide migrate` ({text})."
    return f"Database error: {text}"


def ensure_port_free(host: str, port: int) -> None:
    """Fail with one clear line before anything is printed or seeded, rather than announce a
    server that then cannot listen."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        fail(f"Cannot listen on {host!r}: {exc.strerror}.")
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            fail(
                f"Port {port} on {host} is not available ({exc.strerror}): is another server "
                "running? Choose another with --port."
            )


def run_server(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from confide.web.app import create_app

    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=False,  # the app writes it (confide.logs.AccessLog): beacons are throttled
        ws_per_message_deflate=False,
        # Frames over 16 KB get an error frame from the protocol layer; only frames over 1 MiB
        # are cut off by the transport (close code 1009) before they are buffered whole.
        ws_max_size=1024 * 1024,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
