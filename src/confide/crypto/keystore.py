"""Where the data keys live: a store kept APART from the main database (SQLite file or PostgreSQL).

Why apart: crypto-shredding works only if destroying a key also makes the copies unreadable. A
backup of the main database holds ciphertext only; the keys are in this store, whose own backups
follow the same schedule (policy 5, R42). Destroying a subject's key here leaves every copy of
their data in the main database's backups undecryptable.

The store is reached synchronously (stdlib ``sqlite3`` or ``psycopg``): keys are fetched on a
cache miss while rows are decoded, which happens inside synchronous SQLAlchemy code. A fetch is one
indexed read of a few dozen bytes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS master_dev (kid TEXT PRIMARY KEY, secret BYTEA NOT NULL, "
    "created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS org_keys (org_id TEXT PRIMARY KEY, master_kid TEXT NOT NULL, "
    "wrapped BYTEA NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS subject_keys (subject_id TEXT PRIMARY KEY, org_id TEXT NOT NULL, "
    "wrapped BYTEA NOT NULL, created_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_subject_keys_org ON subject_keys (org_id)",
)


def default_keystore_url(database_url: str) -> str:
    """Next to the main database: ``x.db`` → ``x.keys.db``; PostgreSQL ``db`` → ``db_keys``."""
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[1] if "///" in database_url else "confide.db"
        if path in ("", ":memory:"):
            return "sqlite:///:memory:"
        p = Path(path)
        return f"sqlite:///{p.with_name(p.stem + '.keys' + (p.suffix or '.db'))}"
    parts = urlsplit(database_url.replace("+asyncpg", ""))
    name = parts.path.lstrip("/") or "confide"
    return urlunsplit(parts._replace(path=f"/{name}_keys"))


def _now() -> str:
    return datetime.now(UTC).isoformat()


class KeyStore:
    """A tiny synchronous key-value store of wrapped keys (one connection per thread)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._pg = url.startswith("postgres")
        self._ready = False
        self._lock = threading.Lock()

    # --- connections --------------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._pg:
            return self._connect_pg()
        path = self.url.split("///", 1)[1]
        if path != ":memory:" and not os.path.exists(path):
            # Owner-only from the start: it holds the wrapped keys (and a demo's master key);
            # SQLite gives its -wal and -shm files the same permissions.
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _connect_pg(self) -> Any:
        import psycopg

        url = self.url.replace("postgresql+asyncpg", "postgresql")
        try:
            return psycopg.connect(url, autocommit=True)
        except psycopg.OperationalError as exc:
            if "does not exist" not in str(exc):
                raise
        parts = urlsplit(url)
        name = parts.path.lstrip("/")
        admin = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return psycopg.connect(url, autocommit=True)

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                if not self._ready:
                    for ddl in _SCHEMA:
                        conn.execute(ddl if self._pg else ddl.replace("BYTEA", "BLOB"))
                    self._ready = True
        yield conn

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._pg else sql

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- reads and writes ---------------------------------------------------------------------

    def _one(self, sql: str, *args: Any) -> Any:
        with self._cursor() as conn:
            row = conn.execute(self._q(sql), args).fetchone()
        return row

    def _run(self, sql: str, *args: Any) -> int:
        with self._cursor() as conn:
            cur = conn.execute(self._q(sql), args)
            return int(cur.rowcount or 0)

    def dev_master(self) -> tuple[str, bytes] | None:
        row = self._one("SELECT kid, secret FROM master_dev ORDER BY created_at DESC LIMIT 1")
        return (str(row[0]), bytes(row[1])) if row else None

    def dev_masters(self) -> dict[str, bytes]:
        with self._cursor() as conn:
            rows = conn.execute("SELECT kid, secret FROM master_dev").fetchall()
        return {str(r[0]): bytes(r[1]) for r in rows}

    def add_dev_master(self, kid: str, secret: bytes) -> None:
        self._run(
            "INSERT INTO master_dev (kid, secret, created_at) VALUES (?, ?, ?)", kid, secret, _now()
        )

    def org_key(self, org_id: str) -> tuple[str, bytes] | None:
        row = self._one("SELECT master_kid, wrapped FROM org_keys WHERE org_id = ?", org_id)
        return (str(row[0]), bytes(row[1])) if row else None

    def put_org_key(self, org_id: str, master_kid: str, wrapped: bytes) -> bool:
        """Insert if absent; False when another process created it first (use theirs)."""
        sql = (
            "INSERT INTO org_keys (org_id, master_kid, wrapped, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (org_id) DO NOTHING"
        )
        return self._run(sql, org_id, master_kid, wrapped, _now()) == 1

    def rewrap_org_key(self, org_id: str, old_kid: str, master_kid: str, wrapped: bytes) -> None:
        self._run(
            "UPDATE org_keys SET master_kid = ?, wrapped = ? WHERE org_id = ? AND master_kid = ?",
            master_kid,
            wrapped,
            org_id,
            old_kid,
        )

    def org_keys(self) -> list[tuple[str, str, bytes]]:
        with self._cursor() as conn:
            rows = conn.execute("SELECT org_id, master_kid, wrapped FROM org_keys").fetchall()
        return [(str(r[0]), str(r[1]), bytes(r[2])) for r in rows]

    def subject_key(self, subject_id: str) -> tuple[str, bytes] | None:
        row = self._one("SELECT org_id, wrapped FROM subject_keys WHERE subject_id = ?", subject_id)
        return (str(row[0]), bytes(row[1])) if row else None

    def put_subject_key(self, subject_id: str, org_id: str, wrapped: bytes) -> bool:
        sql = (
            "INSERT INTO subject_keys (subject_id, org_id, wrapped, created_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (subject_id) DO NOTHING"
        )
        return self._run(sql, subject_id, org_id, wrapped, _now()) == 1

    def destroy_subject_key(self, subject_id: str) -> bool:
        return self._run("DELETE FROM subject_keys WHERE subject_id = ?", subject_id) > 0

    def destroy_org(self, org_id: str) -> int:
        """Contract end: the organisation's key and every subject key under it."""
        n = self._run("DELETE FROM subject_keys WHERE org_id = ?", org_id)
        return n + self._run("DELETE FROM org_keys WHERE org_id = ?", org_id)
