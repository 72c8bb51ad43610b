"""Group commit: messages from every socket are written in shared transactions.

Why: a commit is the expensive part of storing a message (a WAL write on SQLite, a round trip
and flush on PostgreSQL). One writer task per process drains the queue of pending messages and
commits them together, then resolves each sender's future; the sender acks only after that.
Under light load a batch is one message and adds no delay; under heavy load batches grow and the
cost per message falls (docs/performance.md).

Per batch, in one transaction:
1. find messages already stored under the same (conversation, client_id): resends get the
   original seq back (idempotency), nothing new is written;
2. ``UPDATE conversations SET last_seq = last_seq + n … WHERE state <> 'closed' RETURNING`` hands
   out gap-free sequence numbers atomically, also across several nodes on PostgreSQL;
3. one multi-row INSERT of the new messages;
4. the emails and phones visitors typed in them, as blind indexes (chat/identifiers.py, which
   says why here), found before the transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Integer, Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from confide.chat import identifiers
from confide.chat.lifecycle import OPEN_STATES
from confide.chat.models import ChatIdentifier, Conversation, Message
from confide.chat.sqlite_commit import SqliteCommitter
from confide.clock import utcnow
from confide.errors import ConfideError, InvalidState, NotFound
from confide.storage.base import UTCDateTime
from confide.storage.busy_window import BusyWindow
from confide.storage.engine import Database

log = logging.getLogger(__name__)

_messages: Table = Message.__table__  # type: ignore[assignment]
_conversations: Table = Conversation.__table__  # type: ignore[assignment]
_identifiers: Table = ChatIdentifier.__table__  # type: ignore[assignment]


@dataclass(slots=True)
class Draft:
    conversation_id: str
    organisation_id: str
    site_id: str
    client_id: str
    author_role: str
    author_id: str | None
    author_name: str
    text: str
    future: asyncio.Future[Stored] = field(repr=False)
    #: Why the stored text differs from what was sent (e.g. "card_masked"), told to the sender.
    notice: str | None = None
    #: ``text`` sealed with the visitor's key: what is stored (``text`` is what is broadcast).
    sealed: str | None = None
    #: The socket that sent it: its ``ack`` is its copy, so the broadcast skips it.
    origin: str | None = None
    #: The conversation's visitor: the data subject of what a visitor writes.
    visitor_id: str | None = None
    #: Emails and phones in a visitor's ``text`` as blind indexes; None until looked at.
    found: identifiers.Found | None = None

    def stored_text(self) -> str:
        if self.sealed is None:
            raise ValueError("message text must be sealed before it is stored")
        return self.sealed


@dataclass(slots=True, frozen=True)
class Stored:
    conversation_id: str
    site_id: str
    seq: int
    client_id: str
    author_role: str
    author_id: str | None
    author_name: str
    text: str
    created_at: datetime
    duplicate: bool
    #: The conversation's state when the message was committed (decides queue previews).
    state: str
    notice: str | None = None
    origin: str | None = None


OnCommitted = Callable[[list[Stored]], Awaitable[None]]


class MessageWriter:
    def __init__(
        self,
        db: Database,
        on_committed: OnCommitted,
        *,
        window_ms: float = 0.0,
        busy_window_ms: float = 0.0,
        inline: bool | None = None,
        max_batch: int = 256,
    ) -> None:
        self._db = db
        self._on_committed = on_committed
        self._window = window_ms / 1000
        self._busy = BusyWindow(busy_window_ms)
        self._max_batch = max_batch
        self._queue: list[Draft] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.messages = 0
        path = db.sqlite_file
        #: On SQLite, batches go through one sqlite3 call on a writer thread (sqlite_commit.py).
        self._sqlite = SqliteCommitter(path, inline=inline) if path else None
        self._spotter = identifiers.Spotter(db)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="confide-message-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is None:
            return
        while self._queue:
            await self._flush()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._sqlite is not None:
            self._sqlite.close()

    async def submit(self, draft: Draft) -> Stored:
        return await self.enqueue(draft)

    def enqueue(self, draft: Draft) -> asyncio.Future[Stored]:
        """Queue ``draft`` for the next batch; its future resolves after the commit."""
        if self._task is None:
            raise RuntimeError("the message writer is not running")
        self._queue.append(draft)
        self._wake.set()
        return draft.future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if self._window and len(self._queue) < self._max_batch:
                await asyncio.sleep(self._window)
            elif len(self._queue) < self._max_batch:
                await self._busy.gather()
            self._wake.clear()
            while self._queue:
                await self._flush()
                self._busy.committed()

    async def _flush(self) -> None:
        batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        try:
            results = await self._commit(batch)
        except IntegrityError:
            # A race with another node on the same (conversation, client_id): retry one by one,
            # so the loser sees the winner's row as a duplicate and the others are unaffected.
            results = []
            for draft in batch:
                try:
                    results.extend(await self._commit([draft]))
                except Exception as exc:
                    results.append(_as_error(exc))
        except Exception as exc:
            log.exception("message batch failed (%d messages); nothing was committed", len(batch))
            results = [_as_error(exc)] * len(batch)
        stored = [r for r in results if isinstance(r, Stored) and not r.duplicate]
        self.batches += 1
        self.messages += len(stored)
        if stored:
            try:
                await self._on_committed(stored)
            except Exception:  # fan-out failures never un-ack a committed message
                log.exception("fan-out of committed messages failed")
        for draft, result in zip(batch, results, strict=True):
            if draft.future.done():
                continue
            if isinstance(result, BaseException):
                draft.future.set_exception(result)
            else:
                draft.future.set_result(result)

    async def _commit(self, batch: list[Draft]) -> list[Stored | BaseException]:
        now = utcnow()
        await self._spotter.mark(batch)
        if self._sqlite is not None:
            return await self._commit_sqlite(batch, now)
        async with self._db.write_connection() as conn:
            existing = await _existing(conn, batch)
            fresh: dict[tuple[str, str], Draft] = {}
            for d in batch:
                if (d.conversation_id, d.client_id) not in existing:
                    fresh.setdefault((d.conversation_id, d.client_id), d)
            counts: dict[str, int] = {}
            for d in fresh.values():
                counts[d.conversation_id] = counts.get(d.conversation_id, 0) + 1
            heads = await _reserve_seqs(conn, counts, now) if counts else {}
            next_seq = {cid: last - counts[cid] + 1 for cid, (last, _state) in heads.items()}
            rows, assigned = [], {}
            for key, d in fresh.items():
                if d.conversation_id not in next_seq:
                    continue
                seq = next_seq[d.conversation_id]
                next_seq[d.conversation_id] = seq + 1
                assigned[key] = seq
                rows.append(
                    {
                        "organisation_id": d.organisation_id,
                        "site_id": d.site_id,
                        "conversation_id": d.conversation_id,
                        "seq": seq,
                        "client_id": d.client_id,
                        "author_role": d.author_role,
                        "author_id": d.author_id,
                        "text": d.stored_text(),
                        "created_at": now,
                    }
                )
            if rows:
                await conn.execute(_messages.insert(), rows)
            found = [
                row
                for key, d in fresh.items()
                if key in assigned and d.found and d.visitor_id
                for row in identifiers.rows(
                    d.organisation_id, d.conversation_id, d.visitor_id, assigned[key], d.found, now
                )
            ]
            if found:
                await conn.execute(_identifiers.insert(), found)
        results: list[Stored | BaseException] = []
        for d in batch:
            key = (d.conversation_id, d.client_id)
            if key in existing:
                seq, at = existing[key]
                results.append(_stored(d, seq, at, True, "active"))
            elif key in assigned:
                first = fresh[key] is d
                results.append(
                    _stored(d, assigned[key], now, not first, heads[d.conversation_id][1])
                )
            else:
                results.append(InvalidState("The conversation is closed; start a new one."))
        return results

    async def _commit_sqlite(
        self, batch: list[Draft], now: datetime
    ) -> list[Stored | BaseException]:
        assert self._sqlite is not None
        rows = [
            (
                d.conversation_id,
                d.client_id,
                d.site_id,
                d.organisation_id,
                d.author_role,
                d.author_id,
                d.stored_text(),
            )
            for d in batch
        ]
        found = {
            i: (d.visitor_id, d.found) for i, d in enumerate(batch) if d.found and d.visitor_id
        }
        results: list[Stored | BaseException] = []
        for d, outcome in zip(batch, await self._sqlite.commit(rows, now, found), strict=True):
            if outcome[0] == "closed":
                results.append(InvalidState("The conversation is closed; start a new one."))
            elif outcome[0] == "dup" and len(outcome) == 3:
                results.append(_stored(d, outcome[1], outcome[2], True, "active"))
            else:
                results.append(_stored(d, outcome[1], outcome[2], outcome[0] == "dup", outcome[3]))
        return results


async def _existing(
    conn: AsyncConnection, batch: list[Draft]
) -> dict[tuple[str, str], tuple[int, datetime]]:
    """Messages already stored under a (conversation, client_id) of the batch.

    One expanding IN on ``client_id`` (the leading column of the unique index): the statement's
    shape is the same for every batch size, so SQLAlchemy compiles it once, and SQLite probes the
    index once per id. The exact (conversation, client_id) pairs are filtered here.
    """
    wanted = {(d.conversation_id, d.client_id) for d in batch}
    rows = await conn.execute(_EXISTING, {"clients": list({k[1] for k in wanted})})
    return {(r[0], r[1]): (r[2], r[3]) for r in rows if (r[0], r[1]) in wanted}


async def _reserve_seqs(
    conn: AsyncConnection, counts: dict[str, int], now: datetime
) -> dict[str, tuple[int, str]]:
    """Advance ``last_seq`` of each open conversation by its count; return (new last_seq, state).

    One statement per distinct count (nearly always just ``1``), each with an expanding IN, so
    the shapes are cached and the row locks make the numbers unique across nodes.
    """
    by_count: dict[int, list[str]] = {}
    for conversation_id, n in counts.items():
        by_count.setdefault(n, []).append(conversation_id)
    heads: dict[str, tuple[int, str]] = {}
    for n, ids in by_count.items():
        result = await conn.execute(_RESERVE, {"ids": ids, "n": n, "now": now})
        heads.update((r[0], (r[1], r[2])) for r in result)
    return heads


_c = _conversations.c
_m = _messages.c
_EXISTING = select(_m.conversation_id, _m.client_id, _m.seq, _m.created_at).where(
    _m.client_id.in_(bindparam("clients", expanding=True))
)
_RESERVE = (
    update(_conversations)
    .where(_c.id.in_(bindparam("ids", expanding=True)), _c.state.in_(sorted(OPEN_STATES)))
    .values(
        last_seq=_c.last_seq + bindparam("n", type_=Integer),
        updated_at=bindparam("now", type_=UTCDateTime),
    )
    .returning(_c.id, _c.last_seq, _c.state)
)


def _stored(d: Draft, seq: int, at: datetime, duplicate: bool, state: str) -> Stored:
    return Stored(
        d.conversation_id,
        d.site_id,
        seq,
        d.client_id,
        d.author_role,
        d.author_id,
        d.author_name,
        d.text,
        at,
        duplicate,
        state,
        d.notice,
        d.origin,
    )


def _as_error(exc: BaseException) -> BaseException:
    if isinstance(exc, ConfideError | NotFound):
        return exc
    return ConfideError("The message could not be stored; nothing was changed. Retry.")
