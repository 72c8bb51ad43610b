"""Group commit under load: after a commit, gather for the rest of a short window.

Why: per-batch costs (statements, WAL pages, wake-ups) are spread over more writes when
batches are larger, and under load that CPU is what keeps the tail down (docs/performance.md,
Run D). Only under load: an idle writer (its last commit longer ago than the window) commits
at once, so a quiet server adds no latency.
"""

from __future__ import annotations

import asyncio
import time


class BusyWindow:
    def __init__(self, window_ms: float) -> None:
        self._window = window_ms / 1000
        self._last_commit = -1.0

    async def gather(self) -> None:
        """Wait out the rest of the window if the last commit ended within it."""
        if not self._window:
            return
        since = time.monotonic() - self._last_commit
        if since < self._window:
            await asyncio.sleep(self._window - since)

    def committed(self) -> None:
        self._last_commit = time.monotonic()
