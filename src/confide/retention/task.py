"""The scheduled purge: once a day in the server (or worker) process, plus reminders for
privacy-request deadlines (50 % / 80 %).

The schedule is kept in the database (the last run's start), not in the process: a server
restarted more often than once a day still purges daily, and a fresh one purges shortly after
start-up rather than a day later."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import func, select

from confide.clock import utcnow
from confide.retention.models import RetentionRun
from confide.retention.purge import Purger
from confide.storage.scope import Scope

log = logging.getLogger(__name__)


class RetentionTask:
    def __init__(
        self,
        purger: Purger,
        *,
        interval_s: float,
        also: Callable[[], Awaitable[object]] | None = None,
        startup_delay_s: float = 60.0,
    ) -> None:
        self.purger = purger
        self.interval_s = interval_s
        #: Not in the middle of start-up (migrations, warm-up), even when a run is overdue.
        self.startup_delay_s = startup_delay_s
        self.also = also
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval_s > 0:
            self._task = asyncio.create_task(self._run(), name="confide-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def first_delay(self) -> float:
        """Seconds until the next run is due: ``interval_s`` after the last (not dry) run
        started, and never sooner than ``startup_delay_s``."""
        async with self.purger.db.session(Scope.system(), read_only=True) as s:
            last: datetime | None = await s.scalar(
                select(func.max(RetentionRun.started_at)).where(RetentionRun.dry_run.is_(False))
            )
        if last is None:
            return self.startup_delay_s
        elapsed = max(0.0, (utcnow() - last).total_seconds())  # a clock set back: not overdue
        due = self.interval_s - elapsed
        return max(self.startup_delay_s, due)

    async def _run(self) -> None:
        try:
            delay = await self.first_delay()
        except Exception:
            log.exception("could not read the last retention run; waiting a full interval")
            delay = self.interval_s
        while True:
            await asyncio.sleep(delay)
            delay = self.interval_s
            try:
                run = await self.purger.run()
                log.info("retention run %s: %d finding(s)", run.id, len(run.report))
                if self.also is not None:
                    await self.also()
            except Exception:  # retried on the next tick; the run row says "interrupted"
                log.exception("retention run failed")
