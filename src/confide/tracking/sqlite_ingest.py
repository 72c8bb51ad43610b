"""The tracking writer's batches on the embedded default, on a dedicated sqlite3 connection.

Why not SQLAlchemy here: a batch of beacons is up to ten small statements (visits, visitors,
page views, pings, invitations), and on aiosqlite each costs a thread hop plus SQLAlchemy's
compilation and result processing on the event loop: most of the server's CPU per beacon
(bench/ingest_load.py, docs/performance.md). This module runs the writer's batch plan
(:func:`confide.tracking.writer.plan`), every statement and the commit as **one** call on a
writer thread with the standard library's sqlite3, as :mod:`confide.chat.sqlite_commit` does
for messages. PostgreSQL keeps the SQLAlchemy driver. The SQL is the writer's, written out: same
tables and columns, datetimes as the ``YYYY-MM-DD HH:MM:SS.ffffff`` UTC text SQLAlchemy stores,
booleans as 0/1, ``campaign`` as JSON text (``json.dumps``, as SQLAlchemy's JSON type does).

The transaction takes the write lock at ``BEGIN IMMEDIATE``, polling for it while another writer
holds it (``storage.sqlite_writer``), as the message writer does.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from confide.storage.sqlite_writer import begin_immediate, connect, one_cpu, run_batch

#: A statement a batch plan needs: (operation, argument). The driver sends back its result
#: (the operations are listed in confide.tracking.writer).
Op = tuple[str, Any]
R = TypeVar("R")

_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

#: What the plan and the live list read of a visit (not campaign, person or organisation).
_VISIT_COLUMNS = (
    "id",
    "site_id",
    "site_visitor_id",
    "started_at",
    "last_seen_at",
    "first_ts",
    "pageviews",
    "seconds",
    "is_returning",
    "country",
    "region",
    "city",
    "browser",
    "browser_major",
    "os",
    "device",
    "referrer",
    "channel",
    "conversation_id",
    "last_path",
    "last_title",
)
_INSERT_VISIT = (
    "id",
    "organisation_id",
    "site_id",
    "site_visitor_id",
    "started_at",
    "first_ts",
    "last_seen_at",
    "pageviews",
    "seconds",
    "is_returning",
    "country",
    "region",
    "city",
    "browser",
    "browser_major",
    "os",
    "device",
    "referrer",
    "channel",
    "campaign",
    "conversation_id",
    "last_path",
    "last_title",
)
_INSERT_VISITOR = (
    "id",
    "organisation_id",
    "site_id",
    "cookie_hash",
    "first_seen_at",
    "last_seen_at",
    "visit_count",
)
_INSERT_PAGE = ("organisation_id", "site_id", "visit_id", "seq", "path", "title", "at", "seconds")


class SqliteIngest:
    """Runs batch plans on one sqlite3 connection: on a writer thread, or inline on the event
    loop when this process has one CPU (``one_cpu``; a locked database still waits on the
    thread)."""

    def __init__(self, path: str, *, inline: bool | None = None) -> None:
        self._path = path
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._inline = one_cpu() if inline is None else inline

    async def run(self, make_plan: Callable[[], Generator[Op, Any, R]]) -> R:
        """Make the plan and run it, with its commit (inline, or on the writer thread)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="confide-ingest")
        return await run_batch(self._inline, self._executor, self._transaction, make_plan)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            return

        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(executor, _close)
        executor.shutdown(wait=True)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self._path)
        return self._conn

    def _transaction(self, make_plan: Callable[[], Generator[Op, Any, R]], wait: bool = True) -> R:
        conn = self._connection()
        begin_immediate(conn, wait)
        try:
            plan = make_plan()
            result: Any = None
            while True:
                try:
                    name, arg = plan.send(result)
                except StopIteration as done:
                    value: R = done.value
                    break
                result = _OPS[name](conn, arg)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return value


# --- the operations, as sqlite3 statements ------------------------------------------------------


def _stamp(at: datetime) -> str:
    """The stored text of ``at``. Most values in a batch are its ``now`` (one object), so the
    last one is remembered: ``strftime`` was the writer thread's largest Python cost."""
    last_at, last_text = _last_stamp[0]
    if at is last_at:
        return last_text
    # isoformat with fixed microseconds is the same text as strftime(_FORMAT), several times faster
    text = at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    _last_stamp[0] = (at, text)  # one tuple, replaced whole: safe across writer threads
    return text


_last_stamp: list[tuple[datetime | None, str]] = [(None, "")]


