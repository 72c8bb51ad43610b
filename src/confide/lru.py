"""A dict bounded by recency, for in-memory state keyed by clients (rate limits, counters).

Why: such keys come from outside (networks, addresses, conversations), so the state must not
grow without bound; forgetting the least recently used key only ever resets its count.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruDict(OrderedDict[K, V]):
    """Setting a key makes it the most recent; past ``limit`` keys the oldest is dropped."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        if len(self) > self.limit:
            self.popitem(last=False)
