"""The background roll-up: today's (and, just after midnight, yesterday's) daily stats."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from confide.clock import utcnow
from confide.tracking.aggregates import Reports
from confide.tracking.salts import Salts

log = logging.getLogger(__name__)


class RollupTask:
    def __init__(self, reports: Reports, *, interval_s: float, salts: Salts | None = None) -> None:
        self.reports = reports
        #: Past cookieless salts are destroyed on this schedule too, not only when used (R21).
        self.salts = salts
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval_s > 0:
            self._task = asyncio.create_task(self._run(), name="confide-rollup")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> int:
        if self.salts is not None:
            await self.salts.rotate()
        today = utcnow().date()
        return await self.reports.rollup([today - timedelta(days=1), today])

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.run_once()
            except Exception:  # a failed roll-up is retried on the next tick
                log.exception("analytics roll-up failed")
