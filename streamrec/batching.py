"""Micro-batches that close on size or on a deadline, whichever comes first.

The clock is injectable, so tests advance it by hand.

>>> now = [0.0]
>>> batcher = MicroBatcher(max_size=3, max_wait_ms=100, clock=lambda: now[0])
>>> batcher.add("a"), batcher.add("b")
(None, None)
>>> now[0] = 0.2  # 200 ms later: the deadline has passed
>>> batcher.poll()
['a', 'b']
>>> batcher.add("c"), batcher.add("d"), batcher.add("e")
(None, None, ['c', 'd', 'e'])
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class MicroBatcher(Generic[T]):
    def __init__(self, max_size: int, max_wait_ms: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_size = max_size
        self.max_wait = max_wait_ms / 1000
        self.clock = clock
        self._items: list[T] = []
        self._opened_at = 0.0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> list[T] | None:
        """Add one item; returns the closed batch when this item filled it."""
        if not self._items:
            self._opened_at = self.clock()
        self._items.append(item)
        return self._close() if len(self._items) >= self.max_size else None

    def poll(self) -> list[T] | None:
        """The open batch if its deadline has passed, else None."""
        if self._items and self.clock() - self._opened_at >= self.max_wait:
            return self._close()
        return None

    def time_left(self) -> float:
        """Seconds until the open batch's deadline (the full wait when none is open)."""
        if not self._items:
            return self.max_wait
        return max(0.0, self.max_wait - (self.clock() - self._opened_at))

    def flush(self) -> list[T]:
        """Close the open batch now, whatever its size (possibly empty)."""
        return self._close()

    def _close(self) -> list[T]:
        batch, self._items = self._items, []
        return batch
