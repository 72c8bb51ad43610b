"""The group commit of messages on the embedded default, on a dedicated sqlite3 connection.

Why not SQLAlchemy here: on SQLite the cost of a message is dominated by the per-statement
overhead of SQLAlchemy on aiosqlite (a thread hop and result processing per statement, about a
millisecond per small batch; bench/writer_micro.py). This module runs the same three statements
and the commit as **one** call on a writer thread with the standard library's sqlite3, and is
used only by :class:`~confide.chat.writer.MessageWriter` when the database is SQLite. PostgreSQL
keeps the SQLAlchemy path. The SQL is the writer's, written out: same tables, same columns, the
same ``YYYY-MM-DD HH:MM:SS.ffffff`` UTC text SQLAlchemy stores for datetimes, and the same
``chat_identifiers`` rows for the new messages (chat/identifiers.py).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from confide.storage.sqlite_writer import begin_immediate, connect, one_cpu, run_batch

_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

#: (conversation_id, client_id, site_id, org_id, role, author_id, text) per draft, in order.
Row = tuple[str, str, str, str, str, str | None, str]
#: Per draft: ("dup", seq, at) | ("new", seq, at, state) | ("closed",)
Outcome = tuple[Any, ...]
#: By index in the rows: (visitor_id, ((kind, blind index), ...)) typed in that message.
FoundByRow = Mapping[int, tuple[str, tuple[tuple[str, str], ...]]]


class SqliteCommitter:
    """Commits message batches; a checkpointer thread keeps WAL checkpoints off the commit path.

    Why: with SQLite's automatic checkpoint, the commit that crosses the WAL threshold copies the
    WAL back into the database file before it returns: a few milliseconds every ~1,000 pages,
    which is the chat's p99. Here the writer never checkpoints; a separate connection runs a
    PASSIVE checkpoint (it never blocks the writer) every ``CHECKPOINT_S``.
    """

    CHECKPOINT_S = 0.5

    def __init__(self, path: str, *, inline: bool | None = None) -> None:
        self._path = path
        #: Commit on the event loop's thread when this process has one CPU (``one_cpu``).
        self._inline = one_cpu() if inline is None else inline
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="confide-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="confide-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=50")
        try:
            while not self._stop.wait(self.CHECKPOINT_S):
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self._path, checkpoints=False)  # the checkpointer thread does it
        return self._conn

    async def commit(
        self, rows: Sequence[Row], now: datetime, found: FoundByRow | None = None
    ) -> list[Outcome]:
        return await run_batch(
            self._inline, self._executor, self._commit, list(rows), now, found or {}
        )

    def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        self._executor.submit(_close).result()
        self._executor.shutdown(wait=True)
        self._stop.set()
        self._checkpointer.join(timeout=5)

    def _commit(
        self, rows: list[Row], now: datetime, found: FoundByRow, wait: bool = True
    ) -> list[Outcome]:
        conn = self._connection()
        stamp = now.astimezone(UTC).replace(tzinfo=None).strftime(_FORMAT)
        begin_immediate(conn, wait)
        try:
            outcomes = self._write(conn, rows, stamp, now, found)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return outcomes

    def _write(
        self,
        conn: sqlite3.Connection,
        rows: list[Row],
        stamp: str,
        now: datetime,
        found: FoundByRow,
    ) -> list[Outcome]:
        clients = sorted({r[1] for r in rows})
        marks = ",".join("?" * len(clients))
        existing = {
            (c, k): (seq, _parse(at))
            for c, k, seq, at in conn.execute(
                "SELECT conversation_id, client_id, seq, created_at FROM messages"
                f" WHERE client_id IN ({marks})",
                clients,
            )
        }
        fresh: dict[tuple[str, str], int] = {}
        counts: dict[str, int] = {}
        for index, r in enumerate(rows):
            key = (r[0], r[1])
            if key not in existing and key not in fresh:
                fresh[key] = index
                counts[r[0]] = counts.get(r[0], 0) + 1
        heads: dict[str, tuple[int, str]] = {}
        by_count: dict[int, list[str]] = {}
        for conversation_id, n in counts.items():
            by_count.setdefault(n, []).append(conversation_id)
        for n, ids in by_count.items():
            marks = ",".join("?" * len(ids))
            for cid, last, state in conn.execute(
                f"UPDATE conversations SET last_seq = last_seq + ?, updated_at = ?"
                f" WHERE id IN ({marks}) AND state IN ('waiting', 'active')"
                " RETURNING id, last_seq, state",
                [n, stamp, *ids],
            ):
                heads[cid] = (last, state)
        next_seq = {cid: last - counts[cid] + 1 for cid, (last, _s) in heads.items()}
        assigned: dict[tuple[str, str], int] = {}
        inserts = []
        for key, index in fresh.items():
            if key[0] not in next_seq:
                continue
            seq = next_seq[key[0]]
            next_seq[key[0]] = seq + 1
            assigned[key] = seq
            cid, client, site, org, role, author, text = rows[index]
            inserts.append((org, site, cid, seq, client, role, author, text, stamp))
        if inserts:
            conn.executemany(
                "INSERT INTO messages (organisation_id, site_id, conversation_id, seq, client_id,"
                " author_role, author_id, text, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                inserts,
            )
        typed = [
            (rows[index][3], key[0], found[index][0], assigned[key], kind, blind, stamp)
            for key, index in fresh.items()
            if key in assigned and index in found
            for kind, blind in found[index][1]
        ]
        if typed:
            conn.executemany(
                "INSERT INTO chat_identifiers (organisation_id, conversation_id, visitor_id, seq,"
                " kind, blind_index, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                typed,
            )
        outcomes: list[Outcome] = []
        for index, r in enumerate(rows):
            key = (r[0], r[1])
            if key in existing:
                outcomes.append(("dup", *existing[key]))
            elif key in assigned:
                duplicate = fresh[key] != index
                state = heads[r[0]][1]
                outcomes.append(("dup" if duplicate else "new", assigned[key], now, state))
            else:
                outcomes.append(("closed",))
        return outcomes


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