def _parse(text: str, seen: dict[str, datetime]) -> datetime:
    """``seen``: per query, as the rows of one batch share their times."""
    at = seen.get(text)
    if at is None:
        at = seen[text] = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return at


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _visits(conn: sqlite3.Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    if not ids:
        return found
    cursor = conn.execute(
        f"SELECT {', '.join(_VISIT_COLUMNS)} FROM visits WHERE id IN ({_marks(len(ids))})", ids
    )
    seen: dict[str, datetime] = {}
    for values in cursor:
        row = dict(zip(_VISIT_COLUMNS, values, strict=True))
        row["started_at"] = _parse(row["started_at"], seen)
        row["last_seen_at"] = _parse(row["last_seen_at"], seen)
        row["first_ts"] = _parse(row["first_ts"], seen)
        row["is_returning"] = bool(row["is_returning"])
        found[row["id"]] = row
    return found


def _visitors(conn: sqlite3.Connection, digests: set[str]) -> list[dict[str, Any]]:
    cursor = conn.execute(
        "SELECT id, cookie_hash, visit_count FROM site_visitors"
        f" WHERE cookie_hash IN ({_marks(len(digests))})",
        list(digests),
    )
    return [{"id": i, "cookie_hash": h, "visit_count": n} for i, h, n in cursor]


def _insert(table: str, columns: tuple[str, ...], convert: Callable[[dict[str, Any]], Any]) -> Any:
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({_marks(len(columns))})"

    def run(conn: sqlite3.Connection, rows: Iterable[dict[str, Any]]) -> None:
        conn.executemany(sql, [convert(r) for r in rows])

    return run


def _visit_values(r: dict[str, Any]) -> tuple[Any, ...]:
    return (
        r["id"],
        r["organisation_id"],
        r["site_id"],
        r["site_visitor_id"],
        _stamp(r["started_at"]),
        _stamp(r["first_ts"]),
        _stamp(r["last_seen_at"]),
        r["pageviews"],
        r["seconds"],
        int(r["is_returning"]),
        r["country"],
        r["region"],
        r["city"],
        r["browser"],
        r["browser_major"],
        r["os"],
        r["device"],
        r["referrer"],
        r["channel"],
        json.dumps(r["campaign"]),
        r["conversation_id"],
        r["last_path"],
        r["last_title"],
    )


def _visitor_values(r: dict[str, Any]) -> tuple[Any, ...]:
    return (
        r["id"],
        r["organisation_id"],
        r["site_id"],
        r["cookie_hash"],
        _stamp(r["first_seen_at"]),
        _stamp(r["last_seen_at"]),
        r["visit_count"],
    )


def _page_values(r: dict[str, Any]) -> tuple[Any, ...]:
    return (
        r["organisation_id"],
        r["site_id"],
        r["visit_id"],
        r["seq"],
        r["path"],
        r["title"],
        _stamp(r["at"]),
        r["seconds"],
    )


def _bump_visitors(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
    conn.executemany(
        "UPDATE site_visitors SET visit_count = visit_count + ?, last_seen_at = ? WHERE id = ?",
        [(r["b_n"], _stamp(r["b_seen"]), r["b_id"]) for r in rows],
    )


def _touch_visits(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
    conn.executemany(
        "UPDATE visits SET pageviews = ?, last_seen_at = ?, seconds = ?, last_path = ?,"
        " last_title = ? WHERE id = ?",
        [
            (
                r["b_pageviews"],
                _stamp(r["b_last_seen_at"]),
                r["b_seconds"],
                r["b_last_path"],
                r["b_last_title"],
                r["b_id"],
            )
            for r in rows
        ],
    )


def _pings(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
    conn.executemany(
        "UPDATE page_views SET seconds = ? WHERE visit_id = ? AND seq = ? AND seconds < ?",
        [(r["s"], r["v"], r["q"], r["s"]) for r in rows],
    )


def _invitations(
    conn: sqlite3.Connection, arg: tuple[list[str], datetime]
) -> list[tuple[Any, ...]]:
    visit_ids, since = arg
    return conn.execute(
        "SELECT id, visit_id, text, from_name FROM invitations"
        f" WHERE visit_id IN ({_marks(len(visit_ids))}) AND delivered_at IS NULL"
        " AND created_at >= ? ORDER BY id",
        [*visit_ids, _stamp(since)],
    ).fetchall()


def _deliver_invitations(conn: sqlite3.Connection, arg: tuple[list[int], datetime]) -> None:
    ids, now = arg
    conn.execute(
        f"UPDATE invitations SET delivered_at = ? WHERE id IN ({_marks(len(ids))})",
        [_stamp(now), *ids],
    )


_OPS: dict[str, Callable[[sqlite3.Connection, Any], Any]] = {
    "visits": _visits,
    "visitors": _visitors,
    "insert_visitors": _insert("site_visitors", _INSERT_VISITOR, _visitor_values),
    "insert_visits": _insert("visits", _INSERT_VISIT, _visit_values),
    "insert_pages": _insert("page_views", _INSERT_PAGE, _page_values),
    "bump_visitors": _bump_visitors,
    "touch_visits": _touch_visits,
    "pings": _pings,
    "invitations": _invitations,
    "deliver_invitations": _deliver_invitations,
}
