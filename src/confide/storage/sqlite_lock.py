"""Taking SQLite's write lock in the dedicated writers (messages, tracking); where they run.

Both writers keep a plain sqlite3 connection for their batches (see
:mod:`confide.chat.sqlite_commit` and :mod:`confide.tracking.sqlite_ingest`); they share how
they wait for another writer and whether they may run on the event loop's own thread.
"""

from __future__ import annotations

import os
import sqlite3
import time

#: How long a batch waits for another writer (a purge, a migration) before failing.
LOCK_WAIT_S = 30.0


class LockBusy(sqlite3.OperationalError):
    """The write lock is held by another connection and the caller was not to wait."""


def one_cpu() -> bool:
    """Whether this process may run on a single CPU.

    Then a writer thread buys no parallelism, only a hand-off and context switches per batch
    (and GIL hand-backs that delay the event loop): a batch is committed inline instead. Its
    commit takes tens of microseconds (WAL, synchronous=NORMAL: no fsync); only waiting for
    another writer's lock would block, and that wait always goes to the writer thread.
    """
    return len(os.sched_getaffinity(0)) == 1


def begin_immediate(conn: sqlite3.Connection, wait_s: float = LOCK_WAIT_S) -> None:
    """Take the write lock, polling every millisecond for up to ``wait_s`` (0: raise
    :class:`LockBusy` at once).

    SQLite's own busy handler sleeps in growing steps (up to 100 ms) and so misses the short
    gaps between another writer's transactions (a purge in batches): writes waited seconds.
    Polling takes the lock as soon as it is free, and waits long enough never to refuse a
    write because a maintenance job is busy. The connection's ``busy_timeout`` must be 0.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            if not wait_s:
                raise LockBusy(str(exc)) from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)
