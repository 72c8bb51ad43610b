"""The scheduled purge: once a day in the server (or worker) process, plus reminders for
privacy-request deadlines (50 % / 80 %)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from confide.retention.purge import Purger

log = logging.getLogger(__name__)


class RetentionTask:
    def __init__(
        self,
        purger: Purger,
        *,
        interval_s: float,
        also: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.purger = purger
        self.interval_s = interval_s
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

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                run = await self.purger.run()
                log.info("retention run %s: %d finding(s)", run.id, len(run.report))
                if self.also is not None:
                    await self.also()
            except Exception:  # retried on the next tick; the run row says "interrupted"
                log.exception("retention run failed")
