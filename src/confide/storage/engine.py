"""Engine and sessions: the one place that knows SQLite from PostgreSQL.

SQLite (the embedded default) runs in WAL mode with ``synchronous=NORMAL``: a commit survives a
process crash (the WAL is written before we ack) and costs no fsync per message; a power loss may
lose the last few hundred milliseconds, which the docs state plainly (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from confide.crypto.keystore import default_keystore_url
from confide.crypto.vault import release_vault, vault_for
from confide.storage.scope import Scope


def normalise_url(url: str) -> str:
    """Accept plain ``sqlite:///`` and ``postgresql://`` URLs and pick the async drivers."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(
            "not a database URL (use sqlite:///path.db or postgresql://user@host/db)"
        ) from None
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise ValueError(f"the folder for the SQLite file does not exist: {folder}")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # We issue BEGIN ourselves (see _begin_immediate), so the driver must not.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def _begin_immediate(conn: Any) -> None:
    """Take SQLite's write lock at BEGIN. A deferred transaction that reads and then writes
    fails at once with SQLITE_BUSY when another connection committed in between (the busy
    timeout cannot help with a lock upgrade); waiting for the lock up front can only wait."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, *, immediate: bool = True) -> AsyncEngine:
    """``immediate``: SQLite transactions take the write lock at BEGIN (for units of work that
    write); read-only units use a deferred engine and never wait for the writer (WAL)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, pool_size=4, max_overflow=4)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _begin_immediate if immediate else _begin)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


class Database:
    """The engine plus a session factory whose sessions carry the caller's scope."""

    def __init__(
        self, url: str, *, keystore_url: str | None = None, master_keys: str | None = None
    ) -> None:
        self.url = normalise_url(url)
        self.engine = create_engine(self.url)
        #: Personal data is sealed with per-subject keys kept in a separate store (R34).
        self._keystore_url = (
            keystore_url or os.environ.get("CONFIDE_KEYSTORE_URL") or default_keystore_url(self.url)
        )
        self.vault = vault_for(
            self._keystore_url,
            master_keys if master_keys is not None else os.environ.get("CONFIDE_MASTER_KEYS", ""),
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite: readers get their own deferred engine (WAL readers never block or fail on
        # the writer). PostgreSQL: one engine does both.
        self.read_engine = (
            create_engine(self.url, immediate=False) if self.is_sqlite else self.engine
        )
        self._read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)
        #: SQLite has one writer at a time: queue this process's write units here rather than
        #: in SQLite's busy handler (which sleeps in steps and gives up after busy_timeout).
        self._write_lock = asyncio.Lock()

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def sqlite_file(self) -> str | None:
        """The SQLite database file, or None (PostgreSQL, or an in-memory database)."""
        if not self.is_sqlite:
            return None
        path = make_url(self.url).database
        return path if path and path != ":memory:" else None

    @asynccontextmanager
    async def session(
        self, scope: Scope, *, read_only: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A unit of work for ``scope``: committed on success, rolled back on error.
        ``read_only`` units run on the reader engine (they must not write)."""
        factory = self._read_sessions if read_only else self._sessions
        serialise = self.is_sqlite and not read_only
        async with (
            self._write_lock if serialise else contextlib.nullcontext(),
            factory() as session,
        ):
            session.info["scope"] = scope
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    @asynccontextmanager
    async def write_connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection in a write transaction (serialised on SQLite, like sessions)."""
        async with (
            self._write_lock if self.is_sqlite else contextlib.nullcontext(),
            self.engine.begin() as conn,
        ):
            yield conn

    async def dispose(self) -> None:
        release_vault(self._keystore_url)
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
