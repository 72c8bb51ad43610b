"""What the dedicated sqlite3 writers (messages, tracking) share: their connection, how they
take the write lock, and whether a batch runs inline or on their writer thread.

Both writers keep a plain sqlite3 connection for their batches (see
:mod:`confide.chat.sqlite_commit` and :mod:`confide.tracking.sqlite_ingest`).
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

R = TypeVar("R")

#: How long a batch waits for another writer (a purge, a migration) before failing.
LOCK_WAIT_S = 30.0


class LockBusy(sqlite3.OperationalError):
    """The write lock is held by another connection and the caller was not to wait."""


def connect(path: str, *, checkpoints: bool = True) -> sqlite3.Connection:
    """A writer's connection: WAL, no fsync per commit, foreign keys on, no busy handler (the
    lock is polled: :func:`begin_immediate`). ``checkpoints=False`` leaves WAL checkpoints to
    someone else (the message writer's checkpointer thread)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=0")
    if not checkpoints:
        conn.execute("PRAGMA wal_autocheckpoint=0")
    return conn


def one_cpu() -> bool:
    """Whether this process may run on a single CPU.

    Then a writer thread buys no parallelism, only a hand-off and context switches per batch
    (and GIL hand-backs that delay the event loop): a batch is committed inline instead. Its
    commit takes tens of microseconds (WAL, synchronous=NORMAL: no fsync); only waiting for
    another writer's lock would block, and that wait always goes to the writer thread.
    """
    return len(os.sched_getaffinity(0)) == 1


async def run_batch(inline: bool, executor: Executor, batch: Callable[..., R], *args: Any) -> R:
    """``batch(*args, wait=...)`` inline without waiting for the lock when ``inline``, else (or
    when another writer holds the lock) on ``executor``, waiting for it there."""
    if inline:
        try:
            return batch(*args, wait=False)
        except LockBusy:
            pass  # another writer (a purge) holds the lock: wait for it off the loop
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(batch, *args, wait=True))


def begin_immediate(conn: sqlite3.Connection, wait: bool = True) -> None:
    """Take the write lock, polling every millisecond for up to ``LOCK_WAIT_S`` (``wait=False``:
    raise :class:`LockBusy` at once).

    SQLite's own busy handler sleeps in growing steps (up to 100 ms) and so misses the short
    gaps between another writer's transactions (a purge in batches): writes waited seconds.
    Polling takes the lock as soon as it is free, and waits long enough never to refuse a
    write because a maintenance job is busy.
    """
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            if not wait:
                raise LockBusy(str(exc)) from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)
